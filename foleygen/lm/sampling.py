"""Turning logits into tokens: classifier-free guidance, temperature, top-k, top-p, seeded draws.

All functions take logits ``[..., card]`` and treat every leading index as one independent
distribution (in the LM: ``[B, K, card]``, one per batch row and code stream).
"""

from __future__ import annotations

import torch


def guide(cond: torch.Tensor, null: torch.Tensor, cfg_coef: float) -> torch.Tensor:
    """Classifier-free guidance: ``null + cfg_coef * (cond - null)`` (``cfg_coef = 1`` gives ``cond``)."""
    return null + cfg_coef * (cond - null)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each distribution, set the rest to ``-inf`` (``k <= 0``: no-op)."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # [..., 1]: the k-th largest value
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of tokens whose probability reaches ``p`` (``p <= 0``: no-op).

    The most likely token is always kept, so a tiny ``p`` degrades to greedy rather than to nothing.
    """
    if p <= 0.0 or p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    # Mass of the tokens strictly before each one: a token is kept while that mass is still < p.
    before = probs.cumsum(dim=-1) - probs
    drop_sorted = before >= p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one token per distribution: ``logits [..., card] -> int64 [...]``.

    ``temperature == 0`` is greedy (argmax). Otherwise the logits are divided by the temperature,
    then top-k and top-p filtered (both may be on), and one token drawn with ``generator``.
    """
    if temperature <= 0.0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    lead = logits.shape[:-1]
    flat = logits.reshape(-1, logits.shape[-1])  # [N, card]
    if top_k > 0 and top_k < flat.shape[-1] and top_p <= 0.0:
        # Fast path (the default, top_k=250 of 2048): draw among the k candidates only, which avoids a
        # softmax and a multinomial over the whole vocabulary every step.
        values, indices = torch.topk(flat, top_k, dim=-1)  # [N, k]
        choice = torch.multinomial(values.softmax(dim=-1), 1, generator=generator)  # [N, 1]
        return indices.gather(-1, choice).reshape(lead)
    flat = top_p_filter(top_k_filter(flat, top_k), top_p)
    return torch.multinomial(flat.softmax(dim=-1), 1, generator=generator).reshape(lead)
