"""The hostile-input corpus (issue 37, item 1) through ``foleygen info``, one ``foleygen generate``
batch and the library calls: every case is described or refused in exactly one line naming it, the
batch exits 1 and still does its good files, and nothing is left half-written in the output folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hostile_corpus import (
    Corpus,
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
from foleygen.io import probe


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield build_corpus(tmp_path_factory.mktemp("hostile"))
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def info_run(corpus):
    with corpus.growing():
        return run_cli(["info", *corpus.info_args()])


@pytest.fixture(scope="module")
def generate_run(corpus, info_run, tmp_path_factory):  # after `info`: it grows the second growing file
    outdir = tmp_path_factory.mktemp("hostile_out") / "out"
    with corpus.growing():
        code, out, err = run_cli(generate_argv(corpus.generate_args(), outdir))
    return code, out, err, outdir


def _bad(verdicts):
    return [v for v in verdicts if v.outcome not in ("ok", "clean error")]


def test_the_corpus_has_every_kind_of_case(corpus):
    assert len(corpus.cases) >= 50
    assert len({c.name for c in corpus.cases}) == len(corpus.cases)
    # tiny on disk: the sparse 4 GiB file takes no blocks, the rest are a few KB each
    used = sum(p.lstat().st_blocks * 512 for p in corpus.root.rglob("*") if p.is_file() and not p.is_symlink())
    assert used < 8 * 2**20


def test_info_describes_or_refuses_each_case_in_one_line(corpus, info_run):
    code, out, err = info_run
    assert code == 1
    verdicts = judge_info(corpus, code, out, err)
    assert _bad(verdicts) == []
    assert stray_lines(corpus, err) == []
    errors = {v.case for v in verdicts if v.outcome == "clean error"}
    assert {"zero_bytes", "random_bytes", "no_frames", "fifo", "link_loop", "dangling_link", "missing"} <= errors
    assert "short" not in errors and "huge_frame" not in errors  # odd but real videos are described


def test_one_generate_batch_over_the_corpus(corpus, generate_run):
    code, out, err, outdir = generate_run
    assert code == 1
    verdicts, leftovers = judge_generate(corpus, code, out, err, outdir)
    assert _bad(verdicts) == []
    assert leftovers == []  # no temporaries, no partial outputs of the files that failed
    assert stray_lines(corpus, err) == []
    summary = json.loads(out)
    done = {Path(g["input"]).name for g in summary["generated"]}
    assert {"short.mp4", "one_by_one.mkv", "vfr.mkv", "anim.gif", "csv_good.mp4", "ten_minutes.mp4"} <= done
    for generated in summary["generated"]:
        for output in map(Path, generated["outputs"]):
            info = probe(output)  # complete, readable files under the final names
            assert info.has_audio and info.duration > 0
    assert probe(outdir / "ten_minutes.wav").duration == pytest.approx(1.0, abs=1e-3)  # its CSV row


def test_the_library_calls_raise_only_our_errors(corpus, info_run):
    verdicts = judge_library(corpus)
    assert _bad(verdicts) == []
    assert all("\n" not in v.detail for v in verdicts)


def test_output_folders_that_cannot_be_written(corpus):
    good = str(next(c.path for c in corpus.cases if c.name == "space_name"))
    for name, target in bad_output_folders(corpus).items():
        code, _, err = run_cli(generate_argv([good], target))
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1, (name, lines)
        assert quote_path(target) in lines[0] and "unexpected" not in lines[0], (name, lines)
