"""Interruptions (issue 37, item 3): Ctrl-C and ``kill -9`` in the middle of ``generate``, ``prepare``, ``train``.

Each test starts the real command line (``python -m foleygen ...``) in a process group of its own, waits
until it has demonstrably finished part of its work (outputs, cached clips, a checkpoint), and then sends
either SIGINT to the group (what Ctrl-C in a terminal does) or SIGKILL to the process (``kill -9``, the
out-of-memory killer). It then checks the exit code (130 and exactly one line on stderr for Ctrl-C, -9 for
a kill), that everything finished is complete and that nothing unfinished sits under a final name, and
that the rerun (``--skip-existing``, the cache's own resume, ``--resume``) completes the rest without
redoing what was done and ends as an uninterrupted run does.

A killed writer cannot remove its temporary; the next run removes it once it is older than
:data:`foleygen.staging.GRACE_S` (a temporary that young may still be another process's). The tests
age such leftovers before the rerun, as if the user came back a few minutes later.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from media_factory import make_media, write_tone_video

from foleygen.cli import main
from foleygen.staging import TEMP_NAME

REPO = Path(__file__).resolve().parents[1]
SIGNALS = pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["sigint", "sigterm", "sigkill"]
)

N_VIDEOS = 24  # generate: ~0.2 s each with the debug model, so seconds of batch left after the first
N_CLIPS = 80  # prepare: ~20 ms each; the interruption comes after the third
TRAIN_STEPS = 300  # train: ~100 steps/s with checkpoints every SAVE_EVERY; interrupted after step 40
SAVE_EVERY = 20
LOG_EVERY = 10


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "foleygen", *args]


def _interrupt(cmd: list[str], ready: Callable[[], bool], sig: signal.Signals, log: Path) -> tuple[int, str]:
    """Run ``cmd`` until ``ready()``, then Ctrl-C its group (SIGINT) or kill it (SIGKILL); (exit code, stderr)."""
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, env=_env(), stdout=err, stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not ready():
            assert proc.poll() is None, f"ended (exit {proc.returncode}) before it could be interrupted"
            assert time.monotonic() < deadline, "never got to the middle of its work"
            time.sleep(0.002)
        assert proc.poll() is None, "ended before it could be interrupted"
        if sig == signal.SIGINT:
            os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C goes to the whole foreground group
        else:
            proc.send_signal(sig)  # `kill` (SIGTERM) or `kill -9` (SIGKILL) names the process
        rc = proc.wait(timeout=60)
    finally:
        try:  # nothing of the group outlives the test
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    return rc, log.read_text()


def _writing(folder: Path) -> bool:
    """Whether a temporary is in ``folder`` now: an interruption now comes in the middle of a write."""
    try:
        return any(TEMP_NAME.match(name) for name in os.listdir(folder))
    except OSError:
        return False


def _check_exit(rc: int, stderr: str, sig: signal.Signals, command: str) -> None:
    if sig in (signal.SIGINT, signal.SIGTERM):  # SIGTERM is handled as Ctrl-C is, exit 128 + 15
        assert rc == (130 if sig == signal.SIGINT else 143), stderr
        assert "Traceback" not in stderr, stderr
        word = "interrupted" if sig == signal.SIGINT else "terminated"
        assert stderr.splitlines() == [f"foleygen {command}: {word}"], stderr
    else:
        assert rc == -signal.SIGKILL, stderr


def _hidden(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith("."))


def _check_temporaries(folder: Path, sig: signal.Signals) -> list[Path]:
    """What an interrupted run left hidden in ``folder``: nothing after Ctrl-C; after a kill, at most the
    temporaries it was writing (our naming, so the next run knows them), aged past the clean-up's grace."""
    hidden = _hidden(folder)
    if sig != signal.SIGKILL:
        assert hidden == [], f"Ctrl-C left temporaries: {hidden}"
    else:
        assert all(TEMP_NAME.match(p.name) for p in hidden), hidden
        long_ago = time.time() - 600
        for path in hidden:
            for inner in path.rglob("*") if path.is_dir() else ():
                os.utime(inner, (long_ago, long_ago), follow_symlinks=False)
            os.utime(path, (long_ago, long_ago), follow_symlinks=False)
    return hidden


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


# ------------------------------------------------------------------------------------------- generate
@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("videos")
    return [make_media(root / f"v{i:02d}.mp4", fps=10, duration=1.0).path for i in range(N_VIDEOS)]


