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

from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr
from scipy.stats import rankdata

from neurofit.encoding.backend import get_ops
from neurofit.encoding.factorised import FactorisedReadout, map_shape
from neurofit.encoding.layer import LayerFeatures
from neurofit.encoding.pls import KernelPLS
from neurofit.encoding.regression import PLS, Regression, RidgeCV, SplitPrediction, cross_validated_predictions
from neurofit.encoding.ridge import DEFAULT_ALPHAS, pearson_columns
from neurofit.encoding.similarity import _centred_gram, cka_from_grams, double_centre, rdm, rdm_similarity
from neurofit.encoding.splits import stimulus_splits

METRICS = ("ridge", "pls", "rsa", "cka", "factorised")
REGRESSIONS = ("ridge", "pls", "factorised")
NORMALISATIONS = ("r/c", "(r/c)^2", "r^2/c", "none")
RESAMPLES = ("boot_stimuli", "boot_neuroids", "boot_both")
# (rows of the model side, rows of the neural side, neuroid columns) -> one score per resample
Resampler = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


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
    rng = np.random.default_rng(seed)
    boot_rows = rng.integers(0, n_test, (n_boot, n_test))
    boot_cols = rng.integers(0, n_neuroids, (n_boot, n_neuroids))
    perm = rng.permuted(np.tile(np.arange(n_test), (n_perm, 1)), axis=1)
    return boot_rows, boot_cols, perm


