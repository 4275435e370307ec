"""Representational similarity (RSA) and linear CKA between a feature set and neural responses.

RSA follows Brain-Score's ``RDMMetric`` (brainscore_vision/metrics/rdm/metric.py): the RDM is
``1 - np.corrcoef`` between stimuli (correlation distance), two RDMs are compared by the Spearman
correlation of their upper triangles.

Linear CKA (Kornblith et al. 2019) is computed with the unbiased HSIC estimator (Song et al. 2012;
"debiased CKA"), as Brain-Score's ``CKA`` metric does by default (``unbiased=True``,
``unbiased_linear_CKA`` in brainscore_vision/metrics/cka/metric.py: equal to :func:`linear_cka` up
to its 1e-12 guard in the denominator, checked against the installed copy). Brain-Score's
``linear_CKA`` is the biased estimator, which on held-out sets of tens of stimuli is dominated by the
dimensionality: two unrelated random matrices of 16 stimuli score ~0.8. :func:`linear_cka_biased`
is that estimator, kept for comparison."""

from __future__ import annotations

import numpy as np


def rdm(x: np.ndarray) -> np.ndarray:
    """Correlation-distance RDM between the rows (stimuli) of ``x``."""
    xc = x - x.mean(1, keepdims=True)
    norms = np.sqrt((xc**2).sum(1))
    norms[norms == 0] = np.inf  # a constant row correlates 0 with everything
    unit = xc / norms[:, None]
    return 1.0 - unit @ unit.T


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2:  # a draw of fewer than two distinct stimuli has no pair to correlate: 0, as a constant side
        return 0.0
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / denom) if denom > 0 else 0.0


def average_ranks(values: np.ndarray, rtol: float = 0.0) -> np.ndarray:
    """``scipy.stats.rankdata(values)`` (tied values share their mean rank; all NaN if one is NaN), the
    same numbers from one quicksort: mean ranks do not depend on how ties are ordered, so no stable sort
    (scipy's took ~5x as long on an RDM's 10^5 pairs) and no scipy.stats import (0.3 s). ``rtol`` > 0: values
    that follow each other within ``rtol`` x the largest magnitude tie too (distances that are equal but for
    the rounding of their computation)."""
    if np.isnan(values).any():
        return np.full(len(values), np.nan)
    order = np.argsort(values)
    ordered = values[order]
    starts = np.ones(len(values), dtype=bool)
    if rtol > 0 and len(values):
        starts[1:] = np.diff(ordered) > rtol * np.abs(ordered).max()
    else:
        starts[1:] = ordered[1:] != ordered[:-1]
    first = np.flatnonzero(starts)  # each tie group's first sorted position (0-based)
    ends = np.append(first[1:], len(values))
    ranks = np.empty(len(values))
    ranks[order] = ((first + 1 + ends) / 2)[np.cumsum(starts) - 1]  # the mean of ranks first + 1 .. end
    return ranks


def upper_ranks(rdm_: np.ndarray) -> np.ndarray:
    """Average ranks of an RDM's upper triangle, the values :func:`rdm_similarity` correlates."""
    i, j = np.triu_indices(len(rdm_), k=1)
    return average_ranks(rdm_[i, j])


def ranked_rdm_similarity(ranks_a: np.ndarray, rdm_b: np.ndarray) -> float:
    """``rdm_similarity(rdm_a, rdm_b)`` from ``upper_ranks(rdm_a)``, ranked once for many ``rdm_b``."""
    return _pearson(ranks_a, upper_ranks(rdm_b))


def rdm_similarity(rdm_a: np.ndarray, rdm_b: np.ndarray, index: np.ndarray | None = None,
                   index_b: np.ndarray | None = None) -> float:
    """Spearman r between the upper triangles of two RDMs, optionally of the stimuli ``index``
    (with repeats, as in a bootstrap: pairs of a stimulus with itself are left out); ``index_b``
    (default ``index``) picks the matching stimuli of ``rdm_b``, e.g. a permutation."""
    if index is None:
        index = np.arange(len(rdm_a))
    if index_b is None:
        index_b = index
    i, j = np.triu_indices(len(index), k=1)
    keep = index[i] != index[j]
    i, j = i[keep], j[keep]
    return _pearson(average_ranks(rdm_a[index[i], index[j]]), average_ranks(rdm_b[index_b[i], index_b[j]]))


def rsa(x: np.ndarray, y: np.ndarray) -> float:
    return rdm_similarity(rdm(x), rdm(y))


def _centred_gram(x: np.ndarray) -> np.ndarray:
    xc = x - x.mean(0)
    return xc @ xc.T


def linear_cka_biased(x: np.ndarray, y: np.ndarray) -> float:
    """Brain-Score's linear CKA: biased HSIC of the centred linear kernels, normalised."""
    k, m = _centred_gram(x), _centred_gram(y)
    denom = np.sqrt((k * k).sum() * (m * m).sum())
    return float((k * m).sum() / denom) if denom > 0 else 0.0


def _hsic_unbiased(k: np.ndarray, m: np.ndarray) -> float:
    """Song et al. (2012) unbiased HSIC of two Gram matrices (diagonals are ignored)."""
    n = len(k)
    k, m = k.copy(), m.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(m, 0.0)
    ks, ms = k.sum(0), m.sum(0)
    value = (k * m).sum() + ks.sum() * ms.sum() / ((n - 1) * (n - 2)) - 2.0 * (ks @ ms) / (n - 2)
    return float(value / (n * (n - 3)))


def double_centre(gram: np.ndarray) -> np.ndarray:
    """The Gram matrix of the same rows centred on their own mean."""
    return gram - gram.mean(0, keepdims=True) - gram.mean(1, keepdims=True) + gram.mean()


def cka_from_grams(k: np.ndarray, m: np.ndarray) -> float:
    """Debiased linear CKA from two centred linear Gram matrices of the same stimuli (n >= 4)."""
    if len(k) < 4:
        raise ValueError(f"debiased CKA needs at least 4 stimuli; got {len(k)}")
    denom = _hsic_unbiased(k, k) * _hsic_unbiased(m, m)
    return _hsic_unbiased(k, m) / np.sqrt(denom) if denom > 0 else 0.0


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Debiased linear CKA of two (stimulus, feature) arrays over their shared stimuli (n >= 4)."""
    return cka_from_grams(_centred_gram(x), _centred_gram(y))
