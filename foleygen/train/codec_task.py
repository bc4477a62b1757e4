"""The ``codec`` training task: trains :class:`~foleygen.codecs.compact.CompactCodec` in the one trainer.

YAML (see ``configs/codec_compact.yaml``)::

    task: codec
    model: {...}            # CompactCodecConfig
    codec_train: {...}      # CodecTaskConfig: warm-up, clip length, loss weights, discriminator
    data:
      train: [{kind: synthfoley, split: train, seed: 0, num: 2000}, {kind: files, path: /my/audio}]
      val:   [{kind: synthfoley, split: val, seed: 0, num: 64}]
    train: {...}            # the trainer's TrainConfig

Schedule (DESIGN.md's findings): the first ``warmup_steps`` steps train encoder and decoder with the
quantiser bypassed, so that the latents mean something before codebooks are fitted to them; the latents
of the last warm-up batches are kept, and the first quantised step k-means-initialises every codebook
from them. After that, EMA updates and dead-code restarts keep the codebooks alive.

Data sources are pluggable (:data:`SOURCES`, :func:`register_source`): each turns its YAML entry into a
data set of whole waveforms ``[C, S]``; random crops of ``clip_seconds`` are cut from them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.data import ConcatDataset, Dataset

from foleygen.atomic import atomic_file
from foleygen.codecs.compact import CompactCodec, CompactCodecConfig
from foleygen.codecs.losses import (
    MelLoss,
    MultiResolutionSTFTLoss,
    MultiScaleSTFTDiscriminator,
    complex_stft_l1,
    discriminator_hinge_loss,
    generator_adversarial_losses,
    waveform_l1,
)
from foleygen.codecs.metrics import si_sdr
from foleygen.config import UnknownKeyError, from_dict, parse_config, to_dict
from foleygen.errors import CheckpointError, ConfigError, DataError
from foleygen.io.media_types import AUDIO_SOURCE_EXTENSIONS, describe_extensions
from foleygen.train.run_config import RunConfig
from foleygen.train.task import ExtraOptimizer, register_task
from foleygen.utils import user_path


@dataclass
class CodecTaskConfig:
    """The ``codec_train:`` section.

    Attributes:
        warmup_steps: steps with the quantiser bypassed before k-means initialisation.
        clip_seconds: length of the random training crops.
        w_sc / w_logmag: multi-resolution STFT spectral convergence / log-magnitude weights.
        w_mel: log-mel L1 weight. w_wav: waveform L1 weight. w_commit: commitment loss weight.
        w_complex: relative complex-STFT L1 weight (a phase-aware term; 0 = off).
        w_spectrum: weight of spectral convergence + log-magnitude L1 between the decoder's own magnitudes
            (before its inverse STFT) and the input's STFT in the codec's framing (0 = off); the waveform
            losses see those magnitudes only through the decoder's phases. See docs/codecs.md for what it did.
        spectrum_bands_hz: split the spectral convergence of ``w_spectrum`` at these frequencies and
            average it over the bands, so that quiet high bands (SynthFoley's glass partials at 2-7 kHz)
            weigh as much as the loud low ones; empty = one band.
        discriminator: enable the multi-scale STFT discriminator (adversarial + feature matching).
        disc_start: step at which the adversarial terms start. disc_lr: its Adam learning rate.
        w_adv / w_fm: adversarial / feature-matching weights.
        seed: base seed of the random crops.
        train_only: ``"all"`` trains the whole codec; ``"decoder"`` freezes the encoder and the codebooks
            (no EMA updates, no restarts) and trains the decoder alone: the codes of every clip stay
            exactly the same, so an LM trained on them keeps working while the sound improves. Use it
            with ``train.init_from=<codec dir>``; the unquantised warm-up is skipped.
    """

    warmup_steps: int = 150
    clip_seconds: float = 1.0
    w_sc: float = 1.0
    w_logmag: float = 1.0
    w_mel: float = 1.0
    w_wav: float = 5.0
    w_commit: float = 0.25
    w_complex: float = 0.0
    w_spectrum: float = 0.0
    spectrum_bands_hz: tuple[float, ...] = ()
    discriminator: bool = False
    disc_start: int = 1000
    disc_lr: float = 2e-4
    w_adv: float = 1.0
    w_fm: float = 2.0
    seed: int = 0
    train_only: str = "all"

    def __post_init__(self) -> None:
        if self.train_only not in ("all", "decoder"):
            raise ConfigError(f"codec_train.train_only must be 'all' or 'decoder', got {self.train_only!r}")


SourceList = list[dict[str, Any]] | dict[str, Any]


@dataclass
class CodecDataConfig:
    """The ``data:`` section: ``train`` and ``val`` list source entries (``{kind: synthfoley, ...}``, one
    entry alone may stand without the list); each kind checks its own entry's keys."""

    train: SourceList = field(default_factory=list)
    val: SourceList = field(default_factory=list)


@dataclass
class CodecRunConfig(RunConfig):
    """A whole ``task: codec`` YAML: the common sections plus ``model``, ``codec_train`` and ``data``."""

    model: CompactCodecConfig = field(default_factory=CompactCodecConfig)
    codec_train: CodecTaskConfig = field(default_factory=CodecTaskConfig)
    data: CodecDataConfig = field(default_factory=CodecDataConfig)


# ---------------------------------------------------------------------- data sources
class _SynthFoleyAudio(Dataset):
    """Audio of SynthFoley clips ``[C, S]``, generated on demand.

    Generation also renders video, so audio is memoised per process and, with ``cache_dir`` in the
    entry, stored as ``.npy`` files that every DataLoader worker and later epoch reads instead.
    """

    def __init__(self, entry: dict[str, Any], sample_rate: int, channels: int) -> None:
        from foleygen.data.synthfoley import SynthFoleyConfig

        reserved = ("kind", "split", "seed", "num", "start_index", "cache_dir")
        options = {k: v for k, v in entry.items() if k not in reserved}
        self.cache_dir = user_path(str(entry["cache_dir"])) if entry.get("cache_dir") else None
        # frames are not used: render them as small as possible
        options.setdefault("size", 32)
        self.config = from_dict(SynthFoleyConfig, {**options, "sample_rate": sample_rate})
        self.split, self.seed = str(entry.get("split", "train")), int(entry.get("seed", 0))
        self.num, self.start = int(entry.get("num", 1000)), int(entry.get("start_index", 0))
        self.channels = channels
        self._memo: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return self.num

    def __getitem__(self, i: int) -> torch.Tensor:
        if i not in self._memo:
            self._memo[i] = self._load(i).float()[None].expand(self.channels, -1).contiguous()
        return self._memo[i]

    def _load(self, i: int) -> torch.Tensor:
        import numpy as np

        from foleygen.data.synthfoley import generate_clip

        cached = None
        if self.cache_dir is not None:
            key = f"{self.split}_{self.seed}_{self.start + i}_{self.config.sample_rate}_{self.config.duration}"
            cached = self.cache_dir / f"{key}.npy"
            if cached.is_file():
                try:
                    return torch.from_numpy(np.load(cached))
                except (OSError, ValueError):
                    pass  # a torn file from a killed run: regenerate it
        audio = generate_clip(self.split, self.seed, self.start + i, self.config).audio.astype(np.float32)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(cached, fsync=False) as tmp:  # atomic: concurrent workers never read half a file
                np.save(tmp, audio)
        return torch.from_numpy(audio)


class _AudioFiles(Dataset):
    """Every audio/video file under ``path`` (recursively), read whole with :func:`foleygen.io.read_audio`."""

    KEYS = ("kind", "path", "max_seconds")

    def __init__(self, entry: dict[str, Any], sample_rate: int, channels: int) -> None:
        for key in entry:
            if key not in self.KEYS:
                raise UnknownKeyError(str(key), self.KEYS, "entry")
        root = user_path(str(entry.get("path", "")))
        if not root.exists():
            raise DataError("audio directory not found", root)
        files = (
            [root]
            if root.is_file()
            else sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SOURCE_EXTENSIONS and p.is_file())
        )
        if not files:
            raise DataError(f"no audio or video files ({describe_extensions(AUDIO_SOURCE_EXTENSIONS)})", root)
        self.files, self.sample_rate, self.channels = files, sample_rate, channels
        self.max_seconds = float(entry.get("max_seconds", 30.0))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        from foleygen.io import read_audio

        wav = read_audio(self.files[i], self.sample_rate, self.channels)
        return wav[:, : round(self.max_seconds * self.sample_rate)]