def _regression_resamples(prediction: np.ndarray, target: np.ndarray, n_boot: int, n_perm: int,
                          seed: list[int]) -> dict[str, np.ndarray]:
    """Resampled median-over-neuroids Pearson r from the split's predictions (no refit), vectorised
    over draws: a bootstrap draw is a weighting of the test stimuli by their multiplicities, so its
    sums are one GEMM ``(draws, stimuli) @ (stimuli, neuroids)``; a permutation leaves the means
    and norms unchanged, so only the cross products are recomputed."""
    m, t = target.shape
    boot_rows, boot_cols, perm = _draws(m, t, n_boot, n_perm, seed)
    p = prediction - prediction.mean(0)  # r is shift invariant; centring keeps the moments exact
    y = target - target.mean(0)
    counts = np.bincount((boot_rows + m * np.arange(n_boot)[:, None]).ravel(),
                         minlength=n_boot * m).reshape(n_boot, m).astype(np.float64)
    sp, sy = counts @ p, counts @ y
    cov = counts @ (p * y) - sp * sy / m
    var = np.maximum(counts @ (p * p) - sp * sp / m, 0.0) * np.maximum(counts @ (y * y) - sy * sy / m, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r_boot = np.where(var > 0, cov / np.sqrt(var), 0.0)  # (draws, neuroids)
    r_all = pearson_columns(p, y)
    denom = np.sqrt((p * p).sum(0) * (y * y).sum(0))
    null = np.empty(n_perm)
    step = max(1, (1 << 19) // max(1, m * t))  # (draws, stimuli, neuroids) chunks of 4 MB
    for s in range(0, n_perm, step):
        cross = np.einsum("bmt,mt->bt", y[perm[s:s + step]], p)
        with np.errstate(invalid="ignore", divide="ignore"):
            null[s:s + step] = np.median(np.where(denom > 0, cross / denom, 0.0), 1)
    return {
        "boot_stimuli": np.median(r_boot, 1),
        "boot_neuroids": np.median(r_all[boot_cols], 1),
        "boot_both": np.median(np.take_along_axis(r_boot, boot_cols, 1), 1),
        "null": null,
    }


def _batched_rdms(y: np.ndarray) -> np.ndarray:
    """Correlation-distance RDMs of a batch (draw, stimulus, neuroid) -> (draw, stimulus, stimulus)."""
    yc = y - y.mean(2, keepdims=True)
    norms = np.sqrt((yc**2).sum(2, keepdims=True))
    norms[norms == 0] = np.inf
    unit = yc / norms
    return 1.0 - unit @ unit.transpose(0, 2, 1)


def _rsa_resampler(model_rdm: np.ndarray, y: np.ndarray) -> Resampler:
    """Resampled RSA of the test stimuli, from the model's RDM of them (shared by all regions)."""
    neural_rdm = rdm(y)
    m = len(y)
    i, j = np.triu_indices(m, k=1)

    def resample(rows_model: np.ndarray, rows_neural: np.ndarray, neuroids: np.ndarray) -> np.ndarray:
        out = np.empty(len(rows_model))
        step = max(1, (1 << 22) // max(len(i), m * y.shape[1]))
        for s in range(0, len(rows_model), step):
            rm, rn, nb = rows_model[s:s + step], rows_neural[s:s + step], neuroids[s:s + step]
            draws = np.arange(len(rm))[:, None]
            identity = (nb == np.arange(y.shape[1])).all()
            neural = (np.broadcast_to(neural_rdm, (len(rm), m, m)) if identity
                      else _batched_rdms(y[:, nb].transpose(1, 0, 2)))
            a = model_rdm[rm[:, i], rm[:, j]]
            b = neural[draws, rn[:, i], rn[:, j]]
            # pairs of a (bootstrap-duplicated) stimulus with itself are left out, as in rdm_similarity
            same = rm[:, i] == rm[:, j]
            a[same], b[same] = np.nan, np.nan
            ra = rankdata(a, axis=1, nan_policy="omit")
            rb = rankdata(b, axis=1, nan_policy="omit")
            ra -= np.nanmean(ra, 1, keepdims=True)
            rb -= np.nanmean(rb, 1, keepdims=True)
            denom = np.sqrt(np.nansum(ra * ra, 1) * np.nansum(rb * rb, 1))
            with np.errstate(invalid="ignore", divide="ignore"):
                out[s:s + step] = np.where(denom > 0, np.nansum(ra * rb, 1) / denom, 0.0)
        return out

    return resample


def _cka_resampler(gram_x: np.ndarray, y: np.ndarray) -> Resampler:
    """Resampled CKA of the test stimuli from the model's centred Gram matrix of them (shared by all
    regions): a draw takes sub-matrices (m^2, not m x features). The unbiased HSIC assumes distinct
    stimuli: a bootstrap draw keeps each drawn stimulus once (as the RSA resampler drops the pairs
    of a stimulus with itself)."""
    gram_y = _centred_gram(y)
    identity = np.arange(y.shape[1])

    def resample(rows_model: np.ndarray, rows_neural: np.ndarray, neuroids: np.ndarray) -> np.ndarray:
        out = np.empty(len(rows_model))
        for b, (rm, rn, nb) in enumerate(zip(rows_model, rows_neural, neuroids, strict=True)):
            first = np.unique(rm, return_index=True)[1]
            if len(first) < 4:  # too few distinct stimuli for the estimator
                out[b] = np.nan
                continue
            rm, rn = rm[first], rn[first]
            neural = gram_y if np.array_equal(nb, identity) else _centred_gram(y[:, nb])
            out[b] = cka_from_grams(double_centre(gram_x[np.ix_(rm, rm)]), double_centre(neural[np.ix_(rn, rn)]))
        return out

    return resample


def _resamples(resampler: Resampler, n_test: int, n_neuroids: int, n_boot: int, n_perm: int,
               seed: list[int]) -> dict[str, np.ndarray]:
    boot_rows, boot_cols, perm = _draws(n_test, n_neuroids, n_boot, n_perm, seed)
    rows = np.tile(np.arange(n_test), (n_boot, 1))
    cols = np.tile(np.arange(n_neuroids), (n_boot, 1))
    return {
        "boot_stimuli": resampler(boot_rows, boot_rows, cols),
        "boot_neuroids": resampler(rows, rows, boot_cols),
        "boot_both": resampler(boot_rows, boot_rows, boot_cols),
        "null": resampler(np.tile(np.arange(n_test), (n_perm, 1)), perm, np.tile(np.arange(n_neuroids), (n_perm, 1))),
    }


def make_regression(metric: str, alphas: np.ndarray = DEFAULT_ALPHAS, inner_folds: int = 5, backend: str = "auto",
                    dtype: str = "mixed", pls_components: int = 25) -> Regression:
    if metric == "ridge":
        return RidgeCV(alphas, inner_folds, backend=backend, dtype=dtype)
    if metric == "pls":
        return PLS(pls_components)
    raise ValueError(f"{metric!r} is not a regression metric; regressions: ['ridge', 'pls']")


def fit_metric(metric: str, features: xr.DataArray | xr.Dataset | LayerFeatures, responses: xr.DataArray,
               **settings: Any) -> xr.Dataset:
    """Scores of ``features`` (stimulus, feature) against repeat-averaged ``responses``
    (stimulus, neuroid) on each outer split, all neuroids as one population; see the module
    docstring for the variables and :func:`fit_groups` for the settings."""
    return fit_groups(metric, features, responses, None, **settings)[""]


def fit_groups(metric: str, features: xr.DataArray | xr.Dataset | LayerFeatures, responses: xr.DataArray,
               groups: dict[str, np.ndarray] | None = None, *, preset: str = "brainscore", n_splits: int = 10,
               train_size: float = 0.9, seed: int = 1, stratify: tuple[str, dict] | None = None,
               alphas: np.ndarray = DEFAULT_ALPHAS, inner_folds: int = 5, backend: str = "auto",
               dtype: str = "mixed", pls_components: int = 25, n_boot: int = 1000, n_permutations: int = 1000,
               resample_seed: int = 0) -> dict[str, xr.Dataset]:
    """One result per group of neuroids (``{name: boolean mask over neuroids}``, e.g. one per region;
    default: all neuroids as group ``""``), each as :func:`fit_metric` would give it for that group
    alone. What does not depend on the responses is computed once for all groups: the centred
    features, their Gram matrix and every eigendecomposition (ridge fits every group's neuroids at
    once: the alphas are per neuroid, so nothing couples them), the model's RDMs and Gram matrices
    of each split (rsa, cka)."""
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
    splits = stimulus_splits(len(ids), preset, n_splits, train_size, seed, labels)
    draws = {"n_boot": n_boot, "n_perm": n_permutations}
    if metric in REGRESSIONS:
        scores, extra_attrs = _regression_scores(metric, layer, y, groups, splits, seed, draws, resample_seed,
                                                 alphas=alphas, inner_folds=inner_folds, backend=backend, dtype=dtype,
                                                 pls_components=pls_components)
    else:
        scores, extra_attrs = _similarity_scores(metric, layer, y, groups, splits, draws, resample_seed), {}
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
            attrs=_attrs(metric=metric, preset=preset, n_splits=len(splits), train_size=train_size, seed=seed,
                         inner_folds=inner_folds, inner_seeds=[seed + k for k in range(len(splits))],
                         n_stimuli=len(ids), n_features=layer.n_features, n_neuroids=int(mask.sum()),
                         stratify_coord=stratify[0] if stratify else "", n_boot=n_boot,
                         n_permutations=n_permutations, resample_seed=resample_seed,
                         features_form="gram" if layer.gram_only else "matrix", **extra_attrs),
        )
    return out


def _new_scores(groups: dict[str, np.ndarray], n_splits: int) -> dict[str, dict[str, Any]]:
    return {name: {"test_score": (("split",), np.empty(n_splits)), "train_score": (("split",), np.empty(n_splits)),
                   **{r: [] for r in (*RESAMPLES, "null")}} for name in groups}


def _regression_scores(metric: str, layer: LayerFeatures, y: np.ndarray, groups: dict[str, np.ndarray],
                       splits: list, seed: int, draws: dict[str, int], resample_seed: int, *, alphas: np.ndarray,
                       inner_folds: int, backend: str, dtype: str, pls_components: int
                       ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    regression = None if metric == "factorised" else make_regression(metric, alphas, inner_folds, backend, dtype,
                                                                      pls_components)
    fits: dict[str, list[SplitPrediction] | None]
    if isinstance(regression, RidgeCV):
        # every group's neuroids in one fit: one Gram matrix and one eigendecomposition per fold
        fits = {name: None for name in groups}
        shared = regression.cross_validated(layer.design(regression.ops), y, splits, seed)
        extra_attrs = {"alphas": [float(a) for a in alphas], "backend": regression.ops.name, "dtype": dtype}
    elif metric == "factorised":
        if layer.gram_only:
            map_shape(None, layer.n_features, layer.source)  # refuses: a Gram matrix has no spatial map
        readout = FactorisedReadout(map_shape(layer.shape, layer.n_features, layer.source))
        shared = readout.cross_validated(layer.matrix(), y, splits, seed)
        fits = {name: [SplitPrediction(split.prediction[:, mask], float(np.median(split.extras["inner_r"][mask])))
                       for split in shared] for name, mask in groups.items()}
        extra_attrs = {"map_shape": list(map_shape(layer.shape, layer.n_features)),
                       "mask_sigmas": list(readout.sigmas), "relative_alphas": list(readout.relative_alphas)}
    elif layer.gram_only or len(y) < 2 * layer.n_features:
        # PLS couples the targets (one fit per group), but NIPALS in kernel form shares the Gram matrix
        # (float64: Brain-Score's numbers) and costs n^2 instead of 2 n p per iteration
        kernel = KernelPLS(pls_components, layer.n_features)
        design = layer.design(get_ops("numpy", "float64"))
        fits = {name: [SplitPrediction(pred, float(np.median(inner_r))) for pred, inner_r in
                       kernel.cross_validated(design, y[:, mask], splits, inner_folds, seed)]
                for name, mask in groups.items()}
        extra_attrs = {"pls_components": pls_components, "pls_solver": "nipals (kernel form)"}
    else:  # fewer features than stimuli: scikit-learn's NIPALS on the matrix is cheaper
        x = layer.matrix()
        fits = {name: cross_validated_predictions(regression, x, y[:, mask], splits, inner_folds, seed)
                for name, mask in groups.items()}
        del x
        extra_attrs = {"pls_components": pls_components, "pls_solver": "nipals (scikit-learn)"}
    scores = _new_scores(groups, len(splits))
    for name, mask in groups.items():
        group, cols = scores[name], np.flatnonzero(mask)
        test_r = np.empty((len(splits), len(cols)))
        alpha = np.empty_like(test_r)
        for k, (_, test) in enumerate(splits):
            target = y[np.ix_(test, cols)]
            fitted = fits[name]
            if fitted is None:
                split = shared[k]
                prediction = split.prediction[:, cols]
                alpha[k] = split.extras["alpha"][cols]
                train = float(np.median(split.extras["inner_r"][cols]))
            else:
                prediction, train = fitted[k].prediction, fitted[k].train_score
            test_r[k] = pearson_columns(prediction, target)
            group["test_score"][1][k] = np.median(test_r[k])
            group["train_score"][1][k] = train
            for resample, values in _regression_resamples(prediction, target, draws["n_boot"], draws["n_perm"],
                                                          [resample_seed, k]).items():
                group[resample].append(values)
        group["test_r"] = (("split", "neuroid"), test_r)
        if isinstance(regression, RidgeCV):
            group["alpha"] = (("split", "neuroid"), alpha)
    return scores, extra_attrs


def _similarity_scores(metric: str, layer: LayerFeatures, y: np.ndarray, groups: dict[str, np.ndarray], splits: list,
                       draws: dict[str, int], resample_seed: int) -> dict[str, dict[str, Any]]:
    """RSA / CKA: the model side of each split (RDM or centred Gram of its stimuli) made once for every group."""
    scores = _new_scores(groups, len(splits))
    for k, (train, test) in enumerate(splits):
        if metric == "rsa":
            model_test, model_train = layer.rdm(test), layer.rdm(train)
        else:
            model_test, model_train = layer.centred_gram(test), layer.centred_gram(train)
        for name, mask in groups.items():
            group, yk = scores[name], y[:, mask]
            if metric == "rsa":
                group["test_score"][1][k] = rdm_similarity(model_test, rdm(yk[test]))
                group["train_score"][1][k] = rdm_similarity(model_train, rdm(yk[train]))
                resampler = _rsa_resampler(model_test, yk[test])
            else:
                group["test_score"][1][k] = cka_from_grams(model_test, _centred_gram(yk[test]))
                group["train_score"][1][k] = cka_from_grams(model_train, _centred_gram(yk[train]))
                resampler = _cka_resampler(model_test, yk[test])
            for resample, values in _resamples(resampler, len(test), int(mask.sum()), draws["n_boot"],
                                               draws["n_perm"], [resample_seed, k]).items():
                group[resample].append(values)
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
