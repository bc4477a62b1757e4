import importlib.util
from pathlib import Path

import pytest

from foleygen.cli import main

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "codec_tiny.yaml"


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("foleygen.codecs.training") is None or not CONFIG.is_file(),
    reason="the codec task has not landed",
)
def test_trainer_trains_the_codec_task(tmp_path):
    out = tmp_path / "codec"
    assert main(["train", str(CONFIG), "train.steps=4", "train.save_every=2", "--out", str(out), "-q"]) == 0
    assert (out / "checkpoints" / "step_00000004" / "trainer_state.pt").is_file()
    from foleygen.codecs import load_codec

    codec = load_codec(str(out / "final"))
    assert codec.num_codebooks == 2 and codec.cardinality == 64
    # resuming a finished run is a no-op that still exits cleanly
    assert main(["train", str(CONFIG), "train.steps=4", "--out", str(out), "--resume", "-q"]) == 0
