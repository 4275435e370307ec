"""Cross-validated scores of one feature set against one set of neuroids, for any metric.

Every metric gives, per outer split, a test score on the split's test stimuli and a train score
that only looks at the split's training stimuli (for nested layer choice), plus bootstrap and
permutation resamples of the test score, so the tables treat all metrics alike:

- ``ridge`` / ``pls``: fit on the training stimuli, Pearson r per neuroid on the test stimuli,
  median over neuroids (Brain-Score's ``CrossRegressedCorrelation``); train score = median
  inner-CV r on the training stimuli;
- ``rsa`` / ``cka``: the similarity of the test stimuli's RDMs / linear kernels (Brain-Score's
  ``RDMCrossValidated`` and ``CKACrossValidated`` also score held-out subsets); train score = the
  same on the training stimuli.

Resamples, per split (the aggregate is their mean over splits):
- ``boot_stimuli`` / ``boot_neuroids`` / ``boot_both``: test stimuli and/or neuroids drawn with
  replacement (the model is not refit: the CI is of the held-out score given the fitted maps);
- ``null``: the neural side's test stimulus labels shuffled against the model side.
All layers of a region draw the same resamples (seeded by split), so they are paired.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import xarray as xr
from scipy.sparse import _sparsetools

from neurofit.encoding.backend import get_ops
from neurofit.encoding.factorised import FactorisedReadout, map_shape
from neurofit.encoding.layer import LayerFeatures
from neurofit.encoding.pls import KernelPLS
from neurofit.encoding.regression import RidgeCV, SplitPrediction
from neurofit.encoding.resampling import cka_resamples, rsa_resamples
from neurofit.encoding.ridge import pearson_columns
from neurofit.encoding.settings import EncodingSettings
from neurofit.encoding.similarity import _centred_gram, cka_from_grams, ranked_rdm_similarity, rdm, upper_ranks
from neurofit.encoding.splits import stimulus_splits

METRICS = ("ridge", "pls", "rsa", "cka", "factorised")
REGRESSIONS = ("ridge", "pls", "factorised")
NORMALISATIONS = ("r/c", "(r/c)^2", "r^2/c", "none")
RESAMPLES = ("boot_stimuli", "boot_neuroids", "boot_both")
# the budget of the resamples' work array (the permutation null's products) where the caller gives none; the
# pipeline gives the layer's (LayerFeatures.work_bytes: an eighth of the features, at least 64 kB)
RESAMPLE_WORK_BYTES = 4 << 20
# the permutation null's products per block at most (1 MB of float32: as fast as any smaller block measured)
NULL_PRODUCT_ELEMENTS = 1 << 18


def stimulus_labels(responses: xr.DataArray, coords: list[str] | tuple[str, ...]) -> tuple[str, dict[str, Any]] | None:
    """The first of ``coords`` that ``responses`` carries (on the presentation or stimulus dim), as
    ``(name, {stimulus_id: label})``; None when none is there. A stimulus with two labels is an error."""
    for name in coords:
        if name not in responses.coords:
            continue
        labels: dict[str, Any] = {}
        for sid, label in zip(responses["stimulus_id"].values.astype(str), responses[name].values, strict=True):
            if labels.setdefault(sid, label) != label:
                raise ValueError(f"stimulus {sid!r} has two values of coord {name!r}: {labels[sid]!r}, {label!r}")
        return name, labels
    return None


def _draws(n_test: int, n_neuroids: int, n_boot: int, n_perm: int, seed: list[int]
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bootstrap rows, bootstrap neuroid columns and permutations of one split (seeded by split,
    so every layer and metric of a region draws the same ones)."""
    boot_rows, perm, neuroid_draws = _split_draws(n_test, n_boot, n_perm, seed)
    return boot_rows, neuroid_draws(n_neuroids), perm


