"""The tiny random ``"debug"`` model's parts (:meth:`foleygen.FoleyGen.from_pretrained` ``("debug")``):
tests and plumbing only, no weights to download or train."""

from __future__ import annotations

import torch

from foleygen.codecs.compact import CompactCodec, CompactCodecConfig
from foleygen.lm.model import AudioLM, LMConfig
from foleygen.vision.compact import CompactVisualConfig, CompactVisualEncoder


def debug_parts(
    *, conditioning: str = "cross", visual_attention: str = "causal", seed: int = 0
) -> tuple[CompactCodec, CompactVisualEncoder, AudioLM]:
    """Codec (16 kHz, 50 Hz, 2 codebooks of 32), visual encoder (25 fps, 32 px, dim 16) and LM (d=32),
    seeded by ``seed`` without touching the global random state; all in eval mode."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        codec = CompactCodec(
            CompactCodecConfig(hidden=16, res_blocks=1, latent_dim=8, num_codebooks=2, codebook_size=32, kmeans_iters=2)
        )
        # The quantiser initialises its codebooks on the first training-mode pass (k-means on real
        # latents): one pass over noise gives a random codec that can be saved and reloaded.
        codec.train()
        codec(0.1 * torch.randn(1, 1, 16000))
        codec.eval()
        visual = CompactVisualEncoder(
            CompactVisualConfig(fps=25.0, image_size=32, dim=16, channels=[8, 16], stem_patch=4, groups=4)
        )
        lm = AudioLM(
            LMConfig(
                dim=32,
                num_layers=2,
                num_heads=4,
                num_codebooks=2,
                cardinality=32,
                frame_rate=codec.frame_rate,
                fps=25.0,
                visual_dim=16,
                conditioning=conditioning,
                visual_attention=visual_attention,
            )
        )
    for part in (codec, visual, lm):
        part.eval()
    return codec, visual, lm
