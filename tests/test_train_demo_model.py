"""``make demo-model`` end to end at toy size: every phase runs, the result installs and loads, and a
second run resumes instead of redoing the work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file
from script_loader import load_script

from foleygen import FoleyGen

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_recipe_trains_installs_and_resumes(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    script = load_script("train_demo_model")
    work, dest = tmp_path / "work", tmp_path / "installed"
    argv = [
        "--workdir", str(work), "--install-to", str(dest), "--num-train", "6", "--num-val", "2",
        "--workers", "1", "--codec-steps", "3", "--codec-batch", "2", "--codec-set", "codec_train.warmup_steps=1",
        "--lm-steps", "2", "--lm-batch", "2", "--quiet",
    ]  # fmt: skip
    assert script.main(argv) == 0
    assert json.loads((work / "plan.json").read_text()) == {"codec_steps": 3, "lm_steps": 2}

    config = json.loads((dest / "config.json").read_text())
    assert config["lm"]["visual_lookahead"] == 2 and config["generation"]["temperature"] == 0.3
    trained = json.loads((work / "lm" / "config.json").read_text())
    assert trained["onsets"]["events"] == str(work.resolve() / "synthfoley")  # the clips it synthesised
    assert trained["onsets"]["class_weight"] > 0
    lm_weights = load_file(str(dest / "model.safetensors"))
    codec_weights = load_file(str(dest / "codec" / "model.safetensors"))
    assert {str(v.dtype) for v in lm_weights.values() if v.is_floating_point()} == {"torch.float16"}
    assert {str(v.dtype) for v in codec_weights.values() if v.is_floating_point()} == {"torch.float32"}
    assert not list(tmp_path.glob("*.installing"))
    log = json.loads((dest / "training_log.json").read_text())
    assert log["command"].endswith("--lm-steps 2 --lm-batch 2 --quiet")
    assert log["plan"] == {"codec_steps": 3, "lm_steps": 2}
    assert [part["phase"] for part in log["parts"]] == ["synth", "codec", "prepare", "lm"]
    assert set(log["phase_seconds"]) == {"synth", "codec", "prepare", "lm"} and log["total_seconds"] > 0
    assert log["parts"][0]["machine"]["cores"] >= 1
    assert log["codec"]["final_step"] == 3 and log["lm"]["final_step"] == 2
    assert log["lm"]["train"] and log["lm"]["train"][-1]["step"] == 2

    model = FoleyGen.from_pretrained(dest)
    model.set_generation_params(duration=0.5)
    wav = model.generate([ROOT / "examples" / "synthfoley_test_00000.mp4"], seed=0)
    assert wav.shape == (1, 1, round(0.5 * model.sample_rate))
    assert wav.abs().max() > 0

    capfd.readouterr()
    assert script.main(argv) == 0  # every phase is done: nothing is synthesised or trained again
    second = capfd.readouterr().out
    assert "$" not in second and "installed" in second
    assert json.loads((dest / "training_log.json").read_text())["parts"] == log["parts"]  # no phase ran again


def test_a_disk_too_small_stops_the_run_before_its_first_phase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = load_script("train_demo_model")
    work = tmp_path / "work"
    need = script.disk_needed(work, 9000, 200)
    assert need == script.CHECKPOINT_BYTES + 9200 * (script.CLIP_FILE_BYTES + 64 * 64 * 3 * 100)  # about 12 GB
    usage = script.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(script.shutil, "disk_usage", lambda path: usage._replace(free=need - 1))
    with pytest.raises(SystemExit, match=r"work: this run needs about 12.8 GB of free disk, 12.8 GB are free"):
        script.main(["--workdir", str(work), "--num-train", "9000", "--quiet"])
    assert [p.name for p in work.iterdir()] == []  # nothing synthesised

    (work / "synthfoley").mkdir()
    for split in ("train", "val"):
        (work / "synthfoley" / f"{split}.done").write_text("ok\n")
    (work / "cache").mkdir()
    (work / "cache" / "part.bin").write_bytes(b"\0" * 1000)  # a prepare that stopped part-way counts
    assert script.disk_needed(work, 9000, 200) == need - 9200 * script.CLIP_FILE_BYTES - 1000
    (work / "cache.done").write_text("ok\n")
    assert script.disk_needed(work, 9000, 200) == script.CHECKPOINT_BYTES


def test_plan_steps_defaults_to_a_step_count_and_probes_only_for_a_time_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = load_script("train_demo_model")
    probes: list[str] = []

    def fake_probe(config: str, out: Path, overrides: list[str], probe_steps: int) -> float:
        probes.append(config)
        return 2.0  # steps/s

    monkeypatch.setattr(script, "measured_steps_per_s", fake_probe)
    plan: dict = {}

    def plan_steps(name: str, steps: int | None, minutes: float | None) -> int:
        return script.plan_steps(name, steps, minutes, 6000, "cfg.yaml", tmp_path, [], plan)

    assert plan_steps("a", None, None) == 6000  # neither given: the default count, no probe
    assert plan_steps("b", 123, None) == 123
    assert plan_steps("c", None, 10.0) == 1200  # 10 min at 2 steps/s
    assert probes == ["cfg.yaml"]
    assert plan_steps("c", None, 99.0) == 1200  # a resumed run keeps its planned count
    assert json.loads((tmp_path / "plan.json").read_text()) == {"a": 6000, "b": 123, "c": 1200}


def test_the_onset_class_loss_reads_the_synthesised_events_unless_told_otherwise() -> None:
    script = load_script("train_demo_model")
    on, off = {"onsets": {"class_weight": 3.0}}, {"onsets": {"class_weight": 0.0}}
    assert script.onset_classes_need_events(on, []) is True
    assert script.onset_classes_need_events(on, ["onsets.events=/my/clips"]) is False  # the user's own
    assert script.onset_classes_need_events(off, []) is False
    assert script.onset_classes_need_events({}, []) is False


def test_each_phase_part_is_timed_and_summed_across_resumed_parts(tmp_path: Path) -> None:
    script = load_script("train_demo_model")
    first, second = script.script_command(["--seed", "1"]), script.script_command(["--seed", "1", "--quiet"])
    with script.timed_part(tmp_path, "codec", True, first):
        pass
    with pytest.raises(KeyboardInterrupt), script.timed_part(tmp_path, "lm", True, first):
        raise KeyboardInterrupt  # a part stopped by the user still counts
    with script.timed_part(tmp_path, "lm", True, second):
        pass
    with script.timed_part(tmp_path, "prepare", False, second):  # already done: no part
        pass
    parts = json.loads((tmp_path / "run.json").read_text())["parts"]
    assert [p["phase"] for p in parts] == ["codec", "lm", "lm"]
    assert all(p["seconds"] >= 0 and p["machine"]["torch"] for p in parts)
    assert [p["command"] for p in parts] == [first, first, second]
    assert first == "python scripts/train_demo_model.py --seed 1"
    parts[1]["seconds"], parts[2]["seconds"] = 60.0, 30.5
    (tmp_path / "run.json").write_text(json.dumps({"parts": parts}))
    log = script.training_log(tmp_path, second)
    assert log["command"] == second
    assert log["phase_seconds"]["lm"] == 90.5 and log["plan"] == {}
    assert log["lm"] == {"final_step": 0, "train": [], "val": []}  # no trainer ran here


def test_the_metrics_summary_keeps_every_validation_row_and_evenly_spaced_training_rows(tmp_path: Path) -> None:
    script = load_script("train_demo_model")
    rows = [{"split": "train", "step": s, "loss": 1 / s} for s in range(1, 101)]
    rows += [{"split": "val", "step": s, "loss": 0.123456789} for s in (50, 100)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = script.metrics_summary(tmp_path / "metrics.jsonl", train_rows=5)
    assert [r["step"] for r in summary["train"]] == [1, 26, 51, 75, 100]  # first and last included
    assert summary["train"][1]["loss"] == 0.03846  # 1/26 to 4 significant digits
    assert summary["val"] == [
        {"split": "val", "step": 50, "loss": 0.1235},
        {"split": "val", "step": 100, "loss": 0.1235},
    ]
    assert summary["final_step"] == 100
