"""The study's analysis: attention checks, per-system scores, pairwise tests, tables and a plot.

**Attention checks.** A rater's check items are (1) every video on which they rated both the hidden
reference and an anchor, once per check question (default relevance and sync: a shuffled soundtrack
can sound perfectly clean, so quality is no check), passed when the reference got the higher score,
and (2) every reference-vs-anchor A/B trial, passed when they preferred the reference. A rater is kept
when the share of passed items is at least ``min_pass`` (default 0.75), or when they have no check
item yet. ``--keep-all`` keeps everyone (the JSON still says who failed).

**Scores.** For each question and system: the mean of all kept ratings with a 95% Student-t interval.
**Pairwise tests**, per question: every pair of non-anchor systems, paired by (rater, video), Wilcoxon
signed-rank; A/B: per compared pair, the exact binomial test of the preference against 1/2. Each
family (one question, or all A/B pairs) is Holm-corrected; "significant" means Holm-adjusted p < alpha.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections import defaultdict
from itertools import combinations
from pathlib import Path
from typing import Any

from foleygen.atomic import atomic_write, atomic_write_text
from foleygen.rate.stats import binomial, holm, mean_ci, wilcoxon
from foleygen.rate.store import DB_NAME, Store

EXPORT_FIELDS = ("rater", "rater_kept", "position", "kind", "is_check", "video", "question", "system", "value",
                 "system_a", "system_b", "preferred", "answered_at_utc", "elapsed_ms")  # fmt: skip


def rater_checks(rows: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{rater: {"total", "correct", "passed"}}`` from the answer rows (see the module docstring)."""
    checks = meta.get("checks", {})
    questions = set(checks.get("questions", [])) & {q["key"] for q in meta.get("questions", [])}
    min_pass = float(checks.get("min_pass", 0.75))
    scores: dict[tuple[str, str, str], dict[str, tuple[str, int]]] = defaultdict(dict)
    out: dict[str, dict[str, Any]] = defaultdict(lambda: {"total": 0, "correct": 0})
    for r in rows:
        out[r["rater"]]  # every rater with answers is listed
        if r["kind"] == "mos" and r["question"] in questions and r["role_a"] in ("reference", "anchor"):
            scores[r["rater"], r["video"], r["question"]][r["system_a"]] = (r["role_a"], r["value"])
        elif r["kind"] == "ab" and r["is_check"]:
            out[r["rater"]]["total"] += 1
            out[r["rater"]]["correct"] += int(r["value"] == (0 if r["role_a"] == "reference" else 1))
    for (rater, _, _), by_system in scores.items():
        refs = [v for role, v in by_system.values() if role == "reference"]
        for role, value in by_system.values():
            if role == "anchor" and refs:
                out[rater]["total"] += 1
                out[rater]["correct"] += int(refs[0] > value)
    for c in out.values():
        c["passed"] = c["total"] == 0 or c["correct"] / c["total"] >= min_pass
    return dict(out)


def analyse(store: Store, keep_all: bool = False, alpha: float = 0.05) -> dict[str, Any]:
    """The whole report as a JSON-ready dict."""
    meta = store.meta()
    rows = store.answer_rows()
    checks = rater_checks(rows, meta)
    kept = {name for name, c in checks.items() if keep_all or c["passed"]}
    rows = [r for r in rows if r["rater"] in kept]
    systems = [dict(s) for s in store.systems()]
    role = {s["name"]: s["role"] for s in systems}
    report: dict[str, Any] = {
        "title": meta.get("title", ""),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "alpha": alpha,
        "raters": {name: {**c, "kept": name in kept} for name, c in sorted(checks.items())},
        "systems": systems,
        "mos": {},
        "mos_tests": {},
        "ab": [],
    }
    for q in meta.get("questions", []):
        key = q["key"]
        by_system: dict[str, dict[tuple[str, str], int]] = defaultdict(dict)
        for r in rows:
            if r["kind"] == "mos" and r["question"] == key:
                by_system[r["system_a"]][r["rater"], r["video"]] = r["value"]
        scores = {}
        for s in systems:
            values = list(by_system[s["name"]].values())
            mean, lo, hi = mean_ci(values)
            scores[s["name"]] = {"role": s["role"], "n": len(values), "mean": mean, "ci_low": lo, "ci_high": hi}
        report["mos"][key] = {"text": q["text"], "scores": scores}
        tests = []
        compared = [s["name"] for s in systems if s["role"] != "anchor"]
        for a, b in combinations(compared, 2):
            common = sorted(set(by_system[a]) & set(by_system[b]))
            x = [by_system[a][k] for k in common]
            y = [by_system[b][k] for k in common]
            stat, p, used = wilcoxon(x, y)
            diff = (sum(x) - sum(y)) / len(x) if x else math.nan
            tests.append({"a": a, "b": b, "pairs": len(common), "nonzero": used, "mean_diff": diff,
                          "statistic": stat, "p": p})  # fmt: skip
        _holm_into(tests, alpha)
        report["mos_tests"][key] = tests
    pairs: dict[tuple[str, str], list[int]] = defaultdict(list)
    for r in rows:
        if r["kind"] == "ab" and not r["is_check"]:
            pairs[r["system_a"], r["system_b"]].append(r["value"])
    for (a, b), values in sorted(pairs.items()):
        wins_b = sum(values)
        n = len(values)
        report["ab"].append({"a": a, "b": b, "n": n, "wins_a": n - wins_b, "wins_b": wins_b,
                             "share_a": (n - wins_b) / n, "p": binomial(n - wins_b, n)})  # fmt: skip
    _holm_into(report["ab"], alpha)
    report["roles"] = role
    return report


