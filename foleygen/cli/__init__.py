"""The ``foleygen`` command line.

Each subcommand is one small module in :mod:`foleygen.cli.commands` exposing::

    HELP: str                                   # one line for `foleygen --help`
    def add_arguments(parser) -> None           # its flags
    def run(args) -> int                        # the exit code

Modules are discovered, so adding a command never edits this file. Heavy imports (torch, av) happen
inside ``run`` so that ``foleygen --help`` stays instant. A :class:`FoleyGenError` escaping a command is
printed as one line on stderr with exit code 1; so is any other exception (a bug), whose traceback
``--debug`` (or ``FOLEYGEN_DEBUG=1``) shows; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import pkgutil
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from foleygen import __version__
from foleygen.errors import DEBUG_ENV, one_line


def _command_modules() -> dict[str, object]:
    from foleygen.cli import commands

    found = {}
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        found[getattr(module, "NAME", info.name.replace("_", "-"))] = module
    return found


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to generate the CLI reference in docs/)."""
    parser = argparse.ArgumentParser(
        prog="foleygen",
        description="Watch a video, write its soundtrack (FoleyGen: visually-guided audio generation).",
    )
    parser.add_argument("--version", action="version", version=f"foleygen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _command_modules().items():
        help_text = getattr(module, "HELP", "")
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or chatter")
        p.add_argument("--debug", action="store_true", help="show the traceback of unexpected errors (bug reports)")
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


@contextlib.contextmanager
def _messages(command: str, quiet: bool) -> Iterator[None]:
    """Where the library's warnings go while a command runs: stderr, one line, named after the command.

    Modules log through ``logging.getLogger(__name__)`` (a re-encoded video, a header that lies
    about a duration); ``-q`` keeps only errors, and silences foleygen's own Python warnings too.
    """
    logger = logging.getLogger("foleygen")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LevelFormatter(f"foleygen {command}: %(level)s: %(message)s"))
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.ERROR if quiet else logging.WARNING)
    logger.propagate = False  # an application's own root handler would print each line twice
    try:
        with warnings.catch_warnings():
            if quiet:
                warnings.filterwarnings("ignore", module=r"foleygen(\.|$)")
            yield
    finally:  # main() is also called in-process (tests, notebooks): leave logging as found
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


class _LevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.level = record.levelname.lower()
        # One line, whatever the message holds (names in messages are quoted; this is the backstop).
        return super().format(record).replace("\r", " ").replace("\n", " ")


class _Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a service manager, ``timeout``): handled as Ctrl-C is, exit 143."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


def _on_sigterm() -> Any:
    """Make SIGTERM end the command as Ctrl-C does (outputs finished or removed, temporaries cleared);
    returns the previous handler (None off the main thread, where Python cannot install one)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _hold_signals() -> dict[int, Any]:
    """Ignore SIGINT and SIGTERM (main thread only); returns the handlers to put back."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}


def _release_signals(held: dict[int, Any]) -> None:
    import signal

    for sig, handler in held.items():
        signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``foleygen`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    before = os.environ.get(DEBUG_ENV)
    if args.debug:
        os.environ[DEBUG_ENV] = "1"  # per-file handlers deep inside commands read it too
    previous_sigterm = _on_sigterm()
    try:
        with _messages(args.command, bool(getattr(args, "quiet", False))):
            return int(args._module.run(args) or 0)
    except Exception as err:  # ours (one line) or a bug (one line; the traceback with --debug)
        print(f"foleygen {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as stop:
        from foleygen.staging import remove_own_temporaries

        held = _hold_signals()  # a second Ctrl-C now would cut the cleanup short with a traceback
        try:
            remove_own_temporaries()  # any an interrupt caught between creating and guarding it
        finally:
            _release_signals(held)
        terminated = isinstance(stop, _Terminated)
        print(f"foleygen {args.command}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 143 if terminated else 130
    finally:  # main() is also called in-process (tests, notebooks): leave the environment as found
        if previous_sigterm is not None:
            import signal

            signal.signal(signal.SIGTERM, previous_sigterm)
        if before is None:
            os.environ.pop(DEBUG_ENV, None)
        else:
            os.environ[DEBUG_ENV] = before


if __name__ == "__main__":
    sys.exit(main())