def _split_draws(n_test: int, n_boot: int, n_perm: int, seed: list[int]
                 ) -> tuple[np.ndarray, np.ndarray, Callable[[int], np.ndarray]]:
    """:func:`_draws` for several groups of one split: the bootstrap rows and the permutations of the
    test stimuli (drawn first, so the same for every group: regions are paired in their nulls as
    layers are), and a function giving a group's bootstrap neuroid columns, from the generator's state
    after them: the same draws as a fit of that group alone."""
    rng = np.random.default_rng(seed)
    boot_rows = rng.integers(0, n_test, (n_boot, n_test))
    perm = rng.permuted(np.tile(np.arange(n_test), (n_perm, 1)), axis=1)
    after = rng.bit_generator.state

    def neuroid_draws(n_neuroids: int) -> np.ndarray:
        rng.bit_generator.state = after
        return rng.integers(0, n_neuroids, (n_boot, n_neuroids))

    return boot_rows, perm, neuroid_draws


def median_rows(a: np.ndarray) -> np.ndarray:
    """``np.median(a, axis=1)`` (NaN where a row has one), several times faster: np.median
    partitions twice per row (the middle and, to find NaNs, the last element); rows of up to 512
    are sorted (faster than one partition at that size), longer ones partitioned once."""
    n = a.shape[1]
    k = (n - 1) // 2
    if n <= 512:
        part = np.sort(a, axis=1)
        upper, has_nan = part[:, n // 2], np.isnan(part[:, -1])  # sorting puts NaNs last
    else:
        part = np.partition(a, k, axis=1)
        upper = part[:, k + 1:].min(1)  # NaN when the row has a NaN (partitioned above every number)
        has_nan = np.isnan(upper)
    median = (part[:, k] + upper) / 2 if n % 2 == 0 else part[:, k].copy()
    median[has_nan] = np.nan
    return median


def median_of_draws(values: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """``median_rows(values[draws])`` for finite ``values`` (n,) and index draws (draws, k), from one sort
    of ``values``: each draw's indices are mapped to their ranks (int32), and sorting those is faster
    than sorting the drawn float64 values; the middle ranks pick the same values, averaged alike."""
    order = np.argsort(values, kind="stable")
    rank = np.empty(len(values), dtype=np.int32)
    rank[order] = np.arange(len(values), dtype=np.int32)
    ranks = np.sort(rank[draws], axis=1)
    ordered = values[order]
    n = draws.shape[1]
    lower = ordered[ranks[:, (n - 1) // 2]]
    return (lower + ordered[ranks[:, n // 2]]) / 2 if n % 2 == 0 else lower


def _split_resamples(prediction: np.ndarray, target: np.ndarray, sizes: list[int], n_boot: int, n_perm: int,
                     seed: list[int], dtype: type = np.float64, block_bytes: int = RESAMPLE_WORK_BYTES
                     ) -> list[dict[str, np.ndarray]]:
    """Resampled median-over-neuroids Pearson r of one split, from its predictions (no refit), for
    groups of neuroids laid side by side in the columns (``sizes`` columns each), each group with
    the draws (and numbers) a fit of it alone makes. Vectorised over draws: a bootstrap draw is a
    weighting of the test stimuli by their multiplicities, shared by the groups, so the sufficient
    statistics of every draw and neuroid (sums, sums of squares and cross products) are GEMMs
    (:func:`_bootstrap_r`); a permutation leaves the means and norms unchanged, so only the cross
    products are recomputed (:func:`_permuted_r`; the groups' permutations are the same). ``dtype`` is the
    precision of the statistics (float32: r within ~1e-6 of float64, in half the time); ``block_bytes``
    the budget of the null's work array (the layer's: :attr:`LayerFeatures.work_bytes`)."""
    m = len(target)
    boot_rows, perm, neuroid_draws = _split_draws(m, n_boot, n_perm, seed)
    perm = _compact_indices(perm, m * m)  # held once, in int32 where the null's columns fit
    p = prediction - prediction.mean(0)  # r is shift invariant; centring keeps the moments exact
    y = target - target.mean(0)
    norm = np.sqrt((p * p).sum(0) * (y * y).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r_all = np.where(norm > 0, (p * y).sum(0) / norm, 0.0)
        scaled = np.where(norm > 0, p / norm, 0.0).astype(dtype)  # r of a permutation = its cross product
    # the draws' statistics read them in their own precision only
    p, y = p.astype(dtype, copy=False), y.astype(dtype, copy=False)
    counts_t = np.ascontiguousarray(np.bincount((boot_rows + m * np.arange(n_boot)[:, None]).ravel(),
                                                minlength=n_boot * m).reshape(n_boot, m).T, dtype=dtype)
    del boot_rows  # the counts are all the draws need of them
    nulls = _grouped_nulls(y, scaled, perm, sizes, block_bytes)
    out, start = [], 0
    for size, null in zip(sizes, nulls, strict=True):
        cols = slice(start, start + size)
        start += size
        # per group, so that a group's numbers do not depend on its neighbours (float32 GEMM blocking)
        group_boot = _bootstrap_r(counts_t, p[:, cols], y[:, cols])
        boot_cols = neuroid_draws(size)
        drawn = {"boot_stimuli": median_rows(group_boot), "boot_neuroids": median_of_draws(r_all[cols], boot_cols)}
        # draw b's neuroids as positions in the flat (draws x neuroids) block, in place (a fresh 8-byte array
        # of every draw's neuroids is mapped and page-faulted anew for each group)
        flat_cols = np.add(boot_cols, size * np.arange(n_boot)[:, None], out=boot_cols)
        drawn["boot_both"] = median_rows(np.take(group_boot, flat_cols))
        drawn["null"] = median_rows(null)
        out.append(drawn)
    return [{name: values.astype(np.float64) for name, values in group.items()} for group in out]


def _grouped_nulls(y: np.ndarray, scaled: np.ndarray, perm: np.ndarray, sizes: list[int], block_bytes: int
                   ) -> Iterator[np.ndarray]:
    """Each group's permuted r (permutations, its neuroids), for groups side by side in the columns:
    consecutive groups share one :func:`_permuted_r` while their r fits in ``block_bytes`` (a group
    larger than that goes alone). A column's sums do not depend on the others (the CSR kernel adds
    each column on its own), so the numbers are those of each group alone, for fewer, longer products."""
    per_column = len(perm) * y.dtype.itemsize
    start = first = 0  # the run's first group and column
    while start < len(sizes):
        stop, width = start + 1, sizes[start]
        while stop < len(sizes) and (width + sizes[stop]) * per_column <= block_bytes:
            width += sizes[stop]
            stop += 1
        cols = slice(first, first + width)
        r = _permuted_r(np.ascontiguousarray(y[:, cols]), np.ascontiguousarray(scaled[:, cols]), perm, block_bytes)
        offset = 0
        for size in sizes[start:stop]:
            yield r[:, offset:offset + size]
            offset += size
        start, first = stop, first + width


def _bootstrap_r(counts_t: np.ndarray, p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r (draws, neuroids) of centred ``p`` and ``y`` with the stimuli weighted by the draws'
    multiplicities ``counts_t`` (stimuli, draws; C-contiguous). The statistics are computed transposed,
    ``(5 x neuroids, stimuli) @ (stimuli, draws)``, so that each is a contiguous block and the
    element-wise steps run over whole blocks (in the (draws, 5 x neuroids) layout they ran row by row),
    in blocks of 64 neuroids into work arrays allocated once (fresh ~1 MB products are mapped by glibc
    and page-faulted on every block: together 1.6x the time)."""
    m, n_boot = counts_t.shape
    t = p.shape[1]
    width = min(64, t)
    r_t = np.empty((t, n_boot), dtype=p.dtype)
    stats_work = np.empty((5 * width, n_boot), dtype=p.dtype)
    scratch = np.empty((width, n_boot), dtype=p.dtype)
    root = float(np.sqrt(m))  # a Python float keeps float32 arrays float32
    for s in range(0, t, width):
        ps, ys = p[:, s:s + width], y[:, s:s + width]
        w = ps.shape[1]
        # sums scaled by 1/sqrt(m), so that a product of two is the correction term
        stats = np.matmul(np.concatenate([ps / root, ys / root, ps * ys, ps * ps, ys * ys], 1).T, counts_t,
                          out=stats_work[:5 * w])
        sp, sy, spy, spp, syy = (stats[i * w:(i + 1) * w] for i in range(5))
        spy -= np.multiply(sp, sy, out=scratch[:w])  # covariance
        spp -= np.square(sp, out=sp)
        syy -= np.square(sy, out=sy)
        np.maximum(spp, 0.0, out=spp)
        np.maximum(syy, 0.0, out=syy)
        spp *= syy
        np.sqrt(spp, out=spp)
        spp[spp == 0] = np.inf  # r = 0 where a resample is constant (a masked divide took 3x as long)
        np.divide(spy, spp, out=r_t[s:s + w])
    return np.ascontiguousarray(r_t.T)


def _compact_indices(indices: np.ndarray, bound: int) -> np.ndarray:
    """``indices`` as int32 where every index below ``bound`` fits (half the size of int64), else as int64."""
    return indices.astype(np.int32 if bound < 2**31 else np.int64)


def _permuted_r(y: np.ndarray, scaled: np.ndarray, perm: np.ndarray, block_bytes: int = RESAMPLE_WORK_BYTES
                ) -> np.ndarray:
    """r (permutations, neuroids) with the rows of centred ``y`` permuted (``perm``: permutations x m,
    :func:`_compact_indices`) against the centred predictions divided by the norms (``scaled``).
    Permutation b's cross product of neuroid t, sum_i scaled[i, t] y[perm[b, i], t], picks m of the m^2
    products scaled[i, t] y[j, t]: a sparse (permutations, m^2) x dense (m^2, neuroids) product, no gathered
    copies of ``y``. The products are formed for a block of stimuli i at a time (every j, a block of neuroids:
    ``block_bytes`` at most, or one stimulus's of one neuroid) and each permutation's picks among them added
    into r by scipy's CSR kernel (:func:`_add_sparse_product`), so r's sums run over i in the same order as
    one product of all m^2: the same numbers, without the (m^2, neuroids) products or the whole
    (permutations, m^2) pick matrix. Blocks of many neuroids keep the kernel's rows long (its per-entry
    overhead was the cost of the neuroid-blocked product at 64 test stimuli)."""
    n_perm, m = perm.shape
    t = y.shape[1]
    elements = max(1, min(NULL_PRODUCT_ELEMENTS, block_bytes // y.dtype.itemsize))
    width = min(t, max(1, elements // m))  # neuroids per block
    rows = min(m, max(1, elements // (m * width)))  # stimuli per block
    r = np.zeros((n_perm, t), dtype=y.dtype)
    sums = np.empty(n_perm * width, dtype=y.dtype) if width < t else None  # a block's r, contiguous for the kernel
    buffer = np.empty(rows * m * width, dtype=y.dtype)
    ones = np.ones(n_perm * rows, dtype=y.dtype)
    columns = np.empty(n_perm * rows, dtype=perm.dtype)
    offsets = m * np.arange(rows, dtype=perm.dtype)  # block stimulus i's products start at row i * m
    for s in range(0, t, width):
        w = min(width, t - s)
        out = r if sums is None else sums[:n_perm * w].reshape(n_perm, w)
        out[...] = 0
        ys, ss = y[:, s:s + w], scaled[:, s:s + w]
        for start in range(0, m, rows):
            k = min(rows, m - start)
            products = buffer[:k * m * w].reshape(k, m, w)
            products[...] = ss[start:start + k, None, :]
            for i in range(k):  # per stimulus: numpy buffers a broadcasting multiply of the block (8192 elements)
                np.multiply(products[i], ys, out=products[i])
            picked = columns[:n_perm * k].reshape(n_perm, k)
            np.add(perm[:, start:start + k], offsets[:k], out=picked)
            _add_sparse_product(out, picked, ones[:n_perm * k], products.reshape(k * m, w))
        if sums is not None:
            r[:, s:s + w] = out
    return r


def _add_sparse_product(out: np.ndarray, columns: np.ndarray, values: np.ndarray, dense: np.ndarray) -> None:
    """``out += A @ dense`` in place for the CSR matrix A whose row b holds ``values`` at ``columns[b]``
    (the same count per row), by the kernel that ``scipy.sparse.csr_array @ dense`` runs (``csr_matvecs``;
    that product is this into zeros): each row's entries added in order, so consecutive calls over blocks
    of a row's entries sum as one product would. ``out`` and ``dense`` C-contiguous."""
    n_rows, per_row = columns.shape
    if not (out.flags.c_contiguous and dense.flags.c_contiguous):
        raise ValueError("out and dense must be C-contiguous (the kernel reads and writes their flat buffers)")
    indptr = np.arange(0, n_rows * per_row + 1, per_row, dtype=columns.dtype)
    _sparsetools.csr_matvecs(n_rows, dense.shape[0], dense.shape[1], indptr, columns.reshape(-1), values,
                             dense.reshape(-1), out.reshape(-1))


def fit_metric(metric: str, features: xr.DataArray | xr.Dataset | LayerFeatures, responses: xr.DataArray,
               settings: EncodingSettings | None = None, *, stratify: tuple[str, dict] | None = None) -> xr.Dataset:
    """Scores of ``features`` (stimulus, feature) against repeat-averaged ``responses``
    (stimulus, neuroid) on each outer split, all neuroids as one population; see the module
    docstring for the variables and :func:`fit_groups` for the settings."""
    return fit_groups(metric, features, responses, None, settings, stratify=stratify)[""]


def fit_groups(metric: str, features: xr.DataArray | xr.Dataset | LayerFeatures, responses: xr.DataArray,
               groups: dict[str, np.ndarray] | None = None, settings: EncodingSettings | None = None, *,
               stratify: tuple[str, dict] | None = None) -> dict[str, xr.Dataset]:
    """One result per group of neuroids (``{name: boolean mask over neuroids}``, e.g. one per region;
    default: all neuroids as group ``""``), each as :func:`fit_metric` would give it for that group
    alone. ``settings``: the config's ``encoding:`` (:class:`EncodingSettings`, built once by
    ``EncodingSettings.from_config``; default: the schema's defaults); ``stratify``: the stimulus
    labels the splits stratify on, as :func:`stimulus_labels` gives them. What does not depend on the
    responses is computed once for all groups: the centred features, their Gram matrix and every
    eigendecomposition (ridge fits every group's neuroids at once: the alphas are per neuroid, so
    nothing couples them), the model's RDMs and Gram matrices of each split (rsa, cka)."""
    if settings is None:
        settings = EncodingSettings()
    if not isinstance(settings, EncodingSettings):
        raise TypeError(f"fit_groups takes the encoding settings as an EncodingSettings "
                        f"(EncodingSettings.from_config(config['encoding'])), not {type(settings).__name__}")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {list(METRICS)}")
    layer = features if isinstance(features, LayerFeatures) else LayerFeatures.from_xarray(features)
    y, ids = layer.align(responses)
    if groups is None:
        groups = {"": np.ones(y.shape[1], dtype=bool)}
    empty = [name for name, mask in groups.items() if not np.any(mask)]
    if empty:
        raise ValueError(f"no neuroids in group(s) {empty}")
    labels = np.asarray([stratify[1][s] for s in ids]) if stratify else None
    n_stimuli = len(ids)
    del ids  # the fit needs their order only (the layer's rows): not held beside its work arrays
    split = settings.splits
    splits = stimulus_splits(n_stimuli, split.preset, split.n_splits, split.train_size, split.seed, labels)
    if metric in REGRESSIONS:
        scores, extra_attrs = _regression_scores(metric, layer, y, groups, splits, settings)
    else:
        scores, extra_attrs = _similarity_scores(metric, layer, y, groups, splits, settings), {}
    out = {}
    for name, mask in groups.items():
        group = scores[name]
        data: dict[str, Any] = {k: v for k, v in group.items() if k not in (*RESAMPLES, "null")}
        for resample in RESAMPLES:
            data[resample] = (("boot", "split"), np.stack(group[resample], axis=1))
        data["null"] = (("permutation", "split"), np.stack(group["null"], axis=1))
        subset = responses.isel(neuroid=np.flatnonzero(mask))
        out[name] = xr.Dataset(
            data,
            coords={c: ("neuroid", subset[c].values) for c in ("region", "unit_id") if c in subset.coords},
            attrs=_attrs(metric=metric, preset=split.preset, n_splits=len(splits), train_size=split.train_size,
                         seed=split.seed, inner_folds=settings.inner_folds,
                         inner_seeds=[split.seed + k for k in range(len(splits))],
                         n_stimuli=n_stimuli, n_neuroids=int(mask.sum()),
                         stratify_coord=stratify[0] if stratify else "", n_boot=settings.bootstrap.n,
                         n_permutations=settings.permutations.n, resample_seed=settings.bootstrap.seed,
                         **layer.attrs(), **extra_attrs),
        )
    return out


def _new_scores(groups: dict[str, np.ndarray], n_splits: int) -> dict[str, dict[str, Any]]:
    return {name: {"test_score": (("split",), np.empty(n_splits)), "train_score": (("split",), np.empty(n_splits)),
                   **{r: [] for r in (*RESAMPLES, "null")}} for name in groups}


def _regression_scores(metric: str, layer: LayerFeatures, y: np.ndarray, groups: dict[str, np.ndarray],
                       splits: list, settings: EncodingSettings) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    alphas, inner_folds, dtype = settings.alphas.values(), settings.inner_folds, settings.dtype
    seed = settings.splits.seed  # split k's inner folds use seed + k
    fits: dict[str, list[SplitPrediction]] = {}
    shared: Iterator[SplitPrediction] | None = None  # ridge: one fit of every group's neuroids, split by split
    if metric == "ridge":
        regression = RidgeCV(alphas, inner_folds, backend=settings.backend, dtype=dtype)
        # every group's neuroids in one fit: one Gram matrix and one eigendecomposition per fold
        shared = regression.iter_cross_validated(layer.design(regression.ops), y, splits, seed)
        extra_attrs = {"alphas": [float(a) for a in alphas], "backend": regression.ops.name, "dtype": dtype}
    elif metric == "factorised":
        # refuses a Gram-only or reduced layer: it has no spatial map (no output shape)
        readout = FactorisedReadout(map_shape(layer.shape, layer.n_features, layer.source))
        whole = readout.cross_validated(layer.matrix(), y, splits)
        fits = {name: [SplitPrediction(split.prediction[:, mask], float(np.median(split.extras["inner_r"][mask])))
                       for split in whole] for name, mask in groups.items()}
        extra_attrs = {"map_shape": [readout.channels, readout.height, readout.width],
                       "mask_sigmas": list(readout.sigmas), "relative_alphas": list(readout.relative_alphas)}
    else:
        # PLS couples the targets (one fit per group); batched NIPALS shares the Gram matrix or the features
        # (float64: Brain-Score's numbers) across every split and inner fold
        kernel = KernelPLS(settings.pls_components, layer.n_features)
        design = layer.design(get_ops("numpy", "float64"))
        fits = {name: [SplitPrediction(pred, float(np.median(inner_r))) for pred, inner_r in
                       kernel.cross_validated(design, y[:, mask], splits, inner_folds, seed)]
                for name, mask in groups.items()}
        extra_attrs = {"pls_components": settings.pls_components, "pls_solver": kernel.solver(design)}
    # resamples in float32 where the fit is not promised exact (ridge's "mixed" / "float32")
    resample_dtype = np.float64 if metric == "pls" or dtype == "float64" else np.float32
    scores = _new_scores(groups, len(splits))
    columns = {name: np.flatnonzero(mask) for name, mask in groups.items()}
    test_r = {name: np.empty((len(splits), len(cols))) for name, cols in columns.items()}
    alpha = {name: np.empty((len(splits), len(cols))) for name, cols in columns.items()}
    # every group's columns side by side, each split's predictions and targets gathered once in that order
    # (a group's are views of them)
    order = np.concatenate(list(columns.values()))
    ends = np.cumsum([len(cols) for cols in columns.values()])
    places = {name: slice(end - len(cols), end) for (name, cols), end in zip(columns.items(), ends, strict=True)}
    ridge_split: SplitPrediction | None = None
    for k, (_, test) in enumerate(splits):
        if shared is not None:
            ridge_split = next(shared)  # fit here, so that one split's predictions are held at a time
            # in the groups' order (a copy only where the groups leave out or interleave neuroids)
            fitted = ridge_split.prediction
            same = len(order) == fitted.shape[1] and np.array_equal(order, np.arange(len(order)))
            predictions = fitted if same else fitted[:, order]
            del fitted
        else:
            predictions = np.concatenate([fits[name][k].prediction for name in columns], 1)
        targets = y[np.ix_(test, order)]
        for name, cols in columns.items():
            group, place = scores[name], places[name]
            prediction, target = predictions[:, place], targets[:, place]
            if ridge_split is not None:
                alpha[name][k] = ridge_split.extras["alpha"][cols]
                train = float(np.median(ridge_split.extras["inner_r"][cols]))
            else:
                train = fits[name][k].train_score
            test_r[name][k] = pearson_columns(prediction, target)
            group["test_score"][1][k] = np.median(test_r[name][k])
            group["train_score"][1][k] = train
        # every group's resamples at once: the bootstrap statistics of all neuroids are one GEMM
        resampled = _split_resamples(predictions, targets, [len(cols) for cols in columns.values()],
                                     settings.bootstrap.n, settings.permutations.n, [settings.bootstrap.seed, k],
                                     resample_dtype, layer.work_bytes)
        del predictions, targets, prediction, target  # (the last two: views of the first)
        ridge_split = None
        for name, values in zip(columns, resampled, strict=True):
            for resample, draws_k in values.items():
                scores[name][resample].append(draws_k)
    for name, group in scores.items():
        group["test_r"] = (("split", "neuroid"), test_r[name])
        if metric == "ridge":
            group["alpha"] = (("split", "neuroid"), alpha[name])
    return scores, extra_attrs


def _similarity_scores(metric: str, layer: LayerFeatures, y: np.ndarray, groups: dict[str, np.ndarray], splits: list,
                       settings: EncodingSettings) -> dict[str, dict[str, Any]]:
    """RSA / CKA: the model side of each split (RDM or centred Gram of its stimuli, sub-matrices of one
    matrix of all stimuli) made once for every group; the resamples of every group at once, vectorised
    over draws (:mod:`neurofit.encoding.resampling`: what depends only on the stimulus draws is shared)."""
    scores = _new_scores(groups, len(splits))
    resample = rsa_resamples if metric == "rsa" else cka_resamples
    for k, (train, test) in enumerate(splits):
        if metric == "rsa":
            model_test, model_train = layer.rdm(test), layer.rdm(train)
            ranks_test, ranks_train = upper_ranks(model_test), upper_ranks(model_train)  # ranked once for all groups
        else:
            model_test, model_train = layer.centred_gram(test), layer.centred_gram(train)
        tests = []
        for name, mask in groups.items():
            group, yk = scores[name], y[:, mask]
            if metric == "rsa":
                group["test_score"][1][k] = ranked_rdm_similarity(ranks_test, rdm(yk[test]))
                group["train_score"][1][k] = ranked_rdm_similarity(ranks_train, rdm(yk[train]))
            else:
                group["test_score"][1][k] = cka_from_grams(model_test, _centred_gram(yk[test]))
                group["train_score"][1][k] = cka_from_grams(model_train, _centred_gram(yk[train]))
            tests.append(yk[test])
        # each group's draws are those of a fit of it alone (_draws)
        boot_rows, perm, neuroid_draws = _split_draws(len(test), settings.bootstrap.n, settings.permutations.n,
                                                      [settings.bootstrap.seed, k])
        drawn = [(neuroid_draws(int(mask.sum())), perm) for mask in groups.values()]
        for name, values in zip(groups, resample(model_test, tests, boot_rows, drawn), strict=True):
            for name_r, draws_k in values.items():
                scores[name][name_r].append(draws_k)
    return scores


def _attrs(**values: Any) -> dict[str, Any]:
    # netCDF attributes must be numbers, strings or 1-D arrays
    return {k: (np.asarray(v) if isinstance(v, list) else v) for k, v in values.items()}


def normalise(raw: float | np.ndarray, ceiling: float, method: str) -> Any:
    """Ceiling-normalised score for the config's ``encoding.normalisation`` ``method``.

    The squaring conventions keep the sign of r: ``r^2/c`` is sign(r)·r²/c and ``(r/c)^2`` is
    sign(r)·(r/c)², so a layer that anti-correlates with the neurons scores below zero instead of passing
    for a positive score (squaring the bounds of a CI keeps their order the same way). Brain-Score's
    ``explained_variance`` (benchmark_helpers/neural_common.py) computes ``np.power(r / c, 2)``, equal for
    r >= 0 and positive for r < 0: it defines no sign, so this is where neurofit departs from it."""
    if method == "none":
        return raw
    if method not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {method!r}; known: {list(NORMALISATIONS)}")
    if not np.isfinite(ceiling) or ceiling <= 0:
        return raw * np.nan
    if method == "r/c":
        return raw / ceiling
    if method == "(r/c)^2":
        return np.sign(raw) * (raw / ceiling) ** 2
    return np.sign(raw) * raw**2 / ceiling
