"""The Python API: video in, soundtrack out.

    from foleygen import FoleyGen

    model = FoleyGen.from_pretrained("demo")            # or a directory, a Hub id, "debug"
    model.set_generation_params(cfg_coef=3.0, top_k=250)
    wav = model.generate(["clip.mp4"], seed=0)          # [B, C, S], S = round(duration * sample_rate)
    params = model.generation_params(temperature=0.8)   # settings for one call (the model is unchanged)
    [res] = model.generate_results(["clip.mp4"], params=params)  # probe, frames, features, codes, audio

A :class:`FoleyGen` holds three parts: the codec (audio <-> codes), the visual encoder (frames ->
features) and the :class:`~foleygen.lm.model.AudioLM`. ``duration`` is the clip length the LM was
trained on; longer videos are generated in sliding windows (see :meth:`FoleyGen.generate_codes`).

Checkpoint directory (``save_pretrained`` / ``from_pretrained``)::

    config.json        {"codec": {...}, "visual": {...}, "lm": {...}, "sequence": {...}, "generation": {...}}
    model.safetensors  "lm.*" (the AudioLM) + "visual.*" (the visual encoder, when it is trainable)
    codec/             the compact codec's own checkpoint directory (when the codec is ours)

``codec`` is ``{"type": "compact", "path": "codec"}`` or ``{"type": "external", "path": <dir, file or
name for load_codec>, "num_codebooks": K}``; ``visual`` is ``{"kind": "compact", "config": {...}}`` or
``{"kind": <clip|vit|...>, "path": <checkpoint>, "fps": ..., "options": {...}}``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from foleygen.atomic import atomic_dir
from foleygen.checkpoint import (
    CONFIG_NAME,
    build_from_config,
    load_checkpoint_dir,
    load_part,
    section_types,
    write_checkpoint_files,
)
from foleygen.codecs.base import AudioCodec
from foleygen.config import SequenceConfig, from_dict, load_json, to_dict
from foleygen.errors import CheckpointError, ConfigError
from foleygen.lm.masks import step_unit
from foleygen.lm.model import AudioLM, LMConfig
from foleygen.results import MAX_AUDIO_PAST_VIDEO_S, GenerationResult, LoadedVideo, load_video
from foleygen.results import check_length as _check_length
from foleygen.staging import remove_stale_temporaries
from foleygen.utils import user_path
from foleygen.vision.base import VisualEncoder

if TYPE_CHECKING:
    from foleygen.io import FrameRequest

#: the embedded demo model (written by ``make demo-model``; absent in a fresh checkout)
DEMO_DIR = Path(__file__).resolve().parent / "assets" / "demo"
__all__ = ["FoleyGen", "GenerationParams", "GenerationResult", "MAX_AUDIO_PAST_VIDEO_S", "DEMO_DIR", "_check_length"]

Video = str | os.PathLike[str] | torch.Tensor


@dataclass
class GenerationParams:
    """Decoding settings of :meth:`FoleyGen.generate` (see :meth:`FoleyGen.set_generation_params`)."""

    top_k: int = 250
    top_p: float = 0.0
    temperature: float = 1.0
    cfg_coef: float = 3.0
    duration: float | None = None
    extend_stride: float | None = None


class FoleyGen:
    """Visually-guided audio generation: codec + visual encoder + :class:`AudioLM`.

    Args:
        codec: turns codes into audio (and a prompt into codes).
        visual_encoder: turns frames into features at ``lm.fps``.
        lm: the audio LM; its ``num_codebooks, cardinality, frame_rate, fps, visual_dim`` must match.
        duration: seconds per generation window (the clip length the LM was trained on).
        codec_source: how ``save_pretrained`` refers to an external (non-compact) codec, e.g.
            ``{"path": "facebook/encodec_32khz", "num_codebooks": 4}``.
        visual_source: how ``save_pretrained`` refers to a frozen visual encoder, e.g.
            ``{"kind": "clip", "path": "/models/clip", "options": {}}``.
    """

    def __init__(
        self,
        codec: AudioCodec,
        visual_encoder: VisualEncoder,
        lm: AudioLM,
        duration: float,
        *,
        codec_source: dict[str, Any] | None = None,
        visual_source: dict[str, Any] | None = None,
    ) -> None:
        mismatches = [
            f"{name}: codec/encoder {theirs} vs lm {ours}"
            for name, theirs, ours in (
                ("num_codebooks", codec.num_codebooks, lm.num_codebooks),
                ("cardinality", codec.cardinality, lm.cardinality),
                ("frame_rate", float(codec.frame_rate), lm.frame_rate),
                ("fps", float(visual_encoder.fps), lm.fps),
                ("visual_dim", visual_encoder.dim, lm.visual_dim),
            )
            if theirs != ours
        ]
        if mismatches:
            raise ConfigError("parts do not fit together (" + "; ".join(mismatches) + ")")
        self.codec, self.visual_encoder, self.lm = codec, visual_encoder, lm
        self.sequence = SequenceConfig(
            float(duration), codec.sample_rate, float(codec.frame_rate), float(visual_encoder.fps)
        )
        self.codec_source, self.visual_source = codec_source, visual_source
        self.generation = GenerationParams(extend_stride=self._default_stride())

    # ----------------------------------------------------------------------------- properties
    @property
    def duration(self) -> float:
        """Seconds per generation window."""
        return self.sequence.duration

    @property
    def sample_rate(self) -> int:
        """Samples per second of the generated audio (the codec's)."""
        return self.codec.sample_rate

    @property
    def channels(self) -> int:
        return self.codec.channels

    @property
    def device(self) -> torch.device:
        return self.lm.head.weight.device

    def to(self, device: str | torch.device) -> FoleyGen:
        """Move all three parts to ``device``."""
        for part in (self.codec, self.visual_encoder, self.lm):
            part.to(device)
        return self

    # ------------------------------------------------------------------------- generation params
    def _default_stride(self) -> float:
        # Half the window, rounded down to whole audio *and* visual frames (the unit windows move by).
        unit = step_unit(self.sequence.frame_rate, self.sequence.fps)
        return float(max(unit, Fraction(self.duration / 2).limit_denominator(10_000) // unit * unit))

    def set_generation_params(
        self,
        top_k: int = 250,
        top_p: float = 0.0,
        temperature: float = 1.0,
        cfg_coef: float = 3.0,
        duration: float | None = None,
        extend_stride: float | None = None,
    ) -> None:
        """Decoding settings for later ``generate*`` calls (the defaults of calls given no ``params``).

        Args:
            top_k: sample among the k most likely codes (0: all).
            top_p: nucleus sampling mass (0: off). Both filters may be on.
            temperature: softmax temperature; 0 is greedy decoding.
            cfg_coef: classifier-free guidance scale (1: no guidance, a single conditional pass).
            duration: seconds of audio per video; None (default): each video's own duration.
            extend_stride: for videos longer than the model's window, seconds each new window adds;
                each window continues from the last ``window - extend_stride`` seconds already generated.
                Rounded to whole audio and visual frames; default half the window.
        """
        self.generation = self._checked(top_k, top_p, temperature, cfg_coef, duration, extend_stride)

    def _checked(
        self,
        top_k: int,
        top_p: float,
        temperature: float,
        cfg_coef: float,
        duration: float | None,
        extend_stride: float | None,
    ) -> GenerationParams:
        if top_k < 0 or not 0.0 <= top_p <= 1.0 or temperature < 0:
            raise ConfigError(
                f"need top_k >= 0, 0 <= top_p <= 1, temperature >= 0; got {top_k}, {top_p}, {temperature}"
            )
        if duration is not None and not (math.isfinite(duration) and duration > 0):
            raise ConfigError(f"duration must be a positive number of seconds, got {duration}")
        stride = self._default_stride() if extend_stride is None else float(extend_stride)
        if not 0 < stride < self.duration:
            raise ConfigError(f"extend_stride must be in (0, {self.duration:g}) seconds, got {extend_stride}")
        return GenerationParams(top_k, top_p, temperature, cfg_coef, duration, stride)

    def generation_params(self, **changes: Any) -> GenerationParams:
        """The model's current decoding settings with ``changes`` applied, checked, for one call's
        ``params=`` (the model itself is not changed, so concurrent calls on one model do not mix).
        Same names and checks as :meth:`set_generation_params`."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(GenerationParams)}
        if unknown:
            raise ConfigError(f"unknown generation settings: {sorted(unknown)}")
        return self._checked(**{**dataclasses.asdict(self.generation), **changes})

    def update_generation_params(self, **changes: Any) -> None:
        """Change only the named decoding settings; the others keep their current values.

        :meth:`set_generation_params` resets every setting it is not given to the library default (as
        AudioCraft's does); this keeps what the checkpoint chose (its ``config.json``), e.g. the demo
        model's temperature. Same names and checks as :meth:`set_generation_params`.
        """
        self.generation = self.generation_params(**changes)

    def _stride_frames(self, params: GenerationParams | None = None) -> int:
        """``extend_stride`` (of ``params``, default the model's) in audio frames, rounded to the window
        unit (at least one unit)."""
        g = params or self.generation
        unit = step_unit(self.sequence.frame_rate, self.sequence.fps)
        stride = Fraction(g.extend_stride).limit_denominator(10_000)
        units = max(1, round(stride / unit))
        frames = units * unit * Fraction(self.sequence.frame_rate).limit_denominator(1_000_000)
        window = self.sequence.num_audio_frames
        if frames >= window:
            raise ConfigError(
                f"extend_stride {g.extend_stride:g} s leaves no overlap with the "
                f"{self.duration:g} s window once rounded to {float(unit):g} s steps"
            )
        return int(frames)

    # ----------------------------------------------------------------------------- inputs
    @staticmethod
    def _param_device(module: torch.nn.Module) -> torch.device:
        p = next(module.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    @staticmethod
    def _as_list(videos: Video | Sequence[Video]) -> list[Video]:
        if isinstance(videos, str | os.PathLike) or (isinstance(videos, torch.Tensor) and videos.dim() == 4):
            return [videos]
        return list(videos)

    @contextlib.contextmanager
    def _eval_mode(self) -> Iterator[None]:
        # Generation needs eval mode (no dropout, no condition dropout); a caller that is training must
        # get its modules back as they were.
        parts = (self.codec, self.visual_encoder, self.lm)
        modes = [p.training for p in parts]
        for p in parts:
            p.eval()
        try:
            with torch.inference_mode():
                yield
        finally:
            for p, mode in zip(parts, modes, strict=True):
                p.train(mode)

    # ----------------------------------------------------------------------------- generation
    def generate_codes(
        self,
        videos: Video | Sequence[Video],
        *,
        seed: int = 0,
        progress: bool = False,
        fps_of_tensors: float | Sequence[float] | None = None,
        prompt_codes: Sequence[torch.Tensor | None] | None = None,
        params: GenerationParams | None = None,
    ) -> list[torch.Tensor]:
        """Codes for each video: a list of ``[K, T_i]`` (``T_i`` codec frames cover its duration).

        Videos of equal length are generated together as one batch (with the classifier-free guidance
        rows in the same pass); each length group runs in turn with one seeded generator, so the same
        inputs and seed give the same codes on the same machine. Videos longer than the model's window
        are generated in sliding windows (:meth:`AudioLM.generate_windowed`): each window continues from
        the last ``window - extend_stride`` seconds of codes, the visual window moving with it.
        ``prompt_codes``: optional per-video ``[K, T_p]`` start (continuation), ``T_p`` at most the window.
        ``params``: decoding settings for this call (default the model's, :meth:`set_generation_params`).
        """
        return self._generate(videos, seed, progress, fps_of_tensors, prompt_codes, params)[0]

    def _generate(
        self,
        videos: Video | Sequence[Video],
        seed: int,
        progress: bool,
        fps_of_tensors: float | Sequence[float] | None,
        prompt_codes: Sequence[torch.Tensor | None] | None,
        params: GenerationParams | None,
        extra_frames: Sequence[FrameRequest] = (),
        keep_frames: bool = False,
    ) -> tuple[list[torch.Tensor], list[LoadedVideo]]:
        """:meth:`load_videos` then :meth:`generate_loaded`: the codes and the loaded videos."""
        items = self.load_videos(
            videos, fps_of_tensors=fps_of_tensors, params=params, extra_frames=extra_frames, keep_frames=keep_frames
        )
        return self.generate_loaded(
            items, seed=seed, progress=progress, params=params, prompt_codes=prompt_codes
        ), items

    def load_videos(
        self,
        videos: Video | Sequence[Video],
        *,
        fps_of_tensors: float | Sequence[float] | None = None,
        params: GenerationParams | None = None,
        extra_frames: Sequence[FrameRequest] = (),
        keep_frames: bool = True,
    ) -> list[LoadedVideo]:
        """Generation's first stage: each video probed, decoded once and turned into features ``[F_v, D]``.

        ``keep_frames=False`` empties each item's frames once encoded, so a long list does not hold every
        video's pixels. :meth:`generate_loaded` takes the items on (``foleygen generate`` overlaps the two).
        """
        videos = self._as_list(videos)
        fps_list = list(fps_of_tensors) if isinstance(fps_of_tensors, Sequence) else [fps_of_tensors] * len(videos)
        if len(fps_list) != len(videos):
            raise ConfigError(f"{len(videos)} videos but {len(fps_list)} fps values")
        g = params or self.generation
        items = []
        with self._eval_mode():
            for v, f in zip(videos, fps_list, strict=True):
                items.append(load_video(self, v, f, g, extra_frames))
                if not keep_frames:
                    items[-1].frames = items[-1].frames[:0]
        return items

    def generate_loaded(
        self,
        items: Sequence[LoadedVideo],
        *,
        seed: int = 0,
        progress: bool = False,
        params: GenerationParams | None = None,
        prompt_codes: Sequence[torch.Tensor | None] | None = None,
    ) -> list[torch.Tensor]:
        """Codes ``[K, T_i]`` for videos already loaded (:meth:`load_videos`), as :meth:`generate_codes`."""
        prompts = list(prompt_codes) if prompt_codes is not None else [None] * len(items)
        if len(prompts) != len(items):
            raise ConfigError(f"{len(items)} videos but {len(prompts)} prompts")
        g = params or self.generation
        window, stride = self.sequence.num_audio_frames, self._stride_frames(g)
        out: list[torch.Tensor | None] = [None] * len(items)
        with self._eval_mode():
            groups: dict[tuple[int, int, int], list[int]] = {}
            for i, (item, prompt) in enumerate(zip(items, prompts, strict=True)):
                tp = -1 if prompt is None else prompt.shape[-1]
                groups.setdefault((item.num_frames, item.features.shape[0], tp), []).append(i)
            generator = torch.Generator(device=self.device).manual_seed(seed)
            for (num_frames, _, tp), index in groups.items():
                visual = torch.stack([items[i].features for i in index]).to(self.device)  # [B, F, D]
                prompt = None
                if tp >= 0:
                    if tp > window:
                        raise ConfigError(f"prompt of {tp} frames is longer than the model's {window}-frame window")
                    prompt = torch.stack([prompts[i] for i in index]).to(self.device)[:, :, :num_frames]
                codes = self.lm.generate_windowed(
                    visual,
                    num_frames,
                    window_frames=window,
                    stride_frames=stride,
                    prompt_codes=prompt,
                    progress=progress,
                    temperature=g.temperature,
                    top_k=g.top_k,
                    top_p=g.top_p,
                    cfg_coef=g.cfg_coef,
                    generator=generator,
                )
                for j, i in enumerate(index):
                    out[i] = codes[j]
        return out  # type: ignore[return-value]

    def result_of(self, item: LoadedVideo, codes: torch.Tensor) -> GenerationResult:
        """The :class:`~foleygen.results.GenerationResult` of one loaded video and its codes ``[K, T]``
        (the codec decodes them here: generation's last stage)."""
        return GenerationResult(
            source=item.source,
            info=item.info,
            duration=item.duration,
            sample_rate=self.sample_rate,
            frames=item.frames,
            extra_frames=item.extra_frames,
            features=item.features,
            codes=codes,
            audio=self.decode(codes, item.num_samples),
        )

    def decode(self, codes: torch.Tensor, num_samples: int) -> torch.Tensor:
        """``codes [K, T]`` -> ``wav [C, num_samples]`` (the codec's whole frames, trimmed)."""
        with self._eval_mode():
            wav = self.codec.decode(codes[None].to(self._param_device(self.codec)))[0]
        if wav.shape[-1] < num_samples:  # cannot happen with T = ceil(S / hop); kept for foreign codecs
            wav = torch.nn.functional.pad(wav, (0, num_samples - wav.shape[-1]))
        return wav[:, :num_samples].float().cpu()

    def generate_list(
        self,
        videos: Video | Sequence[Video],
        *,
        seed: int = 0,
        progress: bool = False,
        fps_of_tensors: float | Sequence[float] | None = None,
        params: GenerationParams | None = None,
        _prompt_codes: Sequence[torch.Tensor | None] | None = None,
    ) -> list[torch.Tensor]:
        """Audio for each video, each exactly its duration: a list of ``[C, S_i]``, ``S_i = round(d_i * sr)``."""
        codes, items = self._generate(videos, seed, progress, fps_of_tensors, _prompt_codes, params)
        # Each clip is decoded whole, so window joins never reach the codec as separate pieces.
        return [self.decode(c, item.num_samples) for c, item in zip(codes, items, strict=True)]

    def generate_results(
        self,
        videos: Video | Sequence[Video],
        *,
        seed: int = 0,
        progress: bool = False,
        fps_of_tensors: float | Sequence[float] | None = None,
        params: GenerationParams | None = None,
        extra_frames: Sequence[FrameRequest] = (),
    ) -> list[GenerationResult]:
        """One :class:`~foleygen.results.GenerationResult` per video: its probe, the frames the encoder
        saw, the features, the codes ``[K, T]`` and the audio ``[C, S]`` (as :meth:`generate_list`).

        Each file is probed once and decoded once; ``extra_frames`` (e.g. the alignment picture's
        thumbnails, :class:`~foleygen.io.FrameRequest`) are cut from that same decoding pass and come
        back as ``result.extra_frames``. Write the files with :func:`foleygen.outputs.write.write_result`.
        """
        codes, items = self._generate(
            videos, seed, progress, fps_of_tensors, None, params, extra_frames, keep_frames=True
        )
        return [self.result_of(item, c) for c, item in zip(codes, items, strict=True)]

    def generate(
        self,
        videos: Video | Sequence[Video],
        *,
        seed: int = 0,
        progress: bool = False,
        fps_of_tensors: float | Sequence[float] | None = None,
        params: GenerationParams | None = None,
    ) -> torch.Tensor:
        """Audio for a batch of videos: ``[B, C, S_max]``, each item zero-padded to the longest.

        Args:
            videos: paths, or ``uint8 [F, H, W, 3]`` frame tensors (at ``fps_of_tensors``, default the
                encoder's rate). Frames are read at the visual encoder's rate and size.
            seed: seeds the sampling; the same seed gives the same audio on the same machine.
            progress: show a progress bar per generation.
            fps_of_tensors: frame rate of tensor inputs (one value or one per video).
            params: decoding settings for this call only (:meth:`generation_params`); default the
                model's (:meth:`set_generation_params`).

        Item i holds ``round(duration_i * sample_rate)`` valid samples; :meth:`generate_list` returns
        them unpadded, :meth:`generate_results` with everything else the generation made.
        """
        wavs = self.generate_list(videos, seed=seed, progress=progress, fps_of_tensors=fps_of_tensors, params=params)
        return _pad_stack(wavs)

    def stream(
        self,
        frames: Iterable[torch.Tensor | np.ndarray],
        *,
        fps: float,
        seed: int = 0,
        params: GenerationParams | None = None,
    ) -> Iterator[torch.Tensor]:
        """Live generation: ``uint8 [H, W, 3]`` frames at ``fps`` in, audio chunks ``[C, n]`` out as soon as
        they are final (:mod:`foleygen.stream`).

        The codes equal those :meth:`generate_codes` makes for the same frames (a ``[F, H, W, 3]`` tensor
        at ``fps_of_tensors=fps``) and seed; the audio equals :meth:`generate`'s up to float rounding at
        the joins. ``params`` overrides the decoding settings for this call only. Needs a cross-attention
        model with a ``causal`` or ``frame_specific`` mask (a ``full`` mask looks at the whole window).
        """
        from foleygen.stream import stream

        return stream(self, frames, fps=fps, seed=seed, params=params)

    def generate_continuation(
        self,
        prompt_wav: torch.Tensor,
        prompt_sample_rate: int,
        videos: Video | Sequence[Video],
        *,
        seed: int = 0,
        progress: bool = False,
        fps_of_tensors: float | Sequence[float] | None = None,
        params: GenerationParams | None = None,
    ) -> torch.Tensor:
        """Continue given audio starts along the videos -> ``[B, C, S_max]`` (prompt included, then new audio).

        ``prompt_wav``: ``[C, S]`` (one prompt for every video) or ``[B, C, S]`` (one each), at
        ``prompt_sample_rate``; it is resampled to the codec's rate, encoded, and the LM continues from
        those codes. The prompt covers the start of each video and must not be longer than the window.
        """
        videos = self._as_list(videos)
        wav = self.codec.prepare_audio(prompt_wav.float(), int(prompt_sample_rate))
        if wav.dim() == 2:
            wav = wav[None].expand(len(videos), -1, -1)
        if wav.shape[0] != len(videos):
            raise ConfigError(f"{wav.shape[0]} prompts for {len(videos)} videos")
        with self._eval_mode():
            codes = self.codec.encode(wav.to(self._param_device(self.codec)))  # [B, K, T_p]
        # The codec pads the prompt to whole frames; drop a final frame that is mostly padding.
        whole = round(wav.shape[-1] / self.codec.hop_length)
        codes = codes[:, :, : max(1, whole)]
        wavs = self.generate_list(
            videos,
            seed=seed,
            progress=progress,
            fps_of_tensors=fps_of_tensors,
            params=params,
            _prompt_codes=list(codes),
        )
        return _pad_stack(wavs)

    # ----------------------------------------------------------------------------- checkpoints
    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write a checkpoint directory (layout in the module docstring), atomically."""
        from foleygen.codecs.compact import CompactCodec
        from foleygen.vision.compact import CompactVisualEncoder

        directory = Path(directory)
        state = {f"lm.{k}": v for k, v in self.lm.state_dict().items()}
        if isinstance(self.codec, CompactCodec):
            codec_cfg: dict[str, Any] = {"type": "compact", "path": "codec", "num_codebooks": self.codec.num_codebooks}
        elif self.codec_source:
            codec_cfg = {"type": "external", "num_codebooks": self.codec.num_codebooks, **self.codec_source}
        else:
            raise CheckpointError("cannot save: the codec is not ours and no codec_source says where it comes from")
        if isinstance(self.visual_encoder, CompactVisualEncoder):
            visual_cfg: dict[str, Any] = {"kind": "compact", "config": to_dict(self.visual_encoder.config)}
            state.update({f"visual.{k}": v for k, v in self.visual_encoder.state_dict().items()})
        elif self.visual_source:
            visual_cfg = {"fps": self.visual_encoder.fps, "options": {}, **self.visual_source}
        else:
            raise CheckpointError(
                "cannot save: the visual encoder is frozen and no visual_source says where it comes from"
            )
        config = {
            "codec": codec_cfg,
            "visual": visual_cfg,
            "lm": to_dict(self.lm.config),
            "sequence": to_dict(self.sequence),
            "generation": to_dict(self.generation),
        }
        # Assemble everything (codec subdirectory included) under a temporary name, then swap it in: a
        # crash never leaves a half-written checkpoint under the final name.
        directory.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(directory.parent)  # what a killed earlier save left beside it
        with atomic_dir(directory, fsync=False) as staging:
            write_checkpoint_files(staging, config, state)
            if codec_cfg["type"] == "compact":
                self.codec.save_pretrained(staging / "codec")
        return directory

    @classmethod
    def from_pretrained(
        cls, name_or_dir: str | os.PathLike[str], *, device: str | torch.device | None = None, **options: Any
    ) -> FoleyGen:
        """Load a model: a checkpoint directory, ``"demo"`` (the embedded model), ``"debug"`` (tiny random)
        or a Hugging Face Hub id already in the local cache.

        ``options`` only apply to ``"debug"``: ``conditioning`` (cross|prefix), ``visual_attention``
        (full|causal|frame_specific), ``duration`` (seconds, default 1.0), ``seed`` (default 0).
        """
        from foleygen.utils import resolve_device

        name = str(name_or_dir)
        if name == "debug":
            model = cls._debug(**options)
        else:
            if options:
                raise ConfigError(f"options {sorted(options)} only apply to the 'debug' model")
            model = cls._load_dir(cls._resolve(name))
        return model.to(resolve_device(device))

    @staticmethod
    def _resolve(name: str) -> Path:
        if name == "demo":
            if not (DEMO_DIR / CONFIG_NAME).is_file():
                raise CheckpointError("the embedded demo model is missing (train it with `make demo-model`)", DEMO_DIR)
            return DEMO_DIR
        path = user_path(name)
        if path.is_dir():
            return path
        if path.exists() or name.count("/") != 1 or name.startswith((".", "/", "~")):
            raise CheckpointError("not a FoleyGen checkpoint directory (nor 'demo', 'debug' or a Hub id)", name)
        try:
            from huggingface_hub import snapshot_download
        except ImportError:
            raise CheckpointError(
                "not a local directory, and huggingface_hub is not installed to look up this Hub id", name
            ) from None
        try:
            return Path(snapshot_download(name, local_files_only=True))
        except Exception:  # huggingface_hub raises several types for "not cached"
            raise CheckpointError(
                f"Hub model not in the local cache (download it first, e.g. `huggingface-cli download {name}`)", name
            ) from None

    @classmethod
    def _load_dir(cls, directory: Path) -> FoleyGen:
        from foleygen.codecs import load_codec
        from foleygen.vision import load_visual_encoder
        from foleygen.vision.compact import CompactVisualConfig, CompactVisualEncoder

        if not (directory / CONFIG_NAME).is_file():
            raise CheckpointError(f"no {CONFIG_NAME}: not a FoleyGen checkpoint directory", directory)
        config = load_json(directory / CONFIG_NAME)
        missing = [k for k in ("codec", "visual", "lm", "sequence") if k not in config]
        if missing:
            raise CheckpointError(f"config.json lacks section(s) {missing}", directory)
        for section in ("codec", "visual", "lm", "sequence"):
            if not isinstance(config[section], dict):
                kind = type(config[section]).__name__
                raise CheckpointError(f"config.json section {section!r} must be a mapping, got {kind}", directory)
        seconds = config["sequence"].get("duration")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds < math.inf:
            raise CheckpointError(f"config.json sequence.duration must be seconds > 0, got {seconds!r}", directory)
        _, state = load_checkpoint_dir(directory)

        codec_cfg = section_types(config["codec"], "codec", directory, path=str)
        codec_path = (
            directory / codec_cfg.get("path", "codec") if codec_cfg.get("type") == "compact" else codec_cfg.get("path")
        )
        if codec_path is None:
            raise CheckpointError("config.json codec section names no path", directory)
        if not Path(codec_path).is_absolute() and (directory / codec_path).exists():
            codec_path = directory / codec_path  # a relative reference is relative to the checkpoint
        codec = load_codec(str(codec_path), num_codebooks=codec_cfg.get("num_codebooks"))

        types = {"kind": str, "path": (str, type(None)), "fps": (int, float, type(None)), "options": dict}
        visual_cfg = section_types(config["visual"], "visual", directory, **types)
        kind = visual_cfg.get("kind")
        if kind == "compact":
            visual_config = visual_cfg.get("config", {})
            visual = build_from_config(
                lambda: CompactVisualEncoder(from_dict(CompactVisualConfig, visual_config, "visual.config")),
                "visual",
                directory,
            )
            load_part(visual, state, "visual.", directory)
        else:
            visual = load_visual_encoder(
                kind, visual_cfg.get("path"), fps=visual_cfg.get("fps"), **visual_cfg.get("options", {})
            )
        lm = build_from_config(lambda: AudioLM(from_dict(LMConfig, config["lm"], "lm")), "lm", directory)
        load_part(lm, state, "lm.", directory)
        model = cls(
            codec,
            visual,
            lm,
            float(seconds),
            # an external codec found beside the checkpoint is remembered by its full path, so that a
            # copy saved elsewhere still finds it
            codec_source=None
            if codec_cfg.get("type") == "compact"
            else {
                **{k: v for k, v in codec_cfg.items() if k not in ("type", "num_codebooks")},
                "path": str(codec_path),
            },
            visual_source=None if kind == "compact" else {k: v for k, v in visual_cfg.items() if k != "fps"},
        )
        if "generation" in config:
            gen = from_dict(GenerationParams, config["generation"], "generation")
            model.set_generation_params(**dataclasses.asdict(gen))
        for part in (codec, visual, lm):
            part.eval()
        return model

    @classmethod
    def _debug(
        cls, *, conditioning: str = "cross", visual_attention: str = "causal", duration: float = 1.0, seed: int = 0
    ) -> FoleyGen:
        """A tiny random model (16 kHz, 50 Hz, 2 codebooks of 32, 25 fps, d=32): tests and plumbing only."""
        from foleygen.debug_model import debug_parts

        codec, visual, lm = debug_parts(conditioning=conditioning, visual_attention=visual_attention, seed=seed)
        return cls(codec, visual, lm, duration)


def _pad_stack(wavs: list[torch.Tensor]) -> torch.Tensor:
    """List of ``[C, S_i]`` -> ``[B, C, max S_i]``, zero-padded at the end."""
    if not wavs:
        return torch.zeros(0, 1, 0)
    longest = max(w.shape[-1] for w in wavs)
    return torch.stack([torch.nn.functional.pad(w, (0, longest - w.shape[-1])) for w in wavs])
