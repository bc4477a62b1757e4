"""The audio language model: delay pattern, visual attention masks, Transformer, sampling.

Public names: :class:`LMConfig`, :class:`AudioLM` (``compute_logits``, ``generate``,
``generate_windowed``), :func:`visual_attention_mask`, :func:`build_delay_pattern`,
:func:`revert_delay_pattern`, :func:`sample`.
"""

from foleygen.lm.masks import visual_attention_mask
from foleygen.lm.model import AudioLM, LMConfig
from foleygen.lm.patterns import build_delay_pattern, revert_delay_pattern
from foleygen.lm.sampling import sample

__all__ = ["AudioLM", "LMConfig", "build_delay_pattern", "revert_delay_pattern", "sample", "visual_attention_mask"]
