"""Score a folder of generated audio against references: every metric, one report (JSON + Markdown).

:func:`evaluate` is what ``foleygen eval`` runs. Each metric needs some model or input; when one is
missing (weights file not configured, no ``--videos``, no ``--events``) the metric is reported as skipped
with the reason (an error when the metric was asked for by name) and every other metric still runs. A
file that fails (unreadable, or any exception while scoring it) is reported on one line and its stem is
left out of every metric (:mod:`foleygen.eval.failures`). Conventions (clip length, resampling, KL direction,
IB x100, which files enter which metric) are documented in docs/evaluation.md.

Which clips enter which metric:
* FAD: every generated file against every reference file (a distribution distance; pairs not needed).
* KL: paired stems only (per-pair KL, averaged).
* IS: every generated file.
* ImageBind score, AV-Align, DeSync: generated files whose stem has a video in ``--videos``.
* Onset metrics: generated files whose stem has ``<stem>.json`` (SynthFoley events) in ``--events``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foleygen.errors import ConfigError, DataError, one_line
from foleygen.eval.clip_metrics import OnsetFn, onset_metrics, video_metrics
from foleygen.eval.embedders import AudioEmbedder, EmbedderOutput, load_embedder
from foleygen.eval.embedders.cache import EmbeddingCache
from foleygen.eval.failures import FileFailures, errored, skipped
from foleygen.eval.pairing import Pairing, list_media, load_clip, pair_by_stem
from foleygen.eval.render import render_markdown, write_report
from foleygen.utils import progress, resolve_device

__all__ = [
    "METRICS",
    "METRIC_GROUPS",
    "PROTOCOLS",
    "EvalConfig",
    "expand_metrics",
    "requested_by_name",
    "evaluate",
    "render_markdown",
    "write_report",
]

# metric -> (display name, embedder it needs or None)
METRICS: dict[str, tuple[str, str | None]] = {
    "fad-vggish": ("FAD (VGGish)", "vggish"),
    "fad-panns": ("FAD (PANNs)", "panns"),
    "fad-passt": ("FAD (PaSST)", "passt"),
    "fad-synthfoley": ("FAD (SynthFoley classifier)", "synthfoley"),
    "fad-aisfx": ("FD-aisfx (sound-effects CNN, not VGGish)", "aisfx"),
    "kid-vggish": ("KID (VGGish)", "vggish"),
    "kid-panns": ("KID (PANNs)", "panns"),
    "kid-passt": ("KID (PaSST)", "passt"),
    "kl-panns": ("KL (PANNs)", "panns"),
    "kl-passt": ("KL (PaSST)", "passt"),
    "is-panns": ("IS (PANNs)", "panns"),
    "is-passt": ("IS (PaSST)", "passt"),
    "ib-score": ("IB-score", None),
    "av-align": ("AV-Align", None),
    "desync": ("DeSync (Synchformer, s)", None),
    "onsets": ("Onset F1 (SynthFoley)", None),
}
METRIC_GROUPS: dict[str, tuple[str, ...]] = {
    "all": tuple(METRICS),
    "fad": tuple(m for m in METRICS if m.startswith("fad-")),
    "kl": ("kl-panns", "kl-passt"),
    "is": ("is-panns", "is-passt"),
    "kid": ("kid-vggish", "kid-panns", "kid-passt"),
    "ib": ("ib-score",),
}

# protocol -> what it changes (docs/evaluation.md has the details)
PROTOCOLS: dict[str, str] = {
    "foleygen": "FFmpeg resampling, clips cut or zero-padded to --duration",
    "av-benchmark": "as hkchengrex/av-benchmark: DC removed, windowed-sinc resampling, 8 s clips, PaSST padded to 10 s",
}


@dataclass
class EvalConfig:
    """Settings of one evaluation.

    Attributes:
        duration: clip length in seconds; every clip is cut or zero-padded to it (8 s as current papers).
        weights: embedder name -> weights file (flags); unset names fall back to their environment variable.
        vggish_pca: optional VGGish PCA params file (TF-style postprocessed embeddings).
        imagebind: ImageBind weights (else ``$FOLEYGEN_IMAGEBIND``).
        synchformer: Synchformer weights for DeSync (else ``$FOLEYGEN_SYNCHFORMER``).
        cache_dir: where per-clip embeddings are cached (None: no cache).
        quiet: no progress bars.
        motion_prominence: AV-Align motion-peak prominence, relative to the motion curve's range.
        device: where the metric networks run (``None``/``"auto"``: CUDA when available, else CPU).
        protocol: how clips are read (:data:`PROTOCOLS`): ``foleygen`` or ``av-benchmark``.
    """

    duration: float = 8.0
    weights: dict[str, str | None] = field(default_factory=dict)
    vggish_pca: str | None = None
    imagebind: str | None = None
    synchformer: str | None = None
    cache_dir: str | None = None
    quiet: bool = False
    motion_prominence: float = 0.1
    device: str | None = None
    protocol: str = "foleygen"


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


def requested_by_name(names: Sequence[str] | None) -> set[str]:
    """The metrics named one by one in ``names`` (not through a group such as ``all``): they must run."""
    return {part for name in names or [] for part in str(name).replace(",", " ").split() if part in METRICS}


def _required(names: Sequence[str] | None, chosen: list[str], config: EvalConfig) -> set[str]:
    """Metrics that may not be skipped: named one by one, or whose model's weights were given by a flag.

    A metric reached through a group (the default ``all``) is optional: when it cannot run it is
    skipped with the reason. One the user asked for, by its name or by pointing at its weights, that
    cannot run is an error (exit 1), the others still computed and reported.
    """
    required = requested_by_name(names)
    flagged = {name for name, path in config.weights.items() if path}
    required |= {m for m in chosen if METRICS[m][1] in flagged}
    if config.imagebind and "ib-score" in chosen:
        required.add("ib-score")
    if config.synchformer and "desync" in chosen:
        required.add("desync")
    return required & set(chosen)


def _clip(path: Path, sample_rate: int, config: EvalConfig, model: str = "") -> torch.Tensor:
    """One clip ``[S]`` as the chosen protocol reads it for ``model`` (see docs/evaluation.md)."""
    if config.protocol == "av-benchmark":
        from foleygen.eval.protocol import load_clip_av_benchmark

        return load_clip_av_benchmark(path, sample_rate, config.duration, model=model)
    return load_clip(path, sample_rate, config.duration)


@dataclass
class _Embedded:
    """One metric model's outputs per file, and what its metrics need to know of the model."""

    name: str
    num_classes: int
    outputs: dict[Path, EmbedderOutput]


