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

from neurofit.encoding.backend import Ops, get_ops
from neurofit.encoding.ridge import Design, work_bytes
from neurofit.encoding.similarity import double_centre


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
        self._whole: dict[str, np.ndarray] = {}  # RDM / centred Gram of all aligned stimuli, made on first use
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
        ``stimulus_id``); returns ``(responses' values in that order as float64, the ids)``: a read-only
        view of ``responses`` where they are in that order already (float64), so the job holds its
        responses once; else a copy."""
        resp_ids = responses["stimulus_id"].values.astype(str)
        shared = np.intersect1d(self.ids, resp_ids)
        if len(shared) < len(resp_ids):
            missing = sorted(set(resp_ids) - set(self.ids))[:5]
            raise ValueError(f"{self.source}: features lack {len(resp_ids) - len(shared)} stimuli of the responses, "
                             f"e.g. {missing}")
        f_pos = {s: i for i, s in enumerate(self.ids)}
        r_pos = {s: i for i, s in enumerate(resp_ids)}
        self.rows = np.asarray([f_pos[s] for s in shared])
        self._whole.clear()
        order = np.asarray([r_pos[s] for s in shared], dtype=np.intp)
        values = responses.values
        if np.array_equal(order, np.arange(len(values))):
            aligned = values.astype(np.float64, copy=False).view()
            aligned.flags.writeable = False  # the caller's array: no step may change it
            return aligned, shared
        return values[order].astype(np.float64, copy=False), shared

    @property
    def work_bytes(self) -> int:
        """The budget of one work array beside this layer as stored (its features or Gram matrix)."""
        stored = self.values if self.values is not None else self.gram
        assert stored is not None
        return work_bytes(stored.nbytes)

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
        """Correlation-distance RDM of the aligned stimuli ``idx`` (as :func:`similarity.rdm`): an entry
        depends on its two stimuli only, so every split's RDMs are sub-matrices of one of all stimuli."""
        if "rdm" not in self._whole:
            self._whole["rdm"] = self._whole_rdm()
        return self._whole["rdm"][np.ix_(idx, idx)]

    def _whole_rdm(self) -> np.ndarray:
        if self.values is None:
            assert self.row_mean is not None
            mu = np.asarray(self.row_mean[self.rows], dtype=np.float64)
            # (x_i - mu_i) . (x_j - mu_j) = x_i . x_j - p mu_i mu_j
            products = self._raw_gram(np.arange(len(self.rows))) - self.n_features * np.outer(mu, mu)
        else:
            # rows centred on their own mean over features, in blocks of features (one float64 block at a time)
            n, p = len(self.rows), self.n_features
            step = max(1, min(64 << 20, max(1 << 20, self.values.nbytes // 8)) // (8 * n))
            mu = np.zeros(n)
            for start in range(0, p, step):
                mu += self.values[self.rows, start:start + step].sum(1, dtype=np.float64)
            mu /= p
            products = np.zeros((n, n))
            for start in range(0, p, step):
                block = np.asarray(self.values[self.rows, start:start + step], dtype=np.float64) - mu[:, None]
                products += block @ block.T
        norms = np.sqrt(np.maximum(np.diag(products), 0.0))
        norms[norms == 0] = np.inf  # a constant row correlates 0 with everything
        return 1.0 - products / np.outer(norms, norms)

    def centred_gram(self, idx: np.ndarray) -> np.ndarray:
        """Gram matrix of the aligned stimuli ``idx``, centred on their own feature means: the
        double-centred sub-matrix of one Gram matrix of all stimuli (centring does not depend on a shift)."""
        if "gram" not in self._whole:
            if self.values is None:
                self._whole["gram"] = self._raw_gram(np.arange(len(self.rows)))
            else:
                self._whole["gram"] = np.asarray(self.design(get_ops("numpy", "float64")).gram())
        return double_centre(self._whole["gram"][np.ix_(idx, idx)])

    def attrs(self) -> dict[str, Any]:
        return {"n_features": self.n_features, "features_form": "gram" if self.gram_only else "matrix",
                "reduce": self.reduce}
