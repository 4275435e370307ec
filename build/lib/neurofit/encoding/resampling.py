"""Bootstrap and permutation resamples of the RSA and CKA test scores of one split, vectorised over draws,
for every group of neuroids (region) of the split at once.

What does not change across draws is computed once per split: the stimulus pairs (upper triangle),
the model's RDM / centred Gram entries, their sort order (RSA ranks), and the neural RDM / Gram of all
neuroids. What depends only on the stimulus draws (the same for every group: they are drawn first) is
computed once for all groups: the pair weights, the model's ranks and sums under them (RSA), the model's
HSIC terms (CKA). A draw is then arithmetic on (draws, pairs) arrays:

- a draw of stimuli (with replacement) weights each pair of distinct stimuli {u, v} by ``c_u c_v``
  (the number of pairs of drawn positions that pick it; pairs of a stimulus with itself are left out,
  as :func:`neurofit.encoding.similarity.rdm_similarity` does). Spearman r of the drawn entries is
  the weighted Pearson r of weighted average ranks. The pairs are laid out in the model RDM's sort
  order, so the model's weighted ranks are one cumulative sum of the weights (no gather), a fixed neural
  RDM's one gather and cumulative sum; the sum of the ranks is N(N+1)/2 and the sum of their squares
  N(N+1)(2N+1)/6 less sum T(T^2-1)/12 over the tie groups of total weight T (N = total weight), so only
  the cross term needs the order. All of it is exact integer or half-integer arithmetic (below 2^53 up
  to a few hundred test stimuli), so the order of the sums does not change a bit;
- a permutation of the neural stimulus labels permutes the neural ranks / Gram entries (a gather);
- a draw of neuroids changes the neural RDM / Gram: every draw's pair values are one GEMM
  ``(draws, neuroids) @ (neuroids, pairs)`` of the neuroid multiplicities with the per-pair products,
  and (RSA) one sort per draw (of integer keys that carry each entry's index: :func:`_row_orders`),
  shared by the neuroid-only and the stimuli-and-neuroid draws (the same neuroid draws). CKA's HSIC is
  bilinear in the Gram matrices, so over all stimuli it is a linear (HSIC(K, L)) and a quadratic
  (HSIC(L, L)) form of the neuroid multiplicities: no per-draw Gram entries (with a stimulus draw, one GEMM).

The (draws, pairs) work arrays are allocated once per split (:class:`_Work`): fresh ones per block of
draws cost page faults that took as long as the arithmetic.

The draws are :func:`neurofit.encoding.fit._split_draws`' (same generator streams as a per-group
computation), so the resampled scores equal a per-draw computation up to rounding
(``tests/encoding/test_resampling.py``, ``test_metrics.py``). One caveat: a draw's neural RDM entries
come from the GEMM, equal to :func:`similarity.rdm`'s up to rounding, so two entries that are equal only
by coincidence of their values (not because two stimuli have equal responses) may rank as a tie in one
and not in the other (a different Spearman r for that draw, by up to about one pair's share).
Brain-Score's ``RDMCrossValidated`` / ``CKACrossValidated`` report the spread over cross-validation
splits and define no bootstrap or permutation null: these are neurofit's own.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from neurofit.encoding.similarity import rdm

PAIR_BLOCK = 1 << 17  # (draws x pairs) work arrays of ~1 MB in float64 (they stay in cache)
GATHER_BLOCK = 1 << 14  # (permutations x pairs) gathered entries per block: a gather is fastest from L2

GroupDraws = tuple[np.ndarray, np.ndarray]  # one group's bootstrap neuroid columns and permutations
# the per-block GEMMs are too small to gain from BLAS threads: with 2 OpenBLAS threads on a shared 2-core
# machine the resamples took 4-15x the CPU time of one thread (the pipeline's fit jobs run with one)
single_threaded = threadpool_limits.wrap(limits=1, user_api="blas")


def _pairs(m: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(m, k=1)


def _counts(draws: np.ndarray, size: int, dtype: type = np.float64) -> np.ndarray:
    """Multiplicity of each of ``size`` items in each row of ``draws`` (draws, size)."""
    flat = (draws + size * np.arange(len(draws))[:, None]).ravel()
    return np.bincount(flat, minlength=len(draws) * size).reshape(len(draws), size).astype(dtype)


def _block_rows(width: int, block: int = PAIR_BLOCK) -> int:
    """Draws per block, so that a (draws, width) work array holds about ``block`` entries."""
    return max(1, block // width)


def _blocks(n: int, width: int, block: int = PAIR_BLOCK) -> list[slice]:
    """Slices of ``n`` draws in blocks of :func:`_block_rows`."""
    step = _block_rows(width, block)
    return [slice(s, s + step) for s in range(0, n, step)]


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


class _Work:
    """Work arrays of one shape (draws per block x pairs), allocated once and reused by every block of
    draws and every group: numpy's fresh (draws x pairs) temporaries of ~1 MB are mapped and unmapped by
    glibc around each block, and their page faults cost about as much as the arithmetic (measured: twice
    the time of the RSA resamples without them)."""

    def __init__(self, rows: int, cols: int) -> None:
        self.shape = (rows, cols)
        self.arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, rows: int, dtype: type = np.float64) -> np.ndarray:
        """The first ``rows`` rows of work array ``name`` (contiguous; its contents are left over)."""
        if name not in self.arrays:
            self.arrays[name] = np.empty(self.shape, dtype)
        return self.arrays[name][:rows]


def _take(a: np.ndarray, index: np.ndarray, out: np.ndarray, axis: int | None = None) -> np.ndarray:
    """``np.take`` into ``out``; the indices are valid, so no bounds-checked (buffered) copy."""
    return np.take(a, index, axis=axis, out=out, mode="clip")


def _sum_squared_ranks(n: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """sum_e w_e r_e^2 of the weighted average ranks r of a multiset of ``n`` (per row) items: the N
    ranks' squares less each tie group's spread about its average rank, ``spread`` = sum T^3 - T over
    the groups' total weights T (divided by 12; exact in float64 while N^3 < 2^53)."""
    return n * (n + 1) * (2 * n + 1) / 6 - spread / 12


