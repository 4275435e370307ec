"""One layer's features as the fit reads them: held once, shared by every metric, split and region.

Two forms, as the features stage writes them:

- the ``(stimulus, feature)`` matrix (any float dtype; never copied: stimuli are aligned to the
  responses through a row index);
- Gram-only (``reduce: gram``): the stimulus x stimulus products ``x @ x.T`` and per-stimulus
  means over features, accumulated batch by batch so the matrix is never held. Ridge runs exactly
  as kernel ridge from it, PLS as NIPALS in kernel form, RSA and CKA need nothing else.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from neurofit.encoding.backend import Ops
from neurofit.encoding.ridge import Design
from neurofit.encoding.similarity import _centred_gram, double_centre, rdm


class LayerFeatures:
    """One layer's features (a matrix, or a Gram matrix with row means) and their stimulus ids."""

    def __init__(self, ids: np.ndarray, values: np.ndarray | None = None, gram: np.ndarray | None = None,
                 row_mean: np.ndarray | None = None, n_features: int | None = None, source: str = "features",
                 reduce: str = "none") -> None:
        if (values is None) == (gram is None):
            raise ValueError("LayerFeatures needs either the feature matrix or its Gram matrix")
        self.ids = np.asarray(ids).astype(str)
        self.values, self.gram, self.row_mean = values, gram, row_mean
        self.n_features = int(values.shape[1]) if values is not None else int(n_features or 0)
        self.source = source
        self.reduce = reduce  # how the features stage reduced the layer (its ``reduce`` attribute)
        self.rows = np.arange(len(self.ids))
        self.shape: tuple[int, ...] | None = None  # the layer's unflattened output (the factorised readout's map)

    @classmethod
    def from_xarray(cls, features: xr.DataArray | xr.Dataset, source: str = "features") -> LayerFeatures:
        """A ``(stimulus, feature)`` DataArray, or a Dataset with ``gram`` (stimulus, stimulus_b),
        ``row_mean`` (stimulus) and the ``n_features`` attribute (the features stage's ``reduce: gram``)."""
        reduce = str(features.attrs.get("reduce", "none"))
        if isinstance(features, xr.Dataset) and "gram" in features.data_vars:
            return cls(features["stimulus_id"].values, gram=features["gram"].values,
                       row_mean=features["row_mean"].values, n_features=int(features.attrs["n_features"]),
                       source=source, reduce=reduce)
        if isinstance(features, xr.Dataset):
            names = list(features.data_vars)
            if len(names) != 1:
                raise ValueError(f"{source}: expected one feature variable or 'gram'; found {names}")
            features = features[names[0]]
        layer = cls(features["stimulus_id"].values, values=features.values, source=source, reduce=reduce)
        shape = str(features.attrs.get("output_shape", "")).split()
        layer.shape = tuple(int(d) for d in shape) or None
        return layer

    @property
    def gram_only(self) -> bool:
        return self.values is None

    def align(self, responses: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
        """Orders this layer's stimuli like the stimuli it shares with ``responses`` (sorted by
        ``stimulus_id``); returns ``(responses' values in that order as float64, the ids)``."""
        resp_ids = responses["stimulus_id"].values.astype(str)
        shared = np.intersect1d(self.ids, resp_ids)
        if len(shared) < len(resp_ids):
            missing = sorted(set(resp_ids) - set(self.ids))[:5]
            raise ValueError(f"{self.source}: features lack {len(resp_ids) - len(shared)} stimuli of the responses, "
                             f"e.g. {missing}")
        f_pos = {s: i for i, s in enumerate(self.ids)}
        r_pos = {s: i for i, s in enumerate(resp_ids)}
        self.rows = np.asarray([f_pos[s] for s in shared])
        return responses.values[[r_pos[s] for s in shared]].astype(np.float64), shared

    def design(self, ops: Ops) -> Design:
        if self.gram is not None:
            ordered = np.array_equal(self.rows, np.arange(len(self.ids)))
            return Design.from_gram(self.gram if ordered else self.gram[np.ix_(self.rows, self.rows)], ops)
        return Design(self.values, ops, rows=self.rows)

    def matrix(self) -> np.ndarray:
        """The aligned feature matrix in float64 (a copy; every metric also runs from the Gram matrix)."""
        if self.values is None:
            raise ValueError(f"{self.source}: stored as its Gram matrix only (features.reduce: gram)")
        return np.asarray(self.values[self.rows], dtype=np.float64)

    def _raw_gram(self, idx: np.ndarray) -> np.ndarray:
        assert self.gram is not None
        rows = self.rows[idx]
        return np.asarray(self.gram[np.ix_(rows, rows)], dtype=np.float64)

    def rdm(self, idx: np.ndarray) -> np.ndarray:
        """Correlation-distance RDM of the aligned stimuli ``idx`` (as :func:`similarity.rdm`)."""
        if self.values is not None:
            return rdm(np.asarray(self.values[self.rows[idx]], dtype=np.float64))
        assert self.row_mean is not None
        mu = np.asarray(self.row_mean[self.rows[idx]], dtype=np.float64)
        # (x_i - mu_i) . (x_j - mu_j) = x_i . x_j - p mu_i mu_j
        products = self._raw_gram(idx) - self.n_features * np.outer(mu, mu)
        norms = np.sqrt(np.maximum(np.diag(products), 0.0))
        norms[norms == 0] = np.inf
        return 1.0 - products / np.outer(norms, norms)

    def centred_gram(self, idx: np.ndarray) -> np.ndarray:
        """Gram matrix of the aligned stimuli ``idx``, centred on their own feature means."""
        if self.values is not None:
            return _centred_gram(np.asarray(self.values[self.rows[idx]], dtype=np.float64))
        return double_centre(self._raw_gram(idx))

    def attrs(self) -> dict[str, Any]:
        return {"n_features": self.n_features, "features_form": "gram" if self.gram_only else "matrix",
                "reduce": self.reduce}
