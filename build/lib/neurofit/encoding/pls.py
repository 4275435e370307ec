"""scikit-learn's ``PLSRegression(scale=False)`` (NIPALS, the algorithm Brain-Score's ``pls_regression``
runs) with the same iterates, for many fits at once (every outer split and inner fold of a layer).

Two forms, batched over problems (zero-padded to one size: a zero row adds nothing to any product):

- kernel form (layers at least half as wide as the stimulus count, see ``KernelPLS.feature_form``, and
  Gram-only layers): NIPALS needs the features only through products with stimulus vectors. With ``a``
  the stimulus-space coefficients of the x weights (``w = X_k^T a``), the x score is
  ``t = K_k a = P_k K_0 a`` and ``||w||^2 = a^T t`` (``P_k`` projecting out the earlier scores); the
  prediction ``X_test W (L^T W)^+ Q^T`` becomes ``K_test B (diag(1/t^T t) T^T K_0 B)^+ Q^T`` with
  ``W = X_0^T B``. ``K_0`` is never deflated, and the per-fold centred Grams are taken from the layer's
  one Gram matrix (as for ridge);
- feature form (the other layers): scikit-learn's steps on the centred features, X deflated explicitly.

The power method (``_get_first_singular_vectors_power_method``), where NIPALS spends its time, runs on the
targets x targets matrix ``G = Y_k^T K_k Y_k`` (T^2 per iteration instead of 2 n (p + T)), with the same
start (the first non-constant target column), the same convergence test (``||w - w_old||^2 < tol``, from
inner products through ``G``) and so the same iteration count; ``G`` is updated by a rank-2 step per
component. The zeroing of near-constant targets and the early stop on a constant residual are
scikit-learn's, so the predictions are the same up to rounding (1e-12, tested). The sign flip
scikit-learn applies to each component leaves the predictions unchanged and is skipped.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
from scipy.linalg import pinv

from neurofit.encoding.ridge import Design, pearson_columns
from neurofit.encoding.splits import kfold

MAX_ITER, TOL = 500, 1e-06  # PLSRegression's defaults
BATCH_BYTES = 128 << 20  # work arrays held at once by one batched NIPALS call


def kernel_pls_predict(k_ff: np.ndarray, k_ef: np.ndarray, y: np.ndarray, n_components: int) -> np.ndarray:
    """Predictions for the evaluation rows of ``PLSRegression(n_components, scale=False)`` fitted on the
    fit rows: ``k_ff`` / ``k_ef`` are the fit x fit / evaluation x fit products of the features centred
    on the fit rows' mean, ``y`` the fit rows' targets."""
    return kernel_pls_predict_many([k_ff], [k_ef], [y], [n_components])[0]


def kernel_pls_predict_many(k_ffs: list[np.ndarray], k_efs: list[np.ndarray], ys: list[np.ndarray],
                            n_components: list[int]) -> list[np.ndarray]:
    """:func:`kernel_pls_predict` for several problems at once (e.g. every inner fold of every split),
    with ``n_components[i]`` components for problem ``i``: their Gram matrices are zero-padded to one
    size (a zero row adds nothing to any product), so each component is a few batched products for
    all problems. The targets must have the same number of columns."""
    eps = np.finfo(np.float64).eps
    size = max(len(k) for k in k_ffs)
    kk = np.zeros((len(k_ffs), size, size))
    for i, k in enumerate(k_ffs):
        kk[i, :len(k), :len(k)] = k
    yk, y_means = _padded_targets(ys, size)
    ky = np.matmul(kk, yk)  # K_0 Y_k: Y_k is deflated, K_0 never is (K_k Y_k = P_k K_0 Y_k)
    scores = np.zeros((len(ys), size, 0))
    tts = np.zeros((len(ys), 0))
    coefs, loadings, used = [], [], []
    gram_y = np.matmul(yk.transpose(0, 2, 1), ky)  # G = Y_k^T K_0 Y_k, updated in rank-2 steps as Y_k deflates
    for live, first in _components(yk, n_components, [ky, gram_y, gram_y.transpose(0, 2, 1)]):
        if yk.shape[2] == 1:  # scikit-learn stops after one iteration
            y_score, k_score = yk[:, :, 0], ky[:, :, 0]
        else:
            v, _ = _power_method_iterate(gram_y, first, live)
            y_score, k_score = np.matmul(yk, v[:, :, None])[:, :, 0], np.matmul(ky, v[:, :, None])[:, :, 0]
        # the last iteration's x weights X_k^T a, a = y_score / ||y_score||^2, normalised as scikit-learn does
        with np.errstate(invalid="ignore", divide="ignore"):  # finished problems divide 0 by 0; zeroed below
            ss = np.einsum("bi,bi->b", y_score, y_score)
            a, t = y_score / ss[:, None], k_score / ss[:, None]
            # t = K_k a = P_k K_0 a (a lies in the deflated space): project out the earlier scores
            t -= np.matmul(scores, (np.einsum("bic,bi->bc", scores, t) / tts)[:, :, None])[:, :, 0]
            norm = np.sqrt(np.maximum(np.einsum("bi,bi->b", a, t), 0.0)) + eps  # ||w||^2 (rounding may dip below 0)
            a, t = a / norm[:, None], t / norm[:, None]
        a[~live], t[~live] = 0.0, 0.0
        tt = np.einsum("bi,bi->b", t, t)
        tt[~live] = 1.0  # finished problems: t = 0, nothing deflates
        q = np.einsum("bit,bi->bt", yk, t) / tt[:, None]
        kt = np.matmul(kk, t[:, :, None])[:, :, 0]
        _deflate_gram(gram_y, np.einsum("bit,bi->bt", ky, t), q, np.einsum("bi,bi->b", t, kt))
        yk -= t[:, :, None] * q[:, None, :]
        ky -= kt[:, :, None] * q[:, None, :]
        scores = np.concatenate([scores, t[:, :, None]], axis=2)
        tts = np.concatenate([tts, tt[:, None]], axis=1)
        coefs.append(a)
        loadings.append(q)
        used.append(live.copy())
    out = []
    for i, (k_ff, k_ef) in enumerate(zip(k_ffs, k_efs, strict=True)):
        keep = [c for c in range(len(coefs)) if used[c][i]]
        if not keep:
            out.append(np.broadcast_to(y_means[i], (len(k_ef), yk.shape[2])).copy())
            continue
        n = len(k_ff)
        t_mat = scores[i][:n, keep]
        b = np.column_stack([coefs[c][i, :n] for c in keep])
        q_mat = np.column_stack([loadings[c][i] for c in keep])
        tt = (t_mat * t_mat).sum(0)
        # w_k = X_k^T a_k = X_0^T P_k a_k, P_k projecting out the earlier (mutually orthogonal) scores
        for k in range(1, b.shape[1]):
            b[:, k] -= t_mat[:, :k] @ ((t_mat[:, :k].T @ b[:, k]) / tt[:k])
        loadings_w = (t_mat.T @ (k_ff @ b)) / tt[:, None]  # L^T W, with l_k = X_0^T t_k / t_k^T t_k
        out.append(k_ef @ b @ pinv(loadings_w, check_finite=False) @ q_mat.T + y_means[i])
    return out


def feature_pls_predict_many(x_fits: list[np.ndarray], x_evals: list[np.ndarray], ys: list[np.ndarray],
                             n_components: list[int]) -> list[np.ndarray]:
    """:func:`kernel_pls_predict_many` from the fit / evaluation rows' features centred on the fit rows'
    mean: scikit-learn's NIPALS step for step (X deflated explicitly, weights and loadings in feature
    space), batched over problems, with the power method's iterate from :func:`_power_method_iterate`.
    Cheaper than the kernel form when the features are fewer than half the stimuli."""
    eps = np.finfo(np.float64).eps
    size, p = max(len(x) for x in x_fits), x_fits[0].shape[1]
    xk = np.zeros((len(x_fits), size, p))
    for i, x in enumerate(x_fits):
        xk[i, :len(x)] = x
    yk, y_means = _padded_targets(ys, size)
    cross = np.matmul(xk.transpose(0, 2, 1), yk)  # X_k^T Y_k, updated as both deflate
    weights, x_loadings, y_loadings, used = [], [], [], []
    gram_y = np.matmul(cross.transpose(0, 2, 1), cross)  # G = Y_k^T X_k X_k^T Y_k, updated in rank-2 steps
    for live, first in _components(yk, n_components, [cross, gram_y, gram_y.transpose(0, 2, 1)]):
        if yk.shape[2] == 1:
            y_score = yk[:, :, 0]
        else:
            v, _ = _power_method_iterate(gram_y, first, live)
            y_score = np.matmul(yk, v[:, :, None])[:, :, 0]
        with np.errstate(invalid="ignore", divide="ignore"):  # finished problems divide 0 by 0; zeroed below
            w = np.matmul(y_score[:, None, :], xk)[:, 0] / np.einsum("bi,bi->b", y_score, y_score)[:, None]
            w /= np.sqrt(np.einsum("bj,bj->b", w, w))[:, None] + eps
        w[~live] = 0.0
        t = np.matmul(xk, w[:, :, None])[:, :, 0]
        tt = np.einsum("bi,bi->b", t, t)
        tt[~live] = 1.0  # finished problems: t = 0, nothing deflates
        x_load = np.matmul(t[:, None, :], xk)[:, 0] / tt[:, None]
        y_load = np.einsum("bit,bi->bt", yk, t) / tt[:, None]
        xk -= t[:, :, None] * x_load[:, None, :]
        yk -= t[:, :, None] * y_load[:, None, :]
        x_t = x_load * tt[:, None]  # X_k^T t
        _deflate_gram(gram_y, np.einsum("bjt,bj->bt", cross, x_t), y_load, np.einsum("bj,bj->b", x_t, x_t))
        cross -= x_t[:, :, None] * y_load[:, None, :]
        weights.append(w)
        x_loadings.append(x_load)
        y_loadings.append(y_load)
        used.append(live.copy())
    out = []
    for i, x_eval in enumerate(x_evals):
        keep = [c for c in range(len(weights)) if used[c][i]]
        if not keep:
            out.append(np.broadcast_to(y_means[i], (len(x_eval), yk.shape[2])).copy())
            continue
        w_mat = np.column_stack([weights[c][i] for c in keep])
        p_mat = np.column_stack([x_loadings[c][i] for c in keep])
        q_mat = np.column_stack([y_loadings[c][i] for c in keep])
        rotations = w_mat @ pinv(p_mat.T @ w_mat, check_finite=False)
        out.append(x_eval @ (rotations @ q_mat.T) + y_means[i])
    return out


def _padded_targets(ys: list[np.ndarray], size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The problems' centred targets zero-padded to ``size`` rows, and their means."""
    yk = np.zeros((len(ys), size, ys[0].shape[1]))
    means = [y.mean(0) for y in ys]
    for i, (y, mean) in enumerate(zip(ys, means, strict=True)):
        yk[i, :len(y)] = y - mean
    return yk, means