def _spread(totals: np.ndarray) -> np.ndarray:
    """sum T^3 - T over the groups' total weights ``totals`` (draws, groups), exact (float64)."""
    t = totals.astype(np.float64)
    return (t * t * t - t).sum(1)


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
        self.plain = np.empty(len(values))  # every entry once: rankdata's
        self.plain[self.order] = self.doubled_ranks(np.ones((1, len(values)), dtype=np.int64))[0] / 2

    def totals(self, sw: np.ndarray) -> np.ndarray:
        """Total weight of each tie group, for weights ``sw`` (draws, entries) in sorted order."""
        return np.add.reduceat(sw, self.group_starts, axis=1) if self.ties else sw

    def doubled_ranks(self, sw: np.ndarray) -> np.ndarray:
        """Twice the ranks (int64, exact), in sorted order, for integer weights ``sw`` in sorted order."""
        if self.ties:
            totals = self.totals(sw)
            return (2 * (np.cumsum(totals, 1) - totals) + totals + 1)[:, self.group_of]
        return 2 * np.cumsum(sw, 1) - sw + 1


class _SortedRows:
    """Each row of ``values`` (draws, entries) sorted once, ties included; weighted average ranks of its
    entries for any weighting, in that sorted order (the rows of neuroid draws with tied entries)."""

    def __init__(self, values: np.ndarray, order: np.ndarray) -> None:
        self.order = order
        ordered = np.take_along_axis(values, order, 1)
        n = values.shape[1]
        starts = np.ones(values.shape, dtype=bool)
        starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
        ends = np.ones(values.shape, dtype=bool)
        ends[:, :-1] = starts[:, 1:]
        position = np.broadcast_to(np.arange(n), values.shape)
        self.first = np.maximum.accumulate(np.where(starts, position, 0), axis=1)
        self.last = np.minimum.accumulate(np.where(ends, position, n - 1)[:, ::-1], axis=1)[:, ::-1]

    def in_order(self, a: np.ndarray) -> np.ndarray:
        """``a`` (entries,) or (draws, entries) in each row's sorted order."""
        return a[self.order] if a.ndim == 1 else np.take_along_axis(a, self.order, 1)

    def ranks(self, sw: np.ndarray) -> np.ndarray:
        """Ranks (float64) in sorted order for the integer weights in sorted order ``sw``."""
        cw = np.cumsum(sw, 1)
        before = np.take_along_axis(cw - sw, self.first, 1)
        return (2 * before + np.take_along_axis(cw, self.last, 1) - before + 1) / 2


