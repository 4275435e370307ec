"""Cross-validated encoding fits of one feature set to one set of neuroids."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from neurofit.encoding.ridge import DEFAULT_ALPHAS, choose_alphas, pearson_columns, ridge_predict
from neurofit.encoding.splits import stimulus_splits


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


def fit_ridge(features: xr.DataArray, responses: xr.DataArray, *, preset: str = "brainscore",
              n_splits: int = 10, train_size: float = 0.9, seed: int = 1,
              alphas: np.ndarray = DEFAULT_ALPHAS, inner_folds: int = 5,
              stratify_coord: str | None = None) -> xr.Dataset:
    """Per-neuroid-alpha ridge on each outer split.

    ``test_r`` (split, neuroid): Pearson r on the split's test stimuli. ``train_score`` (split): the
    median over neuroids of the inner-CV r on the split's *training* stimuli, the score used to
    choose a layer without looking at the test stimuli."""
    x, y, ids = align(features, responses)
    stratify = None
    if stratify_coord and stratify_coord in responses.coords:
        labels = dict(zip(responses["stimulus_id"].values.astype(str), responses[stratify_coord].values, strict=True))
        stratify = np.asarray([labels[s] for s in ids])
    splits = stimulus_splits(len(ids), preset, n_splits, train_size, seed, stratify)
    test_r = np.empty((len(splits), y.shape[1]))
    chosen = np.empty((len(splits), y.shape[1]))
    train_score = np.empty(len(splits))
    for k, (train, test) in enumerate(splits):
        search = choose_alphas(x[train], y[train], alphas, inner_folds, seed=seed + k)
        pred = ridge_predict(x[train], y[train], x[test], search.alpha)
        test_r[k] = pearson_columns(pred, y[test])
        chosen[k] = search.alpha
        train_score[k] = np.median(search.inner_r)
    return xr.Dataset(
        {
            "test_r": (("split", "neuroid"), test_r),
            "alpha": (("split", "neuroid"), chosen),
            "train_score": (("split",), train_score),
        },
        coords={name: ("neuroid", responses[name].values)
                for name in ("region", "unit_id") if name in responses.coords},
        attrs=_attrs(metric="ridge", preset=preset, n_splits=n_splits, train_size=train_size, seed=seed,
                     inner_folds=inner_folds, n_stimuli=len(ids), n_features=x.shape[1],
                     alphas=[float(a) for a in alphas]),
    )


def _attrs(**values: Any) -> dict[str, Any]:
    # netCDF attributes must be numbers, strings or 1-D arrays
    return {k: (np.asarray(v) if isinstance(v, list) else v) for k, v in values.items()}


def normalise(raw: float, ceiling: float, method: str) -> float:
    """Ceiling-normalised score, named as in the table's ``normalisation`` column."""
    if method == "none":
        return raw
    if not np.isfinite(ceiling) or ceiling <= 0:
        return float("nan")
    if method == "r/c":
        return raw / ceiling
    if method == "(r/c)^2":
        return (raw / ceiling) ** 2
    if method == "r^2/c":
        return raw**2 / ceiling
    raise ValueError(f"unknown normalisation {method!r}; known: ['r/c', '(r/c)^2', 'r^2/c', 'none']")
