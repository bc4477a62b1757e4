"""The hostile-input corpus (``tests/hostile_corpus.py``) through foleygen, as counts.

Builds the corpus in a temporary folder and runs what a new user would: ``foleygen info`` over every
media case, one ``foleygen generate`` batch over all of them (tiny random ``debug`` model), each
unwritable output folder, and the library calls (``probe``, ``read_frames``, ``read_audio``) on each
case. Prints one JSON object:

* ``cases``: hostile inputs in the corpus (plus ``output_folders`` refused ``-o`` targets);
* ``tried``: (case, command) runs judged; ``ok``: described or generated as promised;
  ``clean_errors``: refused in exactly one line naming the file, no traceback;
* ``crashes``: an ``unexpected ...`` line, a traceback, a case neither done nor reported, a process
  exit other than 0/1 (a segfault kills the benchmark itself: rerun the call by hand);
* ``wrong``: done when it had to be refused, refused when it had to be done, or the wrong number of
  lines; ``stray_lines``: stderr lines about no case; ``leftovers``: files in the output folder no
  finished input accounts for (temporaries, partial outputs).

    OMP_NUM_THREADS=1 python benchmarks/robustness.py            # the figure in docs/robustness.md
    python benchmarks/robustness.py --keep /tmp/corpus           # keep the corpus and outputs to look at
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="build the corpus here and leave it")
    args = parser.parse_args()

    import torch
    from hostile_corpus import (
        bad_output_folders,
        build_corpus,
        generate_argv,
        judge_generate,
        judge_info,
        judge_library,
        run_cli,
        stray_lines,
    )

    from foleygen.errors import quote_path

    torch.set_num_threads(1)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        corpus = build_corpus(work / "corpus")
        with corpus.growing():
            code, out, err = run_cli(["info", *corpus.info_args()])
        info = judge_info(corpus, code, out, err)
        stray = stray_lines(corpus, err)
        with corpus.growing():
            code, out, err = run_cli(generate_argv(corpus.generate_args(), work / "out"))
        generate, leftovers = judge_generate(corpus, code, out, err, work / "out")
        stray += stray_lines(corpus, err)
        library = judge_library(corpus)
        folders = []
        good = str(next(c.path for c in corpus.cases if c.name == "space_name"))
        for name, target in bad_output_folders(corpus).items():
            code, _, err = run_cli(generate_argv([good], target))
            lines = err.strip().splitlines()
            clean = code == 1 and len(lines) == 1 and quote_path(target) in lines[0] and "unexpected" not in err
            folders.append((name, "clean error" if clean else "crash" if "unexpected" in err else "wrong"))
    verdicts = [*info, *generate, *library]
    counts = Counter(v.outcome for v in verdicts) + Counter(outcome for _, outcome in folders)
    problems = [f"{v.case}: {v.outcome}: {v.detail}" for v in verdicts if v.outcome not in ("ok", "clean error")]
    problems += [f"{name}: {outcome}" for name, outcome in folders if outcome != "clean error"]
    print(
        json.dumps(
            {
                "cases": len(corpus.cases),
                "output_folders": len(folders),
                "tried": len(verdicts) + len(folders),
                "by_command": {"info": len(info), "generate": len(generate), "library": len(library)},
                "ok": counts["ok"],
                "clean_errors": counts["clean error"],
                "crashes": counts["crash"],
                "wrong": counts["wrong"],
                "stray_lines": len(stray),
                "leftovers": len(leftovers),
                "problems": problems + stray + [f"leftover: {name}" for name in leftovers],
                "seconds": round(time.perf_counter() - started, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