def _deflate_gram(gram_y: np.ndarray, cross_t: np.ndarray, q: np.ndarray, t_kt: np.ndarray) -> None:
    """``G <- (Y - t q^T)^T K (Y - t q^T) = G - c q^T - q c^T + (t^T K t) q q^T`` in place, with
    ``c = Y^T K t``: T^2 per problem instead of forming ``Y^T K Y`` anew (n T^2)."""
    left = np.stack([cross_t, q], axis=2)  # (batch, T, 2) @ (batch, 2, T): one pass over G
    right = np.stack([-q, t_kt[:, None] * q - cross_t], axis=1)
    gram_y += np.matmul(left, right)


def _components(yk: np.ndarray, n_components: list[int], alongside: list[np.ndarray]
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per component, ``(live problems, each one's starting target column)``, after scikit-learn's
    bookkeeping of the residual targets ``yk`` (deflated by the caller between steps): near-constant
    columns are zeroed (with the same columns of the ``alongside`` arrays, e.g. ``K_0 Y_k``), and a
    problem stops at its component count or when its residual is constant (with scikit-learn's warning)."""
    eps = np.finfo(np.float64).eps
    limits = np.asarray(n_components)
    live = np.ones(len(yk), dtype=bool)
    for component in range(int(limits.max(initial=0))):
        small = np.all(np.abs(yk) < 10 * eps, axis=1)  # (batch, targets)
        if small.any():
            yk[np.broadcast_to(small[:, None, :], yk.shape)] = 0.0
            for other in alongside:
                other[np.broadcast_to(small[:, None, :], other.shape)] = 0.0
        nonconstant = np.any(np.abs(yk) > eps, axis=1)
        if np.any(live & ~nonconstant.any(1)):
            warnings.warn(f"y residual is constant at iteration {component}", stacklevel=3)
        live &= nonconstant.any(1) & (component < limits)
        if not live.any():
            return
        yield live, nonconstant.argmax(1)


def _power_method_iterate(g: np.ndarray, first: np.ndarray, live: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each live problem, target weights ``v`` such that ``Y_k v`` points as the y score of the last
    iteration of scikit-learn's ``_get_first_singular_vectors_power_method`` (mode A) does, and that
    function's ``n_iter``.

    Its iteration ``i`` has x weights ``w_i`` along ``X_k^T Y_k G^i e_j``, with ``g`` the (targets x targets)
    ``G = Y_k^T K_k Y_k`` of each problem and ``e_j`` the starting column, and stops at the first
    ``i >= 1`` with ``||w_i - w_{i-1}||^2 < tol``. With ``z_i = G^i e_j`` (normalised), the inner products
    are ``<w_a, w_b> = z_a^T G z_b``, so the power method runs on ``G`` itself: T^2 per iteration instead of
    2 n (p + T) (scikit-learn) or n^2 (kernel form), all problems in one batched product, a problem
    leaving the batch when it converges."""
    batch, n_targets = g.shape[:2]
    z = np.zeros((batch, n_targets))
    z[np.arange(batch), first] = 1.0
    out = z.copy()
    n_iter = np.full(batch, MAX_ITER)
    active = np.flatnonzero(live)
    pending = np.ones(len(active), dtype=bool)  # of the active problems: not converged yet
    ga, za = g[active], z[active]
    prev_norm2 = prev_step = None
    with np.errstate(invalid="ignore", divide="ignore"):  # problems that reach exact zeros are not tested again
        for iteration in range(MAX_ITER):
            step = np.matmul(ga, za[:, :, None])[:, :, 0]  # G z_i
            norm2 = np.einsum("bt,bt->b", za, step)  # ||w_i||^2 (up to the common scale)
            length = np.sqrt(np.einsum("bt,bt->b", step, step))
            if prev_norm2 is not None:
                done = pending & (2.0 - 2.0 * prev_step / np.sqrt(norm2 * prev_norm2) < TOL)  # <w_i, w_i-1> = |G z_i-1|
                if done.any():
                    out[active[done]], n_iter[active[done]] = za[done], iteration + 1
                    pending &= ~done
                    if not pending.any():
                        break
                    if pending.sum() <= 0.75 * len(pending):  # drop the converged problems (G is copied: not always)
                        kept = (a[pending] for a in (active, ga, za, step, norm2, length))
                        active, ga, za, step, norm2, length = kept
                        pending = pending[pending]
            prev_norm2, prev_step = norm2, length
            if iteration == MAX_ITER - 1:
                out[active[pending]] = za[pending]
                from sklearn.exceptions import ConvergenceWarning  # here: scikit-learn is slow to import

                warnings.warn("Maximum number of iterations reached", ConvergenceWarning, stacklevel=3)
                break
            za = step / length[:, None]
    return out, n_iter


class KernelPLS:
    """``PLSRegression(n_components, scale=False)`` per outer split and inner fold from one shared Gram matrix."""

    name = "pls"

    def __init__(self, n_components: int, n_features: int, batch_bytes: int = BATCH_BYTES) -> None:
        self.n_components, self.n_features, self.batch_bytes = n_components, n_features, batch_bytes

    def cross_validated(self, design: Design, y: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]],
                        inner_folds: int, seed: int, train_score: bool = True
                        ) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Per split, ``(test predictions, inner-CV r per target on the training stimuli)``: the training
        stimuli in ``stimulus_id`` order, inner folds ``KFold(inner_folds, shuffle=True, seed + k)``.
        ``train_score=False`` skips the inner folds (the r is then None). Every fit of every split runs
        in a few batched NIPALS calls (problems of similar size together, at most ``batch_bytes`` of Grams)."""
        trains = [np.sort(train) for train, _ in splits]
        outer = [(train, test) for train, (_, test) in zip(trains, splits, strict=True)]
        inner = [[(train[fit], train[valid]) for fit, valid in
                  kfold(len(train), inner_folds, seed + k)]
                 for k, train in enumerate(trains)] if train_score else []
        problems = outer + [fold for folds in inner for fold in folds]
        predictions = self._predict_all(design, y, problems)
        out = []
        for k, train in enumerate(trains):
            inner_r = None
            if train_score:
                out_of_fold = np.empty((len(train), y.shape[1]))
                start = len(outer) + k * inner_folds
                for (_, valid), prediction in zip(inner[k], predictions[start:start + inner_folds], strict=True):
                    out_of_fold[np.searchsorted(train, valid)] = prediction
                inner_r = pearson_columns(out_of_fold, y[train])
            out.append((predictions[k], inner_r))
        return out

    def feature_form(self, design: Design) -> bool:
        """NIPALS on the features (a few n p per component) rather than the Gram matrix (n^2): for layers
        narrower than half the stimuli, and for layers of at most 4 x ``n_components`` features, whose
        rank the components can exhaust (with one target, ``||X_k^T y_k||`` then falls to rounding level,
        which the kernel form's ``a^T K a`` cannot resolve)."""
        return design.x is not None and (2 * design.p < design.n or design.p <= 4 * self.n_components)

    def solver(self, design: Design) -> str:
        return f"nipals ({'feature' if self.feature_form(design) else 'kernel'} form)"

    def _predict_all(self, design: Design, y: np.ndarray, problems: list[tuple[np.ndarray, np.ndarray]]
                     ) -> list[np.ndarray]:
        """Predictions of each ``(fit rows, evaluation rows)`` problem, in batches of similar size (a batch
        pads to its largest problem) holding at most ``batch_bytes`` of work arrays."""
        features = self.feature_form(design)
        order = sorted(range(len(problems)), key=lambda i: len(problems[i][0]))
        out: list[np.ndarray] = [np.empty(0)] * len(problems)
        batch: list[int] = []
        for position, i in enumerate(order):
            batch.append(i)
            following = len(problems[order[position + 1]][0]) if position + 1 < len(order) else None
            size, n_targets = following or 0, y.shape[1]
            # a problem's Gram matrix or features, its targets twice and its targets x targets matrix
            problem_bytes = 8 * (size * (design.p if features else size) + 2 * size * n_targets + n_targets**2)
            if (following is None or following > 1.05 * len(problems[batch[0]][0])
                    or (len(batch) + 1) * problem_bytes > self.batch_bytes):
                counts = [min(self.n_components, self.n_features, len(problems[j][0]) - 1) for j in batch]
                ys = [y[problems[j][0]] for j in batch]
                if features:
                    fits, evals = zip(*(self._centred_features(design, *problems[j]) for j in batch), strict=True)
                    results = feature_pls_predict_many(list(fits), list(evals), ys, counts)
                else:
                    kernels = [design.centred_kernels(*problems[j]) for j in batch]
                    results = kernel_pls_predict_many([np.asarray(kf) for kf, _ in kernels],
                                                      [np.asarray(ke) for _, ke in kernels], ys, counts)
                for j, result in zip(batch, results, strict=True):
                    out[j] = result
                batch = []
        return out

    @staticmethod
    def _centred_features(design: Design, fit: np.ndarray, evaluate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x_fit = np.asarray(design.centred(fit), dtype=np.float64)
        mean = x_fit.mean(0)
        x_fit -= mean
        return x_fit, np.asarray(design.centred(evaluate), dtype=np.float64) - mean

