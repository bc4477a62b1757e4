"""Per-clip work of the metrics that read videos or events (IB-score, AV-Align, DeSync, onset metrics).

Each function does the per-file work first (every file through :class:`FileFailures`: a bad file is one
line and leaves the run) and returns the aggregate as a function of the stems that failed anywhere, so
that :func:`foleygen.eval.report.evaluate` computes every metric over the same clips.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from foleygen.errors import CheckpointError, DataError, one_line
from foleygen.eval.failures import FileFailures, skipped
from foleygen.eval.pairing import Pairing, list_media, load_clip
from foleygen.io.media_types import VIDEO_EXTENSIONS
from foleygen.utils import progress, resolve_device

if TYPE_CHECKING:
    from foleygen.eval.report import EvalConfig

__all__ = ["OnsetFn", "video_metrics", "onset_metrics"]

OnsetFn = Callable[[torch.Tensor, int], Sequence[float]]


def video_metrics(
    metrics: list[str],
    pairing: Pairing,
    gen_files: dict[str, Path],
    videos: Path | None,
    config: EvalConfig,
    onset_fn: OnsetFn | None,
    imagebind_model: Any,
    failures: FileFailures,
) -> tuple[dict[str, dict[str, Any]], dict[str, Callable[[set[str]], dict[str, Any]]]]:
    """Per-clip work of IB-score, DeSync and AV-Align now; returns (skips, metric -> aggregate over good stems)."""
    skips: dict[str, dict[str, Any]] = {}
    later: dict[str, Callable[[set[str]], dict[str, Any]]] = {}
    wanted = [m for m in ("ib-score", "desync", "av-align") if m in metrics]
    if not wanted:
        return skips, later
    if videos is None:
        return {m: skipped("needs --videos") for m in wanted}, later
    video_files = list_media(videos, VIDEO_EXTENSIONS, on_ambiguous=failures.record_problem)
    stems = [s for s in gen_files if s in video_files]
    if not stems:
        return {m: skipped(f"no generated stem has a video in {videos}") for m in wanted}, later
    if "ib-score" in wanted:
        ib = _ib_embeddings(stems, gen_files, video_files, config, imagebind_model, failures)
        if isinstance(ib, str):
            skips["ib-score"] = skipped(ib)
        else:
            later["ib-score"] = lambda bad: _ib_aggregate(ib, bad)
    if "desync" in wanted:
        from foleygen.eval.desync import desync_aggregate, desync_offsets

        sync = desync_offsets(stems, gen_files, video_files, config, None, failures)
        if isinstance(sync, str):
            skips["desync"] = skipped(sync)
        else:
            later["desync"] = lambda bad: desync_aggregate(sync, bad)
    if "av-align" in wanted:
        from foleygen.eval.av_align import default_onset_detector

        try:
            detect = onset_fn or default_onset_detector()
        except ImportError as err:
            skips["av-align"] = skipped(f"audio onset detector unavailable ({err})")
            return skips, later
        ref_files = {s: r for s, _, r in pairing.pairs}
        scores = _av_align_scores(stems, gen_files, ref_files, video_files, config, detect, failures)
        later["av-align"] = lambda bad: _av_align_aggregate(scores, bad)
    return skips, later


def _av_align_scores(
    stems: list[str],
    gen_files: dict[str, Path],
    ref_files: dict[str, Path],
    video_files: dict[str, Path],
    config: EvalConfig,
    detect: OnsetFn,
    failures: FileFailures,
) -> dict[str, tuple[float, float | None]]:
    """``{stem: (AV-Align of the generated audio, of the reference audio or None)}`` for the stems that read."""
    from foleygen.eval.av_align import av_align_clip
    from foleygen.io import probe, read_frames

    def frames_of(video: Path) -> tuple[torch.Tensor, float]:
        fps = float(probe(video).fps or 25.0)
        return read_frames(video, fps, (96, 96), mode="letterbox", duration=config.duration), fps

    def score(audio: Path, frames: torch.Tensor, fps: float) -> float:
        wav = load_clip(audio, 16000, config.duration)
        return av_align_clip(wav, 16000, frames, fps, detect, rel_prominence=config.motion_prominence)

    scores: dict[str, tuple[float, float | None]] = {}
    for stem in progress(stems, desc="av-align", quiet=config.quiet, unit="clip"):
        if failures.stem_failed(stem):
            continue
        read = failures.attempt(video_files[stem], "av-align", frames_of, video_files[stem])
        if read is None:
            continue
        gen = failures.attempt(gen_files[stem], "av-align", score, gen_files[stem], *read)
        ref = (
            failures.attempt(ref_files[stem], "av-align", score, ref_files[stem], *read) if stem in ref_files else None
        )
        if gen is not None and not failures.stem_failed(stem):
            scores[stem] = (gen, ref)
    return scores


def _av_align_aggregate(scores: dict[str, tuple[float, float | None]], bad: set[str]) -> dict[str, Any]:
    kept = [v for s, v in scores.items() if s not in bad]
    scored = [g for g, _ in kept if not math.isnan(g)]
    ref_scored = [r for _, r in kept if r is not None and not math.isnan(r)]
    if not scored:
        return skipped("no clip has onsets or motion peaks")
    return {
        "value": float(np.mean(scored)),
        "skipped": None,
        "n_scored": len(scored),
        "n_undefined": len(kept) - len(scored),
        "reference": float(np.mean(ref_scored)) if ref_scored else None,
        "motion": "frame difference",
    }


def _ib_embeddings(
    stems: list[str],
    gen_files: dict[str, Path],
    video_files: dict[str, Path],
    config: EvalConfig,
    model: Any,
    failures: FileFailures,
) -> dict[str, tuple[np.ndarray, np.ndarray]] | str:
    """``{stem: (video embedding, generated-audio embedding)}``, or why ImageBind cannot run."""
    from foleygen.eval.ib_score import audio_embedding, load_imagebind, video_clip_times, video_embedding
    from foleygen.io import probe, read_frames

    if model is None:
        try:
            model = load_imagebind(config.imagebind).to(resolve_device(config.device))
        except Exception as err:  # missing, refused or broken weights: this metric's problem only
            return one_line(err)
    rate = int(getattr(model.config, "audio_sample_rate", 16000))

    benchmark = config.protocol == "av-benchmark"

    def video_side(video: Path) -> np.ndarray:
        info = probe(video)
        fps = float(info.fps or 25.0)
        duration = min(config.duration, float(info.duration or config.duration))
        if benchmark:  # frames at 0.5 fps, consecutive pairs as 2-frame clips (foleygen.eval.protocol)
            from foleygen.eval.protocol import imagebind_frame_times

            times = imagebind_frame_times(duration, fps)
            spans = list(zip(times[:-1], times[1:], strict=True))
        else:
            spans = video_clip_times(duration, fps)
        frames = []
        for first, last in spans:
            # one frame per read: never decodes a whole clip at full resolution into memory
            pair = [read_frames(video, fps, start=t, duration=1.0 / fps)[:1] for t in (first, last)]
            frames.append(torch.cat(pair))
        return video_embedding(model, torch.stack(frames))

    def audio_side(audio: Path) -> np.ndarray:
        if benchmark:
            from foleygen.eval.protocol import load_audio_imagebind

            return audio_embedding(model, load_audio_imagebind(audio, rate), rate)
        return audio_embedding(model, load_clip(audio, rate, config.duration), rate)

    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for stem in progress(stems, desc="imagebind", quiet=config.quiet, unit="clip"):
        if failures.stem_failed(stem):
            continue
        video = failures.attempt(video_files[stem], "ib-score", video_side, video_files[stem])
        audio = (
            failures.attempt(gen_files[stem], "ib-score", audio_side, gen_files[stem]) if video is not None else None
        )
        if video is not None and audio is not None:
            out[stem] = (video, audio)
    return out


def _ib_aggregate(embeddings: dict[str, tuple[np.ndarray, np.ndarray]], bad: set[str]) -> dict[str, Any]:
    from foleygen.eval.ib_score import imagebind_score

    kept = [v for s, v in embeddings.items() if s not in bad]
    if not kept:
        return skipped("no clip left to score (every one failed)")
    return {
        "value": imagebind_score(np.stack([v for v, _ in kept]), np.stack([a for _, a in kept])),
        "skipped": None,
        "scale": "cosine x 100",
        "n_pairs": len(kept),
    }


def _read_events(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"cannot read events ({err})", path) from None
    if not isinstance(meta, dict):
        raise DataError("events file is not a JSON object", path)
    return meta


def onset_metrics(
    gen_files: dict[str, Path], events: Path | None, config: EvalConfig, classifier: Any, failures: FileFailures
) -> dict[str, Any] | Callable[[set[str]], dict[str, Any]]:
    """Per-clip onset scores now; returns a skip, or the aggregate over the stems that did not fail."""
    if events is None:
        return skipped("needs --events (SynthFoley <stem>.json files)")
    if not Path(events).is_dir():
        raise DataError("events folder not found", events)
    stems = [s for s in gen_files if (Path(events) / f"{s}.json").is_file()]
    if not stems:
        return skipped(f"no generated stem has <stem>.json in {events}")
    try:
        from foleygen.eval import onsets
    except ImportError as err:
        return skipped(f"onset metrics unavailable ({err})")
    # Class accuracy needs the event classifier; without it the onset scores are still reported.
    accuracy_skipped = None
    if classifier is None:
        try:
            from foleygen.eval.event_classifier import load_event_classifier

            classifier = load_event_classifier(config.weights.get("synthfoley"))
        except (ImportError, FileNotFoundError, CheckpointError) as err:
            accuracy_skipped = f"class accuracy skipped: event classifier unavailable ({err})"

    def score(audio: Path, meta: dict[str, Any]) -> tuple[Any, Any]:
        sample_rate = int(meta.get("sample_rate", 16000))
        duration = min(config.duration, float(meta.get("duration", config.duration)))
        wav = load_clip(audio, sample_rate, duration).numpy()
        clip_events = meta.get("events", [])
        detected = onsets.detect_onsets(wav, sample_rate)  # once, shared by both scores
        clip = onsets.evaluate_clip(wav, sample_rate, clip_events, pred=detected)
        if classifier is None:
            return clip, None
        from foleygen.eval.event_classifier import class_accuracy

        return clip, class_accuracy(wav, sample_rate, clip_events, classifier, pred_onsets=detected)

    per_clip: dict[str, tuple[Any, Any]] = {}
    for stem in progress(stems, desc="onsets", quiet=config.quiet, unit="clip"):
        if failures.stem_failed(stem):
            continue
        meta = failures.attempt(Path(events) / f"{stem}.json", "onsets", _read_events, Path(events) / f"{stem}.json")
        done = failures.attempt(gen_files[stem], "onsets", score, gen_files[stem], meta) if meta is not None else None
        if done is not None:
            per_clip[stem] = done

    def aggregate(bad: set[str]) -> dict[str, Any]:
        kept = [v for s, v in per_clip.items() if s not in bad]
        if not kept:
            return skipped("no clip left to score (every one failed)")
        total = onsets.aggregate_scores([c for c, _ in kept])
        result = {
            "value": total.f1,
            "skipped": None,
            **total.as_dict(),
            "n_clips": len(kept),
            "aggregation": "micro (counts summed over clips)",
        }
        if classifier is None:
            result.update({"class_accuracy": None, "class_accuracy_skipped": accuracy_skipped})
            return result
        from foleygen.eval.event_classifier import aggregate_accuracy

        acc = aggregate_accuracy([a for _, a in kept])
        result.update(
            {
                "class_accuracy": acc.accuracy,
                "class_correct": acc.correct,
                "class_total": acc.total,
                "classes": list(classifier.classes),
                "confusion": acc.confusion.tolist(),
            }
        )
        return result

    return aggregate
