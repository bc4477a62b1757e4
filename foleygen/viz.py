"""Pictures that show whether generated sounds land on the visible actions.

:func:`plot_alignment` writes one PNG per clip with, on one shared time axis (seconds):

1. a strip of video thumbnails, each placed at the time of the frame it shows;
2. the audio's log-mel spectrogram, with the detected audio onsets drawn as vertical lines;
3. an event lane: audio onsets, visual motion peaks and (when known) ground-truth events labelled by
   class, one row each, so that coincidences (or misses) read at a glance.

The mel spectrogram is computed here in NumPy (no torchaudio/librosa), so the picture needs only
matplotlib, which runs headless with the Agg backend.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from foleygen import dsp
from foleygen.atomic import atomic_file
from foleygen.errors import FoleyGenError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Event", "mel_spectrogram", "mel_filterbank", "alignment_figure", "plot_alignment"]

# Colours chosen to stay distinct on the dark (magma) spectrogram and on white, and for colour-blind
# readers (Okabe-Ito palette).
ONSET_COLOR = "#56B4E9"  # sky blue
MOTION_COLOR = "#E69F00"  # orange
EVENT_COLOR = "#009E73"  # bluish green
LABEL_FONTSIZE = 7.5
LABEL_LEVELS = 3


class VizError(FoleyGenError):
    """Inputs that cannot be drawn (empty audio, wrong shapes, unwritable output)."""


@dataclass(frozen=True)
class Event:
    """A ground-truth sound event: when it happens and what makes it."""

    time: float
    label: str


# --------------------------------------------------------------------------------------------------
# Mel spectrogram (NumPy)
# --------------------------------------------------------------------------------------------------


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Triangular mel filters ``[n_mels, n_fft // 2 + 1]`` float32 (HTK mel scale, unit peak).

    The HTK scale: simple, invertible, and the exact mel variant does not matter for a picture.
    """
    return dsp.mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax).astype(np.float32)


