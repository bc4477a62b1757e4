"""``foleygen train CONFIG.yaml [key=value ...] [--resume] [--out DIR]`` -- alone or under torchrun."""

from __future__ import annotations

import argparse
import os
import sys

HELP = "train a model (LM, codec, ...) from a YAML config; the same command works under torchrun"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``foleygen train``."""
    parser.add_argument("config", help="training YAML (configs/*.yaml); `base: other.yaml` inherits")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides, e.g. train.lr=1e-4 train.steps=2000 data.cache=cache/vgg",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue exactly from the newest checkpoint in the output directory"
    )
    parser.add_argument(
        "--out", default=None, help="output directory (default: `out:` in the config, else runs/<config name>)"
    )
    _accept_late_overrides(parser)


def _accept_late_overrides(parser: argparse.ArgumentParser) -> None:
    """Let ``key=value`` overrides also follow the flags (``... --resume train.steps=2000``).

    argparse fills a ``nargs="*"`` positional once, from the first run of positionals, and rejects later
    ones as unrecognised; this claims those (``key=value``, not a flag) as further overrides, in order.
    """
    original = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):  # noqa: ANN001, ANN202 -- argparse's signature
        ns, extras = original(args, namespace)
        late = [a for a in extras if "=" in a and not a.startswith("-")]
        if late:
            ns.overrides = list(getattr(ns, "overrides", None) or []) + late
        return ns, [a for a in extras if a not in late]

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]


def run(args: argparse.Namespace) -> int:
    """Load the config, train, and leave the process group cleanly."""
    from pathlib import Path

    from foleygen.config import check_override_keys, deep_merge, load_yaml, parse_overrides
    from foleygen.train.task import task_config_class
    from foleygen.train.trainer import train

    config = deep_merge(load_yaml(args.config), parse_overrides(args.overrides))
    # a typo in an override is the override's, not the file's: checked (keys only) before the whole parse
    check_override_keys(task_config_class(config), args.overrides)
    out = args.out or config.get("out") or str(Path("runs") / Path(args.config).stem)
    config["out"] = out
    trainer = train(config, out_dir=out, resume=args.resume, quiet=args.quiet, source=args.config)
    if trainer.info.distributed:
        # Gloo can abort in its destructors at interpreter exit after a finished run, turning success into
        # a non-zero exit for torchrun: the group is already destroyed and output flushed, so leave now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0
