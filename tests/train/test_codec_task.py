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


def test_trainer_fine_tunes_the_decoder_of_a_codec_directory(tmp_path):
    """`train.init_from=<codec dir> codec_train.train_only=decoder`: same codes, new decoder."""
    import torch

    from foleygen.codecs import load_codec

    base_out = tmp_path / "base"
    assert main(["train", str(CONFIG), "train.steps=4", "--out", str(base_out), "-q"]) == 0
    out = tmp_path / "tuned"
    args = [f"train.init_from={base_out / 'final'}", "codec_train.train_only=decoder", "train.steps=3"]
    assert main(["train", str(CONFIG), *args, "--out", str(out), "-q"]) == 0
    base, tuned = load_codec(str(base_out / "final")), load_codec(str(out / "final"))
    wav = 0.3 * torch.sin(torch.arange(8000) / 7.0)[None, None]
    assert torch.equal(tuned.encode(wav), base.encode(wav))
    assert not torch.equal(tuned.decode(base.encode(wav)), base.decode(base.encode(wav)))
