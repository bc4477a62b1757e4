"""Residual vector quantisation with EMA codebooks, k-means initialisation and dead-code restarts.

Why these pieces (DESIGN.md's codec findings): a codebook learned by gradient descent from a random
start collapses to a few live entries on this budget. EMA updates (a running k-means) plus k-means
initialisation from real encoder outputs after an unquantised warm-up, plus restarting entries that no
longer win any vectors, kept >98% of 1024 entries alive in the prototype.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from foleygen.errors import CodecError


def _distributed() -> bool:
    return (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    )


def _sample_rows(x: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` rows of ``x [M, D]`` drawn at random (with replacement only when M < n)."""
    m = x.shape[0]
    if m >= n:
        idx = torch.randperm(m, device=x.device, generator=generator)[:n]
    else:
        idx = torch.randint(0, m, (n,), device=x.device, generator=generator)
    return x[idx]


def kmeans(x: torch.Tensor, num_clusters: int, iters: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on ``x [M, D]`` -> ``(centroids [N, D], counts [N])``; empty clusters keep their seed."""
    centroids = _sample_rows(x, num_clusters).clone()
    if x.shape[0] < num_clusters:
        # fewer vectors than clusters: seeds repeat; jitter them so that no two entries tie exactly
        centroids += torch.randn_like(centroids) * 1e-3 * x.std().clamp(min=1e-6)
    counts = torch.zeros(num_clusters, device=x.device, dtype=x.dtype)
    for _ in range(iters):
        assign = torch.cdist(x, centroids).argmin(dim=-1)
        counts = torch.bincount(assign, minlength=num_clusters).to(x.dtype)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        centroids = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centroids)
    return centroids, counts


class EMACodebook(nn.Module):
    """One codebook ``embed [N, D]`` updated as an exponential moving average of its assigned vectors.

    An entry is *dead* when its EMA count falls below ``dead_threshold`` times the average count per
    entry (relative, because a CPU batch holds fewer vectors than a codebook has entries: an absolute
    threshold such as AudioCraft's 2 would declare most entries dead at every step).

    Buffers (not parameters; the optimiser never sees them): ``embed``, ``embed_avg`` (EMA of the sums of
    assigned vectors), ``cluster_size`` (EMA of assignment counts), ``inited`` (1 once k-means has run).
    """

    def __init__(
        self,
        dim: int,
        size: int,
        decay: float = 0.99,
        eps: float = 1e-5,
        dead_threshold: float = 0.05,
        kmeans_iters: int = 10,
    ) -> None:
        super().__init__()
        self.dim, self.size, self.decay, self.eps = dim, size, decay, eps
        self.dead_threshold, self.kmeans_iters = dead_threshold, kmeans_iters
        embed = torch.randn(size, dim) * dim**-0.5
        self.register_buffer("embed", embed)
        self.register_buffer("embed_avg", embed.clone())
        self.register_buffer("cluster_size", torch.ones(size))
        self.register_buffer("inited", torch.zeros(1))

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest entry for each row of ``x [M, D]`` -> ``indices [M]``."""
        # ||x - e||^2 = ||x||^2 - 2 x.e + ||e||^2; ||x||^2 does not change the argmin
        dist = self.embed.pow(2).sum(-1)[None, :] - 2 * x @ self.embed.t()
        return dist.argmin(dim=-1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """``indices [...]`` -> vectors ``[..., D]``."""
        return F.embedding(indices, self.embed)

    @torch.no_grad()
    def init_from(self, x: torch.Tensor, batch_vectors: int | None = None) -> None:
        """k-means initialisation from real vectors ``x [M, D]``.

        ``batch_vectors``: vectors per training batch; the counts are rescaled to it so that the EMA
        statistics start at their steady-state size.
        """
        centroids, counts = kmeans(x.float(), self.size, self.kmeans_iters)
        counts = counts * (batch_vectors or x.shape[0]) / x.shape[0]
        if _distributed():  # every process must start from the same codebook: rank 0's
            torch.distributed.broadcast(centroids, 0)
            torch.distributed.broadcast(counts, 0)
        self.embed.copy_(centroids)
        # entries that won nothing start at half the average count: alive, but restarted soon if unused
        counts = counts.clamp(min=0.5 * float(counts.mean()))
        self.embed_avg.copy_(centroids * counts[:, None])
        self.cluster_size.copy_(counts)
        self.inited.fill_(1)

    @torch.no_grad()
    def ema_update(self, x: torch.Tensor, indices: torch.Tensor) -> int:
        """EMA step from vectors ``x [M, D]`` assigned to ``indices [M]``; returns how many dead codes restarted."""
        x = x.float()
        counts = torch.bincount(indices, minlength=self.size).to(x.dtype)
        sums = torch.zeros_like(self.embed).index_add_(0, indices, x)
        if _distributed():  # the statistics of the global batch, so codebooks stay identical across processes
            torch.distributed.all_reduce(counts)
            torch.distributed.all_reduce(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        # Laplace smoothing keeps entries with tiny counts from exploding
        n = self.cluster_size.sum()
        size = (self.cluster_size + self.eps) / (n + self.size * self.eps) * n
        self.embed.copy_(self.embed_avg / size[:, None])
        threshold = self.dead_threshold * float(self.cluster_size.mean())
        dead = self.cluster_size < threshold
        num_dead = int(dead.sum())
        if num_dead:
            # restart dead entries on random current vectors: they then win their neighbourhood next step
            fresh = _sample_rows(x, num_dead)
            if _distributed():
                torch.distributed.broadcast(fresh, 0)
            self.embed[dead] = fresh
            # a restarted entry gets the average count, so it is not declared dead again at once
            self.embed_avg[dead] = fresh * float(self.cluster_size.mean())
            self.cluster_size[dead] = float(self.cluster_size.mean())
        return num_dead


@dataclass
class QuantizerOutput:
    """What :meth:`ResidualVectorQuantizer.forward` returns.

    Attributes:
        quantized: ``[B, D, T]`` the sum of selected entries, with a straight-through gradient to the input.
        codes: ``[B, K, T]`` int64 indices (K = codebooks used in this call).
        commit_loss: scalar, mean squared distance of the encoder output to its quantisation (per codebook, summed).
        metrics: perplexity / usage per codebook, dead-code restarts (plain floats, for logging).
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    commit_loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)


class ResidualVectorQuantizer(nn.Module):
    """K codebooks; codebook k quantises what codebooks < k left over.

    Args:
        dim: vector size D.
        num_codebooks: K (maximum; fewer can be used per call).
        codebook_size: N entries per codebook.
        decay: EMA decay of the codebook statistics.
        dead_threshold: an entry whose EMA count falls below this fraction of the average is restarted.
        kmeans_iters: k-means iterations of the initialisation.
        quantizer_dropout: in training, use a random number of codebooks 1..K per batch (bitrate scalability).
        init_vectors: how many recent latent vectors :meth:`observe` keeps for the k-means initialisation.
    """

    def __init__(
        self,
        dim: int,
        num_codebooks: int,
        codebook_size: int,
        *,
        decay: float = 0.99,
        dead_threshold: float = 0.05,
        kmeans_iters: int = 10,
        quantizer_dropout: bool = False,
        init_vectors: int = 8192,
    ) -> None:
        super().__init__()
        self.init_vectors = init_vectors
        self._reservoir: list[torch.Tensor] = []
        self.dim, self.num_codebooks, self.codebook_size = dim, num_codebooks, codebook_size
        self.quantizer_dropout = quantizer_dropout
        self.layers = nn.ModuleList(
            EMACodebook(dim, codebook_size, decay, dead_threshold=dead_threshold, kmeans_iters=kmeans_iters)
            for _ in range(num_codebooks)
        )

    @property
    def initialised(self) -> bool:
        """True once every codebook has been k-means initialised (or loaded)."""
        return all(bool(layer.inited.item()) for layer in self.layers)

    @torch.no_grad()
    def observe(self, z: torch.Tensor) -> None:
        """Remember latents ``z [B, D, T]`` of the unquantised warm-up for the k-means initialisation.

        One batch rarely holds enough vectors for 1024 well-spread centroids; the last few warm-up
        batches together do.
        """
        self._reservoir.append(z.detach().permute(0, 2, 1).reshape(-1, z.shape[1]).float().cpu())
        while sum(r.shape[0] for r in self._reservoir) - self._reservoir[0].shape[0] >= self.init_vectors:
            self._reservoir.pop(0)

    @torch.no_grad()
    def init_codebooks(self, x: torch.Tensor, batch_vectors: int | None = None) -> None:
        """k-means-initialise codebook 0 on ``x [M, D]``, codebook 1 on what codebook 0 leaves, and so on."""
        residual = x.float()
        for layer in self.layers:
            layer.init_from(residual, batch_vectors)
            residual = residual - layer.lookup(layer.quantize(residual))

    def _check_k(self, n_q: int | None) -> int:
        k = self.num_codebooks if n_q is None else int(n_q)
        if not 1 <= k <= self.num_codebooks:
            raise CodecError(f"num_codebooks must be in 1..{self.num_codebooks}, got {k}")
        return k

    def forward(self, z: torch.Tensor, n_q: int | None = None) -> QuantizerOutput:
        """Quantise ``z [B, D, T]``; in training mode also k-means-initialise (first call) and EMA-update."""
        k = self._check_k(n_q)
        if self.training and self.quantizer_dropout and n_q is None:
            k = int(torch.randint(1, self.num_codebooks + 1, ()).item())
        b, d, t = z.shape
        flat = z.permute(0, 2, 1).reshape(-1, d)
        residual = flat
        quantized = torch.zeros_like(flat)
        if self.training and not self.initialised:
            samples = torch.cat([*(r.to(flat.device) for r in self._reservoir), flat.detach().float()])
            self.init_codebooks(samples[-self.init_vectors :], flat.shape[0])
            self._reservoir.clear()
        codes, commit = [], flat.new_zeros(())
        metrics: dict[str, float] = {}
        for i, layer in enumerate(self.layers[:k]):
            target = residual.detach()
            idx = layer.quantize(target)
            if self.training:
                metrics[f"dead_restarts_{i}"] = float(layer.ema_update(target, idx))
            q = layer.lookup(idx)
            # commitment: pull the encoder output (through the residual) towards the chosen entry
            commit = commit + F.mse_loss(residual, q.detach())
            quantized = quantized + q
            residual = residual - q.detach()
            codes.append(idx)
            counts = torch.bincount(idx, minlength=layer.size).float()
            p = counts / counts.sum().clamp(min=1)
            metrics[f"perplexity_{i}"] = float(torch.exp(-(p * (p + 1e-10).log()).sum()))
            metrics[f"usage_{i}"] = float((counts > 0).sum()) / layer.size
        # straight-through estimator: forward uses the quantised vectors, backward the identity
        st = flat + (quantized - flat).detach()
        quantized_out = st.reshape(b, t, d).permute(0, 2, 1)
        code_tensor = torch.stack(codes, dim=0).reshape(k, b, t).permute(1, 0, 2)
        return QuantizerOutput(quantized_out, code_tensor, commit, metrics)

    @torch.no_grad()
    def encode(self, z: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """``z [B, D, T]`` -> ``codes [B, K, T]`` (no statistics are updated)."""
        k = self._check_k(n_q)
        b, d, t = z.shape
        residual = z.permute(0, 2, 1).reshape(-1, d)
        codes = []
        for layer in self.layers[:k]:
            idx = layer.quantize(residual)
            residual = residual - layer.lookup(idx)
            codes.append(idx)
        return torch.stack(codes, dim=0).reshape(k, b, t).permute(1, 0, 2)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``codes [B, K, T]`` -> ``z [B, D, T]`` (sum of the K selected entries)."""
        k = self._check_k(codes.shape[1])
        out = 0
        for i, layer in enumerate(self.layers[:k]):
            out = out + layer.lookup(codes[:, i])
        return out.permute(0, 2, 1)