SourceFactory = Callable[[dict[str, Any], int, int], Dataset]
#: ``kind`` -> factory(entry, sample_rate, channels) -> data set of waveforms ``[C, S]``
SOURCES: dict[str, SourceFactory] = {"synthfoley": _SynthFoleyAudio, "files": _AudioFiles}


def register_source(kind: str, factory: SourceFactory) -> None:
    """Make ``kind`` usable in ``data.train`` / ``data.val`` entries."""
    SOURCES[kind] = factory


class RandomCrops(Dataset):
    """Crops of ``num_samples`` from waveforms; offsets are a pure function of ``(seed, epoch, index)``.

    Items are ``[C, num_samples]`` (shorter sources are zero-padded). ``set_epoch`` changes the crops so
    every epoch sees new ones while resumed runs see the same ones (the trainer calls it).
    """

    def __init__(self, source: Dataset, num_samples: int, seed: int, random_offsets: bool = True) -> None:
        self.source, self.num_samples, self.seed, self.random_offsets = source, num_samples, seed, random_offsets
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the crops of ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> torch.Tensor:
        wav = self.source[i]
        extra = wav.shape[-1] - self.num_samples
        if extra < 0:
            return torch.nn.functional.pad(wav, (0, -extra))
        offset = random.Random(hash((self.seed, self.epoch, i))).randint(0, extra) if self.random_offsets else 0
        return wav[:, offset : offset + self.num_samples]


