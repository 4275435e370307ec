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

from neurofit.encoding.regression import PLS, Regression, RidgeCV, cross_validated_predictions
from neurofit.encoding.ridge import DEFAULT_ALPHAS, pearson_columns
from neurofit.encoding.similarity import _centred_gram, cka_from_grams, double_centre, linear_cka, rdm, rsa
from neurofit.encoding.splits import stimulus_splits

METRICS = ("ridge", "pls", "rsa", "cka")
NORMALISATIONS = ("r/c", "(r/c)^2", "r^2/c", "none")
RESAMPLES = ("boot_stimuli", "boot_neuroids", "boot_both")
# (rows of the model side, rows of the neural side, neuroid columns) -> one score per resample
Resampler = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def align(features: xr.DataArray, responses: xr.DataArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of both arrays for the stimuli they share, ordered by ``stimulus_id``."""
    feat_ids = features["stimulus_id"].values.astype(str)
    resp_ids = responses["stimulus_id"].values.astype(str)
    shared = np.intersect1d(feat_ids, resp_ids)
    if len(shared) < len(resp_ids):
        missing = sorted(set(resp_ids) - set(feat_ids))[:5]
        raise ValueError(f"features lack {len(resp_ids) - len(shared)} stimuli of the responses, e.g. {missing}")
    f_pos = {s: i for i, s in enumerate(feat_ids)}
    r_pos = {s: i for i, s in enumerate(resp_ids)}
    x = features.values[[f_pos[s] for s in shared]]
    y = responses.values[[r_pos[s] for s in shared]]
    return x.astype(np.float64), y.astype(np.float64), shared


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


def _regression_resampler(prediction: np.ndarray, target: np.ndarray) -> Resampler:
    def resample(rows_model: np.ndarray, rows_neural: np.ndarray, neuroids: np.ndarray) -> np.ndarray:
        out = np.empty(len(rows_model))
        step = max(1, (1 << 22) // prediction.size)
        for s in range(0, len(rows_model), step):
            p = prediction[rows_model[s:s + step]]  # (b, m, t)
            y = target[rows_neural[s:s + step]]
            p = p - p.mean(1, keepdims=True)
            y = y - y.mean(1, keepdims=True)
            denom = np.sqrt((p * p).sum(1) * (y * y).sum(1))
            with np.errstate(invalid="ignore", divide="ignore"):
                r = np.where(denom > 0, (p * y).sum(1) / denom, 0.0)  # (b, t)
            out[s:s + step] = np.median(np.take_along_axis(r, neuroids[s:s + step], 1), 1)
        return out

    return resample


def _batched_rdms(y: np.ndarray) -> np.ndarray:
    """Correlation-distance RDMs of a batch (draw, stimulus, neuroid) -> (draw, stimulus, stimulus)."""
    yc = y - y.mean(2, keepdims=True)
    norms = np.sqrt((yc**2).sum(2, keepdims=True))
    norms[norms == 0] = np.inf
    unit = yc / norms
    return 1.0 - unit @ unit.transpose(0, 2, 1)


def _rsa_resampler(x: np.ndarray, y: np.ndarray) -> Resampler:
    model_rdm, neural_rdm = rdm(x), rdm(y)
    m = len(x)
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


def _cka_resampler(x: np.ndarray, y: np.ndarray) -> Resampler:
    # Gram matrices of the test stimuli once; a draw takes their sub-matrices (m^2, not m x features).
    # The unbiased HSIC assumes distinct stimuli: a bootstrap draw keeps each drawn stimulus once
    # (as the RSA resampler drops the pairs of a stimulus with itself).
    gram_x, gram_y = _centred_gram(x), _centred_gram(y)
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
    rng = np.random.default_rng(seed)
    rows = np.tile(np.arange(n_test), (n_boot, 1))
    cols = np.tile(np.arange(n_neuroids), (n_boot, 1))
    boot_rows = rng.integers(0, n_test, (n_boot, n_test))
    boot_cols = rng.integers(0, n_neuroids, (n_boot, n_neuroids))
    perm = rng.permuted(np.tile(np.arange(n_test), (n_perm, 1)), axis=1)
    return {
        "boot_stimuli": resampler(boot_rows, boot_rows, cols),
        "boot_neuroids": resampler(rows, rows, boot_cols),
        "boot_both": resampler(boot_rows, boot_rows, boot_cols),
        "null": resampler(np.tile(np.arange(n_test), (n_perm, 1)), perm, np.tile(np.arange(n_neuroids), (n_perm, 1))),
    }


def make_regression(metric: str, alphas: np.ndarray = DEFAULT_ALPHAS, inner_folds: int = 5, backend: str = "auto",
                    dtype: str = "float64", pls_components: int = 25) -> Regression:
    if metric == "ridge":
        return RidgeCV(alphas, inner_folds, backend=backend, dtype=dtype)
    if metric == "pls":
        return PLS(pls_components)
    raise ValueError(f"{metric!r} is not a regression metric; regressions: ['ridge', 'pls']")


def fit_metric(metric: str, features: xr.DataArray, responses: xr.DataArray, *, preset: str = "brainscore",
               n_splits: int = 10, train_size: float = 0.9, seed: int = 1, stratify: tuple[str, dict] | None = None,
               alphas: np.ndarray = DEFAULT_ALPHAS, inner_folds: int = 5, backend: str = "auto",
               dtype: str = "float64", pls_components: int = 25, n_boot: int = 1000, n_permutations: int = 1000,
               resample_seed: int = 0) -> xr.Dataset:
    """Scores of ``features`` (stimulus, feature) against repeat-averaged ``responses``
    (stimulus, neuroid) on each outer split; see the module docstring for the variables."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {list(METRICS)}")
    x, y, ids = align(features, responses)
    labels = np.asarray([stratify[1][s] for s in ids]) if stratify else None
    splits = stimulus_splits(len(ids), preset, n_splits, train_size, seed, labels)
    n_t = y.shape[1]
    test_score, train_score = np.empty(len(splits)), np.empty(len(splits))
    resamples: dict[str, list[np.ndarray]] = {name: [] for name in (*RESAMPLES, "null")}
    data: dict[str, Any] = {}
    extra_attrs: dict[str, Any] = {}
    if metric in ("ridge", "pls"):
        regression = make_regression(metric, alphas, inner_folds, backend, dtype, pls_components)
        fits = cross_validated_predictions(regression, x, y, splits, inner_folds, seed)
        test_r = np.empty((len(splits), n_t))
        for k, ((_, test), fitted) in enumerate(zip(splits, fits, strict=True)):
            test_r[k] = pearson_columns(fitted.prediction, y[test])
            test_score[k] = np.median(test_r[k])
            train_score[k] = fitted.train_score
            for name, values in _resamples(_regression_resampler(fitted.prediction, y[test]), len(test), n_t,
                                           n_boot, n_permutations, [resample_seed, k]).items():
                resamples[name].append(values)
        data["test_r"] = (("split", "neuroid"), test_r)
        if metric == "ridge":
            data["alpha"] = (("split", "neuroid"), np.stack([f.extras["alpha"] for f in fits]))
            extra_attrs = {"alphas": [float(a) for a in alphas], "backend": regression.ops.name,  # type: ignore[attr-defined]
                           "dtype": dtype}
        else:
            extra_attrs = {"pls_components": pls_components}
    else:
        score: Callable[[np.ndarray, np.ndarray], float] = rsa if metric == "rsa" else linear_cka
        make = _rsa_resampler if metric == "rsa" else _cka_resampler
        for k, (train, test) in enumerate(splits):
            test_score[k] = score(x[test], y[test])
            train_score[k] = score(x[train], y[train])
            for name, values in _resamples(make(x[test], y[test]), len(test), n_t, n_boot, n_permutations,
                                           [resample_seed, k]).items():
                resamples[name].append(values)
    data["test_score"] = (("split",), test_score)
    data["train_score"] = (("split",), train_score)
    for name in RESAMPLES:
        data[name] = (("boot", "split"), np.stack(resamples[name], axis=1))
    data["null"] = (("permutation", "split"), np.stack(resamples["null"], axis=1))
    return xr.Dataset(
        data,
        coords={name: ("neuroid", responses[name].values)
                for name in ("region", "unit_id") if name in responses.coords},
        attrs=_attrs(metric=metric, preset=preset, n_splits=len(splits), train_size=train_size, seed=seed,
                     inner_folds=inner_folds, inner_seeds=[seed + k for k in range(len(splits))],
                     n_stimuli=len(ids), n_features=x.shape[1], n_neuroids=n_t,
                     stratify_coord=stratify[0] if stratify else "", n_boot=n_boot,
                     n_permutations=n_permutations, resample_seed=resample_seed, **extra_attrs),
    )


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
