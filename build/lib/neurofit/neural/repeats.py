"""Averaging repeated presentations: all that a fit job needs of the responses, kept apart from building
them (:mod:`neurofit.neural.responses` imports the NWB readers, the unit filters and YAML, which a fit
job would otherwise import for nothing)."""

from __future__ import annotations

import numpy as np
import xarray as xr


def average_repeats(responses: xr.DataArray) -> xr.DataArray:
    """Mean over repeats: ``(stimulus, neuroid)`` ordered by ``stimulus_id``."""
    mean = responses.astype(np.float64).groupby("stimulus_id").mean("presentation")
    mean = mean.sortby("stimulus_id")
    ids = mean["stimulus_id"].values.astype(str)
    return mean.rename({"stimulus_id": "stimulus"}).drop_vars("stimulus").assign_coords(
        stimulus_id=("stimulus", ids))