def _embed_files(
    embedder: AudioEmbedder,
    paths: Sequence[Path],
    cache: EmbeddingCache,
    config: EvalConfig,
    failures: FileFailures,
    model: str,
) -> dict[Path, EmbedderOutput]:
    """Embed every file with the metric model registered as ``model``; a file that fails is recorded in
    ``failures`` and left out of the result."""

    def one(path: Path) -> EmbedderOutput:
        key = cache.key(path, embedder, config.duration, variant=config.protocol)
        result = cache.get(key)
        if result is None:
            result = embedder.embed(_clip(path, embedder.sample_rate, config, model))
            cache.put(key, result)
        return result

    out: dict[Path, EmbedderOutput] = {}
    for path in progress(paths, desc=model, quiet=config.quiet, unit="clip"):
        result = failures.attempt(path, model, one, path)
        if result is not None:
            out[path] = result
    return out


def _files_needed(
    wanted: list[str], pairing: Pairing, gen_files: dict[str, Path], ref_files: dict[str, Path], config: EvalConfig
) -> list[Path]:
    """What the wanted metrics of one model read: all files for FAD, pairs for KL, generated files for IS."""
    kinds = {m.split("-")[0] for m in wanted}
    paired_only = config.protocol == "av-benchmark" and all(m.endswith("-passt") for m in wanted)
    needed: list[Path] = []
    if kinds & {"fad", "kid", "is"} and not paired_only:
        needed += gen_files.values()
    if kinds & {"fad", "kid"} and not paired_only:
        needed += ref_files.values()
    if "kl" in kinds or paired_only:
        needed += [p for _, g, r in pairing.pairs for p in (g, r)]
    return list(dict.fromkeys(needed))


