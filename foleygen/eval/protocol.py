"""``--protocol av-benchmark``: read clips as hkchengrex/av-benchmark does, print MMAudio's Table 1 layout.

V2A papers since 2024 (MMAudio, HunyuanVideo-Foley, ThinkSound, Kling-Foley) report VGGSound numbers
computed with av-benchmark. Its metric definitions are already ours (softmax paired KL(ref||gen), IS
with 10 shuffled splits and seed 2020, FD with unbiased covariances); what this protocol changes is how
the audio reaches the models (our own implementation of its steps; docs/evaluation.md lists them):

* Decoding at the file's own rate, channels averaged, the **mean removed** (over the whole file), then
  resampled with a Hann-windowed sinc (6 zero crossings, roll-off 0.99: torchaudio's default resampler,
  which av-benchmark uses) instead of FFmpeg's swresample, then **cut to 8 s**. A shorter clip is
  zero-padded to 8 s (av-benchmark itself cannot batch clips of unequal length).
* PaSST gets the 8 s clip at 32 kHz zero-padded to 10 s (its published input length), and FD / IS on
  PaSST use paired clips only (av-benchmark pairs PaSST's features; PANNs and VGGish use every clip).
* IS cuts 10 splits whenever there are 10 clips or more (our default keeps 2 clips per split).
* ImageBind: audio from the whole file (not cut), resampled as above; video frames at 0.5 fps over the
  clip length (t = 0, 2, 4, 6 s for 8 s), consecutive frame pairs as 2-frame clips.

* DeSync (:mod:`foleygen.eval.desync`, Synchformer from :mod:`foleygen.eval.synchformer`): the true
  video at 25 fps, 224 x 224 centre crop; the generated audio at 16 kHz (same resampler, no DC
  removal); 16-frame (0.64 s) segments every 8 frames, the first and the last 4.8 s windows (14
  segments each), the argmax of 21 offset classes from -2 to +2 s; the mean ``|offset|`` in seconds over
  both windows of every clip. Weights: ``--synchformer`` or ``$FOLEYGEN_SYNCHFORMER``.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch

from foleygen import dsp

__all__ = [
    "AV_BENCHMARK_METRICS",
    "TABLE1_COLUMNS",
    "sinc_resample",
    "read_native",
    "load_clip_av_benchmark",
    "load_audio_imagebind",
    "imagebind_frame_times",
    "render_av_benchmark",
]

#: the metrics ``--protocol av-benchmark`` computes when ``--metrics`` is not given
AV_BENCHMARK_METRICS = (
    "fad-passt",
    "fad-panns",
    "fad-vggish",
    "kl-panns",
    "kl-passt",
    "is-panns",
    "is-passt",
    "ib-score",
    "desync",
)

#: MMAudio Table 1's columns: (heading, our metric, lower is better)
TABLE1_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("FD_PaSST", "fad-passt", True),
    ("FD_PANNs", "fad-panns", True),
    ("FD_VGG", "fad-vggish", True),
    ("KL_PANNs", "kl-panns", True),
    ("KL_PaSST", "kl-passt", True),
    ("IS", "is-panns", False),
    ("IB-score", "ib-score", False),
    ("DeSync", "desync", True),
)

PASST_SECONDS = 10.0  # PaSST-S was trained on 10 s clips; av-benchmark pads its 8 s input to that
IMAGEBIND_FPS = 0.5


def sinc_resample(
    wav: torch.Tensor, orig_freq: int, new_freq: int, *, zero_crossings: int = 6, rolloff: float = 0.99
) -> torch.Tensor:
    """av-benchmark's resampling of ``wav [..., S]`` -> ``float32 [..., ceil(S * new / orig)]``: torchaudio's
    interpolator (:func:`foleygen.dsp.sinc_resample`), convolved in float64 as torchaudio does for it."""
    return dsp.sinc_resample(
        wav, orig_freq, new_freq, zero_crossings=zero_crossings, rolloff=rolloff, dtype=torch.float64
    ).to(torch.float32)


def read_native(path: str | os.PathLike[str]) -> tuple[torch.Tensor, int]:
    """The whole first audio stream at its own rate, channels averaged: ``(wav [S] float32, rate)``."""
    from foleygen.errors import MediaError
    from foleygen.io import probe, read_audio

    info = probe(path)
    if not info.has_audio or info.audio_sample_rate <= 0:
        raise MediaError("no audio stream", path)
    return read_audio(path, int(info.audio_sample_rate), 1)[0], int(info.audio_sample_rate)


def _fit(wav: torch.Tensor, length: int) -> torch.Tensor:
    return wav[:length] if wav.numel() >= length else torch.nn.functional.pad(wav, (0, length - wav.numel()))


def load_clip_av_benchmark(
    path: str | os.PathLike[str], sample_rate: int, duration: float, *, model: str = ""
) -> torch.Tensor:
    """Mono ``[S]`` as av-benchmark feeds ``model``: mean removed, sinc-resampled, cut or padded to ``duration``.

    ``S = int(duration * sample_rate)``, except for ``model == "passt"``: the clip is then zero-padded to
    10 s (``S = 10 * sample_rate``).
    """
    wav, rate = read_native(path)
    wav = wav - wav.mean()  # av-benchmark removes the DC offset of the whole file before resampling
    wav = sinc_resample(wav, rate, sample_rate)
    wav = _fit(wav, int(duration * sample_rate))
    if model == "passt":
        wav = _fit(wav, int(PASST_SECONDS * sample_rate))
    return wav


def load_audio_imagebind(path: str | os.PathLike[str], sample_rate: int) -> torch.Tensor:
    """The whole file for ImageBind's audio side, sinc-resampled (not cut, DC left in, as av-benchmark)."""
    wav, rate = read_native(path)
    return sinc_resample(wav, rate, sample_rate)


