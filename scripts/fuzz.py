"""Fuzz foleygen's input parsers (issue 37, item 2): media probing and reading, CSV lists and
manifests, checkpoint loading. Targets and seeds: ``tests/fuzz_targets.py`` (seeded from the hostile
corpus, ``tests/hostile_corpus.py``).

    python scripts/fuzz.py --seconds 600                       # all targets, ten minutes (by hand)
    python scripts/fuzz.py --seconds 60 --targets checkpoint   # one target
    python scripts/fuzz.py --engine ours --seconds 60          # without atheris: our mutation fuzzer

The default engine is atheris (libFuzzer; ``pip install atheris``), with foleygen's own modules
instrumented for coverage. A crash (an exception other than our one-line errors, a two-line error, an
unpickled canary, the process dying) stops the run with exit 1 and leaves its input under
``--artifacts`` (``crash-*``); rerun it with ``python scripts/fuzz.py --replay FILE``. Then make the
input a case of the hostile corpus and fix foleygen. Exit 0: no crash in the time given.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="fuzz foleygen's input parsers")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to fuzz (default 60)")
    parser.add_argument(
        "--runs",
        type=int,
        default=None,
        help="stop after this many inputs instead (with --seed: the same inputs on a slow or a fast machine)",
    )
    parser.add_argument(
        "--targets", default="all", help="comma-separated: probe,read_frames,read_audio,csv,checkpoint (default all)"
    )
    parser.add_argument("--engine", choices=("atheris", "ours"), default="atheris", help="default atheris")
    parser.add_argument("--artifacts", type=Path, default=Path("runs/fuzz"), help="where crash inputs are written")
    parser.add_argument("--seed", type=int, default=37, help="random seed of the mutations")
    parser.add_argument(
        "--keep-going", action="store_true", help="--engine ours: go on after a crash, one report per crash site"
    )
    parser.add_argument("--replay", type=Path, nargs="*", default=None, help="run these inputs once and stop")
    return parser.parse_args()


def _mutate(data: bytes, rng: random.Random, pool: list[bytes]) -> bytes:
    """One to four random edits: byte flips, insertions, deletions, a cut, a splice with another seed.
    The first byte (which target) is kept."""
    head, body = data[:1], bytearray(data[1:])
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        at = rng.randrange(len(body) + 1)
        if op == 0 and body:
            body[min(at, len(body) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            body[at:at] = rng.randbytes(rng.randint(1, 8))
        elif op == 2:
            del body[at : at + rng.randint(1, 64)]
        elif op == 3:
            del body[at:]
        elif op == 4 and body:  # an interesting number where a size or count may be
            body[at : at + 4] = rng.choice((b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff", b"\x80"))
        else:
            other = rng.choice(pool)[1:]
            cut = rng.randrange(len(other) + 1)
            body[at:] = other[cut:]
    return bytes(head + body)


def _ours(
    one_input: Callable[[bytes], None],
    seeds: Path,
    seconds: float,
    artifacts: Path,
    seed: int,
    keep_going: bool,
    max_runs: int | None = None,
) -> int:
    """A seeded mutation fuzzer with libFuzzer's contract: run seeds, then mutants, stop at a crash
    (``keep_going``: note each new crash site, where the exception came from, and go on)."""
    pool = [p.read_bytes() for p in sorted(seeds.iterdir())]
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    runs = 0
    sites: set[tuple[str, str, int]] = set()
    queue = list(pool)  # every seed once first
    while time.monotonic() < deadline and (max_runs is None or runs < max_runs):
        data = queue.pop(0) if queue else _mutate(rng.choice(pool), rng, pool)
        runs += 1
        try:
            one_input(data)
        except Exception as err:  # noqa: BLE001 -- a crash: report it and keep the input
            last = traceback.extract_tb(err.__traceback__)[-1]
            site = (type(err).__name__, last.filename, last.lineno or 0)
            if site in sites:
                continue
            sites.add(site)
            artifacts.mkdir(parents=True, exist_ok=True)
            crash = artifacts / f"crash-{runs:06d}"
            crash.write_bytes(data)
            traceback.print_exc()
            print(f"fuzz: crash after {runs} runs; input in {crash}", file=sys.stderr)
            if not keep_going:
                return 1
    print(f"fuzz: {runs} runs in {seconds:.0f} s, {len(sites)} crash site(s)", file=sys.stderr)
    return 1 if sites else 0


def main() -> int:
    args = _parse()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    atheris = None
    if args.engine == "atheris":
        try:
            import atheris
        except ImportError:
            print("fuzz: atheris is not installed (pip install atheris); use --engine ours", file=sys.stderr)
            return 2
        with atheris.instrument_imports(include=["foleygen"]):
            import foleygen.api  # noqa: F401
            import foleygen.cli.commands.generate  # noqa: F401
            import foleygen.data.manifest  # noqa: F401
            import foleygen.io  # noqa: F401
    import fuzz_targets
    import torch

    torch.set_num_threads(1)
    targets = fuzz_targets.TARGETS if args.targets == "all" else tuple(args.targets.split(","))
    unknown = set(targets) - set(fuzz_targets.TARGETS)
    if unknown:
        print(f"fuzz: unknown targets {sorted(unknown)}; known: {', '.join(fuzz_targets.TARGETS)}", file=sys.stderr)
        return 2
    one_input = partial(fuzz_targets.one_input, targets=targets)
    if args.replay is not None:
        for path in args.replay:
            one_input(path.read_bytes())  # a crash shows its traceback
            print(f"fuzz: {path}: no crash", file=sys.stderr)
        return 0
    work = Path(tempfile.mkdtemp(prefix="foleygen-fuzz-seeds-"))
    seeds, found = work / "seeds", work / "found"
    found.mkdir()
    count = fuzz_targets.write_seeds(seeds, targets)
    print(f"fuzz: {count} seeds for {', '.join(targets)}; {args.seconds:.0f} s with {args.engine}", file=sys.stderr)
    if atheris is None:
        return _ours(one_input, seeds, args.seconds, args.artifacts, args.seed, args.keep_going, args.runs)
    args.artifacts.mkdir(parents=True, exist_ok=True)
    libfuzzer = [
        sys.argv[0],
        f"-max_total_time={max(1, round(args.seconds))}",
        *([f"-runs={args.runs}"] if args.runs is not None else []),
        f"-seed={args.seed}",
        f"-artifact_prefix={args.artifacts}/",
        "-timeout=60",  # one input: a hang is a crash too
        "-rss_limit_mb=4096",
        "-max_len=65536",
        "-print_final_stats=1",
        str(found),  # new interesting inputs go here, not among the seeds
        str(seeds),
    ]
    atheris.Setup(libfuzzer, one_input)
    atheris.Fuzz()  # exits the process: 0 when the time is up, non-zero at a crash
    return 0


if __name__ == "__main__":
    sys.exit(main())