def _weighted_pearson(n: np.ndarray | float, sa: np.ndarray | float, saa: np.ndarray | float,
                      sb: np.ndarray | float, sbb: np.ndarray | float, sab: np.ndarray) -> np.ndarray:
    """Pearson r from weighted sums (total weight ``n``); 0 where either side is constant (as rdm_similarity)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        va, vb = saa - sa * sa / n, sbb - sb * sb / n
        # a constant side leaves only rounding in its variance
        ok = (va > 1e-12 * saa) & (vb > 1e-12 * sbb) & (n > 0)
        return np.where(ok, (sab - sa * sb / n) / np.sqrt(np.where(ok, va * vb, 1.0)), 0.0)


def _permuted_pair_sums(table: np.ndarray, perm: np.ndarray, i: np.ndarray, j: np.ndarray,
                        weights: np.ndarray) -> np.ndarray:
    """sum_e weights_e table[perm[b, i_e], perm[b, j_e]] for each permutation b: one gather of the
    permuted pairs from the flat (m x m) ``table``, in blocks that keep the indices in cache."""
    m = table.shape[0]
    flat = table.ravel()
    out = np.empty(len(perm))
    work = _Work(_block_rows(len(i), GATHER_BLOCK), len(i))
    for rows in _blocks(len(perm), len(i), GATHER_BLOCK):
        p = perm[rows]
        codes, second = work.get("codes", len(p), np.int64), work.get("second", len(p), np.int64)
        _take(p * m, i, codes, axis=1)
        codes += _take(p, j, second, axis=1)
        out[rows] = _take(flat, codes, work.get("gathered", len(p))) @ weights
    return out


def _row_orders(values: np.ndarray, keys: np.ndarray, high: np.ndarray, equal: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Each row's sort order of ``values`` (draws, entries; finite), written into ``keys`` (int64, same
    shape; ``high`` int64 and ``equal`` bool are work arrays), and the rows with tied entries. Sorting
    integer keys is about twice as fast as ``argsort``: a key is the value's bits (an order-preserving map
    of float64 to int64) with its low bits replaced by the entry's index, so the sorted keys carry the
    order. Two values that agree in the kept bits (a relative gap under ~2^-(52 - index bits)) can sort
    either way: those rows are sorted again by ``argsort`` and checked for true ties."""
    n = values.shape[1]
    shift = max(1, (n - 1).bit_length())
    bits = values.view(np.int64)
    np.right_shift(bits, 63, out=keys)
    keys &= np.int64(0x7FFFFFFFFFFFFFFF)
    keys ^= bits  # negative floats: their bits reversed
    keys >>= shift
    keys <<= shift
    keys |= np.arange(n)
    keys.sort(axis=1)
    np.right_shift(keys, shift, out=high)
    np.equal(high[:, 1:], high[:, :-1], out=equal[:, 1:])
    unsure = np.flatnonzero(equal[:, 1:].any(1))
    keys &= np.int64((1 << shift) - 1)
    if not len(unsure):
        return keys, unsure
    keys[unsure] = np.argsort(values[unsure], axis=1)
    ordered = np.take_along_axis(values[unsure], keys[unsure], 1)
    return keys, unsure[(ordered[:, 1:] == ordered[:, :-1]).any(1)]


