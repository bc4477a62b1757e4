"""The ``lm`` training task: FoleyGen's audio LM on a prepared cache (``task: lm`` in YAML).

Data comes from a cache made by ``foleygen prepare`` (codes + frozen-encoder features, or frames for a
trainable encoder). The model is :class:`LMWithVisual`: the :class:`~foleygen.lm.model.AudioLM`, plus the
``compact`` visual encoder when the config trains one jointly (then the cache holds frames and the
encoder runs inside the model, and the audio loss trains it too). The paper's loss: cross-entropy over the
K code streams, on the real (unpadded) audio frames and averaged over the codebooks; the LM applies the
delay pattern inside ``compute_logits``, so logits and targets are aligned per stream. Per-codebook loss
and accuracy are logged. Classifier-free-guidance condition dropout happens inside
``AudioLM.compute_logits`` in training mode (``lm.cfg_dropout``).

Recipes add to that loss through plug-in :class:`~foleygen.train.loss_terms.LossTerm` s, built from the
run config's loss-term sections (the SynthFoley recipe's ``labels:`` and ``onsets:``,
:mod:`foleygen.train.recipes.synthfoley`): their training-only heads become modules of the model, their
frame weights weight the cross-entropy, and their losses are added with their weights.

Config sections (see configs/*.yaml; parsed once into :class:`~foleygen.train.lm_config.LMRunConfig`,
unknown names failing)::

    data:   {cache, duration, train_splits, val_splits, allow_partial, hflip}
    codec:  {path, num_codebooks}        # default path: the codec the cache was made with
    visual: {kind, path, options}        # frozen: how the checkpoint reloads it; compact: {kind, config}
    lm:     LMConfig fields; num_codebooks/cardinality/frame_rate/fps/visual_dim default to the cache's
    generation: {top_k, top_p, temperature, cfg_coef}   # TensorBoard samples and the saved checkpoint
    samples: {num}                        # validation clips generated for TensorBoard
    labels: / onsets:                     # the SynthFoley recipe's loss terms (off by default)

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
from foleygen.train.loss_terms import LMOutputs, LossTerm, LossTermContext, build_loss_terms
from foleygen.train.task import register_task
from foleygen.vision.base import VisualEncoder

#: LMConfig fields that describe the data, taken from the cache when the config leaves them out
_FROM_CACHE = ("num_codebooks", "cardinality", "frame_rate", "fps", "visual_dim")


class LMWithVisual(nn.Module):
    """The trained module: ``lm`` (AudioLM), ``visual`` (compact encoder) when trained jointly, and the loss
    terms' training-only ``heads`` (:mod:`foleygen.train.loss_terms`), registered under their names.

    ``forward(codes [B, K, T], visual)`` -> ``(logits [B, K, T, card], head scores by head name)``, where
    ``visual`` is features ``[B, F, D]`` (frozen encoder, from the cache) or uint8 frames
    ``[B, F, S, S, 3]`` (``visual`` set). Parameter names ``lm.*`` and ``visual.*`` are those of a FoleyGen
    checkpoint; the heads' (``<head name>.*``, :attr:`head_names`) are training-only.
    """

    def __init__(
        self, lm: AudioLM, visual: VisualEncoder | None = None, heads: dict[str, nn.Module] | None = None
    ) -> None:
        super().__init__()
        self.lm = lm
        self.visual = visual
        for name, head in (heads or {}).items():
            if hasattr(self, name):
                raise ConfigError(f"a loss term's head is named {name!r}, which the model already has")
            self.add_module(name, head)
        self.head_names: tuple[str, ...] = tuple(heads or {})

    def features(self, visual: torch.Tensor) -> torch.Tensor:
        """Features ``[B, F, D]`` from what the cache stores."""
        if self.visual is None:
            return visual
        return self.visual(self.visual.preprocess(visual))

    def forward(
        self,
        codes: torch.Tensor,
        visual: torch.Tensor,
        drop_condition: torch.Tensor | None = None,
        visual_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        features = self.features(visual)
        logits = self.lm.compute_logits(codes, features, drop_condition=drop_condition)
        # the heads run here, inside the model's forward, so a compiled training step covers them too
        return logits, {name: getattr(self, name)(features, visual_mask) for name in self.head_names}


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
        self._codec: Any = None
        self.terms: list[LossTerm] = build_loss_terms(
            run,
            LossTermContext(
                reader=self.reader,
                train_splits=list(self.data.train_splits),
                trainable_visual=self.trainable_visual,
                frame_rate=float(self.lm_config.frame_rate),
                fps=float(self.lm_config.fps),
                codec=lambda: self.codec(),
                codec_name=str(self.codec_cfg.get("path")),
            ),
        )

    # -------------------------------------------------------------------------------- loss terms
    def term(self, name: str) -> LossTerm:
        """This run's loss term called ``name`` (``KeyError`` naming the run's terms when it has none)."""
        for term in self.terms:
            if term.name == name:
                return term
        raise KeyError(f"no loss term {name!r} in this run (it has {[t.name for t in self.terms]})")

    def frame_weights(self, batch: dict[str, Any]) -> torch.Tensor | None:
        """Loss weights ``float [B, T]`` of a batch's audio frames: the product of the terms' (``None`` when
        no term weights frames)."""
        weights = None
        for term in self.terms:
            w = term.frame_weights(batch)
            if w is not None:
                weights = w if weights is None else weights * w
        return weights

    # ------------------------------------------------------------------------------ config checks
    def _visual_config(self) -> Any:
        from foleygen.vision.compact import CompactVisualConfig

        return from_dict(CompactVisualConfig, dict(self.visual_cfg.get("config") or {}), "visual.config")

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
        lm = AudioLM(self.lm_config)
        heads = {name: head for term in self.terms for name, head in term.heads(self.lm_config.visual_dim).items()}
        return LMWithVisual(lm, visual, heads)

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
        """Masked cross-entropy of the codes, weighted per frame by the terms that weight frames, plus each
        term's loss times its weight; the call goes through ``model(...)``.

        With terms that add a loss, the logged ``loss`` is the total and ``code_loss`` the codes'
        cross-entropy alone (comparable with runs without them). With frame weights the loss optimised is
        the weighted cross-entropy (``weighted_loss``); ``code_loss`` and the per-codebook metrics stay
        unweighted.
        """
        outputs = self._outputs(model, batch)
        weights = self.frame_weights(batch)
        loss, metrics = masked_codebook_metrics(outputs.logits, batch["codes"], batch["codes_mask"], weights)
        K = batch["codes"].shape[1]
        if weights is not None:
            metrics["weighted_loss"] = float(loss.detach())
            metrics["code_loss"] = sum(metrics[f"loss_cb{k}"] for k in range(K)) / K  # unweighted
        for term in self.terms:
            term_loss, term_metrics = term.loss(batch, outputs)
            if term_loss is not None:
                metrics.setdefault("code_loss", float(loss.detach()))  # (before the first term's is added)
                loss = loss + term.weight * term_loss
            metrics.update(term_metrics)
        return loss, metrics

    @torch.no_grad()
    def validate(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, float]:
        """Conditional loss/accuracy (eval mode: no condition dropout), per codebook too (and the terms' metrics)."""
        outputs = self._outputs(model, batch)
        loss, metrics = masked_codebook_metrics(outputs.logits, batch["codes"], batch["codes_mask"])
        metrics["loss"] = float(loss)
        for term in self.terms:
            metrics.update(term.validate(batch, outputs))
        return metrics

    def _outputs(self, model: nn.Module, batch: dict[str, Any]) -> LMOutputs:
        logits, heads = model(batch["codes"], batch["visual"], visual_mask=batch.get("visual_mask"))
        return LMOutputs(logits, heads)

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
        # the terms' heads start fresh
        wanted = {k for k in inner.state_dict() if k.split(".", 1)[0] not in inner.head_names}
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
