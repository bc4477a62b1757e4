"""Score a folder of generated audio against references: every metric, one report (JSON + Markdown).

:func:`evaluate` is what ``foleygen eval`` runs. Each metric needs some model or input; when one is
missing (weights file not configured, no ``--videos``, no ``--events``) the metric is reported as skipped
with the reason and every other metric still runs. Conventions (clip length, resampling, KL direction,
IB x100, which files enter which metric) are documented in docs/evaluation.md.

Which clips enter which metric:
* FAD: every generated file against every reference file (a distribution distance; pairs not needed).
* KL: paired stems only (per-pair KL, averaged).
* IS: every generated file.
* ImageBind score, AV-Align: generated files whose stem has a video in ``--videos``.
* Onset metrics: generated files whose stem has ``<stem>.json`` (SynthFoley events) in ``--events``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foleygen.errors import CheckpointError, ConfigError, DataError
from foleygen.eval.embedders import AudioEmbedder, EmbedderOutput, ModelUnavailable, load_embedder
from foleygen.eval.embedders.cache import EmbeddingCache
from foleygen.eval.pairing import VIDEO_EXTENSIONS, Pairing, list_media, load_clip, pair_by_stem
from foleygen.utils import progress, resolve_device

__all__ = ["METRICS", "METRIC_GROUPS", "EvalConfig", "expand_metrics", "evaluate", "render_markdown", "write_report"]

# metric -> (display name, embedder it needs or None)
METRICS: dict[str, tuple[str, str | None]] = {
    "fad-vggish": ("FAD (VGGish)", "vggish"),
    "fad-panns": ("FAD (PANNs)", "panns"),
    "fad-passt": ("FAD (PaSST)", "passt"),
    "fad-synthfoley": ("FAD (SynthFoley classifier)", "synthfoley"),
    "fad-aisfx": ("FD-aisfx (sound-effects CNN, not VGGish)", "aisfx"),
    "kl-panns": ("KL (PANNs)", "panns"),
    "kl-passt": ("KL (PaSST)", "passt"),
    "is-panns": ("IS (PANNs)", "panns"),
    "is-passt": ("IS (PaSST)", "passt"),
    "ib-score": ("IB-score", None),
    "av-align": ("AV-Align", None),
    "onsets": ("Onset F1 (SynthFoley)", None),
}
METRIC_GROUPS: dict[str, tuple[str, ...]] = {
    "all": tuple(METRICS),
    "fad": tuple(m for m in METRICS if m.startswith("fad-")),
    "kl": ("kl-panns", "kl-passt"),
    "is": ("is-panns", "is-passt"),
    "ib": ("ib-score",),
}

OnsetFn = Callable[[torch.Tensor, int], Sequence[float]]


@dataclass
class EvalConfig:
    """Settings of one evaluation.

    Attributes:
        duration: clip length in seconds; every clip is cut or zero-padded to it (8 s as current papers).
        weights: embedder name -> weights file (flags); unset names fall back to their environment variable.
        vggish_pca: optional VGGish PCA params file (TF-style postprocessed embeddings).
        imagebind: ImageBind weights (else ``$FOLEYGEN_IMAGEBIND``).
        cache_dir: where per-clip embeddings are cached (None: no cache).
        quiet: no progress bars.
        motion_prominence: AV-Align motion-peak prominence, relative to the motion curve's range.
        device: where the metric networks run (``None``/``"auto"``: CUDA when available, else CPU).
    """

    duration: float = 8.0
    weights: dict[str, str | None] = field(default_factory=dict)
    vggish_pca: str | None = None
    imagebind: str | None = None
    cache_dir: str | None = None
    quiet: bool = False
    motion_prominence: float = 0.1
    device: str | None = None


def expand_metrics(names: Sequence[str] | None) -> list[str]:
    """Metric names and groups (``all``, ``fad``, ``kl``, ``is``, ``ib``) -> ordered unique metric names."""
    chosen: list[str] = []
    for name in names or ["all"]:
        for part in str(name).replace(",", " ").split():
            expanded = METRIC_GROUPS.get(part, (part,))
            for metric in expanded:
                if metric not in METRICS:
                    raise ConfigError(
                        f"unknown metric {part!r}; known: {sorted(METRICS)} and groups {sorted(METRIC_GROUPS)}"
                    )
                if metric not in chosen:
                    chosen.append(metric)
    return [m for m in METRICS if m in chosen]


def _skip(reason: str) -> dict[str, Any]:
    return {"value": None, "skipped": reason}


def _embed_files(
    embedder: AudioEmbedder, paths: Sequence[Path], cache: EmbeddingCache, duration: float, quiet: bool
) -> dict[Path, EmbedderOutput]:
    out: dict[Path, EmbedderOutput] = {}
    for path in progress(paths, desc=f"{embedder.name}", quiet=quiet, unit="clip"):
        key = cache.key(path, embedder, duration)
        result = cache.get(key)
        if result is None:
            result = embedder.embed(load_clip(path, embedder.sample_rate, duration))
            cache.put(key, result)
        out[path] = result
    return out


def _model_metrics(
    metrics: list[str],
    name: str,
    embedder: AudioEmbedder,
    pairing: Pairing,
    gen_files: dict[str, Path],
    ref_files: dict[str, Path],
    cache: EmbeddingCache,
    config: EvalConfig,
) -> dict[str, dict[str, Any]]:
    from foleygen.eval.frechet import frechet_distance
    from foleygen.eval.inception import inception_score
    from foleygen.eval.kl import paired_kl

    wanted = [m for m in metrics if METRICS[m][1] == name]
    kinds = {m.split("-")[0] for m in wanted}
    # Embed only what the wanted metrics read: all files for FAD, pairs for KL, generated files for IS.
    needed: list[Path] = []
    if kinds & {"fad", "is"}:
        needed += gen_files.values()
    if "fad" in kinds:
        needed += ref_files.values()
    if "kl" in kinds:
        needed += [p for _, g, r in pairing.pairs for p in (g, r)]
    paths = list(dict.fromkeys(needed))
    outputs = _embed_files(embedder, paths, cache, config.duration, config.quiet)
    results: dict[str, dict[str, Any]] = {}
    for metric in wanted:
        kind = metric.split("-")[0]
        if kind == "fad":
            gen = np.concatenate([outputs[p].embeddings for p in gen_files.values()])
            ref = np.concatenate([outputs[p].embeddings for p in ref_files.values()])
            if len(gen) < 2 or len(ref) < 2:
                results[metric] = _skip("FAD needs at least 2 embeddings on each side")
                continue
            results[metric] = {
                "value": frechet_distance(gen, ref),
                "skipped": None,
                "model": name,
                "n_generated": int(len(gen)),
                "n_reference": int(len(ref)),
                "embedding_dim": int(gen.shape[1]),
            }
        elif kind == "kl":
            if embedder.num_classes == 0:
                results[metric] = _skip(f"{name} has no classifier head")
                continue
            if not pairing.pairs:
                results[metric] = _skip("no paired stems")
                continue
            ref = np.stack([outputs[r].logits for _, _, r in pairing.pairs])
            gen = np.stack([outputs[g].logits for _, g, _ in pairing.pairs])
            kl = paired_kl(ref, gen)
            results[metric] = {
                "value": kl["kl"],
                "skipped": None,
                "model": name,
                "direction": "KL(ref||gen)",
                "kl_ref_gen": kl["kl_ref_gen"],
                "kl_gen_ref": kl["kl_gen_ref"],
                "n_pairs": len(pairing.pairs),
            }
        elif kind == "is":
            logits = [outputs[p].logits for p in gen_files.values()]
            if embedder.num_classes == 0 or len(logits) < 2:
                results[metric] = _skip("IS needs a classifier head and at least 2 generated clips")
                continue
            score = inception_score(np.stack(logits))
            results[metric] = {
                "value": score["mean"],
                "std": score["std"],
                "splits": score["splits"],
                "skipped": None,
                "model": name,
                "n_generated": len(logits),
            }
    return results


def _video_metrics(
    metrics: list[str],
    pairing: Pairing,
    gen_files: dict[str, Path],
    videos: Path | None,
    config: EvalConfig,
    onset_fn: OnsetFn | None,
    imagebind_model: Any,
) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    wanted = [m for m in ("ib-score", "av-align") if m in metrics]
    if not wanted:
        return results
    if videos is None:
        return {m: _skip("needs --videos") for m in wanted}
    video_files = list_media(videos, VIDEO_EXTENSIONS)
    stems = [s for s in gen_files if s in video_files]
    if not stems:
        return {m: _skip(f"no generated stem has a video in {videos}") for m in wanted}
    from foleygen.io import probe, read_frames

    if "ib-score" in wanted:
        results["ib-score"] = _ib_score(stems, gen_files, video_files, config, imagebind_model)
    if "av-align" in wanted:
        from foleygen.eval.av_align import av_align_clip, default_onset_detector

        try:
            detect = onset_fn or default_onset_detector()
        except ImportError as err:
            results["av-align"] = _skip(f"audio onset detector unavailable ({err})")
            return results
        ref_files = {s: r for s, _, r in pairing.pairs}
        gen_scores, ref_scores = [], []
        for stem in progress(stems, desc="av-align", quiet=config.quiet, unit="clip"):
            info = probe(video_files[stem])
            fps = float(info.fps or 25.0)
            frames = read_frames(video_files[stem], fps, (96, 96), mode="letterbox", duration=config.duration)
            wav = load_clip(gen_files[stem], 16000, config.duration)
            gen_scores.append(av_align_clip(wav, 16000, frames, fps, detect, rel_prominence=config.motion_prominence))
            if stem in ref_files:
                ref_wav = load_clip(ref_files[stem], 16000, config.duration)
                ref_scores.append(
                    av_align_clip(ref_wav, 16000, frames, fps, detect, rel_prominence=config.motion_prominence)
                )
        scored = [s for s in gen_scores if not math.isnan(s)]
        ref_scored = [s for s in ref_scores if not math.isnan(s)]
        results["av-align"] = (
            {
                "value": float(np.mean(scored)),
                "skipped": None,
                "n_scored": len(scored),
                "n_undefined": len(gen_scores) - len(scored),
                "reference": float(np.mean(ref_scored)) if ref_scored else None,
                "motion": "frame difference",
            }
            if scored
            else _skip("no clip has onsets or motion peaks")
        )
    return results


def _ib_score(
    stems: list[str], gen_files: dict[str, Path], video_files: dict[str, Path], config: EvalConfig, model: Any
) -> dict[str, Any]:
    from foleygen.eval.ib_score import (
        audio_embedding,
        imagebind_score,
        load_imagebind,
        video_clip_times,
        video_embedding,
    )
    from foleygen.io import probe, read_frames

    if model is None:
        try:
            model = load_imagebind(config.imagebind).to(resolve_device(config.device))
        except (ModelUnavailable, CheckpointError, ConfigError) as err:
            return _skip(str(err))
    video_emb, audio_emb = [], []
    for stem in progress(stems, desc="imagebind", quiet=config.quiet, unit="clip"):
        info = probe(video_files[stem])
        fps = float(info.fps or 25.0)
        duration = min(config.duration, float(info.duration or config.duration))
        frames = []
        for first, last in video_clip_times(duration, fps):
            # one frame per read: never decodes a whole clip at full resolution into memory
            pair = [read_frames(video_files[stem], fps, start=t, duration=1.0 / fps)[:1] for t in (first, last)]
            frames.append(torch.cat(pair))
        video_emb.append(video_embedding(model, torch.stack(frames)))
        wav = load_clip(gen_files[stem], int(getattr(model.config, "audio_sample_rate", 16000)), config.duration)
        audio_emb.append(audio_embedding(model, wav, int(getattr(model.config, "audio_sample_rate", 16000))))
    return {
        "value": imagebind_score(np.stack(video_emb), np.stack(audio_emb)),
        "skipped": None,
        "scale": "cosine x 100",
        "n_pairs": len(stems),
    }


def _onset_metrics(
    gen_files: dict[str, Path], events: Path | None, config: EvalConfig, classifier: Any = None
) -> dict[str, Any]:
    if events is None:
        return _skip("needs --events (SynthFoley <stem>.json files)")
    if not Path(events).is_dir():
        raise DataError("events folder not found", events)
    stems = [s for s in gen_files if (Path(events) / f"{s}.json").is_file()]
    if not stems:
        return _skip(f"no generated stem has <stem>.json in {events}")
    try:
        from foleygen.eval import onsets
    except ImportError as err:
        return _skip(f"onset metrics unavailable ({err})")
    # Class accuracy needs the event classifier; without it the onset scores are still reported.
    accuracy_skipped = None
    if classifier is None:
        try:
            from foleygen.eval.event_classifier import load_event_classifier

            classifier = load_event_classifier(config.weights.get("synthfoley"))
        except (ImportError, FileNotFoundError, CheckpointError) as err:
            accuracy_skipped = f"class accuracy skipped: event classifier unavailable ({err})"
    scores, accuracies = [], []
    for stem in progress(stems, desc="onsets", quiet=config.quiet, unit="clip"):
        path = Path(events) / f"{stem}.json"
        try:
            meta = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise DataError(f"cannot read events ({err})", path) from None
        sample_rate = int(meta.get("sample_rate", 16000))
        duration = min(config.duration, float(meta.get("duration", config.duration)))
        wav = load_clip(gen_files[stem], sample_rate, duration).numpy()
        clip_events = meta.get("events", [])
        detected = onsets.detect_onsets(wav, sample_rate)  # once, shared by both scores
        scores.append(onsets.evaluate_clip(wav, sample_rate, clip_events, pred=detected))
        if classifier is not None:
            from foleygen.eval.event_classifier import class_accuracy

            accuracies.append(class_accuracy(wav, sample_rate, clip_events, classifier, pred_onsets=detected))
    total = onsets.aggregate_scores(scores)
    result = {
        "value": total.f1,
        "skipped": None,
        **total.as_dict(),
        "n_clips": len(stems),
        "aggregation": "micro (counts summed over clips)",
    }
    if classifier is not None:
        from foleygen.eval.event_classifier import aggregate_accuracy

        acc = aggregate_accuracy(accuracies)
        result.update(
            {
                "class_accuracy": acc.accuracy,
                "class_correct": acc.correct,
                "class_total": acc.total,
                "classes": list(classifier.classes),
                "confusion": acc.confusion.tolist(),
            }
        )
    else:
        result.update({"class_accuracy": None, "class_accuracy_skipped": accuracy_skipped})
    return result


def evaluate(
    generated: str | os.PathLike[str],
    reference: str | os.PathLike[str],
    *,
    videos: str | os.PathLike[str] | None = None,
    events: str | os.PathLike[str] | None = None,
    metrics: Sequence[str] | None = None,
    config: EvalConfig | None = None,
    embedders: dict[str, AudioEmbedder] | None = None,
    onset_fn: OnsetFn | None = None,
    imagebind_model: Any = None,
    event_classifier: Any = None,
) -> dict[str, Any]:
    """Score ``generated`` against ``reference`` (folders paired by stem) and return the report dict.

    Args:
        metrics: metric names / groups (default ``all``), see :data:`METRICS`.
        embedders: already-loaded embedders by registry name (tests, notebooks); others are loaded from
            ``config.weights`` / environment variables.
        onset_fn: audio onset detector for AV-Align (default ``foleygen.eval.onsets.detect_onsets``).
        imagebind_model: an already-loaded ImageBind (else loaded from ``config.imagebind``).
        event_classifier: an already-loaded SynthFoley event classifier for class accuracy (else the
            built-in one, or ``config.weights["synthfoley"]``).

    Returns:
        ``{"settings", "pairing", "metrics": {name: {"value", "skipped", ...}}, "cache"}``.
    """
    from foleygen import __version__

    config = config or EvalConfig()
    if not (math.isfinite(config.duration) and config.duration > 0):
        raise ConfigError(f"duration must be > 0 seconds, got {config.duration}")
    chosen = expand_metrics(metrics)
    pairing = pair_by_stem(generated, reference)
    gen_files = list_media(generated)
    ref_files = list_media(reference)
    cache = EmbeddingCache(config.cache_dir)
    results: dict[str, dict[str, Any]] = {}

    needed = [n for n in dict.fromkeys(METRICS[m][1] for m in chosen) if n is not None]
    for name in needed:
        try:
            embedder = (embedders or {}).get(name) or load_embedder(
                name, config.weights.get(name), vggish_pca=config.vggish_pca
            )
        except (ModelUnavailable, CheckpointError, ConfigError) as err:
            for metric in chosen:
                if METRICS[metric][1] == name:
                    results[metric] = _skip(str(err))
            continue
        embedder.to(resolve_device(config.device))
        if not ref_files:
            raise DataError("no audio or video files", reference)
        results.update(_model_metrics(chosen, name, embedder, pairing, gen_files, ref_files, cache, config))

    results.update(
        _video_metrics(chosen, pairing, gen_files, Path(videos) if videos else None, config, onset_fn, imagebind_model)
    )
    if "onsets" in chosen:
        results["onsets"] = _onset_metrics(gen_files, Path(events) if events else None, config, event_classifier)

    return {
        "foleygen_version": __version__,
        "generated": str(generated),
        "reference": str(reference),
        "videos": str(videos) if videos else None,
        "events": str(events) if events else None,
        "settings": {
            "duration": config.duration,
            "metrics": chosen,
            "kl": "softmax over classes; value = mean KL(ref||gen) per pair",
            "ib_score": "100 x mean cosine(video, generated audio)",
        },
        "pairing": {
            "paired": len(pairing.pairs),
            "generated": len(gen_files),
            "reference": len(ref_files),
            "only_generated": pairing.only_generated,
            "only_reference": pairing.only_reference,
        },
        "metrics": {m: results[m] for m in chosen if m in results},
        "cache": {"directory": config.cache_dir, "hits": cache.hits, "misses": cache.misses},
    }


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.4g}" if abs(x) < 1e4 else f"{x:.1f}"
    return str(x)


def render_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table (one row per metric) plus a pairing line."""
    lines = ["| Metric | Value | Details |", "|---|---|---|"]
    for metric, r in report["metrics"].items():
        label = METRICS.get(metric, (metric,))[0]
        if r.get("skipped"):
            lines.append(f"| {label} | skipped | {r['skipped'].replace('|', '/')} |")
            continue
        value, details = _fmt(r["value"]), ""
        if metric.startswith("fad-"):
            details = f"{r['n_generated']} gen / {r['n_reference']} ref embeddings, D={r['embedding_dim']}"
        elif metric.startswith("kl-"):
            details = f"KL(ref‖gen) over {r['n_pairs']} pairs; KL(gen‖ref) = {_fmt(r['kl_gen_ref'])}"
        elif metric.startswith("is-"):
            value = f"{_fmt(r['value'])} ± {_fmt(r['std'])}"
            details = f"{r['splits']} splits, {r['n_generated']} clips"
        elif metric == "ib-score":
            details = f"cosine x100 over {r['n_pairs']} pairs"
        elif metric == "av-align":
            details = f"{r['n_scored']} clips; reference audio: {_fmt(r['reference'])}; motion: {r['motion']}"
        elif metric == "onsets":
            details = (
                f"P {_fmt(r['precision'])} / R {_fmt(r['recall'])}, mean abs offset "
                f"{_fmt(r['mean_abs_offset_ms'])} ms, {r['n_clips']} clips; class accuracy "
                f"{_fmt(r.get('class_accuracy'))}"
            )
        lines.append(f"| {label} | {value} | {details.replace('|', '/')} |")
    p = report["pairing"]
    lines.append("")
    lines.append(
        f"{p['paired']} paired clips ({p['generated']} generated, {p['reference']} reference); clip length "
        f"{report['settings']['duration']:g} s."
    )
    for side in ("only_generated", "only_reference"):
        if p[side]:
            shown = ", ".join(p[side][:10]) + (" ..." if len(p[side]) > 10 else "")
            lines.append(f"Unpaired ({side.replace('_', ' ')}, {len(p[side])}): {shown}")
    return "\n".join(lines) + "\n"


def write_report(
    report: dict[str, Any],
    json_path: str | os.PathLike[str] | None = None,
    markdown_path: str | os.PathLike[str] | None = None,
) -> None:
    """Write the report as JSON and/or Markdown (atomically)."""
    from foleygen.config import atomic_write_text

    if json_path:
        text = json.dumps(_finite(report), indent=2, default=_json_default, allow_nan=False)
        atomic_write_text(json_path, text + "\n")
    if markdown_path:
        atomic_write_text(markdown_path, render_markdown(report))


def _finite(x: Any) -> Any:
    """NaN/inf -> None so that the JSON is standard (json.dumps would write bare NaN)."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    if isinstance(x, float | np.floating) and not math.isfinite(float(x)):
        return None
    return x


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
