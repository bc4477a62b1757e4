"""foleygen: visually-guided audio generation as language modelling (FoleyGen).

A neural audio codec turns waveforms into discrete tokens, a frozen visual encoder turns video frames
into features, and one Transformer generates the audio tokens conditioned on the visual features.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from foleygen.errors import FoleyGenError

__version__ = "0.1.0"
__all__ = ["FoleyGen", "FoleyGenError", "__version__"]

if TYPE_CHECKING:
    from foleygen.api import FoleyGen


def __getattr__(name: str) -> Any:
    # `import foleygen` stays cheap (the CLI's --help must not import torch); FoleyGen loads lazily.
    if name == "FoleyGen":
        from foleygen.api import FoleyGen

        return FoleyGen
    raise AttributeError(f"module 'foleygen' has no attribute {name!r}")
