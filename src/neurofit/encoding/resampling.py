"""Bootstrap and permutation resamples of the RSA and CKA test scores of one split, vectorised over draws.

What does not change across draws is computed once per split: the stimulus pairs (upper triangle),
the model's RDM / centred Gram entries, their sort order (RSA ranks), and the neural RDM / Gram of all
neuroids. A draw is then arithmetic on (draws, pairs) arrays:

- a draw of stimuli (with replacement) weights each pair of distinct stimuli {u, v} by ``c_u c_v``
  (the number of pairs of drawn positions that pick it; pairs of a stimulus with itself are left out,
  as :func:`neurofit.encoding.similarity.rdm_similarity` does). Spearman r of the drawn entries is
  the weighted Pearson r of weighted average ranks, and the weighted ranks of a fixed RDM follow from
  one cumulative sum of the weights in that RDM's (fixed) sort order: no sort per draw;
- a permutation of the neural stimulus labels permutes the neural ranks (a gather);
- a draw of neuroids changes the neural RDM / Gram: every draw's pair values are one GEMM
  ``(draws, neuroids) @ (neuroids, pairs)`` of the neuroid multiplicities with the per-pair products,
  and (RSA) one sort per draw, shared by the neuroid-only and the stimuli-and-neuroid draws (the
  same neuroid draws).

The draws are :func:`neurofit.encoding.fit._draws`' (same generator stream as before), so the
resampled scores equal a per-draw computation up to rounding (``tests/encoding/test_metrics.py``).
One caveat: a draw's neural RDM entries come from the GEMM, equal to :func:`similarity.rdm`'s up to
rounding, so two entries that are equal only by coincidence of their values (not because two
stimuli have equal responses) may rank as a tie in one and not in the other (a different Spearman r
for that draw, by up to about one pair's share).
Brain-Score's ``RDMCrossValidated`` / ``CKACrossValidated`` report the spread over cross-validation
splits and define no bootstrap or permutation null: these are neurofit's own.
"""

from __future__ import annotations

import numpy as np

from neurofit.encoding.similarity import rdm

PAIR_BLOCK = 1 << 17  # (draws x pairs) work arrays of ~1 MB in float64 (they stay in cache)