def _check_generated(out: Path, stem: str) -> None:
    """``stem.wav`` and ``stem.mp4`` are complete: they decode, 1 s of audio, 10 frames of video."""
    from foleygen.io import probe, read_audio

    wav, mp4 = probe(out / f"{stem}.wav"), probe(out / f"{stem}.mp4")
    assert wav.has_audio and abs(wav.duration - 1.0) < 0.05, wav
    assert read_audio(out / f"{stem}.wav", wav.audio_sample_rate).shape[-1] == round(wav.audio_sample_rate * 1.0)
    assert mp4.has_video and mp4.has_audio and mp4.num_frames == 10 and abs(mp4.duration - 1.0) < 0.05, mp4
    assert abs(read_audio(out / f"{stem}.mp4", 16000).shape[-1] / 16000 - 1.0) < 0.05


@SIGNALS
def test_generate_batch_interrupted_then_skip_existing_finishes_it(videos, tmp_path, sig):
    out = tmp_path / "out"
    cmd = _cli("generate", *map(str, videos), "-o", str(out), "--model", "debug", "-q")

    def some_done() -> bool:  # two videos done, and best the next one's files being written (temporaries)
        done = sum(1 for v in videos if (out / f"{v.stem}.mp4").exists()) if out.is_dir() else 0
        return done >= 2 and (_writing(out) or done >= N_VIDEOS // 2)

    rc, stderr = _interrupt(cmd, some_done, sig, tmp_path / "stderr.txt")
    _check_exit(rc, stderr, sig, "generate")
    leftovers = _check_temporaries(out, sig)
    finals = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    stems = {v.stem for v in videos}
    assert all(Path(name).stem in stems and Path(name).suffix in (".wav", ".mp4") for name in finals), finals
    complete = sorted(s for s in stems if (out / f"{s}.wav").exists() and (out / f"{s}.mp4").exists())
    assert 2 <= len(complete) < N_VIDEOS, finals
    for stem in complete:
        _check_generated(out, stem)
    # All or none per video: a lone file only in the instant between a kill and its partner's rename.
    lone = [n for n in finals if Path(n).stem not in complete]
    assert lone == [] or sig == signal.SIGKILL, lone
    before = {s: (_stamp(out / f"{s}.wav"), _stamp(out / f"{s}.mp4")) for s in complete}

    rerun = subprocess.run(
        cmd[:-1] + ["--skip-existing", "--json"], env=_env(), capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert sorted(Path(p).stem for p in summary["skipped"]) == complete  # not redone
    assert sorted(Path(g["input"]).stem for g in summary["generated"]) == sorted(stems - set(complete))
    assert summary["failed"] == []
    assert {s: (_stamp(out / f"{s}.wav"), _stamp(out / f"{s}.mp4")) for s in complete} == before
    if leftovers:
        assert f"removed {len(leftovers)} unfinished temporary file(s)" in rerun.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{s}.{ext}" for s in stems for ext in ("mp4", "wav"))
    for stem in stems - set(complete):
        _check_generated(out, stem)


# -------------------------------------------------------------------------------------------- prepare
@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """N_CLIPS one-second clips (every fifth one 'val'), a tiny codec, and their cache prepared in one go."""
    import sys as _sys

    _sys.path.insert(0, str(REPO / "tests" / "train"))
    from media_helpers import tiny_codec_dir

    root = tmp_path_factory.mktemp("clips")
    rows = ["path,split"]
    for i in range(N_CLIPS):
        write_tone_video(root / f"c{i:02d}.mp4", 1.0, 10, 32, 16000, 300.0 + 10 * i, beep_every=5)
        rows.append(f"c{i:02d}.mp4,{'val' if i % 5 == 4 else 'train'}")
    (root / "m.csv").write_text("\n".join(rows) + "\n")
    tiny_codec_dir(root / "codec")
    assert main(_prepare_args(root, root / "reference")) == 0
    return root


def _prepare_args(root: Path, cache: Path) -> list[str]:
    return [
        "prepare", str(root / "m.csv"), "--codec", str(root / "codec"), "--visual", "compact",
        "--visual-fps", "10", "--image-size", "16", "--duration", "1.0", "-o", str(cache), "--device", "cpu",
        "--batch-size", "1", "--workers", "1", "-q",
    ]  # fmt: skip


def _same_clips(cache: Path, reference: Path, *, allow_partial: bool = False) -> int:
    """Every clip in ``cache`` equals the reference's (codes and frames); returns how many there are."""
    from foleygen.data.cache import CacheReader

    ours, ref = CacheReader(cache, allow_partial=allow_partial), CacheReader(reference)
    index = {c.id: i for i, c in enumerate(ref.clips)}
    for i, clip in enumerate(ours.clips):
        j = index[clip.id]
        assert np.array_equal(ours.codes(i), ref.codes(j)), clip.id
        assert np.array_equal(ours.visual_data(i), ref.visual_data(j)), clip.id
    return len(ours.clips)


@SIGNALS
def test_prepare_interrupted_then_rerun_resumes_to_the_same_cache(dataset, tmp_path, sig):
    cache = tmp_path / "cache"
    final, partial = cache / "shard-00000-of-00001", cache / "shard-00000-of-00001.partial"
    argv = _prepare_args(dataset, cache)

    def clips_stored() -> int:  # whole lines of the partial shard's index: clips fully written
        try:
            return partial.joinpath("index.jsonl").read_bytes().count(b"\n")
        except OSError:
            return 0

    rc, stderr = _interrupt(_cli(*argv), lambda: clips_stored() >= 3, sig, tmp_path / "stderr.txt")
    _check_exit(rc, stderr, sig, "prepare")
    assert not final.exists()  # the shard is published only when complete
    assert {p.name for p in cache.iterdir()} <= {"cache.json", "failures.jsonl", partial.name}
    for folder in (cache, partial):
        _check_temporaries(folder, sig)
    done = _same_clips(cache, dataset / "reference", allow_partial=True)  # what was stored is intact
    assert 3 <= done < N_CLIPS

    rerun = subprocess.run(_cli(*argv[:-1]), env=_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    said = re.search(r"(\d+) prepared \(.*\), (\d+) already done, (\d+) failed", rerun.stderr)
    assert said, rerun.stderr
    assert [int(x) for x in said.groups()] == [N_CLIPS - done, done, 0]  # the stored clips are not redone
    assert _same_clips(cache, dataset / "reference") == N_CLIPS
    assert sorted(p.name for p in cache.iterdir()) == ["cache.json", "failures.jsonl", final.name]
    assert _hidden(final) == []


# ---------------------------------------------------------------------------------------------- train
def _train_args(dataset: Path, out: Path) -> list[str]:
    return [
        "train", str(REPO / "configs" / "tiny_test.yaml"), f"data.cache={dataset / 'reference'}",
        f"codec.path={dataset / 'codec'}", f"train.steps={TRAIN_STEPS}", f"train.save_every={SAVE_EVERY}",
        f"train.log_every={LOG_EVERY}", "train.val_every=0", "train.sample_every=-1", "train.tensorboard=false",
        "--out", str(out), "-q",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train") / "run"
    done = subprocess.run(_cli(*_train_args(dataset, out)), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(checkpoint / "model.safetensors"))


@SIGNALS
def test_train_interrupted_then_resume_ends_as_an_uninterrupted_run(dataset, uninterrupted, tmp_path, sig):
    from foleygen.train.checkpoints import read_checkpoint
    from foleygen.train.trainer import find_latest_checkpoint

    out = tmp_path / "run"
    argv = _train_args(dataset, out)

    def past_two_checkpoints() -> bool:  # and best while the next one is being written
        latest = find_latest_checkpoint(out)
        step = int(latest.name[5:]) if latest is not None else 0
        return step >= 2 * SAVE_EVERY and (_writing(out / "checkpoints") or step >= TRAIN_STEPS // 2)

    rc, stderr = _interrupt(_cli(*argv), past_two_checkpoints, sig, tmp_path / "stderr.txt")
    _check_exit(rc, stderr, sig, "train")
    assert not (out / "final").exists()
    checkpoints = out / "checkpoints"
    for folder in (out, checkpoints):
        _check_temporaries(folder, sig)
    steps = sorted(p.name for p in checkpoints.iterdir() if not p.name.startswith("."))
    assert steps and all(re.fullmatch(r"step_\d{8}", s) for s in steps), steps
    for name in steps:  # every checkpoint under a final name is complete and loads
        state, weights, _ = read_checkpoint(checkpoints / name)
        assert state["step"] == int(name[5:]) and weights
    resumed_at = int(steps[-1][5:])
    assert 2 * SAVE_EVERY <= resumed_at < TRAIN_STEPS

    resumed = subprocess.run(_cli(*argv[:-1], "--resume"), env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed at step {resumed_at}" in resumed.stderr  # from the newest checkpoint, not from scratch
    assert find_latest_checkpoint(out).name == f"step_{TRAIN_STEPS:08d}" and (out / "final").is_dir()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == list(range(LOG_EVERY, TRAIN_STEPS + 1, LOG_EVERY))
    ours, ref = _weights(find_latest_checkpoint(out)), _weights(find_latest_checkpoint(uninterrupted))
    assert ours.keys() == ref.keys() and all(torch.equal(ours[k], ref[k]) for k in ref)  # an exact resume
    assert _hidden(out) == [] and _hidden(checkpoints) == []


# ------------------------------------------------------------- the window between creating and guarding
def test_a_ctrl_c_while_a_temporary_is_created_is_held_until_it_is_noted(tmp_path, monkeypatch):
    """SIGINT delivered inside ``mkstemp`` (the file made, its name not yet returned) is raised only once
    the name is noted, so Ctrl-C's clean-up finds it; before, it was left for the next run."""
    import tempfile

    from foleygen import staging
    from foleygen.staging import remove_own_temporaries
    from foleygen.utils import temp_dir_beside, temp_file_beside

    # this test's temporaries only: others of this process (earlier tests) are not its to count
    monkeypatch.setattr(staging, "_OURS", set())
    real_mkstemp, real_mkdtemp = tempfile.mkstemp, tempfile.mkdtemp

    def interrupted(real):
        def make(*args, **kwargs):
            made = real(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, right after the entry exists
            return made

        return make

    monkeypatch.setattr(tempfile, "mkstemp", interrupted(real_mkstemp))
    monkeypatch.setattr(tempfile, "mkdtemp", interrupted(real_mkdtemp))
    with pytest.raises(KeyboardInterrupt):
        temp_file_beside(tmp_path / "a.wav", ".tmp.wav")
    with pytest.raises(KeyboardInterrupt):
        temp_dir_beside(tmp_path / "step_00000010")
    left = _hidden(tmp_path)
    assert len(left) == 2
    assert sorted(remove_own_temporaries()) == left and _hidden(tmp_path) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the usual Ctrl-C again


def test_the_cli_removes_its_own_temporaries_on_ctrl_c(tmp_path, monkeypatch, capsys):
    from foleygen.cli.commands import info
    from foleygen.utils import temp_file_beside

    keep = tmp_path / ".other.wav.abcd1234.tmp.wav"  # not this process's: left to its writer
    keep.write_bytes(b"x")

    def run(args):
        temp_file_beside(tmp_path / "out.wav", ".tmp.wav")
        raise KeyboardInterrupt  # before any try guards it

    monkeypatch.setattr(info, "run", run)
    assert main(["info", str(tmp_path)]) == 130
    assert capsys.readouterr().err.splitlines() == ["foleygen info: interrupted"]
    assert _hidden(tmp_path) == [keep]


def test_a_second_ctrl_c_during_the_cleanup_does_not_cut_it_short(tmp_path, monkeypatch, capsys):
    """Impatient users press Ctrl-C twice: the second one, landing while the first one's cleanup runs, is
    held off, so the temporaries still go and the last line is still the one-line 'interrupted'."""
    import foleygen.staging as staging
    from foleygen.cli.commands import info
    from foleygen.utils import temp_file_beside

    def run(args):
        temp_file_beside(tmp_path / "out.wav", ".tmp.wav")
        raise KeyboardInterrupt

    real_cleanup = staging.remove_own_temporaries

    def cleanup_hit_by_a_second_ctrl_c() -> None:
        signal.raise_signal(signal.SIGINT)  # delivered now: ignored while the cleanup runs
        real_cleanup()

    monkeypatch.setattr(info, "run", run)
    monkeypatch.setattr(staging, "remove_own_temporaries", cleanup_hit_by_a_second_ctrl_c)
    assert main(["info", str(tmp_path)]) == 130
    assert capsys.readouterr().err.splitlines() == ["foleygen info: interrupted"]
    assert _hidden(tmp_path) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back afterwards