def mel_spectrogram(
    wav: np.ndarray,
    sample_rate: int,
    *,
    n_mels: int = 80,
    hop_s: float = 0.01,
    win_s: float = 0.04,
    top_db: float = 80.0,
) -> tuple[np.ndarray, float, np.ndarray]:
    """Log-mel spectrogram of a mono signal.

    Args:
        wav: ``[S]`` float samples.
        sample_rate: Hz.
        n_mels: mel bands.
        hop_s / win_s: hop and window length in seconds (10 ms / 40 ms: fine enough in time to see
            onsets within one video frame, coarse enough in frequency to see timbre).
        top_db: dynamic range kept below the maximum.

    Returns:
        ``(mel_db [n_mels, T], hop_seconds, band_centre_hz [n_mels])``; frame ``t`` is centred at
        ``t * hop_seconds``.
    """
    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    hop = max(1, round(hop_s * sample_rate))
    win = max(hop, round(win_s * sample_rate))
    n_fft = 1 << max(0, math.ceil(math.log2(win)))
    # Centre the frames (pad half a window each side) so frame t really sits at t * hop.
    padded = np.pad(wav, (n_fft // 2, n_fft // 2))
    num_frames = 1 + max(0, (len(padded) - n_fft) // hop)
    idx = np.arange(n_fft)[None, :] + hop * np.arange(num_frames)[:, None]
    frames = padded[idx] * np.hanning(n_fft + 1)[:-1].astype(np.float32)[None, :]
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # [T, n_fft/2+1]
    fb = mel_filterbank(sample_rate, n_fft, n_mels)
    mel = fb @ power.T  # [n_mels, T]
    mel_db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    mel_db = np.maximum(mel_db, mel_db.max() - top_db)
    centres = dsp.mel_to_hz(np.linspace(dsp.hz_to_mel(0.0), dsp.hz_to_mel(sample_rate / 2), n_mels + 2))[1:-1]
    return mel_db.astype(np.float32), hop / sample_rate, centres


# --------------------------------------------------------------------------------------------------
# Inputs: tensors or arrays, events in several shapes, optional detectors
# --------------------------------------------------------------------------------------------------


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _as_events(events: Iterable[Any] | None) -> list[Event]:
    """Normalise ground-truth events: ``Event``, ``(time, label)``, dicts or objects with attributes.

    Dicts/objects may name the time ``time``/``t``/``onset`` and the class ``label``/``class``/
    ``cls``/``class_name``/``name`` (SynthFoley's event records and plain CSV rows both fit).
    """
    if events is None:
        return []
    out = []
    for ev in events:
        if isinstance(ev, Event):
            out.append(ev)
            continue
        if isinstance(ev, tuple | list) and len(ev) >= 2:
            out.append(Event(float(ev[0]), str(ev[1])))
            continue
        get = ev.get if isinstance(ev, dict) else (lambda k, _ev=ev: getattr(_ev, k, None))
        time = next((get(k) for k in ("time", "t", "onset") if get(k) is not None), None)
        label = next((get(k) for k in ("label", "class", "cls", "class_name", "name") if get(k) is not None), None)
        if time is None:
            raise VizError(f"ground-truth event {ev!r} has no time")
        out.append(Event(float(time), "event" if label is None else str(label)))
    return out


def _default_onsets(wav_mono: np.ndarray, sample_rate: int) -> np.ndarray:
    """Audio onsets from :func:`foleygen.eval.onsets.detect_onsets` (the detector the metrics use)."""
    from foleygen.eval.onsets import detect_onsets

    return _to_numpy(detect_onsets(wav_mono, sample_rate)).astype(np.float64).reshape(-1)


def _default_motion_peaks(frames: np.ndarray, fps: float) -> np.ndarray:
    """Visual motion peaks from :func:`foleygen.eval.av_align.video_peaks` (frame-difference motion)."""
    from foleygen.eval.av_align import video_peaks

    return _to_numpy(video_peaks(frames, fps)).astype(np.float64).reshape(-1)


# --------------------------------------------------------------------------------------------------
# The figure
# --------------------------------------------------------------------------------------------------


def alignment_figure(
    frames: Any,
    fps: float,
    wav: Any,
    sample_rate: int,
    *,
    onsets: Sequence[float] | None = None,
    motion_peaks: Sequence[float] | None = None,
    events: Iterable[Any] | None = None,
    title: str | None = None,
    num_thumbnails: int = 8,
    width_in: float = 12.0,
    dpi: int = 100,
) -> Figure:
    """Build (without saving) the alignment figure; see :func:`plot_alignment` for the arguments.

    Artists carry ``gid`` tags (``thumbnail``, ``spectrogram``, ``onset``, ``motion_peak``,
    ``event``) so that tests and callers can find what was drawn.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)  # headless: never needs a display
    from matplotlib.figure import Figure

    frames = _to_numpy(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise VizError(f"frames must be uint8 [F, H, W, 3] with F > 0, got shape {tuple(frames.shape)}")
    if frames.dtype != np.uint8:
        frames = np.clip(frames, 0, 255).astype(np.uint8)
    if fps <= 0:
        raise VizError(f"fps must be positive, got {fps}")
    wav = _to_numpy(wav).astype(np.float32)
    if wav.ndim == 2:
        wav = wav.mean(axis=0)  # [C, S] -> mono: the picture is about timing, not stereo image
    if wav.ndim != 1 or wav.size == 0:
        raise VizError(f"wav must be [S] or [C, S] with S > 0, got shape {tuple(_to_numpy(wav).shape)}")

    num_frames, height, width = frames.shape[:3]
    duration = max(num_frames / fps, wav.size / sample_rate)

    if onsets is None:
        onsets = _default_onsets(wav, sample_rate)
    if motion_peaks is None:
        motion_peaks = _default_motion_peaks(frames, fps)
    onsets_arr = None if onsets is None else np.asarray(onsets, dtype=np.float64).reshape(-1)
    peaks_arr = None if motion_peaks is None else np.asarray(motion_peaks, dtype=np.float64).reshape(-1)
    gt = _as_events(events)

    # Layout: thumbnails keep their aspect ratio, so the strip's height follows from the width each
    # thumbnail gets on the time axis. Margins are fixed fractions of the figure so the PNG has an
    # exactly predictable size (no bbox_inches="tight").
    n_thumbs = max(1, min(num_thumbnails, num_frames))
    left, right = 0.105, 0.985
    axes_width_in = width_in * (right - left)
    strip_h_in = axes_width_in / n_thumbs * height / width
    spec_h_in, lane_h_in = 3.2, 1.1 + (0.45 if gt else 0.0)
    margins_in = 1.5  # title + x labels + gaps between rows
    height_in = strip_h_in + spec_h_in + lane_h_in + margins_in
    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    grid = fig.add_gridspec(
        3,
        1,
        height_ratios=[strip_h_in, spec_h_in, lane_h_in],
        left=left,
        right=right,
        top=1 - 0.55 / height_in,
        bottom=0.55 / height_in,
        hspace=0.45 / ((strip_h_in + spec_h_in + lane_h_in) / 3),
    )
    ax_strip = fig.add_subplot(grid[0])
    ax_spec = fig.add_subplot(grid[1], sharex=ax_strip)
    ax_lane = fig.add_subplot(grid[2], sharex=ax_strip)

    # 1. Frame strip: thumbnail i covers [i, i+1) * duration / n and shows the frame at its centre.
    slot = duration / n_thumbs
    for i in range(n_thumbs):
        t_centre = (i + 0.5) * slot
        f = min(num_frames - 1, int(t_centre * fps))
        ax_strip.imshow(
            frames[f],
            extent=(i * slot, (i + 1) * slot, 0, 1),
            aspect="auto",
            interpolation="antialiased",
            gid="thumbnail",
        )
        ax_strip.axvline(f / fps, color="white", lw=0.6, alpha=0.5)
    ax_strip.set_ylim(0, 1)
    ax_strip.set_yticks([])
    ax_strip.set_ylabel("video", rotation=0, ha="right", va="center")
    ax_strip.tick_params(labelbottom=False)

    # 2. Spectrogram, x in seconds, y in mel bins labelled with their centre frequency in Hz.
    mel_db, hop_sec, centres = mel_spectrogram(wav, sample_rate)
    n_mels, n_t = mel_db.shape
    ax_spec.imshow(
        mel_db,
        origin="lower",
        aspect="auto",
        cmap="magma",
        interpolation="nearest",
        extent=(-hop_sec / 2, (n_t - 0.5) * hop_sec, -0.5, n_mels - 0.5),
        gid="spectrogram",
    )
    # Ticks at round frequencies, placed at their (fractional) mel-band position.
    tick_hz = [hz for hz in (250, 500, 1000, 2000, 4000, 8000, 16000) if centres[0] <= hz <= centres[-1]]
    ax_spec.set_yticks(np.interp(tick_hz, centres, np.arange(n_mels)))
    ax_spec.set_yticklabels([f"{hz}" if hz < 1000 else f"{hz // 1000}k" for hz in tick_hz])
    ax_spec.set_ylabel("mel bands (Hz)")
    ax_spec.tick_params(labelbottom=False)
    if onsets_arr is not None:
        for j, t in enumerate(onsets_arr):
            ax_spec.axvline(
                t, color=ONSET_COLOR, lw=1.2, alpha=0.9, gid="onset", label="audio onset" if j == 0 else None
            )
    if peaks_arr is not None:
        for j, t in enumerate(peaks_arr):
            ax_spec.axvline(
                t,
                color=MOTION_COLOR,
                lw=1.0,
                ls="--",
                alpha=0.9,
                gid="motion_peak",
                label="visual motion peak" if j == 0 else None,
            )
            ax_strip.axvline(t, color=MOTION_COLOR, lw=1.0, ls="--", alpha=0.9)
    for j, ev in enumerate(gt):
        ax_spec.axvline(ev.time, color=EVENT_COLOR, lw=1.0, ls=":", alpha=0.9, label="true event" if j == 0 else None)

    # 3. Event lane: one row per kind of event, markers at their times.
    rows = []
    if onsets_arr is not None:
        rows.append(("audio onsets", onsets_arr, ONSET_COLOR, "|", "onset"))
    if peaks_arr is not None:
        rows.append(("motion peaks", peaks_arr, MOTION_COLOR, "v", "motion_peak"))
    if gt:
        rows.append(("true events", np.array([e.time for e in gt]), EVENT_COLOR, "D", "event"))
    for y, (_, times, color, marker, gid) in enumerate(rows):
        if times.size:
            ax_lane.scatter(
                times,
                np.full(times.size, y),
                color=color,
                marker=marker,
                s=90 if marker == "|" else 45,
                linewidths=2,
                gid=gid,
                zorder=3,
            )
    if gt:
        # Class labels above the markers, stacked on LABEL_LEVELS lines so that close events (a bounce
        # series) stay legible: each label takes the lowest line that is free at its time.
        y_gt = len(rows) - 1
        char_s = duration * (LABEL_FONTSIZE * 0.7 / 72) / axes_width_in  # seconds per character, about
        line_free_at = [-math.inf] * LABEL_LEVELS
        for ev in sorted(gt, key=lambda e: e.time):
            free = [i for i, t in enumerate(line_free_at) if t <= ev.time]
            level = free[0] if free else int(np.argmin(line_free_at))
            line_free_at[level] = ev.time + (len(ev.label) + 1.5) * char_s
            ax_lane.annotate(
                ev.label,
                (ev.time, y_gt),
                xytext=(2, 5 + (LABEL_FONTSIZE + 2) * level),
                textcoords="offset points",
                fontsize=LABEL_FONTSIZE,
                color=EVENT_COLOR,
                gid="event_label",
            )
    ax_lane.set_yticks(range(len(rows)))
    ax_lane.set_yticklabels([r[0] for r in rows])
    ax_lane.set_ylim(-0.6, max(len(rows), 1) - 0.4 + (0.9 if gt else 0))
    ax_lane.grid(axis="x", color="0.85", lw=0.6)
    if not rows:
        ax_lane.text(
            0.5,
            0.5,
            "no onsets, motion peaks or events given",
            transform=ax_lane.transAxes,
            ha="center",
            va="center",
            color="0.4",
        )
    ax_lane.set_xlabel("time (s)")
    ax_lane.set_xlim(0, duration)

    handles, labels = ax_spec.get_legend_handles_labels()
    if handles:
        ax_spec.legend(handles, labels, loc="upper right", fontsize=8, framealpha=0.85, ncols=len(handles))
    summary = []
    if onsets_arr is not None:
        summary.append(f"{onsets_arr.size} onsets")
    if peaks_arr is not None:
        summary.append(f"{peaks_arr.size} motion peaks")
    if onsets_arr is not None and peaks_arr is not None and (onsets_arr.size or peaks_arr.size):
        from foleygen.eval.av_align import av_align_score

        # The one number the picture is about: onsets and motion peaks that coincide within a frame.
        summary.append(f"AV-Align {av_align_score(onsets_arr, peaks_arr, fps):.2f}")
    if gt:
        summary.append(f"{len(gt)} true events")
    head = title or "Audio-visual alignment"
    fig.suptitle(head + (f"  ({', '.join(summary)})" if summary else ""), fontsize=11)
    return fig


def plot_alignment(
    frames: Any,
    fps: float,
    wav: Any,
    sample_rate: int,
    *,
    onsets: Sequence[float] | None = None,
    motion_peaks: Sequence[float] | None = None,
    events: Iterable[Any] | None = None,
    title: str | None = None,
    out_path: str | Path,
    num_thumbnails: int = 8,
    width_in: float = 12.0,
    dpi: int = 100,
) -> Path:
    """Write the alignment picture of one clip as a PNG and return its path.

    Args:
        frames: uint8 ``[F, H, W, 3]`` (tensor or array), frame ``i`` shown at ``i / fps``.
        fps: frames per second of ``frames``.
        wav: ``[S]`` or ``[C, S]`` float audio (channels are averaged).
        sample_rate: Hz.
        onsets: audio onset times in seconds; ``None`` computes them with
            :func:`foleygen.eval.onsets.detect_onsets`; ``[]`` draws none.
        motion_peaks: visual motion peak times in seconds; ``None`` computes them with
            :func:`foleygen.eval.av_align.video_peaks`; ``[]`` draws none.
        events: ground-truth events (``Event``, ``(time, label)``, dicts or records), labelled by class.
        title: figure title (a count summary is appended).
        out_path: the PNG to write (parent directories are created).
        num_thumbnails: frames in the strip (fewer if the clip has fewer frames).
        width_in / dpi: the PNG is ``width_in * dpi`` pixels wide.
    """
    fig = alignment_figure(
        frames,
        fps,
        wav,
        sample_rate,
        onsets=onsets,
        motion_peaks=motion_peaks,
        events=events,
        title=title,
        num_thumbnails=num_thumbnails,
        width_in=width_in,
        dpi=dpi,
    )
    out = Path(out_path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # Write next to the target, then rename: a reader (the web app) never sees half a PNG.
        with atomic_file(out, ".png", fsync=False) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    except OSError as err:
        raise VizError(f"cannot write the picture: {err.strerror or err}", out) from err
    return out
