"""Helpers for the encoding tests."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr


def as_arrays(x: np.ndarray, y: np.ndarray, region: str = "IT") -> tuple[xr.DataArray, xr.DataArray, np.ndarray]:
    """(stimulus, feature) features and (stimulus, neuroid) responses with shuffled-order ids."""
    ids = np.array([f"im{i:04d}" for i in np.random.default_rng(0).permutation(len(x))])
    features = xr.DataArray(x, dims=("stimulus", "feature"), coords={"stimulus_id": ("stimulus", ids)})
    responses = xr.DataArray(y, dims=("stimulus", "neuroid"), coords={
        "stimulus_id": ("stimulus", ids), "region": ("neuroid", [region] * y.shape[1]),
        "unit_id": ("neuroid", np.arange(y.shape[1]))})
    order = np.argsort(ids)
    return features, responses.isel(stimulus=order), ids


@pytest.fixture
def labelled():
    return as_arrays
