"""DeSync: the audio-visual offset Synchformer predicts, averaged over clips (lower is better).

The protocol of hkchengrex/av-benchmark (``extract_video.py``, ``av_bench/extract.py``,
``av_bench/evaluate.py``), our own implementation:

* **Video** (the true video of each clip): frames at 25 fps, the short side scaled to 224 and the centre
  224 x 224 cut, RGB scaled to [-1, 1]; the first ``duration`` seconds (200 frames for 8 s). Cut into
  segments of 16 frames (0.64 s) every 8 frames (0.32 s): 24 segments for 8 s.
* **Audio** (the generated audio): channels averaged, resampled to 16 kHz with the windowed-sinc
  resampler av-benchmark uses (no DC removal here), the first ``duration`` seconds. Segments of 10240
  samples every 5120 (the same 0.64 s / 0.32 s grid). Each segment: power spectrogram (1024-point FFT,
  400-sample periodic Hann window, hop 160, centred with reflection), 128 HTK mel bands 0-8 kHz
  without normalisation, ``log(mel + 1e-6)``: 65 frames, zero-padded to 66, then
  ``(x + 4.2677393) / (2 * 4.5689974)``.
* **Windows**: Synchformer reads 14 segments (4.8 s). Two windows per clip: the first 14 segments
  (0-4.8 s) and the last 14 (3.2-8.0 s for 8 s).
* **Offset**: per window, the argmax of the 21 logits on the grid -2.0, -1.8, ..., +2.0 s.
* **DeSync** = mean of ``|offset|`` over every window of every clip (two per clip), in seconds.

Where we differ: frames are picked by presentation time (the frame shown at ``i / 25`` s, as
:func:`foleygen.io.read_frames` does everywhere) and scaled with FFmpeg's area filter, where
av-benchmark uses FFmpeg's ``fps`` filter and torchvision's antialiased bicubic resize; a clip shorter
than ``duration`` by at most one video frame (40 ms) is accepted (audio zero-padded, the last frame
held), av-benchmark refuses it. A shorter one is refused (one line naming the file).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from foleygen.errors import MediaError

if TYPE_CHECKING:
    from foleygen.eval.failures import FileFailures
    from foleygen.eval.report import EvalConfig
    from foleygen.eval.synchformer import Synchformer

__all__ = [
    "VIDEO_FPS",
    "SAMPLE_RATE",
    "WINDOW_SEGMENTS",
    "segment_starts",
    "segment_times",
    "window_ranges",
    "video_segments",
    "audio_segments",
    "sync_logmel",
    "offsets_from_logits",
    "mean_abs_offset",
    "ClipOffsets",
    "clip_offsets",
    "read_sync_video",
    "read_sync_audio",
    "desync_offsets",
    "desync_aggregate",
]

VIDEO_FPS = 25.0
FRAME_SIZE = 224
SAMPLE_RATE = 16000
SEGMENT_FRAMES = 16  # 0.64 s
SEGMENT_STEP_FRAMES = 8  # 0.32 s
WINDOW_SEGMENTS = 14  # 4.8 s: what Synchformer reads at once
N_FFT, WIN_LENGTH, HOP, N_MELS, SPEC_FRAMES = 1024, 400, 160, 128, 66
MEL_MEAN, MEL_STD = -4.2677393, 4.5689974  # Synchformer's AudioSet log-mel statistics
SLACK_SECONDS = 1.0 / VIDEO_FPS  # how much shorter than ``duration`` a clip may be
MIN_SECONDS = ((WINDOW_SEGMENTS - 1) * SEGMENT_STEP_FRAMES + SEGMENT_FRAMES) / VIDEO_FPS  # 4.8 s: one window


def segment_starts(length: int, size: int, step: int) -> list[int]:
    """Starts of the whole segments of ``size`` every ``step`` in ``length`` items (empty if too short)."""
    if length < size:
        return []
    return [i * step for i in range((length - size) // step + 1)]


def segment_times(duration: float, fps: float = VIDEO_FPS) -> list[tuple[float, float]]:
    """``(start, end)`` seconds of the video segments of a ``duration``-second clip (24 for 8 s)."""
    frames = round(duration * fps)
    return [(s / fps, (s + SEGMENT_FRAMES) / fps) for s in segment_starts(frames, SEGMENT_FRAMES, SEGMENT_STEP_FRAMES)]


def window_ranges(num_segments: int, window: int = WINDOW_SEGMENTS) -> list[tuple[int, int]]:
    """``[start, stop)`` segment ranges of the two windows: the first ``window`` and the last ``window``.

    Raises:
        ValueError: fewer than ``window`` segments (a clip shorter than 4.8 s).
    """
    if num_segments < window:
        raise ValueError(f"{num_segments} segments, a window needs {window}")
    return [(0, window), (num_segments - window, num_segments)]


def video_segments(frames: torch.Tensor, size: int = SEGMENT_FRAMES, step: int = SEGMENT_STEP_FRAMES) -> torch.Tensor:
    """uint8 ``frames [F, H, W, 3]`` -> float32 ``[S, size, 3, H, W]`` in [-1, 1] (segments every ``step``)."""
    starts = segment_starts(frames.shape[0], size, step)
    if not starts:
        raise ValueError(f"{frames.shape[0]} frames, a segment needs {size}")
    pixels = frames.permute(0, 3, 1, 2).to(torch.float32) / 255.0  # [F, 3, H, W]
    pixels = (pixels - 0.5) / 0.5
    return torch.stack([pixels[s : s + size] for s in starts])


def audio_segments(wav: torch.Tensor, size: int, step: int) -> torch.Tensor:
    """Mono ``wav [N]`` -> ``[S, size]`` (segments every ``step``)."""
    if wav.numel() < size:
        raise ValueError(f"{wav.numel()} samples, a segment needs {size}")
    return wav.reshape(-1).unfold(0, size, step)


_FILTERS: dict[torch.device, torch.Tensor] = {}


def _mel_filters(device: torch.device) -> torch.Tensor:
    if device not in _FILTERS:
        from foleygen import dsp

        banks = dsp.mel_filterbank(SAMPLE_RATE, N_FFT, N_MELS, 0.0, SAMPLE_RATE / 2, scale="htk", triangles_in="hz")
        _FILTERS[device] = torch.from_numpy(banks.T).to(torch.float32).to(device)  # [513, 128]
    return _FILTERS[device]


def sync_logmel(segments: torch.Tensor, spec_frames: int = SPEC_FRAMES) -> torch.Tensor:
    """Audio segments ``[..., L]`` at 16 kHz -> Synchformer's normalised log-mel ``[..., 128, spec_frames]``.

    ``L // 160 + 1`` STFT frames (65 for 10240 samples), zero-padded (after the log) or cut to
    ``spec_frames``.
    """
    lead = segments.shape[:-1]
    flat = segments.reshape(-1, segments.shape[-1]).to(torch.float32)
    window = torch.hann_window(WIN_LENGTH, periodic=True, device=flat.device)
    spec = torch.stft(
        flat, N_FFT, HOP, WIN_LENGTH, window, center=True, pad_mode="reflect", return_complex=True
    )  # [N, 513, T]
    mel = (spec.abs().pow(2).transpose(1, 2) @ _mel_filters(flat.device)).transpose(1, 2)  # [N, 128, T]
    logmel = torch.log(mel + 1e-6)
    t = logmel.shape[-1]
    logmel = logmel[..., :spec_frames] if t >= spec_frames else torch.nn.functional.pad(logmel, (0, spec_frames - t))
    return ((logmel - MEL_MEAN) / (2 * MEL_STD)).reshape(*lead, N_MELS, spec_frames)


def offsets_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """``logits [..., C]`` -> the predicted offset in seconds ``[...]``: the argmax class on the grid."""
    from foleygen.eval.synchformer import offset_grid

    grid = offset_grid(logits.shape[-1]).to(logits.device)
    return grid[logits.argmax(dim=-1)]


def mean_abs_offset(offsets: Sequence[float] | np.ndarray) -> float:
    """DeSync: the mean of ``|offset|`` (seconds) over all windows given."""
    values = np.abs(np.asarray(offsets, dtype=np.float64).reshape(-1))
    if values.size == 0:
        raise ValueError("DeSync needs at least one window")
    return float(values.mean())


@dataclass
class ClipOffsets:
    """One clip's Synchformer predictions.

    Attributes:
        offsets: signed offset (s) per window (first, last).
        windows: ``(start, end)`` seconds of each window.
        logits: ``[windows, C]`` float32 offset logits.
    """

    offsets: list[float]
    windows: list[tuple[float, float]]
    logits: np.ndarray


@torch.inference_mode()
def clip_offsets(model: Synchformer, frames: torch.Tensor, wav: torch.Tensor, *, batch: int = 8) -> ClipOffsets:
    """Synchformer's offsets of one clip: uint8 ``frames [F, 224, 224, 3]`` at 25 fps, ``wav [N]`` at 16 kHz.

    Video and audio are cut on the same 0.64 s / 0.32 s grid (the model's segment length and half of
    it); both windows are read from one pass over all segments (``batch`` segments at a time).
    """
    cfg = model.config
    size, step = cfg.frames, cfg.frames // 2
    samples = round(cfg.frames / VIDEO_FPS * SAMPLE_RATE)  # 10240
    audio = audio_segments(wav, samples, samples // 2)
    count = min(len(segment_starts(frames.shape[0], size, step)), audio.shape[0])
    ranges = window_ranges(count, cfg.segments)
    device = model.device
    vfeats, afeats = [], []
    for i in range(0, count, batch):
        j = min(i + batch, count)
        # float pixels for this batch only (all 24 segments of 8 s at once would take ~1 GB)
        video = video_segments(frames[i * step : (j - 1) * step + size], size, step)
        vfeats.append(model.video_features(video[None].to(device)))
        afeats.append(model.audio_features(sync_logmel(audio[i:j].to(device), cfg.spec_frames)[None]))
    v, a = torch.cat(vfeats, dim=1), torch.cat(afeats, dim=1)  # [1, S, t, D]
    logits = model.offset_logits(
        torch.cat([v[:, s:e] for s, e in ranges]), torch.cat([a[:, s:e] for s, e in ranges])
    )  # [2, C]
    seg = step / VIDEO_FPS
    return ClipOffsets(
        offsets=[float(x) for x in offsets_from_logits(logits).cpu()],
        windows=[(s * seg, (e - 1) * seg + size / VIDEO_FPS) for s, e in ranges],
        logits=logits.float().cpu().numpy(),
    )


def _check_length(have: float, want: float, what: str, path: Path) -> None:
    if have + SLACK_SECONDS + 1e-9 < want:
        raise MediaError(f"{what} is {have:.2f} s, DeSync reads {want:g} s", path)


def read_sync_video(path: Path, duration: float, size: int = FRAME_SIZE) -> torch.Tensor:
    """The first ``duration`` s of a video as Synchformer sees it: uint8 ``[round(25 * duration), size, size, 3]``."""
    from foleygen.io import probe, read_frames

    info = probe(path)
    if not info.has_video:
        raise MediaError("no video stream (DeSync needs the clip's video)", path)
    _check_length(float(info.duration or 0.0), duration, "video", path)
    return read_frames(path, VIDEO_FPS, size, mode="crop", duration=duration)


def read_sync_audio(path: Path, duration: float) -> torch.Tensor:
    """The first ``duration`` s of a file's audio, mono at 16 kHz (av-benchmark's resampler): ``[16000 * duration]``."""
    from foleygen.eval.protocol import read_native, sinc_resample

    wav, rate = read_native(path)  # "no audio stream" for a silent video
    wav = sinc_resample(wav, rate, SAMPLE_RATE)
    want = int(SAMPLE_RATE * duration)
    _check_length(wav.numel() / SAMPLE_RATE, duration, "audio", path)
    return wav[:want] if wav.numel() >= want else torch.nn.functional.pad(wav, (0, want - wav.numel()))


def desync_offsets(
    stems: list[str],
    gen_files: dict[str, Path],
    video_files: dict[str, Path],
    config: EvalConfig,
    model: Synchformer | None,
    failures: FileFailures,
) -> dict[str, ClipOffsets] | str:
    """``{stem: ClipOffsets}`` of the generated audio against its video, or why Synchformer cannot run."""
    from foleygen.errors import one_line
    from foleygen.utils import progress, resolve_device

    if config.duration + 1e-9 < MIN_SECONDS:
        return f"DeSync needs clips of at least {MIN_SECONDS:g} s (duration is {config.duration:g} s)"
    if model is None:
        from foleygen.eval.synchformer import load_synchformer

        try:
            model = load_synchformer(config.synchformer).to(resolve_device(config.device))
        except Exception as err:  # missing, refused or broken weights: this metric's problem only
            return one_line(err)
    size = model.config.image_size

    out: dict[str, ClipOffsets] = {}
    for stem in progress(stems, desc="synchformer", quiet=config.quiet, unit="clip"):
        if failures.stem_failed(stem):
            continue
        frames = failures.attempt(
            video_files[stem], "desync", read_sync_video, video_files[stem], config.duration, size
        )
        wav = (
            failures.attempt(gen_files[stem], "desync", read_sync_audio, gen_files[stem], config.duration)
            if frames is not None
            else None
        )
        if frames is None or wav is None:
            continue
        done = failures.attempt(gen_files[stem], "desync", clip_offsets, model, frames, wav)
        if done is not None:
            out[stem] = done
    return out


def desync_aggregate(per_clip: dict[str, ClipOffsets], bad: set[str]) -> dict[str, Any]:
    """The DeSync result over the clips whose stems did not fail anywhere (``bad``)."""
    from foleygen.eval.failures import skipped

    kept = {s: c for s, c in per_clip.items() if s not in bad}
    if not kept:
        return skipped("no clip left to score (every one failed)")
    first = next(iter(kept.values()))
    value = mean_abs_offset([o for c in kept.values() for o in c.offsets])
    return {
        "value": value,
        "skipped": None,
        "model": "synchformer",
        "unit": "seconds (mean |offset| over windows)",
        "n_clips": len(kept),
        "windows": [[round(s, 4), round(e, 4)] for s, e in first.windows],
        "offsets": {s: c.offsets for s, c in sorted(kept.items())},
    }
