"""The ``lm`` training task: FoleyGen's audio LM on a prepared cache (``task: lm`` in YAML).

Data comes from a cache made by ``foleygen prepare`` (codes + frozen-encoder features, or frames for a
trainable encoder). The model is :class:`LMWithVisual`: the :class:`~foleygen.lm.model.AudioLM`, plus the
``compact`` visual encoder when the config trains one jointly (then the cache holds frames and the
encoder runs inside the model). Loss: cross-entropy over the real (unpadded) audio frames, averaged
over the K codebooks; per-codebook loss and accuracy are logged. Classifier-free-guidance condition
dropout happens inside ``AudioLM.compute_logits`` in training mode (``lm.cfg_dropout``).

Clip labels as a second signal for a jointly trained encoder (``labels.weight > 0``). The paper's
frozen encoders (CLIP, ImageBind) arrive knowing what objects look like; the compact encoder learns
only from the audio loss, which says little about *which* object is hitting until the LM already
knows. With clip labels in the cache (SynthFoley: the classes of its on-screen events, ``a+b``), a
linear head scores every frame's features for every class, a clip's score for a class is its best
frame's (multiple-instance learning: the class is in the clip if some frame shows it), and a binary
cross-entropy against the clip's classes is added to the loss with that weight. The head exists only
in training; the saved FoleyGen checkpoint holds the encoder it shaped.

Onset-weighted code loss (``onsets.weight > 0``, :mod:`foleygen.train.onset_weights`): the audio frames
around each onset of the true audio count ``1 + weight`` in the codes' cross-entropy, because impacts
decide a Foley track's timing and timbre while being a small share of its frames.

Visual onset loss for a jointly trained encoder (``onsets.visual_weight > 0``): the same onsets, as one
target per video frame (an onset of the true audio falls within it, or not). A head of one 1-D
convolution over five neighbouring frames' features (the contact shows in the frame after an impact
as often as in its own) scores every frame, and their binary cross-entropy over the real frames is
added with that weight. Like the label head, it exists only in training.

Visual onset-class loss (``onsets.class_weight > 0`` with ``onsets.events``, a directory of SynthFoley-style
event files): a third head, of the same shape, scores every frame for every class (an on-screen impact
of that class falls within the frame), with a binary cross-entropy over the real frames of the clips
that have an event file. It tells the encoder which object is hitting now, not only which are in the clip.

Config sections (see configs/*.yaml; parsed once into :class:`~foleygen.train.lm_config.LMRunConfig`,
unknown names failing)::

    data:   {cache, duration, train_splits, val_splits, allow_partial}
    codec:  {path, num_codebooks}        # default path: the codec the cache was made with
    visual: {kind, path, options}        # frozen: how the checkpoint reloads it; compact: {kind, config}
    labels: {weight, separator}           # clip-label loss on a compact encoder's frames (0: off)
    onsets: {weight, before, after, visual_weight,   # extra weight of the frames near onsets (0: off);
             class_weight, events}        # visual onset (and onset-class) loss on a compact encoder's frames
    lm:     LMConfig fields; num_codebooks/cardinality/frame_rate/fps/visual_dim default to the cache's
    generation: {top_k, top_p, temperature, cfg_coef}   # TensorBoard samples and the saved checkpoint
    samples: {num}                        # validation clips generated for TensorBoard

``save_pretrained`` writes a FoleyGen checkpoint (``foleygen.api.FoleyGen.save_pretrained``), loadable
with ``FoleyGen.from_pretrained(dir)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from foleygen.config import from_dict, parse_config, to_dict
from foleygen.data.cache import CacheReader
from foleygen.data.datasets import CachedClipDataset, collate_clips
from foleygen.errors import ConfigError
from foleygen.lm.model import AudioLM, LMConfig
from foleygen.train.lm_config import LMRunConfig
from foleygen.train.onset_weights import (
    codec_key,
    load_clip_impacts,
    load_or_compute_onsets,
    onset_class_targets,
    onset_frame_targets,
    onset_frame_weights,
)
from foleygen.train.task import register_task
from foleygen.vision.base import VisualEncoder

#: LMConfig fields that describe the data, taken from the cache when the config leaves them out
_FROM_CACHE = ("num_codebooks", "cardinality", "frame_rate", "fps", "visual_dim")


class LMWithVisual(nn.Module):
    """The trained module: ``lm`` (AudioLM) and, when trained jointly, ``visual`` (compact encoder).

    ``forward(codes [B, K, T], visual)`` -> ``(logits [B, K, T, card], heads)``, where ``visual`` is
    features ``[B, F, D]`` (frozen encoder, from the cache) or uint8 frames ``[B, F, S, S, 3]``
    (``visual`` set), and ``heads`` holds the training-only heads' scores: ``"labels"`` (clip scores
    ``[B, C]``, when the run has ``num_labels`` classes), ``"onsets"`` (frame scores ``[B, F]``, with
    ``onset_head``) and ``"onset_classes"`` (frame-and-class scores ``[B, F, C']``, with
    ``num_onset_classes`` = C'). Parameter names (``lm.*``, ``visual.*``) are those of a FoleyGen
    checkpoint; ``label_head.*``, ``onset_head.*`` and ``onset_class_head.*`` are training-only
    (:data:`TRAINING_ONLY`).
    """

    def __init__(
        self,
        lm: AudioLM,
        visual: VisualEncoder | None = None,
        num_labels: int = 0,
        onset_head: bool = False,
        num_onset_classes: int = 0,
    ) -> None:
        super().__init__()
        self.lm = lm
        self.visual = visual
        self.label_head = nn.Linear(lm.visual_dim, num_labels) if num_labels else None
        self.onset_head = nn.Conv1d(lm.visual_dim, 1, kernel_size=5, padding=2) if onset_head else None
        self.onset_class_head = (
            nn.Conv1d(lm.visual_dim, num_onset_classes, kernel_size=5, padding=2) if num_onset_classes else None
        )

    def features(self, visual: torch.Tensor) -> torch.Tensor:
        """Features ``[B, F, D]`` from what the cache stores."""
        if self.visual is None:
            return visual
        return self.visual(self.visual.preprocess(visual))

    def label_logits(self, features: torch.Tensor, visual_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Clip scores ``[B, C]``: per class, the best score of a real frame of ``features [B, F, D]``.

        ``visual_mask [B, F]`` (True = a real frame) keeps padding frames out of the max.
        """
        assert self.label_head is not None
        per_frame = self.label_head(features.float())  # [B, F, C]
        if visual_mask is not None:
            per_frame = per_frame.masked_fill(~visual_mask[:, :, None], float("-inf"))
        return per_frame.amax(dim=1)

    def onset_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Frame scores ``[B, F]`` (an onset of the audio falls within frame f) from ``features [B, F, D]``."""
        assert self.onset_head is not None
        return self.onset_head(features.float().transpose(1, 2))[:, 0]

    def onset_class_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Frame-and-class scores ``[B, F, C']`` (an on-screen impact of class c falls within frame f)
        from ``features [B, F, D]``."""
        assert self.onset_class_head is not None
        return self.onset_class_head(features.float().transpose(1, 2)).transpose(1, 2)

    def forward(
        self,
        codes: torch.Tensor,
        visual: torch.Tensor,
        drop_condition: torch.Tensor | None = None,
        visual_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        features = self.features(visual)
        logits = self.lm.compute_logits(codes, features, drop_condition=drop_condition)
        heads = {}
        if self.label_head is not None:
            heads["labels"] = self.label_logits(features, visual_mask)
        if self.onset_head is not None:
            heads["onsets"] = self.onset_logits(features)
        if self.onset_class_head is not None:
            heads["onset_classes"] = self.onset_class_logits(features)
        return logits, heads


#: parameter-name prefixes of :class:`LMWithVisual`'s training-only heads (not in a FoleyGen checkpoint)
TRAINING_ONLY = ("label_head.", "onset_head.", "onset_class_head.")


class _FrozenEncoderSpec(VisualEncoder):
    """The rates and sizes of a frozen encoder whose features came from the cache.

    Training never runs a frozen encoder (its features are cached), and loading a large pretrained
    model only to write a checkpoint would be wasteful: the FoleyGen checkpoint records how to load the
    real one (``visual_source``), and this object supplies the numbers the checkpoint checks.
    """

    def __init__(self, fps: float, dim: int, image_size: int) -> None:
        super().__init__()
        self.fps, self.dim, self.image_size = float(fps), int(dim), int(image_size)

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        raise ConfigError("this visual encoder was not loaded during training; load the saved FoleyGen checkpoint")

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        raise ConfigError("this visual encoder was not loaded during training; load the saved FoleyGen checkpoint")


def masked_codebook_metrics(
    logits: torch.Tensor, codes: torch.Tensor, mask: torch.Tensor, frame_weight: torch.Tensor | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy over valid frames, averaged over codebooks, and per-codebook metrics.

    Args:
        logits: ``[B, K, T, card]``.
        codes: targets ``[B, K, T]``.
        mask: ``bool [B, T]``, True on real (unpadded) audio frames.
        frame_weight: optional ``float [B, T]``: the returned loss is the weighted mean over valid
            frames (the metrics stay unweighted, so runs with and without weights compare).

    Returns:
        ``(loss, {"acc", "ppl", "loss_cb{k}", "acc_cb{k}"})``.
    """
    B, K, T, C = logits.shape
    valid = mask[:, None, :].expand(B, K, T).float()
    ce = F.cross_entropy(logits.float().reshape(-1, C), codes.reshape(-1), reduction="none").view(B, K, T)
    count = valid.sum(dim=(0, 2)).clamp_min(1.0)  # [K]
    per_cb = (ce * valid).sum(dim=(0, 2)) / count  # [K]
    loss = per_cb.mean()
    if frame_weight is not None:
        w = valid * frame_weight.to(valid)[:, None, :]  # [B, K, T]
        loss = ((ce * w).sum(dim=(0, 2)) / w.sum(dim=(0, 2)).clamp_min(1e-6)).mean()
    with torch.no_grad():
        correct = (logits.argmax(-1) == codes).float() * valid
        acc_cb = correct.sum(dim=(0, 2)) / count
        metrics = {"acc": float(acc_cb.mean()), "ppl": float(torch.exp(per_cb.detach().mean()))}
        for k in range(K):
            metrics[f"loss_cb{k}"] = float(per_cb[k])
            metrics[f"acc_cb{k}"] = float(acc_cb[k])
    return loss, metrics


class LMTask:
    """:class:`~foleygen.train.task.TrainTask` for the audio LM (see the module docstring)."""

    def __init__(self, config: dict[str, Any] | LMRunConfig) -> None:
        run = config if isinstance(config, LMRunConfig) else parse_config(LMRunConfig, config)
        if run.data is None:
            raise ConfigError("task lm needs a `data:` section with `cache: <dir made by foleygen prepare>`")
        self.run = run
        self.seed = run.seed
        self.data = run.data
        self.reader = CacheReader(self.data.cache, allow_partial=self.data.allow_partial)
        if run.visual is not None:
            v = run.visual
            self.visual_cfg = {"kind": v.kind, "path": v.path, "options": dict(v.options), "config": dict(v.config)}
        else:
            self.visual_cfg = {"kind": self.reader.visual.get("kind"), "path": self.reader.visual.get("path")}
        self.trainable_visual = self.visual_cfg.get("kind") == "compact"
        self.lm_config = self._lm_config(dict(run.lm))
        self.codec_cfg: dict[str, Any] = {k: v for k, v in to_dict(run.codec).items() if v is not None}
        self.codec_cfg.setdefault("path", self.reader.codec.get("name"))
        self.generation = dict(run.generation)
        self.num_samples = run.samples.num
        self.labels = run.labels
        self.label_classes = self._label_classes() if self.labels.weight > 0 else []
        self._label_index = {c: i for i, c in enumerate(self.label_classes)}
        self.onset_loss = run.onsets
        self._codec: Any = None
        self._onsets: dict[str, list[float]] | None = None
        if self.onset_loss.visual_weight > 0 and not self.trainable_visual:
            raise ConfigError(
                "onsets.visual_weight > 0 trains the visual encoder on the audio's onsets; set visual.kind: compact"
            )
        if self.onset_loss.weight > 0 or self.onset_loss.visual_weight > 0:
            self.clip_onsets()  # before training starts (decoding the cache takes a while the first time)
        self.clip_impacts: dict[str, list[tuple[float, str]]] = {}
        self.onset_classes: list[str] = []
        self._onset_class_index: dict[str, int] = {}
        if self.onset_loss.class_weight > 0:
            if not self.trainable_visual:
                raise ConfigError(
                    "onsets.class_weight > 0 trains the visual encoder on the events' classes; set visual.kind: compact"
                )
            assert self.onset_loss.events is not None  # (OnsetLossConfig checks it)
            self.clip_impacts = load_clip_impacts(self.onset_loss.events, [c.id for c in self.reader.clips])
            train = set(self.data.train_splits)
            self.onset_classes = sorted(
                {name for c in self.reader.clips if c.split in train for _, name in self.clip_impacts.get(c.id, [])}
            )
            self._onset_class_index = {c: i for i, c in enumerate(self.onset_classes)}
            if not self.onset_classes:
                raise ConfigError(
                    "onsets.class_weight > 0 but no training clip has an on-screen impact", self.onset_loss.events
                )

    # ------------------------------------------------------------------------------ config checks
    def _visual_config(self) -> Any:
        from foleygen.vision.compact import CompactVisualConfig

        return from_dict(CompactVisualConfig, dict(self.visual_cfg.get("config") or {}), "visual.config")

    def _label_classes(self) -> list[str]:
        """Sorted classes of the training clips' labels (the label head's outputs)."""
        if not self.trainable_visual:
            raise ConfigError("labels.weight > 0 trains the visual encoder on clip labels; set visual.kind: compact")
        if not self.labels.separator:
            raise ConfigError("labels.separator must not be empty")
        train = set(self.data.train_splits)
        classes = {
            name.strip()
            for clip in self.reader.clips
            if clip.split in train and clip.label
            for name in clip.label.split(self.labels.separator)
            if name.strip()
        }
        if not classes:
            raise ConfigError("labels.weight > 0 but no training clip has a label", self.reader.cache_dir)
        return sorted(classes)

    def label_targets(self, labels: list[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(targets float [B, C], known bool [B])``: multi-hot classes of each clip's label.

        A clip without a label is ``known = False`` (it adds nothing to the label loss); classes outside
        the training vocabulary (a validation-only class) are ignored.
        """
        index = self._label_index
        targets = torch.zeros(len(labels), len(index))
        for b, label in enumerate(labels):
            for name in (label or "").split(self.labels.separator):
                if name.strip() in index:
                    targets[b, index[name.strip()]] = 1.0
        known = torch.tensor([bool(label) for label in labels], dtype=torch.bool)
        return targets, known

    def _label_loss(
        self, label_logits: torch.Tensor, labels: list[str | None]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Binary cross-entropy of ``label_logits [B, C]`` over the labelled clips, and its accuracy."""
        targets, known = self.label_targets(labels)
        targets, known = targets.to(label_logits.device), known.to(label_logits.device)
        bce = F.binary_cross_entropy_with_logits(label_logits.float(), targets, reduction="none").mean(dim=1)  # [B]
        n = known.sum().clamp_min(1)
        loss = (bce * known).sum() / n
        with torch.no_grad():
            hit = ((label_logits > 0).float() == targets).float().mean(dim=1)  # [B]
            acc = float((hit * known).sum() / n)
        return loss, {"label_loss": float(loss.detach()), "label_acc": acc}

    def clip_onsets(self) -> dict[str, list[float]]:
        """Onset times (s) of every cached clip's true audio, ``{clip id: [...]}`` (computed once; see
        :mod:`foleygen.train.onset_weights`)."""
        if self._onsets is None:
            codec = self.codec()
            device = next(codec.parameters()).device
            self._onsets = load_or_compute_onsets(
                self.reader,
                lambda codes: codec.decode(codes.to(device)),
                int(codec.sample_rate),
                codec_key(str(self.codec_cfg.get("path"))),
                batch_size=self.onset_loss.batch_size,
            )
        return self._onsets

    def _crop_starts(self, batch: dict[str, Any]) -> list[float]:
        """Where each of the batch's crops starts in its clip, in seconds."""
        rate = float(self.lm_config.frame_rate)
        return [a / rate for a in batch.get("audio_starts") or [0] * len(batch["ids"])]

    def frame_weights(self, batch: dict[str, Any]) -> torch.Tensor | None:
        """Loss weights ``float [B, T]`` of a batch's audio frames (``None`` when onset weighting is off)."""
        if self.onset_loss.weight <= 0:
            return None
        onsets = self.clip_onsets()
        weights = onset_frame_weights(
            [onsets.get(i, []) for i in batch["ids"]],
            self._crop_starts(batch),
            batch["codes"].shape[-1],
            float(self.lm_config.frame_rate),
            self.onset_loss,
        )
        return weights.to(batch["codes"].device)

    def _visual_onset_loss(
        self, onset_logits: torch.Tensor, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Binary cross-entropy of ``onset_logits [B, F]`` against the frames holding a true onset, over
        the real frames, with the F1 of ``logit > 0`` as a frame-level detector (pooled over the batch)."""
        onsets = self.clip_onsets()
        targets = onset_frame_targets(
            [onsets.get(i, []) for i in batch["ids"]],
            self._crop_starts(batch),
            onset_logits.shape[1],
            float(self.lm_config.fps),
        ).to(onset_logits.device)
        real = batch.get("visual_mask")
        real = torch.ones_like(targets, dtype=torch.bool) if real is None else real.to(onset_logits.device)
        bce = F.binary_cross_entropy_with_logits(onset_logits.float(), targets, reduction="none")
        loss = (bce * real).sum() / real.sum().clamp_min(1)
        with torch.no_grad():
            said = (onset_logits > 0) & real
            hits = float((said & (targets > 0)).sum())
            f1 = 2 * hits / max(float(said.sum()) + float(((targets > 0) & real).sum()), 1.0)
        return loss, {"visual_onset_loss": float(loss.detach()), "visual_onset_f1": f1}

    def _visual_onset_class_loss(
        self, class_logits: torch.Tensor, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Binary cross-entropy of ``class_logits [B, F, C]`` against the frames' on-screen impact classes,
        over the real frames of clips with an event file, and the share of impact frames whose best-scored
        class is a true one (pooled over the batch)."""
        targets, known = onset_class_targets(
            [self.clip_impacts.get(i) for i in batch["ids"]],
            self._crop_starts(batch),
            class_logits.shape[1],
            float(self.lm_config.fps),
            self._onset_class_index,
        )
        targets, known = targets.to(class_logits.device), known.to(class_logits.device)
        real = batch.get("visual_mask")
        real = torch.ones(targets.shape[:2], dtype=torch.bool, device=targets.device) if real is None else real
        real = real.to(class_logits.device) & known[:, None]  # [B, F]
        bce = F.binary_cross_entropy_with_logits(class_logits.float(), targets, reduction="none").mean(dim=2)
        loss = (bce * real).sum() / real.sum().clamp_min(1)
        with torch.no_grad():
            impact = (targets.sum(dim=2) > 0) & real  # [B, F]
            best = class_logits.argmax(dim=2, keepdim=True)  # [B, F, 1]
            right = targets.gather(2, best)[..., 0] > 0
            acc = float((right & impact).sum()) / max(float(impact.sum()), 1.0)
        return loss, {"visual_onset_class_loss": float(loss.detach()), "visual_onset_class_acc": acc}

    def _lm_config(self, lm: dict[str, Any]) -> LMConfig:
        r = self.reader
        data_side = {
            "num_codebooks": r.codec["num_codebooks"],
            "cardinality": r.codec["cardinality"],
            "frame_rate": r.codec["frame_rate"],
            "fps": r.visual["fps"],
            "visual_dim": r.visual["dim"],
        }
        if self.trainable_visual:
            vis = self._visual_config()
            r.check(store="frames", image_size=vis.image_size, fps=vis.fps)
            data_side.update(fps=vis.fps, visual_dim=vis.dim)
        elif r.visual.get("store") != "features":
            raise ConfigError(
                f"cache holds {r.visual.get('store')} (for a trainable encoder) but the config's visual "
                f"kind is {self.visual_cfg.get('kind')!r}; set visual.kind: compact",
                r.cache_dir,
            )
        for name in _FROM_CACHE:
            if name not in lm:
                lm[name] = data_side[name]
            elif self.trainable_visual and name in ("fps", "visual_dim"):
                if float(lm[name]) != float(data_side[name]):
                    raise ConfigError(f"lm.{name} = {lm[name]} but the compact encoder's is {data_side[name]}")
            else:
                r.check(**{name: lm[name]})  # ConfigError naming the cache and both values
        return from_dict(LMConfig, lm, "lm")

    # --------------------------------------------------------------------------------- protocol
    def build_model(self) -> nn.Module:
        """``LMWithVisual`` (AudioLM + the compact encoder when it trains jointly)."""
        visual = None
        if self.trainable_visual:
            from foleygen.vision.compact import CompactVisualEncoder

            visual = CompactVisualEncoder(self._visual_config())
        return LMWithVisual(
            AudioLM(self.lm_config),
            visual,
            num_labels=len(self.label_classes),
            onset_head=self.onset_loss.visual_weight > 0,
            num_onset_classes=len(self.onset_classes),
        )

    def build_datasets(self) -> tuple[CachedClipDataset, CachedClipDataset | None]:
        """Train/validation crops of ``data.duration`` from the cache."""
        train = CachedClipDataset(
            self.reader, self.data.train_splits, self.data.duration, train=True, seed=self.seed, hflip=self.data.hflip
        )
        if len(train) == 0:
            raise ConfigError(
                f"no clips of split(s) {self.data.train_splits} in the cache (it has {train.split_names()})",
                self.reader.cache_dir,
            )
        val = CachedClipDataset(self.reader, self.data.val_splits, self.data.duration, train=False, seed=self.seed)
        return train, (val if len(val) else None)

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Batch: ``codes [B, K, T]``, ``codes_mask [B, T]``, ``visual [B, F, ...]``, ``ids``."""
        return collate_clips(items)

    def loss(self, model: nn.Module, batch: dict[str, Any], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Masked cross-entropy (+ ``labels.weight`` x the clip-label loss + ``onsets.visual_weight`` x the
        visual onset loss + ``onsets.class_weight`` x the visual onset-class loss); the call goes through
        ``model(...)``.

        With labels or the visual onset loss, the logged ``loss`` is the total and ``code_loss`` the
        codes' cross-entropy alone (comparable with runs without them). With onset weights the loss
        optimised is the weighted cross-entropy (``weighted_loss``); ``code_loss`` and the per-codebook
        metrics stay unweighted.
        """
        logits, heads = model(batch["codes"], batch["visual"], visual_mask=batch.get("visual_mask"))
        weights = self.frame_weights(batch)
        loss, metrics = masked_codebook_metrics(logits, batch["codes"], batch["codes_mask"], weights)
        K = batch["codes"].shape[1]
        if weights is not None:
            metrics["weighted_loss"] = float(loss.detach())
            metrics["code_loss"] = sum(metrics[f"loss_cb{k}"] for k in range(K)) / K  # unweighted
        if heads:
            metrics.setdefault("code_loss", float(loss.detach()))
        if "labels" in heads:
            label_loss, label_metrics = self._label_loss(heads["labels"], batch["labels"])
            metrics.update(label_metrics)
            loss = loss + self.labels.weight * label_loss
        if "onsets" in heads:
            onset_loss, onset_metrics = self._visual_onset_loss(heads["onsets"], batch)
            metrics.update(onset_metrics)
            loss = loss + self.onset_loss.visual_weight * onset_loss
        if "onset_classes" in heads:
            class_loss, class_metrics = self._visual_onset_class_loss(heads["onset_classes"], batch)
            metrics.update(class_metrics)
            loss = loss + self.onset_loss.class_weight * class_loss
        return loss, metrics

    @torch.no_grad()
    def validate(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, float]:
        """Conditional loss/accuracy (eval mode: no condition dropout), per codebook too (and the heads' metrics)."""
        logits, heads = model(batch["codes"], batch["visual"], visual_mask=batch.get("visual_mask"))
        loss, metrics = masked_codebook_metrics(logits, batch["codes"], batch["codes_mask"])
        metrics["loss"] = float(loss)
        if "labels" in heads:
            metrics.update(self._label_loss(heads["labels"], batch["labels"])[1])
        if "onsets" in heads:
            metrics.update(self._visual_onset_loss(heads["onsets"], batch)[1])
        if "onset_classes" in heads:
            metrics.update(self._visual_onset_class_loss(heads["onset_classes"], batch)[1])
        return metrics

    # ---------------------------------------------------------------------------- checkpoints
    def codec(self) -> Any:
        """The codec (loaded once): the checkpoint needs it, samples decode with it."""
        if self._codec is None:
            from foleygen.codecs import load_codec

            path = self.codec_cfg.get("path")
            if not path:
                raise ConfigError("codec.path is not set and the cache does not name its codec")
            codec = load_codec(str(path), num_codebooks=self.codec_cfg.get("num_codebooks"))
            mismatch = [
                (n, getattr(codec, n), self.lm_config.__dict__[n])
                for n in ("num_codebooks", "cardinality")
                if getattr(codec, n) != self.lm_config.__dict__[n]
            ]
            if float(codec.frame_rate) != float(self.lm_config.frame_rate):
                mismatch.append(("frame_rate", codec.frame_rate, self.lm_config.frame_rate))
            if mismatch:
                raise ConfigError(
                    f"codec {path}: " + "; ".join(f"{n} is {a}, the cache/model has {b}" for n, a, b in mismatch)
                )
            self._codec = codec
        return self._codec

    def foleygen(self, model: nn.Module) -> Any:
        """A :class:`foleygen.api.FoleyGen` sharing ``model``'s modules (for saving and sampling)."""
        from foleygen.api import FoleyGen

        inner: LMWithVisual = getattr(model, "module", model)
        if inner.visual is not None:
            visual: VisualEncoder = inner.visual
            source = None
        else:
            v = self.reader.visual
            visual = _FrozenEncoderSpec(v["fps"], v["dim"], v["image_size"])
            source = {
                "kind": self.visual_cfg.get("kind"),
                "path": self.visual_cfg.get("path"),
                "options": dict(self.visual_cfg.get("options") or {}),
            }
        codec = self.codec().to(next(inner.parameters()).device)
        from foleygen.codecs.compact import CompactCodec

        codec_source = None if isinstance(codec, CompactCodec) else {"path": str(self.codec_cfg["path"])}
        fg = FoleyGen(codec, visual, inner.lm, self.data.duration, codec_source=codec_source, visual_source=source)
        if self.generation:
            fg.set_generation_params(**self.generation)
        return fg

    def save_pretrained(self, model: nn.Module, directory: Path) -> None:
        """A FoleyGen checkpoint directory (config.json + model.safetensors [+ codec/])."""
        self.foleygen(model).save_pretrained(directory)

    def load_pretrained(self, model: nn.Module, directory: Path) -> None:
        """Fine-tuning start: the ``lm.*`` (and ``visual.*``) weights of a FoleyGen checkpoint.

        The checkpoint's LM config must equal this run's (a different shape cannot be loaded); a frozen
        run ignores the checkpoint's visual weights, a compact one needs them.
        """
        from foleygen.checkpoint import load_checkpoint_dir
        from foleygen.errors import CheckpointError

        config, state = load_checkpoint_dir(directory)
        if config.get("lm") is not None:
            theirs, ours = from_dict(LMConfig, config["lm"], "lm").__dict__, self.lm_config.__dict__
            # dropout rates may change for fine-tuning, and so may the visual attention mask and its
            # lookahead (they shape no weight: fine-tuning a causal model under frame_specific converts
            # it); everything else shapes the weights or their meaning
            diff = [
                f"{k}: {v} vs {ours[k]}"
                for k, v in theirs.items()
                if k not in ("dropout", "cfg_dropout", "visual_attention", "visual_lookahead") and ours[k] != v
            ]
            if diff:
                raise CheckpointError(f"its LM config differs from this run's ({'; '.join(diff[:4])})", directory)
        inner: LMWithVisual = getattr(model, "module", model)
        wanted = {k for k in inner.state_dict() if not k.startswith(TRAINING_ONLY)}  # the heads start fresh
        picked = {k: v for k, v in state.items() if k in wanted}
        missing = sorted(wanted - set(picked))
        if missing:
            raise CheckpointError(f"lacks weights {missing[:4]} of this model", directory)
        inner.load_state_dict(picked, strict=False)  # all but the training-only heads, checked above

    @torch.no_grad()
    def log_samples(self, model: nn.Module, writer: Any, step: int) -> None:
        """Generate audio for the first validation clip(s) and log it with the clip id (TensorBoard)."""
        _, val = self.build_datasets()
        if val is None or self.num_samples < 1:
            return
        inner: LMWithVisual = getattr(model, "module", model)
        device = next(inner.parameters()).device
        codec = self.codec().to(device)
        gen = {k: v for k, v in self.generation.items() if k in ("temperature", "top_k", "top_p", "cfg_coef")}
        for i in range(min(self.num_samples, len(val))):
            item = val[i]
            visual = inner.features(item["visual"][None].to(device))
            frames = int(item["codes_mask"].sum())
            generator = torch.Generator(device=device).manual_seed(self.seed + i)
            codes = inner.lm.generate(visual, frames, generator=generator, **gen)
            wav = codec.decode(codes).float().clamp(-1, 1)[0].mean(0, keepdim=True).cpu()
            ref = codec.decode(item["codes"][None, :, :frames].to(device)).float().clamp(-1, 1)[0].mean(0, keepdim=True)
            tag = f"sample_{i}"
            writer.add_text(f"{tag}/video_id", str(item["id"]), step)
            writer.add_audio(f"{tag}/generated", wav, step, sample_rate=codec.sample_rate)
            if step == 0 or not getattr(self, "_logged_reference", False):
                writer.add_audio(f"{tag}/reference_codec", ref.cpu(), step, sample_rate=codec.sample_rate)
        self._logged_reference = True


@register_task("lm", config=LMRunConfig)
def make_lm_task(config: LMRunConfig) -> LMTask:
    """Factory for ``task: lm``."""
    return LMTask(config)
