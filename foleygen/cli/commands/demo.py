"""``foleygen demo``: serve the web demo (drop a video, watch it with its generated soundtrack)."""

from __future__ import annotations

import argparse

HELP = "serve the web demo: upload a video, watch it with a generated soundtrack (needs foleygen[demo])"


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``foleygen demo``."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 serves the whole network)"
    )
    parser.add_argument("--port", type=int, default=7860, help="TCP port (default 7860)")
    parser.add_argument(
        "--model",
        default="demo",
        help="default model: 'demo' (embedded), 'debug' (tiny random) or a checkpoint directory",
    )
    parser.add_argument(
        "--share",
        type=_bool,
        nargs="?",
        const=True,
        default=False,
        metavar="BOOL",
        help="also open a public *.gradio.live link (default false; needs internet)",
    )
    parser.add_argument("--max-upload-mb", type=float, default=50.0, help="largest accepted upload (default 50)")
    parser.add_argument(
        "--max-duration",
        type=float,
        default=30.0,
        dest="max_duration_s",
        help="longest accepted video in seconds (default 30)",
    )
    parser.add_argument(
        "--queue-size",
        type=int,
        default=32,
        help="requests that may wait for a generation (default 32); more are refused with 429 'busy'",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="generations that run at once (default 1: best on a CPU)"
    )
    parser.add_argument(
        "--examples", type=int, default=2, help="SynthFoley clips offered as one-click examples (default 2; 0: none)"
    )
    parser.add_argument(
        "--work-dir", default=None, help="where uploads and results live (default: $TMPDIR/foleygen-demo)"
    )


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; exit code 0."""
    from foleygen.errors import ConfigError

    try:
        import gradio  # noqa: F401  (only to give a clear message when the extra is missing)
    except ImportError:
        raise ConfigError("the web demo needs Gradio: pip install 'foleygen[demo]'") from None
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be between 1 and 65535, got {args.port}")
    from foleygen.app import launch

    if not args.quiet:
        url = f"http://{args.host}:{args.port}"
        print(f"foleygen demo: loading model {args.model!r}, then serving on {url}", flush=True)
    launch(
        args.host,
        args.port,
        args.model,
        share=args.share,
        max_upload_mb=args.max_upload_mb,
        max_duration_s=args.max_duration_s,
        work_root=args.work_dir,
        block=True,
        quiet=args.quiet,
        examples=args.examples,
        queue_size=args.queue_size,
        workers=args.workers,
    )
    return 0