def _pairs(m: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(m, k=1)


def _counts(draws: np.ndarray, size: int, dtype: type = np.float64) -> np.ndarray:
    """Multiplicity of each of ``size`` items in each row of ``draws`` (draws, size)."""
    flat = (draws + size * np.arange(len(draws))[:, None]).ravel()
    return np.bincount(flat, minlength=len(draws) * size).reshape(len(draws), size).astype(dtype)


class _FixedOrder:
    """Weighted average ranks of a fixed vector's entries (scipy's ``rankdata`` of the multiset in which
    entry e appears ``w_e`` times) for many weightings at once, from its one sort order. Weights are
    integers (int64): their cumulative sums are exact and several times faster than in floating point."""

    def __init__(self, values: np.ndarray) -> None:
        self.order = np.argsort(values, kind="stable")
        ordered = values[self.order]
        starts = np.ones(len(values), dtype=bool)
        starts[1:] = ordered[1:] != ordered[:-1]
        self.ties = not starts.all()
        self.group_starts = np.flatnonzero(starts)
        self.group_of = np.cumsum(starts) - 1  # each sorted position's group of equal values
        self.plain = self.ranks(np.ones((1, len(values)), dtype=np.int64))[0]  # every entry once: rankdata's

    def ranks(self, w: np.ndarray) -> np.ndarray:
        """(draws, entries) ranks (float64) for integer weights ``w`` (draws, entries)."""
        sw = w[:, self.order]
        if self.ties:
            totals = np.add.reduceat(sw, self.group_starts, axis=1)
            doubled = (2 * (np.cumsum(totals, 1) - totals) + totals + 1)[:, self.group_of]
        else:
            doubled = 2 * np.cumsum(sw, 1) - sw + 1
        out = np.empty(doubled.shape)
        out[:, self.order] = doubled
        out /= 2
        return out


class _SortedRows:
    """Each row of ``values`` (draws, entries) sorted once; weighted average ranks of its entries for
    any weighting, in that sorted order."""

    def __init__(self, values: np.ndarray) -> None:
        self.order = np.argsort(values, axis=1)
        ordered = np.take_along_axis(values, self.order, 1)
        ties = ordered[:, 1:] == ordered[:, :-1]
        self.first = self.last = None
        if ties.any():
            n = values.shape[1]
            starts = np.ones(values.shape, dtype=bool)
            starts[:, 1:] = ~ties
            ends = np.ones(values.shape, dtype=bool)
            ends[:, :-1] = ~ties
            position = np.broadcast_to(np.arange(n), values.shape)
            self.first = np.maximum.accumulate(np.where(starts, position, 0), axis=1)
            self.last = np.minimum.accumulate(np.where(ends, position, n - 1)[:, ::-1], axis=1)[:, ::-1]

    def in_order(self, a: np.ndarray) -> np.ndarray:
        """``a`` (entries,) or (draws, entries) in each row's sorted order."""
        return a[self.order] if a.ndim == 1 else np.take_along_axis(a, self.order, 1)

    def ranks(self, sw: np.ndarray | None) -> np.ndarray:
        """Ranks (float64) in sorted order for the integer weights in sorted order ``sw`` (None: every
        entry once)."""
        if sw is None:
            if self.first is None:  # no ties: the positions
                return np.broadcast_to(np.arange(1.0, self.order.shape[1] + 1), self.order.shape)
            sw = np.ones(self.order.shape, dtype=np.int64)
        cw = np.cumsum(sw, 1)
        if self.first is None:
            doubled = 2 * cw - sw + 1
        else:
            before = np.take_along_axis(cw - sw, self.first, 1)
            doubled = 2 * before + np.take_along_axis(cw, self.last, 1) - before + 1
        return doubled / 2


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def _weighted_pearson(n: np.ndarray | float, sa: np.ndarray | float, saa: np.ndarray | float,
                      sb: np.ndarray | float, sbb: np.ndarray | float, sab: np.ndarray) -> np.ndarray:
    """Pearson r from weighted sums (total weight ``n``); 0 where either side is constant (as rdm_similarity)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        va, vb = saa - sa * sa / n, sbb - sb * sb / n
        # a constant side leaves only rounding in its variance
        ok = (va > 1e-12 * saa) & (vb > 1e-12 * sbb) & (n > 0)
        return np.where(ok, (sab - sa * sb / n) / np.sqrt(np.where(ok, va * vb, 1.0)), 0.0)


def rsa_resamples(model_rdm: np.ndarray, y: np.ndarray, boot_rows: np.ndarray, boot_cols: np.ndarray,
                  perm: np.ndarray) -> dict[str, np.ndarray]:
    """Spearman r of the model's and the neural RDM of one split's test stimuli (``y``: stimulus,
    neuroid) for each bootstrap draw of stimuli (``boot_rows``), of neuroids (``boot_cols``), of both,
    and for each permutation of the neural stimulus labels (``perm``)."""
    m, t = y.shape
    i, j = _pairs(m)
    model = _FixedOrder(model_rdm[i, j])
    neural_rdm = rdm(y)
    neural = _FixedOrder(neural_rdm[i, j])
    n_pairs = len(i)
    ra = model.plain
    # every pair once: the sums of the fixed ranks (per draw, broadcast)
    n_all, sa, saa = float(n_pairs), ra.sum(), (ra * ra).sum()
    sb, sbb = neural.plain.sum(), (neural.plain**2).sum()
    step = max(1, PAIR_BLOCK // n_pairs)
    # permutations: the neural ranks permuted with the labels, means and variances unchanged
    ranks_neural = np.zeros((m, m))
    ranks_neural[i, j] = neural.plain
    ranks_neural[j, i] = neural.plain
    null = np.empty(len(perm))
    for s in range(0, len(perm), step):
        p = perm[s:s + step]
        null[s:s + step] = _weighted_pearson(n_all, sa, saa, sb, sbb, ranks_neural[p[:, i], p[:, j]] @ ra)
    # bootstrap draw b takes stimuli boot_rows[b] and neuroids boot_cols[b]: the stimulus weights and the
    # model's ranks under them serve the stimuli-only and the both draws, each draw's neural RDM of its
    # neuroids (one GEMM) and its sort the neuroids-only and the both draws
    counts = _counts(boot_rows, m, np.int64)
    neuroid_counts = _counts(boot_cols, t)
    yr = y - y.mean(1, keepdims=True)  # a per-stimulus shift leaves each draw's correlations unchanged
    products = yr[i] * yr[j]  # (pairs, neuroids)
    squares = yr * yr
    stimuli, only, both = (np.empty(len(boot_rows)) for _ in range(3))
    for s in range(0, len(boot_rows), step):
        w = counts[s:s + step, i] * counts[s:s + step, j]
        n_w = w.sum(1)
        ra_w = model.ranks(w)
        wa = w * ra_w
        sa_w, saa_w = wa.sum(1), _rowdot(wa, ra_w)
        rb = neural.ranks(w)
        wb = w * rb
        stimuli[s:s + step] = _weighted_pearson(n_w, sa_w, saa_w, wb.sum(1), _rowdot(wb, rb), _rowdot(wa, rb))
        c = neuroid_counts[s:s + step]
        mean = c @ yr.T / t  # (draws, m): each draw's stimulus means over its neuroids
        second = c @ squares.T
        var = second - t * mean * mean
        cov = c @ products.T - t * mean[:, i] * mean[:, j]
        norms = np.sqrt(np.maximum(var, 0.0))
        norms[var <= 1e-12 * second] = np.inf  # a constant row correlates 0 with everything
        values = 1.0 - cov / (norms[:, i] * norms[:, j])
        rows = _SortedRows(values)
        rb = rows.ranks(None)
        only[s:s + step] = _weighted_pearson(n_all, sa, saa, rb.sum(1), _rowdot(rb, rb), _rowdot(rows.in_order(ra), rb))
        sw = rows.in_order(w)
        rb = rows.ranks(sw)
        wrb = sw * rb
        both[s:s + step] = _weighted_pearson(n_w, sa_w, saa_w, wrb.sum(1), _rowdot(wrb, rb),
                                             _rowdot(rows.in_order(ra_w), wrb))
    return {"boot_stimuli": stimuli, "boot_neuroids": only, "boot_both": both, "null": null}


def cka_resamples(gram_x: np.ndarray, y: np.ndarray, boot_rows: np.ndarray, boot_cols: np.ndarray,
                  perm: np.ndarray) -> dict[str, np.ndarray]:
    """Debiased linear CKA of one split's test stimuli from the model's centred Gram matrix of them
    (``gram_x``) and the responses ``y`` (stimulus, neuroid), for the same kinds of draws as
    :func:`rsa_resamples`. The unbiased HSIC assumes distinct stimuli: a bootstrap draw keeps each
    drawn stimulus once (as the RSA resamples leave out the pairs of a stimulus with itself). It does
    not change when the features are shifted, so a sub-matrix of the Gram matrices centred over all
    test stimuli needs no centring of its own: a draw of stimuli is a 0/1 weighting of them (its HSIC
    terms are quadratic forms), a permutation a gather of the neural Gram matrix, a draw of neuroids a
    weighting of each neuroid's products by its multiplicity (one GEMM for every draw's pairs)."""
    m, t = y.shape
    yc = y - y.mean(0)
    gram_y = yc @ yc.T
    off = ~np.eye(m, dtype=bool)
    k_off, l_off = gram_x * off, gram_y * off  # diagonals left out
    full = np.full(1, m)
    ks, ls = k_off.sum(0), l_off.sum(0)
    kk_all = _hsic_terms(np.sum(k_off * k_off), k_off.sum(), k_off.sum(), ks @ ks, full)
    ll_all = _hsic_terms(np.sum(l_off * l_off), l_off.sum(), l_off.sum(), ls @ ls, full)
    kept = np.minimum(_counts(boot_rows, m), 1.0)  # each draw's distinct stimuli as 0/1 weights
    n_kept = kept.sum(1)
    out = {}

    # stimuli
    ku, lu = kept @ k_off, kept @ l_off
    sk, sl = (kept * ku).sum(1), (kept * lu).sum(1)

    def form(a: np.ndarray) -> np.ndarray:
        return ((kept @ a) * kept).sum(1)

    kl = _hsic_terms(form(k_off * l_off), sk, sl, (kept * ku * lu).sum(1), n_kept)
    kk = _hsic_terms(form(k_off * k_off), sk, sk, (kept * ku * ku).sum(1), n_kept)
    ll = _hsic_terms(form(l_off * l_off), sl, sl, (kept * lu * lu).sum(1), n_kept)
    out["boot_stimuli"] = _cka(kl, kk * ll, n_kept)

    # permutations of the neural labels: only HSIC(K, L) changes
    null = np.empty(len(perm))
    step = max(1, PAIR_BLOCK // (m * m))
    for s in range(0, len(perm), step):
        p = perm[s:s + step]
        cross = (gram_y[p[:, :, None], p[:, None, :]] * k_off).sum((1, 2))  # k_off's zero diagonal
        kl = _hsic_terms(cross, k_off.sum(), l_off.sum(), ls[p] @ ks, np.full(len(p), m))
        null[s:s + step] = _cka(kl, np.broadcast_to(kk_all * ll_all, kl.shape), np.full(len(p), m))
    out["null"] = null

    # neuroids, alone and with the stimulus draws: each draw's neural Gram entries from one GEMM
    i, j = _pairs(m)
    k_pairs = gram_x[i, j]
    products = yc[i] * yc[j]  # (pairs, neuroids)
    squares = yc * yc
    only, both = np.empty(len(boot_cols)), np.empty(len(boot_cols))
    step = max(1, PAIR_BLOCK // len(i))
    every = np.full(1, m)
    for s in range(0, len(boot_cols), step):
        c = _counts(boot_cols[s:s + step], t)
        l_pairs = c @ products.T  # (draws, pairs): off-diagonal entries of each draw's neural Gram
        diagonal = c @ squares.T  # (draws, m)
        for u, result in ((None, only), (kept[s:s + step], both)):
            if u is None:  # every stimulus
                pair_w, n = 1.0, every
                rk = np.broadcast_to(ks, (len(c), m))
                rl = (c * (yc.sum(0))) @ yc.T - diagonal
            else:
                pair_w, n = u[:, i] * u[:, j], n_kept[s:s + step]
                rk = (u @ k_off) * u
                rl = u * ((c * (u @ yc)) @ yc.T - u * diagonal)
            weighted_l = pair_w * l_pairs
            sum_k = 2 * (pair_w * k_pairs).sum(1) if u is not None else np.full(len(c), k_off.sum())
            sum_l = 2 * weighted_l.sum(1)
            kl = _hsic_terms(2 * weighted_l @ k_pairs, sum_k, sum_l, (rk * rl).sum(1), n)
            kk = kk_all if u is None else _hsic_terms(2 * (pair_w * k_pairs) @ k_pairs, sum_k, sum_k,
                                                      (rk * rk).sum(1), n)
            ll = _hsic_terms(2 * (weighted_l * l_pairs).sum(1), sum_l, sum_l, (rl * rl).sum(1), n)
            result[s:s + step] = _cka(kl, kk * ll, n)
    out["boot_neuroids"], out["boot_both"] = only, both
    return out


def _hsic_terms(cross: np.ndarray, sum_k: np.ndarray, sum_m: np.ndarray, row_sums: np.ndarray,
                n: np.ndarray) -> np.ndarray:
    """Song et al.'s unbiased HSIC from its terms (diagonals left out): sum of K o M, the sums of
    K and M, the dot product of their row sums, over ``n`` stimuli."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (cross + sum_k * sum_m / ((n - 1) * (n - 2)) - 2.0 * row_sums / (n - 2)) / (n * (n - 3))


def _cka(kl: np.ndarray, denom: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Debiased CKA from HSIC(K, M) and HSIC(K, K) HSIC(M, M); NaN with fewer than 4 distinct stimuli."""
    with np.errstate(invalid="ignore", divide="ignore"):
        cka = np.where(denom > 0, kl / np.sqrt(np.where(denom > 0, denom, 1.0)), 0.0)
    return np.where(n >= 4, cka, np.nan)