def _model_metrics(
    wanted: list[str],
    emb: _Embedded,
    pairing: Pairing,
    gen_files: dict[str, Path],
    ref_files: dict[str, Path],
    bad: set[str],
    config: EvalConfig,
) -> dict[str, dict[str, Any]]:
    """FAD / KL / IS of one model over the clips whose stems did not fail (``bad``)."""
    results: dict[str, dict[str, Any]] = {}
    pairs = [(s, g, r) for s, g, r in pairing.pairs if s not in bad]
    gen = [p for s, p in gen_files.items() if s not in bad]
    ref = [p for s, p in ref_files.items() if s not in bad]
    if config.protocol == "av-benchmark" and emb.name == "passt":
        # av-benchmark pairs PaSST's features before FD and IS (only KL pairs for PANNs / VGGish).
        gen, ref = [g for _, g, _ in pairs], [r for _, _, r in pairs]
    for metric in wanted:
        try:
            results[metric] = _one_model_metric(metric, emb, pairs, gen, ref, config)
        except Exception as err:  # a bug in one metric must not cost the report its other metrics
            results[metric] = errored(one_line(err))
    return results


def _one_model_metric(
    metric: str,
    emb: _Embedded,
    pairs: list[tuple[str, Path, Path]],
    gen: list[Path],
    ref: list[Path],
    config: EvalConfig,
) -> dict[str, Any]:
    from foleygen.eval.frechet import frechet_distance
    from foleygen.eval.inception import inception_score
    from foleygen.eval.kl import paired_kl

    kind, outputs, name = metric.split("-")[0], emb.outputs, emb.name
    if kind in ("fad", "kid"):
        if not gen or not ref:
            return skipped(f"{kind.upper()} needs clips on both sides")
        gen_emb = np.concatenate([outputs[p].embeddings for p in gen])
        ref_emb = np.concatenate([outputs[p].embeddings for p in ref])
        if len(gen_emb) < 2 or len(ref_emb) < 2:
            return skipped(f"{kind.upper()} needs at least 2 embeddings on each side")
        if kind == "kid":
            from foleygen.eval.kid import kernel_distance

            kid = kernel_distance(gen_emb, ref_emb)
            return {
                "value": kid["mean"],
                "std": kid["std"],
                "subsets": kid["subsets"],
                "subset_size": kid["subset_size"],
                "skipped": None,
                "model": name,
                "n_generated": int(len(gen_emb)),
                "n_reference": int(len(ref_emb)),
                "kernel": "(x.y/D + 1)^3, unbiased MMD^2",
            }
        return {
            "value": frechet_distance(gen_emb, ref_emb),
            "skipped": None,
            "model": name,
            "n_generated": int(len(gen_emb)),
            "n_reference": int(len(ref_emb)),
            "embedding_dim": int(gen_emb.shape[1]),
        }
    if kind == "kl":
        if emb.num_classes == 0:
            return skipped(f"{name} has no classifier head")
        if not pairs:
            return skipped("no paired stems")
        kl = paired_kl(
            np.stack([outputs[r].logits for _, _, r in pairs]), np.stack([outputs[g].logits for _, g, _ in pairs])
        )
        return {
            "value": kl["kl"],
            "skipped": None,
            "model": name,
            "direction": "KL(ref||gen)",
            "kl_ref_gen": kl["kl_ref_gen"],
            "kl_gen_ref": kl["kl_gen_ref"],
            "n_pairs": len(pairs),
        }
    logits = [outputs[p].logits for p in gen]
    if emb.num_classes == 0 or len(logits) < 2:
        return skipped("IS needs a classifier head and at least 2 generated clips")
    # av-benchmark always cuts 10 splits; by default we keep >= 2 clips a split (a one-clip split scores 1).
    score = inception_score(np.stack(logits), min_per_split=1 if config.protocol == "av-benchmark" else 2)
    return {
        "value": score["mean"],
        "std": score["std"],
        "splits": score["splits"],
        "skipped": None,
        "model": name,
        "n_generated": len(logits),
    }


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
    on_failure: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score ``generated`` against ``reference`` (folders paired by stem) and return the report dict.

    A file that cannot be read or scored (any exception) is reported through ``on_failure`` as one
    line, listed under ``"failed"``, and its stem is left out of every metric; the others go on. A
    metric that cannot run is ``"skipped"`` when it came from a group, an ``"error"`` when it was asked
    for by name (or its weights by a flag).

    Args:
        metrics: metric names / groups (default ``all``), see :data:`METRICS`.
        embedders: already-loaded embedders by registry name (tests, notebooks); others are loaded from
            ``config.weights`` / environment variables.
        onset_fn: audio onset detector for AV-Align (default ``foleygen.eval.onsets.detect_onsets``).
        imagebind_model: an already-loaded ImageBind (else loaded from ``config.imagebind``).
        event_classifier: an already-loaded SynthFoley event classifier for class accuracy (else the
            built-in one, or ``config.weights["synthfoley"]``).
        on_failure: called with each failed file's one line as it happens (the CLI prints it).

    Returns:
        ``{"settings", "pairing", "metrics": {name: {"value", "skipped", ["error"], ...}}, "failed",
        "excluded_stems", "cache"}``.
    """
    from foleygen import __version__

    config = config or EvalConfig()
    if not (math.isfinite(config.duration) and config.duration > 0):
        raise ConfigError(f"duration must be > 0 seconds, got {config.duration}")
    if config.protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {config.protocol!r}; known: {list(PROTOCOLS)}")
    if metrics is None and config.protocol == "av-benchmark":
        from foleygen.eval.protocol import AV_BENCHMARK_METRICS

        metrics = list(AV_BENCHMARK_METRICS)
        named = None  # the protocol's own set: a metric it cannot run gets a row saying why, not an error
    else:
        named = metrics
    chosen = expand_metrics(metrics)
    failures = FileFailures(on_failure)
    pairing = pair_by_stem(generated, reference, on_ambiguous=failures.record_problem)
    gen_files = list_media(generated, on_ambiguous=failures.record_problem)
    ref_files = list_media(reference, on_ambiguous=failures.record_problem)
    cache = EmbeddingCache(config.cache_dir)
    results: dict[str, dict[str, Any]] = {}

    # First every clip's per-file work (any file may fail), then the metrics over the clips left.
    embedded: dict[str, tuple[list[str], _Embedded]] = {}
    needed = [n for n in dict.fromkeys(METRICS[m][1] for m in chosen) if n is not None]
    for name in needed:
        wanted = [m for m in chosen if METRICS[m][1] == name]
        try:
            embedder = (embedders or {}).get(name) or load_embedder(
                name, config.weights.get(name), vggish_pca=config.vggish_pca
            )
            embedder.to(resolve_device(config.device))
        except Exception as err:  # missing, refused or broken weights: only this model's metrics
            results.update({m: skipped(one_line(err)) for m in wanted})
            continue
        if not ref_files:
            raise DataError("no audio or video files", reference)
        paths = _files_needed(wanted, pairing, gen_files, ref_files, config)
        outputs = _embed_files(embedder, paths, cache, config, failures, name)
        embedded[name] = (wanted, _Embedded(name, int(embedder.num_classes), outputs))
        del embedder  # the next model gets the memory
    skips, later = video_metrics(
        chosen,
        pairing,
        gen_files,
        Path(videos) if videos else None,
        config,
        onset_fn,
        imagebind_model,
        failures,
    )
    results.update(skips)
    if "onsets" in chosen:
        onset = onset_metrics(gen_files, Path(events) if events else None, config, event_classifier, failures)
        if isinstance(onset, dict):
            results["onsets"] = onset
        else:
            later["onsets"] = onset

    bad = failures.stems
    for wanted, emb in embedded.values():
        results.update(_model_metrics(wanted, emb, pairing, gen_files, ref_files, bad, config))
    for metric, aggregate in later.items():
        try:
            results[metric] = aggregate(bad)
        except Exception as err:  # one metric's bug: reported, the others stand
            results[metric] = errored(one_line(err))
    for metric in _required(named, chosen, config):
        reason = results.get(metric, {}).get("skipped")
        if reason:
            results[metric] = errored(f"asked for but cannot run: {reason}")

    return {
        "foleygen_version": __version__,
        "generated": str(generated),
        "reference": str(reference),
        "videos": str(videos) if videos else None,
        "events": str(events) if events else None,
        "settings": {
            "duration": config.duration,
            "protocol": config.protocol,
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
        "failed": failures.entries,
        "excluded_stems": sorted(bad),
        "cache": {"directory": config.cache_dir, "hits": cache.hits, "misses": cache.misses},
    }
