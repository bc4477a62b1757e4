"""A small audio-event classifier for SynthFoley's classes, and class accuracy of generated events.

Model: log-mel spectrogram (64 bands, 10 ms hop) of a short window (0.3 s, starting 20 ms before an
onset) -> four conv blocks (3x3 conv, batch norm, ReLU, 2x2 max-pool) -> mean+max pooling over time
and frequency -> a 128-d embedding -> class logits over :data:`foleygen.data.synthfoley.CLASSES`.
It is trained on SynthFoley ground-truth audio by ``scripts/train_event_classifier.py``; the weights
live in ``foleygen/assets/event_classifier`` (``config.json`` + ``model.safetensors``).

Two uses:

* :func:`class_accuracy`: detect onsets in (generated) audio, match them to a clip's reference onsets
  (:mod:`foleygen.eval.onsets`), classify the window at each matched detected onset and count it
  correct when the predicted class is one of the on-screen classes of the matched reference onset.
* :meth:`EventClassifier.embedding`: a fixed-size vector per window, the offline FAD embedder
  (``foleygen.eval.embedders.synthfoley``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from foleygen import dsp
from foleygen.config import from_dict, to_dict
from foleygen.errors import CheckpointError

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "assets" / "event_classifier"


class ClassifierWeightsMissing(CheckpointError, FileNotFoundError):
    """The event classifier's checkpoint directory does not exist."""


@dataclass(frozen=True)
class EventClassifierConfig:
    """Shape of the classifier and of the windows it reads.

    Attributes:
        classes: class names, index = logit position.
        sample_rate: input rate (other rates are resampled).
        window_seconds: window length classified per onset.
        pre_seconds: how long before the onset the window starts.
        n_fft / hop_length / n_mels / fmin: log-mel front end.
        channels: conv channels of the four blocks.
        embedding_dim: size of :meth:`EventClassifier.embedding`.
    """

    classes: tuple[str, ...] = ("wood", "metal", "glass", "drum", "rubber", "paper")
    sample_rate: int = 16000
    window_seconds: float = 0.3
    pre_seconds: float = 0.02
    n_fft: int = 512
    hop_length: int = 160
    n_mels: int = 64
    fmin: float = 30.0
    channels: tuple[int, ...] = (16, 32, 48, 64)
    embedding_dim: int = 128
    extra: dict[str, Any] = field(default_factory=dict)  # training provenance (accuracy, data, steps)

    @property
    def window_samples(self) -> int:
        return round(self.window_seconds * self.sample_rate)

    @property
    def pre_samples(self) -> int:
        return round(self.pre_seconds * self.sample_rate)


def _mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float) -> np.ndarray:
    """``float32 [n_mels, n_fft // 2 + 1]`` triangular mel filters (HTK scale, Slaney-style area normalisation)."""
    return dsp.mel_filterbank(sample_rate, n_fft, n_mels, fmin, norm="slaney").astype(np.float32)