def imagebind_frame_times(duration: float, fps: float = 25.0) -> list[float]:
    """Frame times (s) of av-benchmark's ImageBind video side: 0.5 fps over the clip (0, 2, 4, 6 for 8 s).

    A clip shorter than 4 s still gets one 2-frame clip; no time is past the last frame of a ``fps`` video.
    """
    count = max(int(IMAGEBIND_FPS * duration), 2)
    last = max(duration - 1.0 / fps, 0.0)
    return [min(k / IMAGEBIND_FPS, last) for k in range(count)]


def _cell(result: dict[str, Any] | None) -> str:
    if not result or result.get("value") is None:
        return "n/a"
    value = float(result["value"])
    if not math.isfinite(value):
        return "nan"
    return f"{value:.2f}"  # as MMAudio's Table 1 prints them (the JSON has full precision)


def render_av_benchmark(report: dict[str, Any]) -> str:
    """The report as MMAudio's Table 1 (one row: this run), then one line per column it could not fill."""
    from foleygen.eval.render import failed_lines

    metrics = report["metrics"]
    heads = [f"{name}{'↓' if lower else '↑'}" for name, _, lower in TABLE1_COLUMNS]
    lines = ["| Method | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
    label = os.path.basename(os.path.normpath(str(report.get("generated", "generated")))) or "generated"
    cells = [_cell(metrics.get(m)) for _, m, _ in TABLE1_COLUMNS]
    lines.append(f"| {label.replace('|', '/')} | " + " | ".join(cells) + " |")
    lines.append("")
    for name, metric, _ in TABLE1_COLUMNS:
        result = metrics.get(metric)
        if result is None:
            lines.append(f"- {name}: not requested")
        elif result.get("error") or result.get("skipped"):
            lines.append(f"- {name}: {result.get('error') or result['skipped']}")
    is_passt = metrics.get("is-passt")
    if is_passt and is_passt.get("value") is not None:
        lines.append(f"- IS_PaSST (not in Table 1): {_cell(is_passt)}")
    ib = metrics.get("ib-score")
    splits = (metrics.get("is-panns") or {}).get("splits") or 10
    notes = f"IS on PANNs ({splits} splits, seed 2020); KL = KL(ref||gen) of softmax outputs, paired"
    if ib and ib.get("value") is not None:
        notes += "; IB-score = 100 x mean cosine"
    sync = metrics.get("desync")
    if sync and sync.get("value") is not None:
        notes += "; DeSync = mean |offset| in seconds (Synchformer, first and last 4.8 s)"
    p = report["pairing"]
    lines.append("")
    lines.append(
        f"av-benchmark protocol, {report['settings']['duration']:g} s clips; {p['paired']} paired clips "
        f"({p['generated']} generated, {p['reference']} reference); {notes}."
    )
    lines += failed_lines(report)
    return "\n".join(lines) + "\n"