def _finite(value: Any) -> Any:
    """``value`` with NaN (an undefined interval) as None, so that the JSON is standard."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _holm_into(tests: list[dict[str, Any]], alpha: float) -> None:
    for t, adjusted in zip(tests, holm([t["p"] for t in tests]), strict=True):
        t["p_holm"] = adjusted
        t["significant"] = adjusted < alpha


def _fmt(score: dict[str, Any]) -> str:
    if score["n"] == 0:
        return "-"
    if math.isnan(score["ci_low"]):
        return f"{score['mean']:.2f}"
    return f"{score['mean']:.2f} ± {(score['ci_high'] - score['ci_low']) / 2:.2f}"


def _label(name: str, role: str) -> str:
    return {"reference": f"{name} (reference)", "anchor": f"{name} (anchor)"}.get(role, name)


def markdown(report: dict[str, Any]) -> str:
    """The tables: MOS (mean ± 95% CI half-width), pairwise tests, A/B, raters."""
    keys = list(report["mos"])
    lines = [f"# {report['title'] or 'Listening test'}", ""]
    kept = [n for n, r in report["raters"].items() if r["kept"]]
    lines.append(f"{len(kept)} of {len(report['raters'])} raters kept by the attention checks.")
    if keys:
        lines += ["", "| system | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
        for s in report["systems"]:
            cells = [_fmt(report["mos"][k]["scores"][s["name"]]) for k in keys]
            lines.append(f"| {_label(s['name'], s['role'])} | " + " | ".join(cells) + " |")
        lines += ["", "MOS 1-5, mean ± 95% confidence half-width (Student t).", ""]
        lines += [
            "| question | A | B | pairs | mean A-B | p (Wilcoxon) | p (Holm) |",
            "|---|---|---|---:|---:|---:|---:|",
        ]
        for k in keys:
            for t in report["mos_tests"][k]:
                star = " *" if t["significant"] else ""
                lines.append(f"| {k} | {t['a']} | {t['b']} | {t['pairs']} | {t['mean_diff']:+.2f} | {t['p']:.3g} | "
                             f"{t['p_holm']:.3g}{star} |")  # fmt: skip
    if report["ab"]:
        lines += ["", "| A | B | n | A preferred | p (binomial) | p (Holm) |", "|---|---|---:|---:|---:|---:|"]
        for t in report["ab"]:
            star = " *" if t["significant"] else ""
            lines.append(f"| {t['a']} | {t['b']} | {t['n']} | {100 * t['share_a']:.0f}% | {t['p']:.3g} | "
                         f"{t['p_holm']:.3g}{star} |")  # fmt: skip
    lines += ["", f"\\* significant after Holm correction (alpha = {report['alpha']}).", ""]
    return "\n".join(lines)


def latex(report: dict[str, Any]) -> str:
    """The MOS table as a booktabs ``tabular`` (bold: the best non-reference system per question)."""
    keys = list(report["mos"])
    if not keys:
        return "% no MOS questions in this study\n"
    best = {}
    for k in keys:
        scores = {n: s for n, s in report["mos"][k]["scores"].items() if s["role"] == "system" and s["n"]}
        best[k] = max(scores, key=lambda n: scores[n]["mean"]) if scores else None
    esc = lambda s: s.replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")
    lines = [r"\begin{tabular}{l" + "c" * len(keys) + "}", r"\toprule"]
    lines.append("System & " + " & ".join(esc(k.capitalize()) for k in keys) + r" \\")
    lines.append(r"\midrule")
    for s in report["systems"]:
        cells = []
        for k in keys:
            cell = _fmt(report["mos"][k]["scores"][s["name"]]).replace("±", r"$\pm$")
            cells.append(rf"\textbf{{{cell}}}" if best[k] == s["name"] else cell)
        lines.append(esc(_label(s["name"], s["role"])) + " & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    """A PNG: one panel per question, each system's mean with its 95% interval (anchors, reference grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(report["mos"]) or []
    panels = len(keys) + (1 if report["ab"] else 0)
    fig, axes = plt.subplots(1, max(panels, 1), figsize=(3.2 * max(panels, 1) + 1, 3.4), squeeze=False)
    names = [s["name"] for s in report["systems"]]
    for ax, k in zip(axes[0], keys, strict=False):
        scores = report["mos"][k]["scores"]
        means = [scores[n]["mean"] if scores[n]["n"] else 0.0 for n in names]
        err = [
            [0.0 if math.isnan(scores[n]["ci_low"]) else scores[n]["mean"] - scores[n]["ci_low"] for n in names],
            [0.0 if math.isnan(scores[n]["ci_high"]) else scores[n]["ci_high"] - scores[n]["mean"] for n in names],
        ]
        colors = ["#2563eb" if scores[n]["role"] == "system" else "#9ca3af" for n in names]
        ax.bar(range(len(names)), means, yerr=err, color=colors, capsize=3)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_ylim(1, 5)
        ax.set_title(k)
        ax.grid(axis="y", alpha=0.3)
    if report["ab"]:
        ax = axes[0][len(keys)]
        labels = [f"{t['a']} vs {t['b']}" for t in report["ab"]]
        ax.barh(range(len(labels)), [100 * t["share_a"] for t in report["ab"]], color="#2563eb")
        ax.axvline(50, color="k", lw=0.8)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlim(0, 100)
        ax.set_title("A/B: % preferring A")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def write_report(study: str | Path, out: str | Path | None = None, keep_all: bool = False,
                 alpha: float = 0.05) -> Path:  # fmt: skip
    """Write ``report.json``, ``report.md``, ``report.tex`` and ``report.png`` (default: ``STUDY/report``)."""
    study = Path(study)
    report = analyse(Store(study / DB_NAME), keep_all=keep_all, alpha=alpha)
    out = Path(out) if out is not None else study / "report"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "report.json", json.dumps(_finite(report), indent=1) + "\n")
    atomic_write_text(out / "report.md", markdown(report))
    atomic_write_text(out / "report.tex", latex(report))
    plot(report, out / "report.png")
    return out