# ---------------------------------------------------------------------- the model trained
class CodecTrainModel(nn.Module):
    """The codec plus (optionally) its discriminator, so that the trainer checkpoints and synchronises both
    (the discriminator is moved by the task's extra optimiser, :meth:`CodecTask.extra_optimizers`)."""

    def __init__(
        self, codec: CompactCodec, discriminator: MultiScaleSTFTDiscriminator | None, decoder_only: bool = False
    ) -> None:
        super().__init__()
        self.codec = codec
        self.discriminator = discriminator
        self.decoder_only = decoder_only
        if decoder_only:
            for part in (codec.encoder, codec.quantizer):
                part.requires_grad_(False)

    def train(self, mode: bool = True) -> CodecTrainModel:
        """As ``nn.Module.train``, but a frozen encoder and quantiser stay in eval mode (no EMA updates)."""
        super().train(mode)
        if self.decoder_only:
            self.codec.encoder.eval()
            self.codec.quantizer.eval()
        return self

    def forward(self, wav: torch.Tensor, quantize: bool = True) -> tuple[torch.Tensor, Any, torch.Tensor]:
        """See :meth:`CompactCodec.reconstruct`: ``wav [B, C, S]`` -> ``(recon, quantiser output, magnitudes)``.

        Decoder-only: the codes come from the frozen encoder and codebooks (quantiser output ``None``).
        """
        if not self.decoder_only:
            return self.codec.reconstruct(wav, quantize=quantize)
        codec = self.codec
        with torch.no_grad():
            z = codec.quantizer(codec.encode_latent(wav)).quantized
        recon, mag = codec.synthesize(z)
        return recon, None, mag


def _codec_of(model: nn.Module) -> CompactCodec:
    inner = getattr(model, "module", model)  # unwrap DistributedDataParallel if the trainer used it
    return inner.codec if isinstance(inner, CodecTrainModel) else inner


