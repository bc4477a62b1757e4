"""``foleygen quickstart``: what ``make demo`` runs.

Generates a soundtrack for each bundled example video with the embedded model and says where the
results are. If the embedded model is not installed (a source checkout before ``make demo-model``), it
says so plainly and exits non-zero instead of pretending.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "generate soundtracks for the bundled example videos with the embedded model (what `make demo` runs)"


def default_examples_dir() -> Path:
    """``examples/`` of the source checkout (beside the package), else of the current directory."""
    import foleygen

    beside_package = Path(foleygen.__file__).resolve().parent.parent / "examples"
    return beside_package if beside_package.is_dir() else Path("examples")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``foleygen quickstart``."""
    parser.add_argument("--examples", type=Path, default=None, help="folder of example videos (default: examples/)")
    parser.add_argument("-o", "--output", type=Path, default=Path("demo_output"), help="results folder")
    parser.add_argument("--model", default="demo", help="model to use (default: the embedded 'demo' model)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")


def run(args: argparse.Namespace) -> int:
    """Generate for every example video; print where the outputs are."""
    from foleygen.cli import main as cli_main
    from foleygen.errors import FoleyGenError

    examples = args.examples or default_examples_dir()
    videos = sorted(p for p in examples.glob("*.mp4")) if examples.is_dir() else []
    if not videos:
        raise FoleyGenError("no example videos (*.mp4) found", examples)
    argv = ["generate", *map(str, videos), "-o", str(args.output), "--model", args.model, "--seed", str(args.seed)]
    if args.quiet:
        argv.append("--quiet")
    code = cli_main(argv)
    if code == 0:
        out = args.output.resolve()
        print(f"\nDone: {len(videos)} example(s) from {examples}/ have new soundtracks in {out}/")
        for video in videos:
            print(f"  {out / (video.stem + '.wav')}   {out / (video.stem + '.mp4')}")
    return code
