"""The ``onsets:`` section's three terms: onset-weighted codes, the visual onset and onset-class losses.

Onset-weighted code loss (``onsets.weight > 0``, :class:`OnsetWeightedCodes`). In Foley the instants that
matter are the impacts. A struck object's first 100 ms decide what it sounds like (the LM keeps to a
timbre once it has started one) and when it sounds; the frames of ringing tails and silence around them
are far more numerous and easy to predict, so a plain per-frame average spends most of its gradient on
them. Weighting the frames from ``before`` seconds ahead of each onset of the true audio to ``after``
seconds past it by ``1 + weight`` puts the loss where a listener's attention is: the pre-onset frames
teach not to strike early, the post-onset frames teach the timbre.

Visual onset loss for a jointly trained encoder (``onsets.visual_weight > 0``, :class:`VisualOnsetTerm`):
the same onsets, as one target per video frame (an onset of the true audio falls within it, or not),
scored by ``onset_head`` (:class:`~foleygen.train.recipes.synthfoley.heads.FrameScoreHead`), with a binary
cross-entropy over the real frames. Through the codes' loss alone the encoder learns *when* things hit
only once the LM has learnt to listen to it, which takes most of a CPU budget; the frame targets tell it
directly from the first step, without annotations.

Visual onset-class loss (``onsets.class_weight > 0`` with ``onsets.events``, a directory of SynthFoley-style
event files; :class:`OnsetClassTerm`): ``onset_class_head``, of the same shape, scores every frame for
every class (an on-screen impact of that class falls within the frame), with a binary cross-entropy over
the real frames of the clips that have an event file. The clip labels say which objects a clip holds;
only these frame targets say which of them is the one hitting now, which the codes' loss alone teaches
only after thousands of steps.

Where the onsets and impacts come from: :mod:`foleygen.train.recipes.synthfoley.onset_data`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from foleygen.errors import ConfigError
from foleygen.train.loss_terms import LMOutputs, LossTerm, LossTermContext, crop_starts, register_loss_terms
from foleygen.train.recipes.synthfoley.heads import FrameScoreHead
from foleygen.train.recipes.synthfoley.onset_data import (
    codec_key,
    load_clip_impacts,
    load_or_compute_onsets,
    onset_class_targets,
    onset_frame_targets,
    onset_frame_weights,
)


@dataclass
class OnsetLossConfig:
    """``onsets:`` of an LM training config (see the module docstring).

    Attributes:
        weight: extra weight of the frames near an onset (a frame counts ``1 + weight``; 0 = off).
        before: seconds before an onset that count as near it.
        after: seconds after an onset that count as near it.
        batch_size: clips decoded at once when the onsets are first computed.
        visual_weight: weight of the visual onset loss (0 = off). Needs a jointly trained (``compact``)
            visual encoder.
        class_weight: weight of the visual onset-class loss (0 = off). Needs a jointly trained encoder
            and ``events``.
        events: directory of per-clip event files, ``<events>/<clip id>.json`` in SynthFoley's format
            (``{"events": [{"time", "class", "kind", "offscreen"}, ...]}``; ``foleygen synth``'s output).
    """

    weight: float = 0.0
    before: float = 0.06
    after: float = 0.1
    batch_size: int = 32
    visual_weight: float = 0.0
    class_weight: float = 0.0
    events: str | None = None

    def __post_init__(self) -> None:
        if min(self.weight, self.before, self.after, self.visual_weight, self.class_weight) < 0:
            got = f"{self.weight}, {self.before}, {self.after}, {self.visual_weight}, {self.class_weight}"
            raise ConfigError(f"onsets: weight, before, after, visual_weight and class_weight must be >= 0 (got {got})")
        if self.class_weight > 0 and not self.events:
            raise ConfigError("onsets.class_weight > 0 needs onsets.events: the directory of the clips' event files")


class ClipOnsets:
    """Onset times (s) of every cached clip's true audio, ``{clip id: [...]}``: computed on the first call
    (or read from the cache's sidecar), then kept; shared by the terms that need them."""

    def __init__(self, context: LossTermContext, batch_size: int) -> None:
        self.context, self.batch_size = context, batch_size
        self._onsets: dict[str, list[float]] | None = None

    def __call__(self) -> dict[str, list[float]]:
        if self._onsets is None:
            codec = self.context.codec()
            device = next(codec.parameters()).device
            self._onsets = load_or_compute_onsets(
                self.context.reader,
                lambda codes: codec.decode(codes.to(device)),
                int(codec.sample_rate),
                codec_key(self.context.codec_name),
                batch_size=self.batch_size,
            )
        return self._onsets


class OnsetWeightedCodes(LossTerm):
    """The codes' audio frames near an onset of the true audio weigh ``1 + onsets.weight``."""

    name = "onset_weights"

    def __init__(self, config: OnsetLossConfig, onsets: ClipOnsets, frame_rate: float) -> None:
        self.config, self.onsets, self.frame_rate = config, onsets, float(frame_rate)

    def frame_weights(self, batch: dict[str, Any]) -> torch.Tensor | None:
        onsets = self.onsets()
        weights = onset_frame_weights(
            [onsets.get(i, []) for i in batch["ids"]],
            crop_starts(batch, self.frame_rate),
            batch["codes"].shape[-1],
            self.frame_rate,
            weight=self.config.weight,
            before=self.config.before,
            after=self.config.after,
        )
        return weights.to(batch["codes"].device)


class VisualOnsetTerm(LossTerm):
    """Binary cross-entropy of ``onset_head``'s frame scores against the frames holding a true onset."""

    name = "visual_onsets"
    head = "onset_head"

    def __init__(self, config: OnsetLossConfig, onsets: ClipOnsets, frame_rate: float, fps: float) -> None:
        self.weight, self.onsets, self.frame_rate, self.fps = config.visual_weight, onsets, float(frame_rate), fps

    def heads(self, visual_dim: int) -> dict[str, nn.Module]:
        return {self.head: FrameScoreHead(visual_dim, 1)}

    def score_loss(self, scores: torch.Tensor, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of frame scores ``[B, F]`` over the real frames, with the F1 of ``score > 0`` as a
        frame-level detector (pooled over the batch)."""
        onsets = self.onsets()
        targets = onset_frame_targets(
            [onsets.get(i, []) for i in batch["ids"]], crop_starts(batch, self.frame_rate), scores.shape[1], self.fps
        ).to(scores.device)
        real = batch.get("visual_mask")
        real = torch.ones_like(targets, dtype=torch.bool) if real is None else real.to(scores.device)
        bce = F.binary_cross_entropy_with_logits(scores.float(), targets, reduction="none")
        loss = (bce * real).sum() / real.sum().clamp_min(1)
        with torch.no_grad():
            said = (scores > 0) & real
            hits = float((said & (targets > 0)).sum())
            f1 = 2 * hits / max(float(said.sum()) + float(((targets > 0) & real).sum()), 1.0)
        return loss, {"visual_onset_loss": float(loss.detach()), "visual_onset_f1": f1}

    def loss(self, batch: dict[str, Any], outputs: LMOutputs) -> tuple[torch.Tensor | None, dict[str, float]]:
        return self.score_loss(outputs.heads[self.head][..., 0], batch)


class OnsetClassTerm(LossTerm):
    """Binary cross-entropy of ``onset_class_head``'s frame-and-class scores against the frames' on-screen
    impact classes, over the real frames of clips with an event file.

    Attributes:
        classes: the sorted classes of the training clips' on-screen impacts (the head's outputs).
    """

    name = "onset_classes"
    head = "onset_class_head"

    def __init__(
        self,
        config: OnsetLossConfig,
        impacts: dict[str, list[tuple[float, str]]],
        classes: list[str],
        frame_rate: float,
        fps: float,
    ) -> None:
        self.weight, self.impacts, self.classes = config.class_weight, impacts, classes
        self.frame_rate, self.fps = float(frame_rate), fps
        self._index = {c: i for i, c in enumerate(classes)}

    def heads(self, visual_dim: int) -> dict[str, nn.Module]:
        return {self.head: FrameScoreHead(visual_dim, len(self.classes))}

    def score_loss(self, scores: torch.Tensor, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of scores ``[B, F, C]``, and the share of impact frames whose best-scored class is a
        true one (pooled over the batch)."""
        targets, known = onset_class_targets(
            [self.impacts.get(i) for i in batch["ids"]],
            crop_starts(batch, self.frame_rate),
            scores.shape[1],
            self.fps,
            self._index,
        )
        targets, known = targets.to(scores.device), known.to(scores.device)
        real = batch.get("visual_mask")
        real = torch.ones(targets.shape[:2], dtype=torch.bool, device=targets.device) if real is None else real
        real = real.to(scores.device) & known[:, None]  # [B, F]
        bce = F.binary_cross_entropy_with_logits(scores.float(), targets, reduction="none").mean(dim=2)
        loss = (bce * real).sum() / real.sum().clamp_min(1)
        with torch.no_grad():
            impact = (targets.sum(dim=2) > 0) & real  # [B, F]
            best = scores.argmax(dim=2, keepdim=True)  # [B, F, 1]
            right = targets.gather(2, best)[..., 0] > 0
            acc = float((right & impact).sum()) / max(float(impact.sum()), 1.0)
        return loss, {"visual_onset_class_loss": float(loss.detach()), "visual_onset_class_acc": acc}

    def loss(self, batch: dict[str, Any], outputs: LMOutputs) -> tuple[torch.Tensor | None, dict[str, float]]:
        return self.score_loss(outputs.heads[self.head], batch)


@register_loss_terms("onsets")
def onset_terms(config: OnsetLossConfig, context: LossTermContext) -> list[LossTerm]:
    """The ``onsets:`` section's terms, those whose weight is > 0, in the order weighting, visual onsets,
    onset classes (the onsets are computed here, before training starts: decoding the cache takes a while
    the first time)."""
    if config.visual_weight > 0 and not context.trainable_visual:
        raise ConfigError(
            "onsets.visual_weight > 0 trains the visual encoder on the audio's onsets; set visual.kind: compact"
        )
    onsets = ClipOnsets(context, config.batch_size)
    terms: list[LossTerm] = []
    if config.weight > 0 or config.visual_weight > 0:
        onsets()
    if config.weight > 0:
        terms.append(OnsetWeightedCodes(config, onsets, context.frame_rate))
    if config.visual_weight > 0:
        terms.append(VisualOnsetTerm(config, onsets, context.frame_rate, context.fps))
    if config.class_weight > 0:
        if not context.trainable_visual:
            raise ConfigError(
                "onsets.class_weight > 0 trains the visual encoder on the events' classes; set visual.kind: compact"
            )
        assert config.events is not None  # (OnsetLossConfig checks it)
        impacts = load_clip_impacts(config.events, [c.id for c in context.reader.clips])
        train = set(context.train_splits)
        classes = sorted({name for c in context.reader.clips if c.split in train for _, name in impacts.get(c.id, [])})
        if not classes:
            raise ConfigError("onsets.class_weight > 0 but no training clip has an on-screen impact", config.events)
        terms.append(OnsetClassTerm(config, impacts, classes, context.frame_rate, context.fps))
    return terms
