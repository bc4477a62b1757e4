"""The alignment picture: written, sized as promised, and showing what it was given."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from foleygen.viz import Event, VizError, alignment_figure, mel_filterbank, mel_spectrogram, plot_alignment

FPS = 25
SR = 16000


def _clip(seconds: float = 2.0, hits: tuple[float, ...] = (0.5, 1.2)):
    """A tiny clip: a square that jumps at each hit time, and a decaying tone at each hit."""
    num_frames = int(seconds * FPS)
    frames = np.zeros((num_frames, 36, 64, 3), np.uint8)
    wav = np.zeros(int(seconds * SR), np.float32)
    for k, t in enumerate(hits):
        f = int(t * FPS)
        frames[f:, 10 + 5 * k : 20 + 5 * k, 20:30] = (200, 60, 30)
        i = int(t * SR)
        n = np.arange(2000)
        wav[i : i + 2000] += 0.8 * np.sin(2 * np.pi * 440 * n / SR) * np.exp(-n / 400)
    return frames, wav


def _artists(fig, gid: str) -> list:
    return [a for a in fig.findobj() if getattr(a, "get_gid", lambda: None)() == gid]


def test_png_written_with_expected_size(tmp_path):
    frames, wav = _clip()
    out = plot_alignment(
        frames,
        FPS,
        wav,
        SR,
        onsets=[0.5, 1.2],
        motion_peaks=[0.48],
        title="t",
        out_path=tmp_path / "sub" / "a.png",
        width_in=10,
        dpi=80,
    )
    assert out == tmp_path / "sub" / "a.png" and out.is_file()
    with Image.open(out) as img:
        assert img.format == "PNG"
        assert img.size[0] == 800  # width_in * dpi, exactly (no tight bbox)
        assert 300 < img.size[1] < 800
        pixels = np.asarray(img.convert("RGB"))
    assert pixels.std() > 10  # something was drawn, not a blank canvas
    assert not list(out.parent.glob(".*tmp*"))  # the atomic write leaves no temporary file


def test_figure_contains_each_requested_element():
    frames, wav = _clip(hits=(0.5, 1.2))
    events = [{"time": 0.5, "class": "knock"}, Event(1.2, "clang")]
    fig = alignment_figure(
        frames, FPS, wav, SR, onsets=[0.51, 1.22, 1.7], motion_peaks=[0.5, 1.2], events=events, num_thumbnails=6
    )
    assert len(_artists(fig, "thumbnail")) == 6
    assert len(_artists(fig, "spectrogram")) == 1
    # Onsets: one vertical line each on the spectrogram plus one marker collection on the lane.
    onset_lines = [a for a in _artists(fig, "onset") if a.__class__.__name__ == "Line2D"]
    assert len(onset_lines) == 3
    peak_lines = [a for a in _artists(fig, "motion_peak") if a.__class__.__name__ == "Line2D"]
    assert len(peak_lines) == 2
    labels = sorted(a.get_text() for a in _artists(fig, "event_label"))
    assert labels == ["clang", "knock"]
    spec_ax, lane_ax = fig.axes[1], fig.axes[2]
    legend_texts = [t.get_text() for t in spec_ax.get_legend().get_texts()]
    assert legend_texts == ["audio onset", "visual motion peak", "true event"]
    assert lane_ax.get_xlabel() == "time (s)"
    assert "Hz" in spec_ax.get_ylabel()
    assert [t.get_text() for t in lane_ax.get_yticklabels()] == ["audio onsets", "motion peaks", "true events"]
    # All panels share one time axis spanning the clip.
    assert lane_ax.get_xlim() == pytest.approx((0.0, 2.0))
    assert fig.axes[0].get_xlim() == lane_ax.get_xlim()


def test_empty_lists_draw_nothing_and_stereo_torch_input_works():
    torch = pytest.importorskip("torch")
    frames, wav = _clip()
    stereo = torch.from_numpy(np.stack([wav, wav]))
    fig = alignment_figure(torch.from_numpy(frames), FPS, stereo, SR, onsets=[], motion_peaks=[])
    assert _artists(fig, "onset") == [] and _artists(fig, "motion_peak") == []
    assert fig.axes[1].get_legend() is None


def test_mel_spectrogram_puts_energy_at_the_right_time_and_band():
    wav = np.zeros(SR, np.float32)
    n = np.arange(1600)
    wav[8000:9600] = np.sin(2 * np.pi * 1000 * n / SR)  # 1 kHz from 0.5 s to 0.6 s
    mel, hop, centres = mel_spectrogram(wav, SR, n_mels=64)
    assert mel.shape[0] == 64 and hop == pytest.approx(0.01)
    band, frame = np.unravel_index(np.argmax(mel), mel.shape)
    assert 0.5 <= frame * hop <= 0.6
    assert 800 < centres[band] < 1250
    fb = mel_filterbank(SR, 512, 40)
    assert fb.shape == (40, 257) and fb.max() <= 1.0 and (fb.sum(axis=1) > 0).all()


def test_bad_inputs_raise_one_line_errors(tmp_path):
    frames, wav = _clip()
    with pytest.raises(VizError, match="frames must be"):
        alignment_figure(frames[0], FPS, wav, SR, onsets=[], motion_peaks=[])
    with pytest.raises(VizError, match="wav must be"):
        alignment_figure(frames, FPS, np.zeros(0, np.float32), SR, onsets=[], motion_peaks=[])
    with pytest.raises(VizError, match="has no time"):
        alignment_figure(frames, FPS, wav, SR, onsets=[], motion_peaks=[], events=[{"class": "knock"}])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(VizError, match="cannot write") as err:
        plot_alignment(frames, FPS, wav, SR, onsets=[], motion_peaks=[], out_path=blocker / "a.png")
    assert "\n" not in str(err.value)


def test_motion_peaks_default_to_av_align_and_title_reports_the_score():
    frames, wav = _clip(hits=(0.5, 1.2))
    fig = alignment_figure(frames, FPS, wav, SR, onsets=[0.5, 1.2])
    peaks = sorted(a.get_xdata()[0] for a in _artists(fig, "motion_peak") if a.__class__.__name__ == "Line2D")
    assert peaks == pytest.approx([0.5, 1.2], abs=1.0 / FPS)
    # Both onsets land on both peaks: AV-Align (IoU within one frame) is 1.
    assert "AV-Align 1.00" in fig.get_suptitle()


def test_onsets_default_to_the_metric_detector():
    frames, wav = _clip(hits=(0.5, 1.2))
    fig = alignment_figure(frames, FPS, wav, SR, motion_peaks=[])
    onsets = sorted(a.get_xdata()[0] for a in _artists(fig, "onset") if a.__class__.__name__ == "Line2D")
    assert onsets == pytest.approx([0.5, 1.2], abs=1.0 / FPS)
