"""The overlapped stages of ``foleygen generate`` (foleygen.pipeline): order, overlap, bounds, errors."""

import threading

import pytest

from foleygen.pipeline import run_stages


def test_stages_overlap_and_keep_the_order():
    loads_started = [threading.Event() for _ in range(3)]
    written: list[int] = []

    def load(i):
        loads_started[i].set()
        return i

    def generate(i):
        if i + 1 < 3:
            # the next batch is loaded while this one is generated: without overlap this would time out
            assert loads_started[i + 1].wait(timeout=10), "the next batch was not loaded during generation"
        return i * 10

    times = run_stages([0, 1, 2], load, generate, written.append)
    assert written == [0, 10, 20] and times.wall > 0
    assert set(times.as_dict()) >= {"load_s", "generate_s", "write_s", "stages_sum_s", "wall_s", "overlap_gain"}


def test_at_most_one_batch_is_loaded_ahead_and_one_waits_to_be_written():
    in_flight = []  # batches loaded but not yet written
    peak = []
    lock = threading.Lock()

    def load(i):
        with lock:
            in_flight.append(i)
            peak.append(len(in_flight))
        return i

    def write(i):
        with lock:
            in_flight.remove(i)

    run_stages(list(range(8)), load, lambda i: i, write)
    assert max(peak) <= 3 and in_flight == []


def test_without_overlap_the_stages_run_in_turn():
    log = []
    times = run_stages(
        [0, 1],
        lambda i: log.append(("load", i)) or i,
        lambda i: log.append(("gen", i)) or i,
        lambda i: None,
        overlap=False,
    )
    assert log == [("load", 0), ("gen", 0), ("load", 1), ("gen", 1)]
    assert times.sequential == pytest.approx(times.load + times.generate + times.write)


@pytest.mark.parametrize("overlap", [True, False])
def test_an_exception_that_escapes_a_stage_is_raised(overlap):
    def load(i):
        if i == 1:
            raise RuntimeError("bad batch")
        return i

    with pytest.raises(RuntimeError, match="bad batch"):
        run_stages([0, 1, 2], load, lambda i: i, lambda i: None, overlap=overlap)


def test_overlap_is_chosen_when_a_core_is_spare(monkeypatch):
    import os

    import torch

    from foleygen.pipeline import overlap_pays

    assert overlap_pays("on") and not overlap_pays("off")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert not overlap_pays("auto")  # the LM's pool holds both cores: the stages run in turn
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert overlap_pays("auto")
