"""RT-2 / OpenVLA style action tokens: each action dimension becomes one of ``n_bins`` integers.

Two conventions:

``uniform`` (RT-2 style)
    clip to ``[low, high]``, ``token = round((a - low) / (high - low) * (n_bins - 1))``;
    back: ``low + token / (n_bins - 1) * (high - low)``. The ends of the range are
    exact, every value comes back within half a step.

``openvla``
    normalize to ``[-1, 1]`` with ``low``/``high`` (OpenVLA uses the dataset's q01/q99),
    clip, ``d = np.digitize(x, np.linspace(-1, 1, n_bins))`` (1 … n_bins), and back
    through the centre of bin ``clip(d - 1, 0, n_bins - 2)``. With ``vocab_size``
    the token is the language-model id ``vocab_size - d`` (the last ``n_bins`` ids
    of the vocabulary); without it, ``d - 1``. A dimension that should not be
    normalized (OpenVLA's gripper) is given ``low = -1, high = 1``.

Chunks are tokenized time-major: ``[a0_d0, a0_d1, …, a1_d0, …]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from policies.observation import ActionStats

CONVENTIONS = ("uniform", "openvla")


class ActionTokenizer:
    def __init__(self, low: Sequence[float] | np.ndarray, high: Sequence[float] | np.ndarray, n_bins: int = 256,
                 convention: str = "uniform", vocab_size: int | None = None) -> None:
        self.low = np.asarray(low, dtype=np.float64)
        self.high = np.asarray(high, dtype=np.float64)
        if self.low.ndim != 1 or self.low.shape != self.high.shape:
            raise ValueError("low and high must be vectors of one length")
        if not np.all(self.high > self.low):
            raise ValueError("every dimension needs high > low")
        if convention not in CONVENTIONS:
            raise ValueError(f"unknown convention {convention!r} (known: {', '.join(CONVENTIONS)})")
        if n_bins < 2:
            raise ValueError("n_bins must be at least 2")
        if vocab_size is not None and (convention != "openvla" or vocab_size < n_bins):
            raise ValueError("vocab_size applies to the openvla convention and must be at least n_bins")
        self.n_bins = n_bins
        self.convention = convention
        self.vocab_size = vocab_size
        self._edges = np.linspace(-1.0, 1.0, n_bins)
        self._centers = (self._edges[:-1] + self._edges[1:]) / 2.0

    @classmethod
    def from_stats(cls, stats: ActionStats, n_bins: int = 256, convention: str = "openvla",
                   vocab_size: int | None = None) -> ActionTokenizer:
        """Ranges from a dataset's q01/q99 (what OpenVLA uses), else its min/max."""
        lo, hi = (stats.q01, stats.q99) if stats.q01 is not None and stats.q99 is not None else (stats.min, stats.max)
        if lo is None or hi is None:
            raise ValueError("the statistics need q01/q99 or min/max")
        return cls(lo, hi, n_bins, convention, vocab_size)

    @property
    def dim(self) -> int:
        return len(self.low)

    @property
    def half_step(self) -> np.ndarray:
        """The largest round-trip error per dimension, in action units, for values inside the range."""
        return (self.high - self.low) / (self.n_bins - 1) / 2.0

    @property
    def token_range(self) -> tuple[int, int]:
        """The smallest and largest token this tokenizer produces."""
        if self.vocab_size is not None:
            return self.vocab_size - self.n_bins, self.vocab_size - 1
        return 0, self.n_bins - 1

    def tokenize(self, actions: np.ndarray | Sequence[float]) -> np.ndarray:
        """Tokens of the same shape as ``actions`` ``[..., dim]`` (int64); values outside the range are clamped."""
        a = self._check(np.asarray(actions, dtype=np.float64), "actions")
        if not np.all(np.isfinite(a)):
            raise ValueError("cannot tokenize NaN or inf")
        if self.convention == "uniform":
            u = (np.clip(a, self.low, self.high) - self.low) / (self.high - self.low)
            return np.floor(u * (self.n_bins - 1) + 0.5).astype(np.int64)
        x = np.clip(2.0 * (a - self.low) / (self.high - self.low) - 1.0, -1.0, 1.0)
        d = np.digitize(x, self._edges).astype(np.int64)
        return self.vocab_size - d if self.vocab_size is not None else d - 1

    def detokenize(self, tokens: np.ndarray | Sequence[int]) -> np.ndarray:
        """Actions ``[..., dim]`` for tokens of that shape; tokens outside :attr:`token_range` are clamped."""
        t = self._check(np.asarray(tokens), "tokens")
        if t.dtype.kind not in "iu":
            raise ValueError(f"tokens must be integers, got dtype {t.dtype}")
        lo_tok, hi_tok = self.token_range
        t = np.clip(t.astype(np.int64), lo_tok, hi_tok)
        if self.convention == "uniform":
            return self.low + t / (self.n_bins - 1) * (self.high - self.low)
        d = self.vocab_size - t if self.vocab_size is not None else t + 1
        x = self._centers[np.clip(d - 1, 0, self.n_bins - 2)]
        return 0.5 * (x + 1.0) * (self.high - self.low) + self.low

    def tokenize_chunk(self, chunk: np.ndarray) -> np.ndarray:
        """``[k, dim]`` actions to ``k * dim`` tokens, time-major."""
        c = np.asarray(chunk, dtype=np.float64)
        if c.ndim != 2:
            raise ValueError(f"a chunk is [k, {self.dim}], got shape {c.shape}")
        return self.tokenize(c).reshape(-1)

    def detokenize_chunk(self, tokens: np.ndarray | Sequence[int]) -> np.ndarray:
        """``k * dim`` time-major tokens back to ``[k, dim]`` actions."""
        t = np.asarray(tokens)
        if t.ndim != 1 or t.size % self.dim:
            raise ValueError(f"a token chunk is a flat multiple of {self.dim} tokens, got shape {t.shape}")
        return self.detokenize(t.reshape(-1, self.dim))

    def _check(self, a: np.ndarray, what: str) -> np.ndarray:
        if a.ndim < 1 or a.shape[-1] != self.dim:
            raise ValueError(f"{what} must end in {self.dim} dimensions, got shape {a.shape}")
        return a
