"""``foleygen eval``: score generated audio against references with the field's metrics."""

from __future__ import annotations

import argparse
import sys

HELP = "score generated audio against references (FAD, KL, IS, IB-score, DeSync, AV-Align, onset metrics)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``foleygen eval``."""
    parser.add_argument("--generated", required=True, help="folder of generated audio (or videos with audio)")
    parser.add_argument("--reference", required=True, help="folder of reference audio; files pair by stem")
    parser.add_argument("--videos", default=None, help="folder of the source videos (IB-score, DeSync, AV-Align)")
    parser.add_argument("--events", default=None, help="folder of SynthFoley <stem>.json events (onset metrics)")
    parser.add_argument(
        "--metrics",
        nargs="+",
        default=None,
        help="metrics or groups: all, fad, kid, kl, is, ib, fad-vggish, fad-panns, fad-passt, fad-aisfx, "
        "fad-synthfoley, kid-vggish, kid-panns, kid-passt, kl-panns, kl-passt, is-panns, is-passt, ib-score, "
        "desync, av-align, onsets "
        "(default: all, or the protocol's set). A metric named here that cannot run is an error (exit 1); "
        "one reached through a group is skipped with the reason",
    )
    parser.add_argument(
        "--protocol",
        choices=["foleygen", "av-benchmark"],
        default="foleygen",
        help="how clips are read and the table laid out: foleygen (default), or av-benchmark "
        "(hkchengrex/av-benchmark's resampling and 8 s clips, MMAudio Table 1 layout; docs/evaluation.md)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=8.0,
        help="clip length in seconds; clips are cut or zero-padded to it (default 8; 10 also common)",
    )
    parser.add_argument("--json", default=None, help="write the full report as JSON here")
    parser.add_argument("--markdown", default=None, help="write the table as Markdown here")
    parser.add_argument("--cache", default=None, help="cache per-clip embeddings in this folder")
    parser.add_argument("--vggish", default=None, help="vggish-10086976.pth (else $FOLEYGEN_VGGISH)")
    parser.add_argument(
        "--vggish-pca",
        default=None,
        help="vggish_pca_params-970ea276.pth: TF-style PCA+quantised embeddings (default: raw)",
    )
    parser.add_argument(
        "--panns", default=None, help="Cnn14_16k_mAP=0.438.pth or the 32 kHz one (else $FOLEYGEN_PANNS)"
    )
    parser.add_argument("--passt", default=None, help="passt-s-f128-p16-s10-ap.476-swa.pt (else $FOLEYGEN_PASST)")
    parser.add_argument("--imagebind", default=None, help="ImageBind weights (else $FOLEYGEN_IMAGEBIND)")
    parser.add_argument(
        "--synchformer", default=None, help="synchformer_state_dict.pth for DeSync (else $FOLEYGEN_SYNCHFORMER)"
    )
    parser.add_argument(
        "--device", default="auto", help="where the metric networks run: auto (CUDA if present), cpu, cuda"
    )
    parser.add_argument(
        "--synthfoley", default=None, help="SynthFoley event-classifier directory (default: the built-in one)"
    )


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the Markdown table, write --json/--markdown.

    Exit 1 when a file failed (one line each as it happens; the others are scored without it) or when a
    metric asked for by name could not run (one line each; the others are still computed); else 0.
    """
    from foleygen.eval.report import EvalConfig, evaluate, render_markdown, write_report

    config = EvalConfig(
        duration=args.duration,
        weights={"vggish": args.vggish, "panns": args.panns, "passt": args.passt, "synthfoley": args.synthfoley},
        vggish_pca=args.vggish_pca,
        imagebind=args.imagebind,
        synchformer=args.synchformer,
        cache_dir=args.cache,
        quiet=args.quiet,
        device=args.device,
        protocol=args.protocol,
    )
    report = evaluate(
        args.generated,
        args.reference,
        videos=args.videos,
        events=args.events,
        metrics=args.metrics,
        config=config,
        on_failure=lambda line: print(f"foleygen eval: failed: {line}", file=sys.stderr, flush=True),
    )
    write_report(report, args.json, args.markdown)
    print(render_markdown(report), end="")
    errors = 0
    for metric, result in report["metrics"].items():
        if result.get("error"):
            errors += 1
            print(f"foleygen eval: error: {metric}: {result['error']}", file=sys.stderr)
        elif result.get("skipped") and not args.quiet:
            print(f"foleygen eval: skipped {metric}: {result['skipped']}", file=sys.stderr)
    if report["failed"]:
        print(
            f"foleygen eval: {len(report['failed'])} file(s) failed; their stems were left out of every metric",
            file=sys.stderr,
        )
    return 1 if errors or report["failed"] else 0
