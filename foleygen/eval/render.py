"""The evaluation report as a Markdown table and as JSON (written atomically)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["render_markdown", "write_report"]


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.4g}" if abs(x) < 1e4 else f"{x:.1f}"
    return str(x)


def render_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table (one row per metric), a pairing line and the files that failed."""
    from foleygen.eval.report import METRICS

    if report.get("settings", {}).get("protocol") == "av-benchmark":
        from foleygen.eval.protocol import render_av_benchmark

        return render_av_benchmark(report)
    lines = ["| Metric | Value | Details |", "|---|---|---|"]
    for metric, r in report["metrics"].items():
        label = METRICS.get(metric, (metric,))[0]
        if r.get("error"):
            lines.append(f"| {label} | error | {r['error'].replace('|', '/')} |")
            continue
        if r.get("skipped"):
            lines.append(f"| {label} | skipped | {r['skipped'].replace('|', '/')} |")
            continue
        value, details = _fmt(r["value"]), ""
        if metric.startswith("fad-"):
            details = f"{r['n_generated']} gen / {r['n_reference']} ref embeddings, D={r['embedding_dim']}"
        elif metric.startswith("kid-"):
            value = f"{_fmt(r['value'])} ± {_fmt(r['std'])}"
            details = (
                f"{r['subsets']} subsets of {r['subset_size']}; {r['n_generated']} gen / {r['n_reference']} ref "
                "embeddings"
            )
        elif metric.startswith("kl-"):
            details = f"KL(ref‖gen) over {r['n_pairs']} pairs; KL(gen‖ref) = {_fmt(r['kl_gen_ref'])}"
        elif metric.startswith("is-"):
            value = f"{_fmt(r['value'])} ± {_fmt(r['std'])}"
            details = f"{r['splits']} splits, {r['n_generated']} clips"
        elif metric == "ib-score":
            details = f"cosine x100 over {r['n_pairs']} pairs"
        elif metric == "desync":
            details = f"mean abs offset (s), first and last 4.8 s of {r['n_clips']} clips"
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
    lines += failed_lines(report)
    return "\n".join(lines) + "\n"


def failed_lines(report: dict[str, Any]) -> list[str]:
    """The files that failed, one line each, for the end of a printed report (empty when none did)."""
    failed = report.get("failed") or []
    if not failed:
        return []
    lines = [f"Excluded from every metric ({len(failed)} file(s) failed; their stems left out):"]
    lines += [f"- {entry['error']}" for entry in failed]
    return lines


def write_report(
    report: dict[str, Any],
    json_path: str | os.PathLike[str] | None = None,
    markdown_path: str | os.PathLike[str] | None = None,
) -> None:
    """Write the report as JSON and/or Markdown (atomically)."""
    from foleygen.atomic import atomic_write_text

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
