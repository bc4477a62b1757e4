import numpy as np
import pytest
import torch


@pytest.fixture
def odd_frames():
    """Smooth-ish uint8 frames [1, 3, H, W, 3] of odd sizes (random noise exaggerates resampling differences)."""

    def make(h, w, f=3, seed=0):
        g = torch.Generator().manual_seed(seed)
        yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
        base = torch.stack([torch.sin(6 * xx + 2 * c) * torch.cos(4 * yy - c) for c in range(3)], dim=-1)
        frames = []
        for i in range(f):
            noise = torch.randn(h, w, 3, generator=g) * 0.15
            frames.append(((base.roll(i, dims=1) + noise) * 0.5 + 0.5).clamp(0, 1) * 255)
        return torch.stack(frames)[None].round().to(torch.uint8)

    return make


@pytest.fixture
def processor_pixels():
    """Run a Hugging Face image processor on frames [1, F, H, W, 3] -> [F, 3, S, S]."""

    def run(processor, frames_uint8):
        images = [np.ascontiguousarray(f.numpy()) for f in frames_uint8[0]]
        return torch.as_tensor(np.asarray(processor(images=images, return_tensors="np")["pixel_values"]))

    return run
