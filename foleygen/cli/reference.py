"""The CLI reference (``docs/cli.md``), generated from the argument parser so it never drifts.

    python -m foleygen.cli.reference > docs/cli.md

``tests/test_cli_reference.py`` fails when the committed file differs from what this produces.
"""

from __future__ import annotations

import argparse
import os

from foleygen.cli import build_parser


def _help(parser: argparse.ArgumentParser) -> str:
    # A fixed width makes the output the same on every terminal.
    os.environ["COLUMNS"] = "100"
    return parser.format_help().rstrip()


def render() -> str:
    """Markdown: the top-level help, then one section per subcommand."""
    parser = build_parser()
    lines = [
        "# CLI reference",
        "",
        "Generated from the argument parser by `python -m foleygen.cli.reference > docs/cli.md`; do not edit.",
        "",
        "```text",
        _help(parser),
        "```",
    ]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, subparser in sub.choices.items():
        lines += ["", f"## foleygen {name}", "", "```text", _help(subparser), "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