class CodecTask:
    """:class:`~foleygen.train.task.TrainTask` for the compact codec (see the module docstring)."""

    def __init__(self, config: dict[str, Any] | CodecRunConfig) -> None:
        self.run = config if isinstance(config, CodecRunConfig) else parse_config(CodecRunConfig, config)
        self.model_config = self.run.model
        self.config = self.run.codec_train
        if not self.run.data.train:
            raise ConfigError("codec task: data.train must list at least one source (e.g. {kind: synthfoley})")
        self.data = {"train": self.run.data.train, "val": self.run.data.val}
        if self.config.train_only == "decoder" and not self.run.train.init_from:
            raise ConfigError("codec_train.train_only=decoder fine-tunes a trained codec: set train.init_from=DIR")
        self.mrstft = MultiResolutionSTFTLoss()
        self.mel = MelLoss(self.model_config.sample_rate)

    # -- TrainTask ----------------------------------------------------------
    def build_model(self) -> nn.Module:
        """A fresh :class:`CodecTrainModel` (codec + discriminator if enabled)."""
        disc = MultiScaleSTFTDiscriminator() if self.config.discriminator else None
        return CodecTrainModel(CompactCodec(self.model_config), disc, decoder_only=self.config.train_only == "decoder")

    def load_pretrained(self, model: nn.Module, directory: Path) -> None:
        """Fine-tuning start (``train.init_from``): a codec directory (``save_pretrained``) into ``model``.

        Its config must equal this run's ``model:`` section (else the weights would not fit or the codes
        would mean something else); only the inference-time chunking may differ.
        """
        codec = CompactCodec.from_pretrained(directory)
        theirs, ours = to_dict(codec.config), to_dict(self.model_config)
        diff = sorted(k for k in ours if k not in ("chunk_seconds", "context_seconds") and theirs.get(k) != ours[k])
        if diff:
            raise CheckpointError(f"codec config differs from this run's model section in {diff}", directory)
        _codec_of(model).load_state_dict(codec.state_dict())

    def _sources(self, entries: Any, where: str) -> Dataset:
        if isinstance(entries, dict):
            entries = [entries]
        sets = []
        for n, entry in enumerate(entries or []):
            kind = entry.get("kind") if isinstance(entry, dict) else None
            if kind not in SOURCES:
                raise ConfigError(f"data.{where}[{n}]: unknown source kind {kind!r}; known: {sorted(SOURCES)}")
            try:
                sets.append(SOURCES[kind](entry, self.model_config.sample_rate, self.model_config.channels))
            except UnknownKeyError as err:  # name the entry by its place in the file
                raise UnknownKeyError(err.key, err.known, f"data.{where}[{n}]") from None
        return ConcatDataset(sets)

    def build_datasets(self) -> tuple[Dataset, Dataset | None]:
        """Random crops of the ``data.train`` sources; fixed (first-second) crops of ``data.val``."""
        samples = round(self.config.clip_seconds * self.model_config.sample_rate)
        hop = self.model_config.hop_length
        samples = max(hop, samples // hop * hop)  # whole code frames: no padding inside training crops
        train = RandomCrops(self._sources(self.data["train"], "train"), samples, self.config.seed)
        val = None
        if self.data.get("val"):
            val = RandomCrops(self._sources(self.data["val"], "val"), samples, self.config.seed, random_offsets=False)
        return train, val

    def collate(self, items: list[torch.Tensor]) -> torch.Tensor:
        """Waveforms ``[C, S]`` -> ``[B, C, S]``."""
        return torch.stack(items)

    def _losses(self, recon: torch.Tensor, wav: torch.Tensor) -> dict[str, torch.Tensor]:
        self.mrstft.to(wav.device)
        self.mel.to(wav.device)
        sc, logmag = self.mrstft(recon, wav)
        out = {"sc": sc, "logmag": logmag, "mel": self.mel(recon, wav), "wav_l1": waveform_l1(recon, wav)}
        if self.config.w_complex > 0:
            out["complex"] = complex_stft_l1(recon, wav)
        return out

    def loss(self, model: nn.Module, batch: torch.Tensor, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Reconstruction (+ commitment, + adversarial) loss of one batch ``[B, C, S]``.

        From ``disc_start`` on, the returned loss also holds the discriminator's hinge loss, whose gradient
        reaches the discriminator only (see :meth:`_adversarial`); ``metrics["loss"]`` leaves it out.
        """
        cfg = self.config
        inner = getattr(model, "module", model)
        quantize = step >= cfg.warmup_steps or cfg.train_only == "decoder"
        recon, q, mag = inner(batch, quantize=quantize)
        parts = self._losses(recon, batch)
        if cfg.w_spectrum > 0:
            parts["spec_sc"], parts["spec_logmag"] = self._spectrum_losses(
                _codec_of(model), mag, batch, cfg.spectrum_bands_hz
            )
        total = (
            cfg.w_sc * parts["sc"]
            + cfg.w_logmag * parts["logmag"]
            + cfg.w_mel * parts["mel"]
            + cfg.w_wav * parts["wav_l1"]
            + cfg.w_complex * parts.get("complex", 0.0)
            + cfg.w_spectrum * (parts.get("spec_sc", 0.0) + parts.get("spec_logmag", 0.0))
        )
        metrics = {k: float(v.detach()) for k, v in parts.items()}
        metrics["quantized"] = float(quantize)
        if q is not None:
            total = total + cfg.w_commit * q.commit_loss
            metrics["commit"] = float(q.commit_loss.detach())
            k = inner.codec.quantizer.num_codebooks
            metrics["perplexity"] = sum(q.metrics.get(f"perplexity_{i}", 0.0) for i in range(k)) / k
            metrics["usage"] = sum(q.metrics.get(f"usage_{i}", 0.0) for i in range(k)) / k
            metrics["dead_restarts"] = sum(q.metrics.get(f"dead_restarts_{i}", 0.0) for i in range(k))
        disc = getattr(inner, "discriminator", None)
        if disc is not None and step >= cfg.disc_start:
            generator_terms, d_loss = self._adversarial(disc, recon, batch, metrics)
            total = total + generator_terms
            metrics["loss"] = float(total.detach())  # what is logged: the codec's objective
            return total + d_loss, metrics
        metrics["loss"] = float(total.detach())
        return total, metrics

    @staticmethod
    def _spectrum_losses(
        codec: CompactCodec, mag: torch.Tensor, wav: torch.Tensor, bands_hz: tuple[float, ...] = ()
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Spectral convergence (averaged over the bands split at ``bands_hz``) and log-magnitude L1 of the
        decoder's magnitudes ``[B * C, bins, N]`` against the STFT of ``wav [B, C, S]`` in the codec's framing."""
        with torch.no_grad():
            true = codec.stft(wav.reshape(-1, wav.shape[-1])).abs()[..., : mag.shape[-1]]
        bin_hz = codec.sample_rate / codec.config.n_fft
        edges = [0, *sorted({min(codec.num_bins, max(1, round(f / bin_hz))) for f in bands_hz}), codec.num_bins]
        scs = [
            torch.linalg.norm(true[:, a:b] - mag[:, a:b]) / torch.linalg.norm(true[:, a:b]).clamp(min=1e-5)
            for a, b in zip(edges[:-1], edges[1:], strict=True)
            if b > a
        ]
        logmag = torch.nn.functional.l1_loss(torch.log(mag + 1e-4), torch.log(true + 1e-4))
        return torch.stack(scs).mean(), logmag

    def extra_optimizers(self, model: nn.Module) -> list[ExtraOptimizer]:
        """The discriminator's own Adam (when it is enabled), stepped by the trainer from ``disc_start`` on."""
        disc = getattr(getattr(model, "module", model), "discriminator", None)
        if disc is None:
            return []
        params = list(disc.parameters())
        # foreach=False: the per-tensor kernel, bit-for-bit the same on every run (exact resume)
        adam = torch.optim.Adam(params, lr=self.config.disc_lr, betas=(0.5, 0.9), foreach=False)
        return [ExtraOptimizer("discriminator", params, adam, start_step=self.config.disc_start)]

    def _adversarial(
        self, disc: nn.Module, recon: torch.Tensor, wav: torch.Tensor, metrics: dict[str, float]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(generator terms, discriminator loss)``; the caller adds both to the loss it returns.

        Their gradients do not mix: the discriminator's hinge loss sees the reconstruction detached (so
        it trains the discriminator alone), and the generator's terms go through detached copies of the
        discriminator's parameters (so they train the codec alone). The trainer's one backward thus
        gives the codec its gradient and the discriminator its own, for its extra optimiser.
        """
        d_loss = discriminator_hinge_loss(disc(wav), disc(recon.detach()))
        frozen = {k: v.detach() for k, v in disc.named_parameters()}
        fake = functional_call(disc, frozen, (recon,))
        with torch.no_grad():
            real = functional_call(disc, frozen, (wav,))
        adv, fm = generator_adversarial_losses(real, fake)
        metrics.update(d_loss=float(d_loss.detach()), g_adv=float(adv.detach()), g_fm=float(fm.detach()))
        return self.config.w_adv * adv + self.config.w_fm * fm, d_loss

    @torch.no_grad()
    def validate(self, model: nn.Module, batch: torch.Tensor) -> dict[str, float]:
        """Reconstruction metrics with the quantiser (once it is initialised) on ``[B, C, S]``."""
        codec = _codec_of(model)
        quantize = codec.quantizer.initialised
        was = codec.training
        codec.eval()
        recon, _ = codec(batch, quantize=quantize)
        codec.train(was)
        parts = self._losses(recon, batch)
        out = {k: float(v) for k, v in parts.items()}
        out["si_sdr"] = float(si_sdr(recon, batch).mean())
        out["quantized"] = float(quantize)
        return out

    def save_pretrained(self, model: nn.Module, directory: Path) -> None:
        """The codec alone (``config.json`` + ``model.safetensors``), loadable by ``load_codec``."""
        _codec_of(model).save_pretrained(directory)

    def log_samples(self, model: nn.Module, writer: Any, step: int) -> None:
        """One validation clip and its reconstruction into TensorBoard."""
        _, val = self.build_datasets()
        if val is None or len(val) == 0:
            return
        codec = _codec_of(model)
        wav = val[0][None]
        recon, _ = codec(wav, quantize=codec.quantizer.initialised)
        sr = codec.sample_rate
        writer.add_audio("codec/original", wav[0, 0].clamp(-1, 1).cpu(), step, sample_rate=sr)
        writer.add_audio("codec/reconstruction", recon[0, 0].clamp(-1, 1).cpu(), step, sample_rate=sr)


@register_task("codec", config=CodecRunConfig)
def make_codec_task(config: CodecRunConfig) -> CodecTask:
    """Factory registered as ``task: codec``."""
    return CodecTask(config)


__all__ = [
    "CodecDataConfig",
    "CodecRunConfig",
    "CodecTask",
    "CodecTaskConfig",
    "CodecTrainModel",
    "RandomCrops",
    "SOURCES",
    "register_source",
    "make_codec_task",
]