def _neuroid_draw_rdms(c: np.ndarray, yr: np.ndarray, products: np.ndarray, squares: np.ndarray,
                       i: np.ndarray, j: np.ndarray, out: np.ndarray, work: tuple[np.ndarray, np.ndarray]
                       ) -> np.ndarray:
    """Correlation-distance RDM entries (draws, pairs) of the stimuli's responses over each draw's
    neuroids (multiplicities ``c``), from the row-centred responses ``yr`` and their per-pair products,
    into ``out`` (``work``: two work arrays of its shape)."""
    t = yr.shape[1]
    mean = c @ yr.T / t  # (draws, m): each draw's stimulus means over its neuroids
    squared = c @ squares.T
    var = squared - t * mean * mean
    norms = np.sqrt(np.maximum(var, 0.0))
    norms[var <= 1e-12 * squared] = np.inf  # a constant row correlates 0 with everything
    np.matmul(c, products.T, out=out)
    first, second = work
    out -= np.multiply(_take(t * mean, i, first, axis=1), _take(mean, j, second, axis=1), out=first)  # covariances
    out /= np.multiply(_take(norms, i, first, axis=1), _take(norms, j, second, axis=1), out=first)
    return np.subtract(1.0, out, out=out)


@single_threaded
def rsa_resamples(model_rdm: np.ndarray, ys: list[np.ndarray], boot_rows: np.ndarray,
                  draws: list[GroupDraws]) -> list[dict[str, np.ndarray]]:
    """Spearman r of the model's and the neural RDM of one split's test stimuli, for each group of
    neuroids (``ys``: stimulus, neuroid each) and each bootstrap draw of stimuli (``boot_rows``, the
    same for every group), of the group's neuroids (``draws[g][0]``), of both, and for each permutation
    of the neural stimulus labels (``draws[g][1]``)."""
    m = len(model_rdm)
    i, j = _pairs(m)
    model = _FixedOrder(model_rdm[i, j])
    i, j = i[model.order], j[model.order]  # pairs in the model's sort order
    ra = model.plain[model.order]
    groups = [_RsaGroup(y, i, j, ra, *drawn) for y, drawn in zip(ys, draws, strict=True)]
    counts = _counts(boot_rows, m, np.int64)
    work = _Work(_block_rows(len(i)), len(i))
    for rows in _blocks(len(boot_rows), len(i)):
        block = _StimulusBlock(counts[rows], i, j, model, work)
        for group in groups:
            group.resample_block(rows, block, work)
    return [group.out for group in groups]


class _StimulusBlock:
    """A block of stimulus draws as pair weights ``w`` (draws, pairs in the model's order) and what
    every group's draws of it share: twice the model's ranks under them times the weights (``wa2``,
    integers), the weights' sums and the sums of the model's ranks and their squares."""

    def __init__(self, counts: np.ndarray, i: np.ndarray, j: np.ndarray, model: _FixedOrder, work: _Work) -> None:
        rows = len(counts)
        self.w = w = _take(counts, i, work.get("w", rows, np.int64), axis=1)
        w *= _take(counts, j, work.get("int", rows, np.int64), axis=1)
        n = w.sum(1)
        self.n = n.astype(np.float64)
        self.sum_ranks = self.n * (self.n + 1) / 2  # of any weighted average ranks
        cubes = np.multiply(w, w, out=work.get("int", rows, np.int64))
        cubes *= w
        cubes -= w
        # sum of the squared ranks of an order without ties (each entry its own group)
        self.sum_squares = _sum_squared_ranks(self.n, cubes.sum(1).astype(np.float64))
        if model.ties:
            doubled = model.doubled_ranks(w)
            self.model_sum_squares = _sum_squared_ranks(self.n, _spread(model.totals(w)))
        else:  # pairs in the model's order: its ranks are the cumulative weights
            doubled = np.cumsum(w, 1, out=work.get("int", rows, np.int64))
            doubled *= 2
            doubled -= w
            doubled += 1
            self.model_sum_squares = self.sum_squares
        self.wa2 = np.multiply(w, doubled, out=work.get("wa2", rows, np.int64))
        # sum wa2 = 2 sum_ranks = N (N + 1), less sum wa2 w: the order-free part of :meth:`cross`
        self.cross_offset = n * (n + 1) - _rowdot(self.wa2, w)

    def cross(self, flat_order: np.ndarray, work: _Work) -> np.ndarray:
        """sum_e wa_e r_e (wa = wa2 / 2) for the weighted ranks r of an order without ties, ``flat_order``
        (each row's order, as positions in the flat (draws, pairs) block): in that order a rank is the
        cumulative weight cw less half the entry's own weight w less one half, so
        4 sum wa r = 2 sum wa2_sorted cw - sum wa2 w + sum wa2 (integers: exact)."""
        rows = len(self.w)
        cw = np.cumsum(_take(self.w, flat_order, work.get("int", rows, np.int64)), 1,
                       out=work.get("int2", rows, np.int64))
        return (2 * _rowdot(_take(self.wa2, flat_order, work.get("int", rows, np.int64)), cw) + self.cross_offset) / 4

    def pearson(self, sum_squares: np.ndarray, cross: np.ndarray) -> np.ndarray:
        """Weighted Spearman r of the model's ranks and another ranking from its sums."""
        return _weighted_pearson(self.n, self.sum_ranks, self.model_sum_squares, self.sum_ranks, sum_squares, cross)


