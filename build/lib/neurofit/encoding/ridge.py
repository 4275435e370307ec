"""Ridge regression with a per-neuroid penalty chosen by inner K-fold cross-validation.

The hot loop of the pipeline. Per fit (outer split or inner fold) one eigendecomposition serves
every alpha and every neuroid:

- dual (fit stimuli <= features): eigh of the centred Gram matrix of the fit stimuli. The Gram
  matrix of *all* stimuli is computed once per layer and every fold's centred Gram (and its
  validation cross-Gram) is obtained from it by indexing and double centring, so the n^2 p product
  is paid once, not once per fold;
- primal (fit stimuli > features): eigh of the centred p x p covariance.

Features and targets are centred on the fit stimuli, which is exactly an unpenalised intercept.
The inner-CV error of every alpha is computed without materialising (alphas, stimuli, targets)
predictions: the cross terms come from small (alphas x k) @ (k x targets) products and only the
squared norm of the predictions needs one GEMM per chunk of alphas: (chunk*n_val x k) @ (k x targets),
the basis scaled per alpha, where k >= n_val (the dual folds); else (k x k) @ (k x chunk*targets) with
the basis's Gram matrix.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurofit.encoding.backend import Ops, get_ops
from neurofit.encoding.splits import iter_kfold

DEFAULT_ALPHAS = np.logspace(-2, 6, 17)
REFIT_SOLVERS = ("eigh", "cholesky", "auto")
FORMS = ("auto", "primal", "dual")  # Design.form: which eigenproblem a fit solves (auto: the smaller)
# one eigendecomposition (LAPACK syevd) costs 15-19 Cholesky factorisations of the same matrix (measured,
# float64, 1 thread, 360-1440 rows): up to this many distinct alphas the refit factorises per alpha (and
# needs one n^2 work array where syevd needs three)
CHOLESKY_MAX_ALPHAS = 15
CHUNK_ELEMENTS = 1 << 19  # working arrays per alpha chunk stay below ~4 MB in float64


def work_bytes(stored_bytes: int) -> int:
    """The budget of one work array beside features of ``stored_bytes``: an eighth of them (so the peak
    stays near one copy), at most 64 MB, at least 64 kB (so a narrow layer's blocks still have rows
    enough for the GEMMs)."""
    return min(64 << 20, max(1 << 16, stored_bytes // 8))


@dataclass
class FitTargets:
    """The fit rows' targets, never copied whole: rows ``rows`` of ``values`` less ``shift`` (a constant
    per target that removes cancellation from the running sums), gathered per use in the precision of the
    step that reads them, so neither the caller (its shifted rows) nor a float32 search holds a copy."""

    values: np.ndarray  # (stimuli, targets)
    rows: np.ndarray  # (fit,): the fit rows' positions in ``values``
    shift: np.ndarray | None = None  # (targets,)

    @classmethod
    def of(cls, y_fit: Any) -> FitTargets:
        """``y_fit`` as it stands (one row per fit row), or the targets as given."""
        if isinstance(y_fit, FitTargets):
            return y_fit
        return cls(np.asarray(y_fit), np.arange(len(y_fit)))

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def n_targets(self) -> int:
        return int(self.values.shape[1])

    def subset(self, idx: np.ndarray) -> FitTargets:
        """The targets of the fit rows ``idx`` (positions in the fit), sharing ``values``."""
        return FitTargets(self.values, self.rows[idx], self.shift)

    def sums(self, ops: Ops, step: int) -> tuple[Any, Any]:
        """Per target, the sum and the sum of squares over the fit rows, ``step`` rows at a time."""
        total, squares = ops.zeros((self.n_targets,)), ops.zeros((self.n_targets,))
        for start in range(0, len(self), step):
            block = self.take(ops, slice(start, start + step))
            total += block.sum(0)
            squares += ops.sqnorm_cols(block)
            del block  # (in every block loop: the next block is not made beside this one)
        return total, squares

    def take(self, ops: Ops, idx: np.ndarray | slice = slice(None)) -> Any:
        """Rows ``idx`` (positions in the fit) on ``ops``, shifted in float64 before any rounding."""
        block = self.values[self.rows[idx]]  # a fresh array (fancy indexing)
        if self.shift is not None:
            block = np.asarray(block, dtype=np.float64)
            block -= self.shift
        return ops.asarray(block)

    def gathered(self, ops: Ops) -> FitTargets:
        """These targets as one array in ``ops``' precision (for a dual search, whose every fold reads
        most rows: one gather instead of one per fold; beside an n x n Gram matrix the copy is small)."""
        return FitTargets(ops.to_numpy(self.take(ops)), np.arange(len(self)))


@dataclass
class _Spectral:
    """One fold's fit: ``pred(w) = basis @ (w[:, None] * projected) + y_mean`` with
    ``w = 1 / (spectrum + alpha)``."""

    basis: Any  # (n_eval, k)
    spectrum: Any  # (k,) eigenvalues of the centred Gram / covariance
    projected: Any  # (k, targets)
    y_mean: Any  # (targets,)


class Design:
    """The features of every stimulus, held once: the caller's array is not copied (float32 stays
    float32); products are formed in blocks on the backend, centred on the all-stimulus mean (the
    double-centred fold Grams do not depend on that shift; it only removes cancellation). The Gram
    matrix is computed on first use and shared by all outer splits, inner folds and target groups.

    ``rows`` (optional) picks and orders the stimuli of ``x`` (so aligning never copies ``x``).
    :meth:`from_gram` builds a design from a Gram matrix alone (kernel ridge, always dual)."""

    def __init__(self, x: np.ndarray | Any | None, ops: Ops | None = None, rows: np.ndarray | None = None,
                 block_bytes: int | None = None, form: str = "auto") -> None:
        if form not in FORMS:
            raise ValueError(f"unknown form {form!r}; known: {list(FORMS)}")
        self.form = form
        self.ops = ops or get_ops("numpy")
        self._gram: Any = None
        self.x = x
        if x is None:
            return
        self.rows = np.arange(len(x)) if rows is None else np.asarray(rows)
        self.n, self.p = len(self.rows), x.shape[1]
        self.block_bytes = block_bytes or work_bytes(x.nbytes)
        mean = np.zeros(self.p)
        for start in range(0, self.n, self._block_rows):
            mean += x[self.rows[start:start + self._block_rows]].sum(0, dtype=np.float64)
        self.mean = mean / max(self.n, 1)

    @property
    def work_elements(self) -> int:
        """Elements of one work array within the budget, in this design's precision (a float64 twin's
        blocks weigh what its float32 original's do)."""
        return max(1, self.block_bytes // np.dtype(self.ops.dtype_name).itemsize)

    @property
    def _block_cols(self) -> int:
        return max(1, self.work_elements // max(self.n, 1))

    @property
    def _block_rows(self) -> int:
        return max(1, self.work_elements // max(self.p, 1))

    @classmethod
    def from_gram(cls, gram: np.ndarray, ops: Ops | None = None) -> Design:
        """Kernel ridge from the (uncentred) Gram matrix ``x @ x.T`` of the stimuli, in order."""
        design = cls(None, ops)
        g = np.array(gram, dtype=np.float64)  # one copy, centred in place (n^2 memory, not 3 n^2)
        g -= g.mean(0)[None, :]
        g -= g.mean(1)[:, None]  # = g - row means - column means + grand mean
        design._gram = design.ops.asarray(g)
        design.n, design.p = len(g), None
        design.block_bytes = work_bytes(g.nbytes)  # the folds' kernels are gathered in blocks of this
        return design

    def with_ops(self, ops: Ops) -> Design:
        """The same stimuli on other ops (e.g. float64 for the refit after a float32 alpha search),
        sharing this design's Gram matrix if it has one (not copied: each fit converts the rows it takes)."""
        twin = copy.copy(self)
        twin.ops = ops
        return twin

    def centred(self, idx: np.ndarray, cols: slice = slice(None)) -> Any:
        """Rows ``idx`` (of this design's stimuli), columns ``cols``, centred, on the backend."""
        rows = self.rows[idx]
        if self.x.dtype == np.dtype(self.ops.dtype_name):
            block = self.ops.asarray(self.x[rows, cols])  # float32 features stay one block-sized copy
        else:
            # gathered and converted a work array at a time (the whole gather in the features' precision beside
            # its converted copy weighed 1.5x the block: float32 rows for a float64 fit; as fast)
            block = self.ops.empty((len(rows), len(range(self.x.shape[1])[cols])))
            step = max(1, self.work_elements // max(1, block.shape[1]))
            for start in range(0, len(rows), step):
                self.ops.put(block, slice(start, start + step), self.x[rows[start:start + step], cols])
        block -= self.ops.asarray(self.mean[cols])
        return block

    def gram(self) -> Any:
        if self._gram is None:
            every = np.arange(self.n)
            gram = self.ops.zeros((self.n, self.n))
            for start in range(0, self.p, self._block_cols):
                block = self.centred(every, slice(start, start + self._block_cols))
                self.ops.add_row_gram(gram, block)  # in place: no n x n temporary per block
                del block
            if self.ops.one_triangle:
                _mirror_upper(gram)
            self._gram = gram
        return self._gram

    def is_dual(self, n_fit: int) -> bool:
        """Whether a fit on ``n_fit`` stimuli solves in the dual (``form`` auto: when ``n_fit <= p``;
        the smaller of the two eigenproblems, and the primal never builds the n x n Gram matrix)."""
        if self.x is None:  # a Gram matrix alone
            return True
        if self.form != "auto":
            return self.form == "dual"
        return n_fit <= self.p

    def keeps_moments(self, n_fit: int) -> bool:
        """Whether a primal alpha search on ``n_fit`` stimuli keeps their moments, so that each inner
        fold's covariance is a downdate by its held-out rows (n_held p^2), rather than forming it from
        the fold's training rows (n_train p^2). Kept where they cost no array of their own (the ops
        share triangles: the folds' covariances take the other one) or fit in one work array (p^2 at most
        an eighth of the features, or 64 kB); else the float32 fold's ``?syevd`` (eigenvectors over its
        input, two p x p matrices of workspace) would hold a fourth p x p matrix beside them, where a
        near-square layer's peak is made of these."""
        if self.is_dual(n_fit):
            return False
        itemsize = np.dtype(self.ops.dtype_name).itemsize
        return self.ops.shares_triangles or self.p * self.p * itemsize <= self.block_bytes

    def moments(self, targets: FitTargets, idx: np.ndarray, cross: bool = True) -> _Moments:
        """Second moments of the rows ``idx`` and their ``targets`` (one row per index), in row blocks
        (of this design's precision: neither the float32 features nor the targets are copied whole).
        ``cross=False``: without the targets' cross products (formed after the eigendecomposition, see
        :meth:`primal_spectral`)."""
        ops = self.ops
        xx = ops.zeros((self.p, self.p))
        xy = ops.zeros((self.p, targets.n_targets)) if cross else None
        x_sum, y_sum = ops.zeros((self.p,)), ops.zeros((targets.n_targets,))
        for start in range(0, len(idx), self._block_rows):
            rows = slice(start, start + self._block_rows)
            block, y_block = self.centred(idx[rows]), targets.take(ops, rows)
            ops.add_gram(xx, block)  # in place: no second p x p array
            if xy is not None:
                xy += block.T @ y_block
            x_sum += block.sum(0)
            y_sum += y_block.sum(0)
            del block, y_block
        # the diagonal, kept aside where the folds' covariances take xx's other triangle and its diagonal
        diag = xx.diagonal().copy() if ops.shares_triangles else None
        return _Moments(xx, xy, x_sum, y_sum, len(idx), diag, None if cross else (targets, idx))

    def centred_cross(self, targets: FitTargets, idx: np.ndarray, x_mean: Any) -> Any:
        """``sum_i (x_i - x_mean) y_i^T`` over the rows ``idx`` and their ``targets``, in row blocks: with
        ``x_mean`` the rows' own mean, their centred cross products (centred features sum to zero, so the
        targets need no centring)."""
        out = self.ops.zeros((self.p, targets.n_targets))
        for start in range(0, len(idx), self._block_rows):
            rows = slice(start, start + self._block_rows)
            block = self.centred(idx[rows])
            block -= x_mean
            out += block.T @ targets.take(self.ops, rows)
            del block
        return out

    def spectral(self, targets: FitTargets, fit: np.ndarray, evaluate: np.ndarray) -> _Spectral:
        ops = self.ops
        if not self.is_dual(len(fit)):
            return self.primal_spectral(targets, fit, evaluate)
        k_ff, k_ef = self.centred_kernels(fit, evaluate)
        # the upper triangle (read as the transpose's lower one): LAPACK works in place on the
        # Fortran-ordered view of this temporary, no symmetrised copy
        spectrum, vectors = ops.eigh(k_ff.T)
        # the dual's projection reads every fit row's targets at once: gathered after the eigendecomposition
        # (not held beside its eigenvectors) and centred in place
        yc = targets.take(ops)
        y_mean = yc.mean(0)
        yc -= y_mean
        return _Spectral(k_ef @ vectors, ops.clamp_min(spectrum, 0.0), vectors.T @ yc, y_mean)

    def primal_spectral(self, targets: FitTargets, fit: np.ndarray, evaluate: np.ndarray) -> _Spectral:
        """The primal fit on ``fit`` alone: its covariance formed from its rows (in the moments' array),
        the targets' cross products in a second pass after the eigendecomposition (a p x targets array
        not held beside its workspace, for a gather and a GEMM of the rows)."""
        return _spectral_held_out(self, self.moments(targets, fit, cross=False), None, np.zeros(0, dtype=int),
                                  evaluate, consume=True)

    def centred_kernels(self, fit: np.ndarray, evaluate: np.ndarray) -> tuple[Any, Any]:
        """``(fit x fit, evaluate x fit)`` products of the features centred on the fit rows' mean,
        taken from the shared Gram matrix (in its own precision) and centred in this design's: both
        are views of one array, so the fold holds one copy of its kernels."""
        ops = self.ops
        gram, rows, columns = self.gram(), ops.index(np.concatenate([fit, evaluate])), ops.index(fit)
        # gathered into one array of this design's precision a block of rows at a time, one axis at a time (a
        # tenth of 2-d fancy indexing's time): no whole (stimuli x fit) intermediate or precision copy beside it
        g = ops.empty((len(fit) + len(evaluate), len(fit)))
        step = max(1, self.work_elements // (2 * len(gram)))  # a block's rows and their columns: one work array
        for start in range(0, len(g), step):
            g[start:start + step] = ops.take(ops.take(gram, rows[start:start + step], 0), columns, 1)
        # x_i^T x_j with both rows centred on the fit mean: subtract row means over the fit
        # columns, then the column means over the fit rows
        g -= g.mean(1)[:, None]
        g -= g[: len(fit)].mean(0)[None, :]
        return g[: len(fit)], g[len(fit):]


@dataclass
class _Moments:
    """Uncentred second moments of the fit rows (primal path): folds subtract their held-out rows."""

    xx: Any  # (p, p): the upper triangle (numpy; torch: all of it), see Ops.add_gram
    xy: Any  # (p, targets); None: formed after the eigendecomposition from ``rows``
    x_sum: Any
    y_sum: Any
    n: int
    diag: Any = None  # xx's diagonal, where the ops share triangles (see _covariance)
    rows: tuple[FitTargets, np.ndarray] | None = None  # the targets and design rows, where xy is None


def _spectral_held_out(design: Design, moments: _Moments, held_targets: FitTargets | None, held: np.ndarray,
                       evaluate: np.ndarray | None = None, consume: bool = False) -> _Spectral:
    """Primal fit on the moments' rows minus ``held`` (with their targets ``held_targets``, gathered after
    the eigendecomposition: not held beside its workspace), evaluated on ``evaluate`` (default ``held``):
    a fold's covariance is a downdate of the outer one (n_held p^2 instead of n_fit p^2). ``consume``:
    the moments' last use (the refit), so the covariance is formed in their p x p array, not a copy."""
    ops = design.ops
    n_fit = moments.n - len(held)
    x_sum, y_sum, xy = moments.x_sum, moments.y_sum, moments.xy
    x_held = design.centred(held)
    if len(held):
        x_sum = x_sum - x_held.sum(0)
    x_mean = x_sum / n_fit
    cov, lower = _covariance(ops, moments, x_held if len(held) else None, x_mean, n_fit, consume)
    del x_held  # gathered again below: not held beside the eigendecomposition's workspace
    # eigh reads the covariance's triangle in place through its transpose (Fortran order)
    spectrum, vectors = ops.eigh(cov.T, lower=not lower)
    del cov
    # the targets' cross products (one features x targets array per fold) formed after the eigendecomposition,
    # not beside its workspace, and projected before the evaluation rows are gathered: the fold holds no two
    # of these beside its eigenvectors; a fold's from its held rows, gathered again
    y_held = held_targets.take(ops) if len(held) and held_targets is not None else None  # (none: the refit)
    if y_held is not None:
        y_sum = y_sum - y_held.sum(0)
    y_mean = y_sum / n_fit
    if moments.rows is not None:
        cxy = design.centred_cross(*moments.rows, x_mean)
    else:
        if y_held is not None:
            x_held = design.centred(held)
            cxy = x_held.T @ y_held
            del x_held, y_held
            cxy *= -1
            cxy += xy  # xy - x_held^T y_held (a - b is a + (-b): the same numbers), in the product's array
        else:
            cxy = xy if consume else _copy(xy)
        _subtract_outer(cxy, n_fit, x_mean, y_mean, design.work_elements // 8)  # centred
    projected = vectors.T @ cxy
    del cxy
    x_eval = design.centred(held if evaluate is None else evaluate)  # a fresh array: centred in place
    x_eval -= x_mean
    # the basis x_eval @ vectors (as wide as x_eval: the primal's vectors are square) written over
    # x_eval in row blocks, so the evaluation rows are held once
    step = design._block_rows
    for start in range(0, len(x_eval), step):
        x_eval[start:start + step] = x_eval[start:start + step] @ vectors
    return _Spectral(x_eval, ops.clamp_min(spectrum, 0.0), projected, y_mean)


def _covariance(ops: Ops, moments: _Moments, x_held: Any | None, x_mean: Any, n: int, consume: bool
                ) -> tuple[Any, bool]:
    """``xx - x_held^T x_held - n x_mean x_mean^T`` by in-place BLAS updates of one triangle of a p x p
    array, and whether that is the lower triangle. The array is the moments' own: their upper triangle
    when ``consume`` (their last use: ``xx`` is set to None); else, where the ops share triangles, the
    lower one (the eigendecomposition overwrites only that and the diagonal, restored from
    ``moments.diag``), so the inner folds hold no copy of it; else a copy."""
    xx = moments.xx
    lower = not consume and ops.shares_triangles
    if consume:
        cov, moments.xx = xx, None
    elif lower:
        cov = xx
        _mirror_upper(cov)
    else:
        cov = _copy(xx)
    if moments.diag is not None:
        np.fill_diagonal(cov, moments.diag)  # an earlier fold's eigendecomposition overwrote it
    if x_held is not None:
        ops.add_gram(cov, x_held, -1.0, lower)
    ops.add_outer(cov, x_mean, -float(n), lower)
    return cov, lower


def _subtract_outer(a: Any, n: int, u: Any, v: Any, elements: int) -> None:
    """``a -= n * (u[:, None] * v[None, :])`` in place, in row blocks of about ``elements`` (no temporary of
    ``a``'s size; elementwise, so any blocking gives the same numbers)."""
    step = max(1, elements // max(1, a.shape[1]))
    for start in range(0, len(a), step):
        a[start:start + step] -= n * (u[start:start + step, None] * v[None, :])


def _copy(a: Any) -> Any:
    return a.clone() if hasattr(a, "clone") else a.copy()


def _mirror_upper(a: np.ndarray, tile: int = 128, strip: int = 32) -> None:
    """Copies ``a``'s strict upper triangle into its strict lower one, in square tiles (a transposed
    copy in cache-sized pieces). 128: as fast as 64 per element (float64, 450 rows) with a quarter of the
    slicing (0.16 ms per call against 0.35 under tracemalloc). No temporary larger than ``strip`` x ``strip``:
    a tile below the diagonal and its source above it lie in disjoint address ranges, so numpy copies
    nothing; the diagonal tiles in strips (:func:`_mirror_square`), where a whole tile's overlapping copy was a
    128 x 128 temporary (0.4x the features of a 640 x 128 job: its peak)."""
    for i in range(0, len(a), tile):
        for j in range(0, i, tile):
            a[i:i + tile, j:j + tile] = a[j:j + tile, i:i + tile].T
        _mirror_square(a[i:i + tile, i:i + tile], strip)


def _mirror_square(square: np.ndarray, strip: int) -> None:
    """:func:`_mirror_upper` of one diagonal tile, ``strip`` rows at a time: the rows' part left of the
    strip's diagonal block from the columns above it (disjoint address ranges: no copy), then the block
    itself (numpy copies its overlapping source once: ``strip`` x ``strip``; as fast as the whole tile)."""
    for r in range(0, len(square), strip):
        square[r:r + strip, :r] = square[:r, r:r + strip].T
        block = square[r:r + strip, r:r + strip]
        np.copyto(block, block.T, where=_strict_lower(len(block)))


@functools.lru_cache(maxsize=8)
def _strict_lower(size: int) -> np.ndarray:
    return np.tri(size, k=-1, dtype=bool)


@dataclass
class RidgeCVResult:
    """Per-neuroid alpha chosen by inner CV on the fit stimuli, and what it gave."""

    alpha: np.ndarray  # (targets,)
    inner_r: np.ndarray  # (targets,): Pearson r of the out-of-fold predictions at that alpha
    cv_error: np.ndarray  # (alphas, targets): out-of-fold sum of squared errors
    prediction: np.ndarray | None  # (n_eval, targets) at the chosen alphas, refit on all fit stimuli


def _prediction_sqnorms(sp: _Spectral, alphas: Any, ops: Ops, chunk_elements: int) -> Any:
    """``||basis @ (projected / (spectrum + alpha)[:, None])||^2`` per column for every alpha: (alphas, targets).

    With fewer spectral components than evaluation rows the (k x k) Gram of the basis is cheaper; else
    each alpha scales the basis's columns (n_eval x k, smaller than the k x targets projections when
    n_eval < targets: the dual folds') and one GEMM per chunk of alphas gives the predictions."""
    n_eval, k = sp.basis.shape
    t = sp.projected.shape[1]
    if k >= n_eval:
        return _scaled_basis_sqnorms(sp, alphas, ops, chunk_elements)
    g = sp.basis.T @ sp.basis
    step = max(1, chunk_elements // (2 * k * t))
    n_alpha = alphas.shape[0]
    out = ops.zeros((n_alpha, t))
    w_t = 1.0 / (sp.spectrum[:, None] + alphas[None, :])  # (k, alphas) in C order, so products below are too
    for start in range(0, n_alpha, step):
        a = min(step, n_alpha - start)
        # (k, a, t) -> (k, a*t): one GEMM for the whole chunk of alphas
        m = (sp.projected[:, None, :] * w_t[:, start:start + a, None]).reshape(k, a * t)
        out[start:start + a] = ops.dot_cols(m, g @ m).reshape(a, t)
        del m  # the next chunk's products are not made beside these
    return out


def _scaled_basis_sqnorms(sp: _Spectral, alphas: Any, ops: Ops, chunk_elements: int) -> Any:
    """:func:`_prediction_sqnorms` with at least as many components as evaluation rows: the chunk's alphas'
    scaled bases stacked, (a n_eval x k) @ (k x targets), then the column norms of each alpha's block."""
    n_eval, k = sp.basis.shape
    t = sp.projected.shape[1]
    step = max(1, chunk_elements // (n_eval * (k + t)))
    n_alpha = alphas.shape[0]
    out = ops.zeros((n_alpha, t))
    w = 1.0 / (sp.spectrum[None, :] + alphas[:, None])  # (alphas, k)
    for start in range(0, n_alpha, step):
        a = min(step, n_alpha - start)
        scaled = (w[start:start + a, None, :] * sp.basis[None, :, :]).reshape(a * n_eval, k)
        pred = (scaled @ sp.projected).reshape(a, n_eval, t)
        del scaled
        out[start:start + a] = ops.sqnorm_blocks(pred)
        del pred  # the next chunk's products are not made beside these
    return out


def ridge_cv(design: Design, y_fit: Any, fit: np.ndarray, evaluate: np.ndarray | None = None,
             alphas: np.ndarray = DEFAULT_ALPHAS, inner_folds: int = 5, seed: int = 0,
             chunk_elements: int = CHUNK_ELEMENTS, refit_ops: Ops | None = None,
             refit_solver: str = "eigh") -> RidgeCVResult:
    """Choose an alpha per target by ``inner_folds``-fold CV (shuffled KFold, ``seed``) on the
    ``fit`` rows, minimising the out-of-fold squared error; then refit on all ``fit`` rows and
    predict the ``evaluate`` rows. ``y_fit``: the targets of the ``fit`` rows, in that order, as an
    array or as :class:`FitTargets` (rows of the caller's responses, read per use: not copied whole).
    ``refit_ops`` (e.g. float64 after a float32 search): the precision of the refit and its predictions;
    default the design's. ``refit_solver``: ``eigh`` (one
    eigendecomposition for every alpha), ``cholesky`` (one Cholesky factorisation per distinct
    chosen alpha) or ``auto`` (Cholesky when at most :data:`CHOLESKY_MAX_ALPHAS` distinct alphas
    were chosen): the same predictions up to rounding. ``chunk_elements``: the alpha search's work
    arrays, at most the design's work budget (a narrow layer's fit holds no more than its features)."""
    if refit_solver not in REFIT_SOLVERS:
        raise ValueError(f"unknown refit_solver {refit_solver!r}; known: {list(REFIT_SOLVERS)}")
    if len(y_fit) != len(fit):
        raise ValueError(f"y_fit has {len(y_fit)} rows for {len(fit)} fit rows: pass the fit rows' targets only")
    ops = design.ops
    targets = FitTargets.of(y_fit)
    alpha_t = ops.asarray(np.asarray(alphas, dtype=np.float64))
    # the refit's form for every fold: a primal refit never builds the Gram matrix for its folds
    moments = design.moments(targets, fit) if design.keeps_moments(len(fit)) else None
    chunk = min(chunk_elements, design.work_elements) if design.x is not None else chunk_elements
    search_targets = targets.gathered(ops) if design.is_dual(len(fit)) else targets
    # the folds made one at a time (one fold's indices held)
    err, s1, s2, sxy = _alpha_search(design, search_targets, fit, iter_kfold(len(fit), inner_folds, seed), alpha_t,
                                     moments, chunk)
    del search_targets
    best = err.argmin(0)
    n = len(fit)
    sy, syy = targets.sums(ops, design._block_rows if design.x is not None else len(fit))
    p1, p2, pxy = (ops.take_rows(a, best) for a in (s1, s2, sxy))
    del s1, s2, sxy  # (alphas x targets each) not held through the refit
    cov = n * pxy - p1 * sy
    var = (n * p2 - p1**2) * (n * syy - sy**2)
    inner_r = ops.to_numpy(cov) / np.sqrt(np.maximum(ops.to_numpy(var), 0))
    inner_r = np.where(np.isfinite(inner_r), inner_r, 0.0)
    chosen = alpha_t[best]
    prediction = None
    if evaluate is not None and len(evaluate):
        if refit_ops is not None and refit_ops.dtype_name != ops.dtype_name:
            design, ops = design.with_ops(refit_ops), refit_ops
            # the search's moments go before the refit forms its own
            chosen, moments = ops.asarray(ops.to_numpy(chosen)), None
        prediction = ops.to_numpy(_refit_predictions(design, targets, fit, evaluate, chosen, refit_solver, moments))
    return RidgeCVResult(alpha=ops.to_numpy(chosen), inner_r=inner_r, cv_error=ops.to_numpy(err),
                         prediction=prediction)


def _alpha_search(design: Design, targets: FitTargets, fit: np.ndarray, folds: Iterable, alpha_t: Any,
                  moments: _Moments | None, chunk_elements: int) -> tuple[Any, Any, Any, Any]:
    """Out-of-fold squared error (alphas, targets) of every alpha, and the running sums of the
    out-of-fold predictions (sum, sum of squares, cross products with the targets) that give the
    inner r. One fold's fit is held at a time (and none once this returns)."""
    ops = design.ops
    err, s1, s2, sxy = (ops.zeros((alpha_t.shape[0], targets.n_targets)) for _ in range(4))
    for train, valid in folds:
        if moments is not None:
            sp = _spectral_held_out(design, moments, targets.subset(valid), fit[valid])
        elif design.is_dual(len(fit)):
            sp = design.spectral(targets.subset(train), fit[train], fit[valid])
        else:  # the refit's form (primal) for every fold, its covariance from its training rows
            sp = design.primal_spectral(targets.subset(train), fit[train], fit[valid])
        w = 1.0 / (sp.spectrum[None, :] + alpha_t[:, None])  # (alphas, k)
        sq = _prediction_sqnorms(sp, alpha_t, ops, chunk_elements)  # sum_i pred_c^2
        # taken after the eigendecomposition and the prediction norms: not held beside their work arrays
        yv = targets.take(ops, valid)
        yv -= sp.y_mean  # validation targets centred like the predictions
        cross = w @ (sp.projected * (sp.basis.T @ yv))  # sum_i pred_c * yv
        sum_p = w @ (sp.projected * sp.basis.sum(0)[:, None])  # sum_i pred_c
        err += ops.sqnorm_cols(yv)[None, :] - 2 * cross + sq
        # running sums of the out-of-fold predictions pred = pred_c + mu and targets y = yv + mu
        n_v, mu = len(valid), sp.y_mean[None, :]
        s1 += sum_p + n_v * mu
        s2 += sq + 2 * mu * sum_p + n_v * mu**2
        sxy += cross + mu * sum_p + mu * yv.sum(0)[None, :] + n_v * mu**2
        # the next fold's eigendecomposition holds none of this fold's arrays beside it
        del sp, w, yv, cross, sum_p, sq, train, valid
    return err, s1, s2, sxy


def _refit_predictions(design: Design, targets: FitTargets, fit: np.ndarray, evaluate: np.ndarray, chosen: Any,
                       solver: str, moments: _Moments | None = None) -> Any:
    """Predictions of ``evaluate`` from ridge fit on ``fit`` with one alpha per target (``chosen``);
    ``moments``: the fit rows' (primal), when the alpha search formed them in this precision (spent
    here: the refit forms its covariance in their p x p array)."""
    values = np.unique(design.ops.to_numpy(chosen))
    if solver == "auto":
        solver = "cholesky" if len(values) <= CHOLESKY_MAX_ALPHAS else "eigh"
    if solver == "cholesky" and values.min() > 0:
        try:
            return _cholesky_predictions(design, targets, fit, evaluate, design.ops.to_numpy(chosen), values, moments)
        except np.linalg.LinAlgError:
            # not positive definite at this precision: the eigendecomposition clamps the spectrum at 0
            # (from moments formed anew: the Cholesky attempt spent these)
            moments = None
    if moments is not None:
        sp = _spectral_held_out(design, moments, None, np.zeros(0, dtype=int), evaluate, consume=True)
    else:
        sp = design.spectral(targets, fit, evaluate)
    return sp.basis @ (sp.projected / (sp.spectrum[:, None] + chosen[None, :])) + sp.y_mean


def _cholesky_predictions(design: Design, targets: FitTargets, fit: np.ndarray, evaluate: np.ndarray,
                          chosen: np.ndarray, values: np.ndarray, moments: _Moments | None = None) -> Any:
    """One Cholesky solve of ``(system + alpha I)`` per distinct alpha, for its targets: ``system``
    the centred Gram matrix of the fit rows (dual) or their covariance (primal, formed in the
    moments' own array). The right-hand side is the targets or, when a group has more targets than
    there are evaluation rows, the evaluation rows' cross products (fewer columns to solve for)."""
    ops = design.ops
    dual = design.is_dual(len(fit))
    if dual:
        rhs = targets.take(ops)
        y_mean = rhs.mean(0)
        rhs -= y_mean
        system, to_eval = design.centred_kernels(fit, evaluate)
    else:
        m = moments if moments is not None else design.moments(targets, fit)
        x_mean, y_mean = m.x_sum / m.n, m.y_sum / m.n
        system, _ = _covariance(ops, m, None, x_mean, m.n, consume=True)
        rhs, m.xy = m.xy, None  # centred in place: the moments' last use
        _subtract_outer(rhs, m.n, x_mean, y_mean, design.work_elements // 8)
        to_eval = design.centred(evaluate)  # a fresh array: centred in place
        to_eval -= x_mean
    # where the ops share triangles: the system is kept in the lower triangle and each alpha's is factorised
    # in the upper one (one matrix in all, not a copy per alpha: the refit's peak; and the upper, LAPACK's
    # lower Cholesky of the Fortran-ordered transpose, is 20% faster than the lower); else in a copy
    shared = ops.shares_triangles
    if shared and not dual:
        _mirror_upper(system)  # the covariance was formed in the upper triangle (the kernel is whole)
    diag = system.diagonal().copy() if shared else None
    prediction = ops.zeros((len(evaluate), rhs.shape[1]))
    for alpha in values:
        cols = ops.index(np.flatnonzero(chosen == alpha))
        if shared:
            _mirror_upper(system.T)  # the lower triangle into the upper
            np.fill_diagonal(system, diag + alpha)
            shifted = system
        else:
            shifted = ops.add_diagonal(system, float(alpha))
        if len(cols) > len(evaluate):
            prediction[:, cols] = ops.solve_spd(shifted, to_eval.T).T @ rhs[:, cols]
        else:
            prediction[:, cols] = to_eval @ ops.solve_spd(shifted, rhs[:, cols])
        del shifted  # overwritten by its factor
    prediction += y_mean
    return prediction


def ridge_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                  alpha: float | np.ndarray, ops: Ops | None = None) -> np.ndarray:
    """Predictions of ridge with intercept; ``alpha`` a scalar or one value per target."""
    ops = ops or get_ops("numpy")
    design = Design(np.vstack([x_train, x_test]), ops)
    n = len(x_train)
    sp = design.spectral(FitTargets.of(y_train), np.arange(n), np.arange(n, n + len(x_test)))
    alpha_t = ops.asarray(np.broadcast_to(np.asarray(alpha, dtype=np.float64), (y_train.shape[1],)))
    return ops.to_numpy(sp.basis @ (sp.projected / (sp.spectrum[:, None] + alpha_t[None, :])) + sp.y_mean)


def ridge_coefficients(x: np.ndarray, y: np.ndarray, alpha: np.ndarray, ops: Ops | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Weights (features, targets) and intercept (targets,) of ridge with an alpha per target."""
    ops = ops or get_ops("numpy")
    x, y, alpha = ops.asarray(x), ops.asarray(y), ops.asarray(np.asarray(alpha, dtype=np.float64))
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc, yc = x - x_mean, y - y_mean
    if len(x) <= x.shape[1]:
        spectrum, vectors = ops.eigh(xc @ xc.T)
        to_primal, projected = xc.T @ vectors, vectors.T @ yc
    else:
        spectrum, vectors = ops.eigh(xc.T @ xc)
        to_primal, projected = vectors, vectors.T @ (xc.T @ yc)
    coef = to_primal @ (projected / (ops.clamp_min(spectrum, 0.0)[:, None] + alpha[None, :]))
    return ops.to_numpy(coef), ops.to_numpy(y_mean - x_mean @ coef)


def pearson_columns(a: np.ndarray, b: np.ndarray, axis: int = 0, constant: float = 0.0) -> np.ndarray:
    """Pearson r of matching columns (along ``axis``); ``constant`` where either side is constant
    (0: a constant prediction scores 0; NaN: undefined, as the time-resolved scores keep it)."""
    a = a - a.mean(axis, keepdims=True)
    b = b - b.mean(axis, keepdims=True)
    denom = np.sqrt((a**2).sum(axis) * (b**2).sum(axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis) / denom
    return np.where(denom > 0, r, constant)