def export_rows(store: Store) -> list[dict[str, Any]]:
    """Every answer, flattened for CSV/JSON: MOS rows name ``system``; A/B rows ``system_a``,
    ``system_b`` and the ``preferred`` one."""
    rows = store.answer_rows()
    checks = rater_checks(rows, store.meta())
    out = []
    for r in rows:
        ab = r["kind"] == "ab"
        out.append({
            "rater": r["rater"], "rater_kept": checks.get(r["rater"], {}).get("passed", True),
            "position": r["position"], "kind": r["kind"], "is_check": bool(r["is_check"]), "video": r["video"],
            "question": r["question"], "system": None if ab else r["system_a"], "value": r["value"],
            "system_a": r["system_a"] if ab else None, "system_b": r["system_b"] if ab else None,
            "preferred": (r["system_b"] if r["value"] else r["system_a"]) if ab else None,
            "answered_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r["answered_at"])),
            "elapsed_ms": r["elapsed_ms"],
        })  # fmt: skip
    return out


def export(study: str | Path, out: str | Path | None = None) -> tuple[Path, Path]:
    """Write ``answers.csv`` and ``answers.json`` (default: into ``STUDY/export``); returns both paths."""
    study = Path(study)
    rows = export_rows(Store(study / DB_NAME))
    out = Path(out) if out is not None else study / "export"
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "answers.csv", text.getvalue())
    atomic_write_text(out / "answers.json", json.dumps(rows, indent=1) + "\n")
    return out / "answers.csv", out / "answers.json"