class _RsaGroup:
    """One group's neural side of :func:`rsa_resamples` (pairs in the model's sort order)."""

    def __init__(self, y: np.ndarray, i: np.ndarray, j: np.ndarray, ra: np.ndarray, boot_cols: np.ndarray,
                 perm: np.ndarray) -> None:
        m, t = y.shape
        self.i, self.j, self.ra = i, j, ra
        # every pair once: the sums of the fixed ranks (per draw, broadcast)
        self.n_all, self.sa, self.saa = float(len(i)), ra.sum(), (ra * ra).sum()
        self.neural = _FixedOrder(rdm(y)[i, j])
        # permutations: the neural ranks permuted with the labels, means and variances unchanged
        ranks_neural = np.zeros((m, m))
        ranks_neural[i, j] = ranks_neural[j, i] = plain = self.neural.plain
        null = _weighted_pearson(self.n_all, self.sa, self.saa, plain.sum(), (plain * plain).sum(),
                                 _permuted_pair_sums(ranks_neural, perm, i, j, ra))
        n_boot = len(boot_cols)
        self.out = {"boot_stimuli": np.empty(n_boot), "boot_neuroids": np.empty(n_boot),
                    "boot_both": np.empty(n_boot), "null": null}
        self.neuroid_counts = _counts(boot_cols, t)
        self.yr = y - y.mean(1, keepdims=True)  # a per-stimulus shift leaves each draw's correlations unchanged
        self.products = self.yr[i] * self.yr[j]  # (pairs, neuroids)
        self.squares = self.yr * self.yr
        self.positions = np.arange(1.0, len(i) + 1)

    def resample_block(self, rows: slice, block: _StimulusBlock, work: _Work) -> None:
        """Bootstrap draws ``rows``: stimuli (``block``), the group's neuroids, and both. Each neuroid
        draw's RDM is sorted once, for the neuroid and the both draws."""
        n_rows, n_pairs = block.w.shape
        offsets = (n_pairs * np.arange(n_rows))[:, None]
        flat = work.get("flat", n_rows, np.int64)
        # stimuli: the fixed neural RDM's weighted ranks, in its order
        if self.neural.ties:
            sw = block.w[:, self.neural.order]
            sum_squares = _sum_squared_ranks(block.n, _spread(self.neural.totals(sw)))
            cross = _rowdot(block.wa2[:, self.neural.order], self.neural.doubled_ranks(sw)) / 4
        else:
            sum_squares = block.sum_squares
            cross = block.cross(np.add(offsets, self.neural.order, out=flat), work)
        self.out["boot_stimuli"][rows] = block.pearson(sum_squares, cross)
        # neuroids: each draw's RDM and its sort order
        values = _neuroid_draw_rdms(self.neuroid_counts[rows], self.yr, self.products, self.squares, self.i, self.j,
                                    work.get("values", n_rows), (work.get("float", n_rows), work.get("float2", n_rows)))
        order, tied = _row_orders(values, work.get("order", n_rows, np.int64), work.get("int", n_rows, np.int64),
                                  work.get("equal", n_rows, np.bool_))
        # neuroids alone: ranks are the positions (no ties)
        n = self.n_all
        only = _weighted_pearson(n, self.sa, self.saa, n * (n + 1) / 2, n * (n + 1) * (2 * n + 1) / 6,
                                 _take(self.ra, order, work.get("float", n_rows)) @ self.positions)
        both = block.pearson(block.sum_squares, block.cross(np.add(order, offsets, out=flat), work))
        if len(tied):  # draws whose RDM has equal entries: average ranks over each row's tie groups
            sorted_rows = _SortedRows(values[tied], order[tied])
            rb = sorted_rows.ranks(np.ones(sorted_rows.order.shape, dtype=np.int64))
            only[tied] = _weighted_pearson(n, self.sa, self.saa, rb.sum(1), _rowdot(rb, rb),
                                           _rowdot(sorted_rows.in_order(self.ra), rb))
            sw = sorted_rows.in_order(block.w[tied])
            rb = sorted_rows.ranks(sw)
            wrb = sw * rb
            cross = _rowdot(sorted_rows.in_order(block.wa2[tied]), rb) / 2
            both[tied] = _weighted_pearson(block.n[tied], block.sum_ranks[tied], block.model_sum_squares[tied],
                                           wrb.sum(1), _rowdot(wrb, rb), cross)
        self.out["boot_neuroids"][rows] = only
        self.out["boot_both"][rows] = both