class EventClassifier(nn.Module):
    """Log-mel CNN: ``[B, L]`` audio windows -> ``[B, C]`` logits (and ``[B, D]`` embeddings)."""

    def __init__(self, config: EventClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = config or EventClassifierConfig()
        c = self.config
        self.register_buffer(
            "mel", torch.from_numpy(_mel_filterbank(c.sample_rate, c.n_fft, c.n_mels, c.fmin)), persistent=False
        )
        self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)
        blocks: list[nn.Module] = []
        in_ch = 1
        for out_ch in c.channels:
            blocks += [
                nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            in_ch = out_ch
        self.features = nn.Sequential(*blocks)
        self.input_norm = nn.BatchNorm2d(1)
        self.project = nn.Sequential(nn.Linear(2 * in_ch, c.embedding_dim), nn.ReLU())
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(c.embedding_dim, len(c.classes))

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def embedding_dim(self) -> int:
        return self.config.embedding_dim

    @property
    def classes(self) -> tuple[str, ...]:
        return self.config.classes

    def log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` -> log-mel ``[B, 1, n_mels, frames]``."""
        c = self.config
        spec = torch.stft(wav.float(), c.n_fft, c.hop_length, window=self.window, center=True, return_complex=True)
        power = spec.real**2 + spec.imag**2
        mel = torch.einsum("mf,bft->bmt", self.mel, power)
        return torch.log(mel + 1e-6)[:, None]

    def _pooled(self, wav: torch.Tensor) -> torch.Tensor:
        x = self.features(self.input_norm(self.log_mel(wav)))
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)

    def embed_windows(self, wav: torch.Tensor) -> torch.Tensor:
        """Embeddings ``[B, D]`` of windows ``[B, L]`` (any L; trained on ``window_samples``)."""
        return self.project(self._pooled(wav))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Class logits ``[B, C]`` of windows ``[B, L]``."""
        return self.head(self.dropout(self.embed_windows(wav)))

    # ----- whole clips ---------------------------------------------------------------------------

    def _resample(self, wav: torch.Tensor | np.ndarray, sample_rate: int) -> torch.Tensor:
        wav = torch.as_tensor(np.asarray(wav, dtype=np.float32) if not torch.is_tensor(wav) else wav).float()
        if sample_rate != self.sample_rate:
            from scipy.signal import resample_poly

            g = math.gcd(int(sample_rate), self.sample_rate)
            wav = torch.from_numpy(
                resample_poly(wav.cpu().numpy(), self.sample_rate // g, int(sample_rate) // g, axis=-1).astype(
                    np.float32
                )
            )
        return wav

    def windows_at(self, wav: torch.Tensor | np.ndarray, sample_rate: int, times: np.ndarray) -> torch.Tensor:
        """Windows ``[N, window_samples]`` of mono ``wav [S]`` starting ``pre_seconds`` before ``times``
        (seconds; zero-padded at the clip edges)."""
        wav = self._resample(wav, sample_rate).reshape(-1)
        c = self.config
        n = c.window_samples
        padded = torch.nn.functional.pad(wav, (n, n))
        starts = [int(round(float(t) * c.sample_rate)) - c.pre_samples + n for t in np.asarray(times).reshape(-1)]
        if not starts:
            return torch.zeros(0, n)
        return torch.stack([padded[s : s + n] for s in starts])

    @torch.inference_mode()
    def classify(self, wav: torch.Tensor | np.ndarray, sample_rate: int, times: np.ndarray) -> np.ndarray:
        """Class index ``int64 [N]`` of the window at each onset time of ``wav [S]``."""
        if len(np.asarray(times).reshape(-1)) == 0:
            return np.zeros(0, np.int64)
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        logits = self(self.windows_at(wav, sample_rate, times).to(device))
        self.train(was_training)
        return logits.argmax(dim=1).cpu().numpy()

    @torch.inference_mode()
    def embedding(
        self, wav: torch.Tensor | np.ndarray, sample_rate: int | None = None, hop_seconds: float | None = None
    ) -> torch.Tensor:
        """FAD embedding of whole clips: ``wav [S]`` -> ``[W, D]``; ``[B, S]`` -> ``[B, W, D]``.

        The clip is tiled with ``window_seconds`` windows every ``hop_seconds`` (default: half a
        window); the last window is zero-padded, a short clip gives W = 1.
        """
        was_training = self.training
        self.eval()
        x = self._resample(wav, sample_rate or self.sample_rate)
        single = x.ndim == 1
        x = x.reshape(-1, x.shape[-1])
        n = self.config.window_samples
        hop = max(1, round((hop_seconds or self.config.window_seconds / 2) * self.sample_rate))
        count = 1 + max(0, math.ceil((x.shape[1] - n) / hop))
        x = torch.nn.functional.pad(x, (0, (count - 1) * hop + n - x.shape[1]))
        frames = x.unfold(1, n, hop)  # [B, W, n]
        device = next(self.parameters()).device
        emb = self.embed_windows(frames.reshape(-1, n).to(device)).reshape(x.shape[0], count, -1).cpu()
        self.train(was_training)
        return emb[0] if single else emb

    # ----- checkpoints ---------------------------------------------------------------------------

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (atomic)."""
        from foleygen.checkpoint import save_checkpoint_dir

        return save_checkpoint_dir(
            directory,
            {"model_type": "synthfoley_event_classifier", "classifier": to_dict(self.config)},
            self.state_dict(),
        )

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str] | None = None) -> EventClassifier:
        """Load a classifier saved by :meth:`save_pretrained` (default: the built-in one), in eval mode."""
        from foleygen.checkpoint import load_checkpoint_dir

        directory = Path(directory) if directory is not None else DEFAULT_DIR
        if not directory.is_dir():
            raise ClassifierWeightsMissing("event classifier checkpoint directory not found", directory)
        config, state = load_checkpoint_dir(directory)
        if config.get("model_type") != "synthfoley_event_classifier" or "classifier" not in config:
            raise CheckpointError("not a SynthFoley event classifier checkpoint", directory)
        model = cls(from_dict(EventClassifierConfig, config["classifier"]))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError(
                f"weights do not fit the config (missing {missing[:3]}, unexpected {unexpected[:3]})", directory
            )
        return model.eval()


def load_event_classifier(path: str | os.PathLike[str] | None = None) -> EventClassifier:
    """The built-in SynthFoley event classifier (or the one saved at ``path``), in eval mode."""
    return EventClassifier.from_pretrained(path)


@dataclass
class ClassAccuracy:
    """Class accuracy of detected events.

    Attributes:
        accuracy: correct / total (nan when no onset was matched).
        correct, total: counts over matched on-screen onsets.
        confusion: ``[C, C]`` counts, column = predicted class, row = the reference class it was scored
            against (the predicted one when it is among the onset's classes, else the onset's first
            class), so the trace equals ``correct``.
    """

    accuracy: float
    correct: int
    total: int
    confusion: np.ndarray

    def per_class(self, classes: Sequence[str]) -> dict[str, float | None]:
        """Accuracy of each reference class (a row of ``confusion``), None for a class with no onset."""
        totals = self.confusion.sum(axis=1)
        return {c: (float(self.confusion[i, i] / totals[i]) if totals[i] else None) for i, c in enumerate(classes)}

    def as_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "correct": self.correct,
            "total": self.total,
            "confusion": self.confusion.tolist(),
        }


def aggregate_accuracy(parts: list[ClassAccuracy]) -> ClassAccuracy:
    """Micro-average: sum correct and total (and confusions) over clips."""
    if not parts:
        return ClassAccuracy(float("nan"), 0, 0, np.zeros((0, 0), np.int64))
    correct = sum(p.correct for p in parts)
    total = sum(p.total for p in parts)
    confusion = sum(p.confusion for p in parts)
    return ClassAccuracy(correct / total if total else float("nan"), correct, total, np.asarray(confusion))


def class_accuracy(
    wav: np.ndarray | torch.Tensor,
    sample_rate: int,
    events: list[dict[str, Any]],
    classifier: EventClassifier | None = None,
    *,
    tolerance: float | None = None,
    pred_onsets: np.ndarray | None = None,
    exclude_offscreen: bool = True,
) -> ClassAccuracy:
    """Classify the window at each detected onset of ``wav [S]`` matched to a reference onset.

    A matched onset is correct when the predicted class is one of the reference onset's on-screen
    classes (any of its classes when ``exclude_offscreen`` is False). Reference onsets that are only
    off-screen are skipped when ``exclude_offscreen``. ``pred_onsets`` overrides the detector.
    """
    from foleygen.eval import onsets as onset_eval

    classifier = classifier or load_event_classifier()
    tolerance = onset_eval.DEFAULT_TOLERANCE if tolerance is None else tolerance
    wav_np = wav.detach().cpu().numpy() if torch.is_tensor(wav) else np.asarray(wav)
    wav_np = (wav_np.mean(axis=0) if wav_np.ndim == 2 else wav_np.reshape(-1)).astype(np.float32)
    refs = onset_eval.reference_onsets(events)
    if pred_onsets is None:
        pred_onsets = onset_eval.detect_onsets(wav_np, sample_rate)
    pred_onsets = np.sort(np.asarray(pred_onsets, dtype=np.float64))
    care = onset_eval.care_mask(refs, len(wav_np) / sample_rate, exclude_offscreen=exclude_offscreen)
    score = onset_eval.match_groups(pred_onsets, [r["times"] for r in refs], care, tolerance)
    names = classifier.classes
    confusion = np.zeros((len(names), len(names)), np.int64)
    if not score.matches:
        return ClassAccuracy(float("nan"), 0, 0, confusion)
    predicted = classifier.classify(wav_np, sample_rate, pred_onsets[[p for p, _, _ in score.matches]])
    correct = 0
    for (_, g, _), k in zip(score.matches, predicted, strict=True):
        wanted = refs[g]["onscreen_classes"] if exclude_offscreen else refs[g]["classes"]
        right = names[int(k)] in wanted
        correct += right
        # row: the class the prediction is scored against (itself when right, else the group's first
        # class), so the diagonal holds exactly the correct predictions even for multi-class onsets
        row = names[int(k)] if right else (wanted[0] if wanted else None)
        if row in names:
            confusion[names.index(row), int(k)] += 1
    return ClassAccuracy(correct / len(score.matches), correct, len(score.matches), confusion)
