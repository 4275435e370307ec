"""Wide layers in bounded memory: reductions applied while a layer's activations arrive batch by batch.

A ResNet-50 ``layer1`` output at 224 px has 802,816 features per image; 5,000 stimuli of it are
16 GB in float32. Each option here holds at most one batch, one column block and the (stimulus x
stimulus) products, never the whole matrix:

- ``sparse_random``: a very sparse random projection to ``max_dims`` dimensions (Achlioptas 2003;
  Li, Hastie & Church 2006: entries +-sqrt(s / k) with probability 1 / (2 s) each, s = sqrt(p), as
  scikit-learn's ``SparseRandomProjection(density="auto")``), applied to each batch as it comes;
- ``pca_images``: PCA to ``max_dims`` components fitted on a *separate* image set (Brain-Score's
  approach), computed exactly in kernel form: the stimuli's scores need only their products with
  the fit images and the fit images' Gram matrix;
- ``gram``: no reduction. The Gram matrix ``x @ x.T`` and per-stimulus means are accumulated, all
  ridge, RSA and CKA need (exact).

The products need every stimulus' values of the same features together, so ``gram`` and
``pca_images`` spill the activations to a temporary file laid out in column blocks (one contiguous
``(stimuli, block)`` slab per block) and accumulate the products block by block: memory is one batch
+ one block + the products; disk is the layer's size for the job's duration.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp

BATCH_REDUCTIONS = ("sparse_random", "pca_images", "gram")
BLOCK_BYTES = 128 << 20  # one column block of the spill in float32; twice that while converted to float64


def sparse_random_matrix(p: int, k: int, seed: int, density: float | None = None) -> sp.csr_matrix:
    """``(p, k)`` very sparse random projection: each entry is +-sqrt(1 / (density k)) with
    probability density / 2 each, else 0; density defaults to 1 / sqrt(p)."""
    density = density or 1.0 / np.sqrt(p)
    rng = np.random.default_rng(seed)
    nnz_per_col = rng.binomial(p, density, size=k)
    rows = np.concatenate([rng.choice(p, size=c, replace=False) for c in nnz_per_col]) if k else np.zeros(0, int)
    cols = np.repeat(np.arange(k), nnz_per_col)
    signs = np.where(rng.random(len(rows)) < 0.5, -1.0, 1.0) * np.sqrt(1.0 / (density * k))
    return sp.csr_matrix((signs.astype(np.float32), (rows, cols)), shape=(p, k))


class SparseRandomProjection:
    """Projects each batch ``(b, p) -> (b, k)`` as it arrives."""

    def __init__(self, p: int, k: int, seed: int) -> None:
        self.matrix_t = sparse_random_matrix(p, k, seed).T.tocsr()  # (k, p): sparse @ dense^T is fast
        self.density = 1.0 / np.sqrt(p)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray((self.matrix_t @ batch.T).T, dtype=np.float32)


class ColumnSpill:
    """A layer's activations on disk as ``(block, stimulus, column)``: rows are written batch by
    batch, each column block is read back as one contiguous ``(stimuli, block)`` slab. Plain file
    reads and writes (no memory map), so the spill never counts towards the job's resident memory."""

    def __init__(self, n: int, p: int, directory: str | None = None, block_bytes: int | None = None,
                 width: int | None = None) -> None:
        self.n, self.p = n, p
        # ``width``: another spill's, so that the two are read block by block together
        self.width = width or max(1, min(p, (block_bytes or BLOCK_BYTES) // (4 * max(n, 1))))
        self.n_blocks = -(-p // self.width)
        handle, self.path = tempfile.mkstemp(prefix="neurofit-spill-", suffix=".f32", dir=directory)
        self.file = os.fdopen(handle, "w+b")
        self.row_sum = np.zeros(n)

    def _offset(self, block: int, row: int) -> int:
        return 4 * (block * self.n + row) * self.width

    def write(self, start: int, batch: np.ndarray) -> None:
        self.row_sum[start:start + len(batch)] = batch.sum(1, dtype=np.float64)
        for b in range(self.n_blocks):
            cols = np.asarray(batch[:, b * self.width:(b + 1) * self.width], dtype=np.float32)
            if cols.shape[1] < self.width:  # the last block is padded with zero columns
                cols = np.pad(cols, ((0, 0), (0, self.width - cols.shape[1])))
            self.file.seek(self._offset(b, start))
            self.file.write(np.ascontiguousarray(cols).tobytes())

    def blocks(self) -> Iterator[np.ndarray]:
        """Each column block as float64 ``(stimuli, width)`` (zero-padded columns add nothing to products)."""
        self.file.flush()
        for b in range(self.n_blocks):
            self.file.seek(self._offset(b, 0))
            block = np.fromfile(self.file, dtype=np.float32, count=self.n * self.width)
            yield block.reshape(self.n, self.width).astype(np.float64)

    def close(self) -> None:
        self.file.close()
        os.unlink(self.path)


def spill_gram(spill: ColumnSpill, other: ColumnSpill | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``(x x^T, y x^T)`` of the spilled ``x`` (and ``other`` = y, with the same columns), block by block."""
    gram = np.zeros((spill.n, spill.n))
    cross = np.zeros((other.n, spill.n)) if other is not None else None
    others = other.blocks() if other is not None else itertools.repeat(None)
    for block, other_block in zip(spill.blocks(), others, strict=False):
        gram += block @ block.T
        if cross is not None:
            cross += other_block @ block.T
    return gram, cross


def kernel_pca_scores(fit_gram: np.ndarray, cross: np.ndarray, k: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Scores of new rows on the top ``k`` principal axes of the fit rows (centred on the fit rows'
    mean, as ``sklearn.decomposition.PCA``), from ``fit_gram`` = F F^T and ``cross`` = X F^T:
    axes V = F_c^T U L^{-1/2}, so (x - mu) V = (x - mu) F_c^T U L^{-1/2}."""
    m = len(fit_gram)
    col_mean = fit_gram.mean(0)  # mu . f_j
    centred = fit_gram - col_mean[None, :] - col_mean[:, None] + fit_gram.mean()
    spectrum, vectors = np.linalg.eigh((centred + centred.T) * 0.5)
    order = np.argsort(spectrum)[::-1][:min(k, m - 1)]
    top, axes = np.maximum(spectrum[order], 0.0), vectors[:, order]
    keep = top > top[0] * 1e-12 if len(top) else top > 0
    top, axes = top[keep], axes[:, keep]
    # (x - mu) . (f_j - mu) = x.f_j - x.mu - mu.f_j + mu.mu, with x.mu the row mean of x's products
    cross_c = cross - cross.mean(1, keepdims=True) - col_mean[None, :] + fit_gram.mean()
    scores = cross_c @ axes / np.sqrt(top)[None, :]
    total = float(np.trace(centred))
    return scores.astype(np.float32), {"explained_variance": float(top.sum() / total) if total > 0 else 0.0,
                                       "n_components": int(len(top)), "n_fit_images": m}