@single_threaded
def cka_resamples(gram_x: np.ndarray, ys: list[np.ndarray], boot_rows: np.ndarray,
                  draws: list[GroupDraws]) -> list[dict[str, np.ndarray]]:
    """Debiased linear CKA of one split's test stimuli from the model's centred Gram matrix of them
    (``gram_x``) and each group's responses (``ys``: stimulus, neuroid each), for the same kinds of
    draws as :func:`rsa_resamples`. The unbiased HSIC assumes distinct stimuli: a bootstrap draw keeps
    each drawn stimulus once (as the RSA resamples leave out the pairs of a stimulus with itself). It
    does not change when the features are shifted, so a sub-matrix of the Gram matrices centred over
    all test stimuli needs no centring of its own: a draw of stimuli is a 0/1 weighting of them (its
    HSIC terms are quadratic forms; the model's terms are shared by the groups), a permutation a gather
    of the neural Gram matrix, a draw of neuroids a weighting of each neuroid's rank-one Gram matrix by
    its multiplicity (HSIC is bilinear: over all stimuli a linear and a quadratic form of the
    multiplicities; with a stimulus draw, one GEMM for every draw's pair entries)."""
    model = _CkaModel(gram_x, boot_rows)
    groups = [_CkaGroup(model, y, *drawn) for y, drawn in zip(ys, draws, strict=True)]
    work = _Work(_block_rows(len(model.i)), len(model.i))
    for rows in _blocks(len(boot_rows), len(model.i)):
        u = model.kept[rows]
        w = _take(u, model.i, work.get("w", len(u)), axis=1)  # each draw's kept pairs, shared by the groups
        w *= _take(u, model.j, work.get("float", len(u)), axis=1)
        for group in groups:
            group.both_block(rows, u, w, work)
    return [group.out for group in groups]


class _CkaModel:
    """The model side of :func:`cka_resamples`: its Gram matrix and its HSIC terms over all stimuli and
    under every stimulus draw (shared by the groups)."""

    def __init__(self, gram_x: np.ndarray, boot_rows: np.ndarray) -> None:
        m = len(gram_x)
        self.i, self.j = _pairs(m)
        self.k_pairs = gram_x[self.i, self.j]
        self.k_off = gram_x * ~np.eye(m, dtype=bool)  # diagonal left out
        self.ks, self.k_sum = self.k_off.sum(0), self.k_off.sum()
        self.kk_all = _hsic_terms(np.sum(self.k_off * self.k_off), self.k_sum, self.k_sum, self.ks @ self.ks,
                                  np.full(1, m))
        self.kept = np.minimum(_counts(boot_rows, m), 1.0)  # each draw's distinct stimuli as 0/1 weights
        self.n_kept = self.kept.sum(1)
        self.ku = self.kept @ self.k_off
        self.rk = self.kept * self.ku  # each draw's row sums of its K, over its stimuli
        self.sk = self.rk.sum(1)
        self.kk = _hsic_terms(self.form(self.k_off * self.k_off), self.sk, self.sk, (self.rk * self.ku).sum(1),
                              self.n_kept)

    def form(self, a: np.ndarray) -> np.ndarray:
        """u^T a u for each draw's 0/1 stimulus weights u."""
        return ((self.kept @ a) * self.kept).sum(1)


