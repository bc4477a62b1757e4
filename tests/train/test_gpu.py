"""The trainer on CUDA: bf16 autocast, worker processes, EMA, and an exact resume (deterministic mode).

Skipped without a GPU. Run on one with:
    CUBLAS_WORKSPACE_CONFIG=:4096:8 python -m pytest -q tests/train/test_gpu.py
"""

import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from foleygen.data.cache import ShardWriter, init_cache, make_fingerprint
from foleygen.train.trainer import Trainer, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _cache_and_codec(root):
    from foleygen.codecs.compact import CompactCodec, CompactCodecConfig

    torch.manual_seed(0)
    codec = CompactCodec(
        CompactCodecConfig(hidden=16, res_blocks=1, latent_dim=8, num_codebooks=2, codebook_size=32, kmeans_iters=2)
    )
    codec.train()
    codec(0.1 * torch.randn(1, 1, 16000))
    codec.eval().save_pretrained(root / "codec")
    init_cache(
        root / "cache",
        make_fingerprint(
            codec={
                "name": str(root / "codec"),
                "sample_rate": 16000,
                "frame_rate": 50.0,
                "num_codebooks": 2,
                "cardinality": 32,
                "channels": 1,
            },
            visual={
                "kind": "clip",
                "path": None,
                "fps": 25.0,
                "input_fps": 25.0,
                "dim": 16,
                "image_size": 224,
                "trainable": False,
            },
            duration=2.0,
        ),
    )
    w = ShardWriter(root / "cache", 0, 1)
    rng = np.random.default_rng(0)
    for i in range(24):
        w.add(
            f"c{i}",
            rng.integers(0, 32, (2, 100)),
            rng.standard_normal((50, 16)).astype(np.float32),
            split="val" if i >= 20 else "train",
            label=None,
            seconds=2.0,
        )
    w.finalize()
    return root / "cache", root / "codec"


def test_cuda_bf16_training_resumes_exactly(tmp_path, monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", os.environ.get("CUBLAS_WORKSPACE_CONFIG", ":4096:8"))
    cache, codec = _cache_and_codec(tmp_path)

    def cfg(out):
        return {
            "task": "lm",
            "seed": 1,
            "out": str(out),
            "data": {"cache": str(cache), "duration": 1.5},
            "codec": {"path": str(codec)},
            "generation": {"top_k": 8},
            "lm": {"dim": 64, "num_layers": 2, "num_heads": 4, "dropout": 0.1, "cfg_dropout": 0.1},
            "train": {
                "steps": 10,
                "batch_size": 4,
                "grad_accum": 2,
                "lr": 1e-3,
                "warmup_steps": 2,
                "precision": "bf16",
                "ema_decay": 0.9,
                "save_every": 4,
                "val_every": 5,
                "device": "cuda",
                "deterministic": True,
                "num_workers": 2,
            },
        }

    try:
        full = train(cfg(tmp_path / "full"), quiet=True)
        assert next(full.model.parameters()).is_cuda
        interrupted = Trainer(cfg(tmp_path / "part"), quiet=True)
        loss = interrupted.task.loss

        def stop_in_step_6(model, batch, step):
            if step == 6:
                raise KeyboardInterrupt
            return loss(model, batch, step)

        interrupted.task.loss = stop_in_step_6
        with pytest.raises(KeyboardInterrupt):
            interrupted.fit()
        train(cfg(tmp_path / "part"), resume=True, quiet=True)
    finally:
        torch.use_deterministic_algorithms(False)
    a = load_file(str(tmp_path / "full" / "checkpoints" / "step_00000010" / "model.safetensors"))
    b = load_file(str(tmp_path / "part" / "checkpoints" / "step_00000010" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "full" / "final" / "model.safetensors").is_file()