class _CkaGroup:
    """One group's neural side of :func:`cka_resamples`: its stimulus, neuroid and permutation
    resamples at construction, its stimulus-and-neuroid draws block by block (:meth:`both_block`)."""

    def __init__(self, model: _CkaModel, y: np.ndarray, boot_cols: np.ndarray, perm: np.ndarray) -> None:
        m, t = y.shape
        self.model = model
        self.yc = yc = y - y.mean(0)
        gram_y = yc @ yc.T
        l_off = gram_y * ~np.eye(m, dtype=bool)
        ls = l_off.sum(0)
        full = np.full(1, m)
        ll_all = _hsic_terms(np.sum(l_off * l_off), l_off.sum(), l_off.sum(), ls @ ls, full)
        kept, n_kept = model.kept, model.n_kept
        self.out = {"boot_both": np.empty(len(boot_cols))}

        # stimuli
        lu = kept @ l_off
        sl = (kept * lu).sum(1)
        kl = _hsic_terms(model.form(model.k_off * l_off), model.sk, sl, (model.rk * lu).sum(1), n_kept)
        ll = _hsic_terms(model.form(l_off * l_off), sl, sl, (kept * lu * lu).sum(1), n_kept)
        self.out["boot_stimuli"] = _cka(kl, model.kk * ll, n_kept)

        # permutations of the neural labels: only HSIC(K, L) changes (k_off's diagonal is zero)
        n_perm = np.full(len(perm), m)
        cross = 2 * _permuted_pair_sums(gram_y, perm, model.i, model.j, model.k_pairs)
        kl = _hsic_terms(cross, model.k_sum, l_off.sum(), ls[perm] @ model.ks, n_perm)
        self.out["null"] = _cka(kl, np.broadcast_to(model.kk_all * ll_all, kl.shape), n_perm)

        # neuroids over all stimuli: the neural Gram is sum_k d_k y_k y_k^T (d: multiplicities), so
        # HSIC(K, L) = d . h and HSIC(L, L) = d^T H d, from the per-neuroid pair products
        self.counts = d = _counts(boot_cols, t)
        self.products = yc[model.i] * yc[model.j]  # (pairs, neuroids)
        self.squares = yc * yc
        rl = d @ (yc * yc.sum(0) - self.squares).T  # each draw's row sums of its L (diagonal left out)
        sum_l = d @ (2 * self.products.sum(0))
        kl = _hsic_terms(d @ (2 * (model.k_pairs @ self.products)), model.k_sum, sum_l, rl @ model.ks, full)
        ll = _hsic_terms(_rowdot(d @ (2 * (self.products.T @ self.products)), d), sum_l, sum_l, _rowdot(rl, rl),
                         full)
        self.out["boot_neuroids"] = _cka(kl, model.kk_all * ll, full)

    def both_block(self, rows: slice, u: np.ndarray, w: np.ndarray, work: _Work) -> None:
        """Draws ``rows`` of stimuli (0/1 weights ``u``, pair weights ``w``) and neuroids together: each
        draw's neural Gram entries of its neuroids (one GEMM), weighted by its stimulus pairs; the
        model's terms are the stimulus draws'."""
        model, yc, c = self.model, self.yc, self.counts[rows]
        # (draws, pairs): off-diagonal entries of each draw's neural Gram
        l_pairs = np.matmul(c, self.products.T, out=work.get("l_pairs", len(c)))
        wl = np.multiply(w, l_pairs, out=work.get("float", len(c)))
        sum_l = 2 * wl.sum(1)
        rl = u * ((c * (u @ yc)) @ yc.T - u * (c @ self.squares.T))
        n = model.n_kept[rows]
        kl = _hsic_terms(2 * (wl @ model.k_pairs), model.sk[rows], sum_l, (model.rk[rows] * rl).sum(1), n)
        ll = _hsic_terms(2 * _rowdot(wl, l_pairs), sum_l, sum_l, (rl * rl).sum(1), n)
        self.out["boot_both"][rows] = _cka(kl, model.kk[rows] * ll, n)


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
