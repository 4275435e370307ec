"""PLS, splits, ceilings, RSA and CKA against direct implementations of their definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from sklearn.cross_decomposition import PLSRegression
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

from neurofit.encoding.ceiling import CeilingError, split_half_ceiling, split_half_similarity
from neurofit.encoding.pls import KernelPLS
from neurofit.encoding.ridge import Design
from neurofit.encoding.similarity import linear_cka, linear_cka_biased, rdm, rsa
from neurofit.encoding.splits import stimulus_splits


def test_brainscore_splits_are_sklearns_with_brainscore_arguments():
    labels = np.repeat(np.arange(4), 10)
    brainscore = StratifiedShuffleSplit(n_splits=10, train_size=0.9, random_state=1)
    for got, want in zip(stimulus_splits(40, stratify=labels), brainscore.split(np.zeros(40), labels), strict=True):
        np.testing.assert_array_equal(got[0], want[0])
    for got, want in zip(stimulus_splits(40), ShuffleSplit(n_splits=10, train_size=0.9, random_state=1).split(
            np.zeros(40)), strict=True):
        np.testing.assert_array_equal(got[1], want[1])
    folds = stimulus_splits(40, "kfold", n_splits=5)
    assert sorted(np.concatenate([test for _, test in folds]).tolist()) == list(range(40))


def brainscore_pls_score(x, y, labels):
    """Brain-Score's CrossRegressedCorrelation(pls) written out: stratified shuffle splits over
    stimuli sorted by id, PLS fit on the training stimuli in id order, scipy Pearson per neuroid,
    median over neuroids, mean over splits."""
    scores = []
    for train, test in StratifiedShuffleSplit(n_splits=10, train_size=0.9, random_state=1).split(np.zeros(len(x)),
                                                                                                 labels):
        train = np.sort(train)
        pred = PLSRegression(n_components=25, scale=False).fit(x[train], y[train]).predict(x[test])
        scores.append(np.median([scipy.stats.pearsonr(pred[:, j], y[test, j])[0] for j in range(y.shape[1])]))
    return float(np.mean(scores))


def test_pls_metric_gives_the_brainscore_procedures_number(labelled):
    from neurofit.encoding.fit import fit_metric

    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 50))
    y = x @ rng.normal(size=(50, 10)) / 7 + rng.normal(size=(120, 10))
    labels = np.repeat(np.arange(6), 20)
    features, responses, ids = labelled(x, y)
    fit = fit_metric("pls", features, responses, stratify=("object_name", dict(zip(ids, labels, strict=True))),
                     n_boot=10, n_permutations=10)
    order = np.argsort(ids)  # Brain-Score splits the target assembly sorted by stimulus_id
    assert abs(float(fit["test_score"].mean()) - brainscore_pls_score(x[order], y[order], labels[order])) < 1e-6


def direct_ceiling(counts, stimulus, repeat, n_splits=10, seed=1):
    """InternalConsistency written out with pandas and scipy."""
    frame = pd.DataFrame(counts).assign(stimulus=stimulus, repeat=repeat)
    repeats = np.unique(repeat)
    out = []
    for a, b in ShuffleSplit(n_splits=n_splits, train_size=0.5, random_state=seed).split(repeats):
        half_a = frame[frame["repeat"].isin(repeats[a])].groupby("stimulus").mean().drop(columns="repeat")
        half_b = frame[frame["repeat"].isin(repeats[b])].groupby("stimulus").mean().drop(columns="repeat")
        shared = half_a.index.intersection(half_b.index)
        r = np.array([scipy.stats.pearsonr(half_a.loc[shared, j], half_b.loc[shared, j])[0]
                      for j in range(counts.shape[1])])
        out.append(2 * r / (1 + r))
    return np.array(out)


def repeated(n_stimuli=30, n_repeats=6, t=5, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(n_stimuli, t))
    stimulus = np.tile(np.arange(n_stimuli), n_repeats).astype(str)
    repeat = np.repeat(np.arange(n_repeats), n_stimuli)
    counts = truth[np.tile(np.arange(n_stimuli), n_repeats)] + rng.normal(size=(n_stimuli * n_repeats, t))
    return counts, stimulus, repeat


def test_ceiling_equals_a_direct_implementation():
    counts, stimulus, repeat = repeated()
    np.testing.assert_allclose(split_half_ceiling(counts, stimulus, repeat), direct_ceiling(counts, stimulus, repeat),
                               atol=1e-12)


def test_ceiling_works_with_ragged_repeats():
    counts, stimulus, repeat = repeated(n_repeats=5)
    keep = np.random.default_rng(4).random(len(counts)) > 0.3  # drop 30% of presentations at random
    got = split_half_ceiling(counts[keep], stimulus[keep], repeat[keep])
    np.testing.assert_allclose(got, direct_ceiling(counts[keep], stimulus[keep], repeat[keep]), atol=1e-12)
    assert np.isfinite(got).all()


def test_ceiling_needs_two_repeats():
    counts, stimulus, repeat = repeated(n_repeats=1)
    with pytest.raises(CeilingError, match="2 repeats"):
        split_half_ceiling(counts, stimulus, repeat)


def test_ceiling_of_noiseless_data_is_one_and_of_pure_noise_near_zero():
    counts, stimulus, repeat = repeated(t=3)
    rng = np.random.default_rng(0)
    truth_only = np.repeat(rng.normal(size=(1, 30, 3)), 6, axis=0).reshape(180, 3)
    np.testing.assert_allclose(split_half_ceiling(truth_only, stimulus, repeat), 1.0)
    noise = rng.normal(size=(600 * 6, 3))
    assert abs(np.median(split_half_ceiling(noise, np.tile(np.arange(600), 6).astype(str),
                                            np.repeat(np.arange(6), 600)))) < 0.15


def test_rsa_is_spearman_between_correlation_distance_rdms():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(15, 30)), rng.normal(size=(15, 8))
    iu = np.triu_indices(15, k=1)
    expected = scipy.stats.spearmanr((1 - np.corrcoef(x))[iu], (1 - np.corrcoef(y))[iu])[0]
    assert rsa(x, y) == pytest.approx(expected, abs=1e-12)
    np.testing.assert_allclose(rdm(x), 1 - np.corrcoef(x), atol=1e-12)


def test_biased_cka_is_brainscores_formula_and_debiased_cka_is_near_zero_for_unrelated_data():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 300)), rng.normal(size=(16, 30))
    h = np.eye(16) - 1 / 16
    hsic = lambda a, b: np.sum((h @ a @ a.T @ h) * (h @ b @ b.T @ h))  # noqa: E731
    assert linear_cka_biased(x, y) == pytest.approx(hsic(x, y) / np.sqrt(hsic(x, x) * hsic(y, y)))
    assert linear_cka_biased(x, y) > 0.5  # the small-sample bias that the debiased estimator removes
    unrelated = [linear_cka(rng.normal(size=(16, 300)), rng.normal(size=(16, 30))) for _ in range(50)]
    assert abs(np.mean(unrelated)) < 0.05
    q = np.linalg.qr(rng.normal(size=(30, 30)))[0]
    assert linear_cka(x, y) == pytest.approx(linear_cka(3 * x + 1, y @ q))  # invariant to rotation, scale, shift
    assert linear_cka(y, y) == pytest.approx(1.0)


def test_similarity_ceilings_are_high_for_reliable_data():
    counts, stimulus, repeat = repeated(n_stimuli=40, t=30)
    region = np.array(["V1"] * 15 + ["IT"] * 15)
    out = split_half_similarity(counts / 5 + np.repeat(np.random.default_rng(1).normal(size=(1, 40, 30)), 6, 0)
                                .reshape(240, 30), stimulus, repeat, region)
    assert set(out) == {"rsa", "cka"} and set(out["rsa"]) == {"V1", "IT"}
    assert all(v.shape == (10,) and v.mean() > 0.8 for by_region in out.values() for v in by_region.values())


def test_pls_cross_validation_scores_training_stimuli_only():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 20))
    y = x[:, :3] + 0.3 * rng.normal(size=(60, 3))
    splits = stimulus_splits(60)
    pls = KernelPLS(5, x.shape[1])
    first = pls.cross_validated(Design(x), y, splits, 5, 0)
    y_changed = y.copy()
    y_changed[splits[0][1]] = rng.normal(size=(len(splits[0][1]), 3))  # only the first split's test stimuli
    second = pls.cross_validated(Design(x), y_changed, splits, 5, 0)
    np.testing.assert_array_equal(first[0][1], second[0][1])  # the inner-CV (training) r
    np.testing.assert_array_equal(first[0][0], second[0][0])


def test_cka_resamples_equal_cka_of_the_resampled_data():
    from neurofit.encoding.fit import _cka_resampler
    from neurofit.encoding.similarity import _centred_gram

    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(12, 40)), rng.normal(size=(12, 6))
    rows = np.array([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [3, 3, 1, 0, 5, 7, 7, 8, 9, 2, 11, 4]])
    perm = np.array([rng.permutation(12), rng.permutation(12)])
    cols = np.array([[0, 1, 2, 3, 4, 5], [1, 1, 2, 5, 5, 0]])
    got = _cka_resampler(_centred_gram(x), y)(rows, perm, cols)
    for b in range(2):
        first = np.unique(rows[b], return_index=True)[1]
        want = linear_cka(x[rows[b][first]], y[perm[b][first]][:, cols[b]])
        assert got[b] == pytest.approx(want, abs=1e-10)


@pytest.mark.parametrize("shape", [(90, 300, 7), (60, 200, 1), (50, 20, 4)])
def test_kernel_pls_predicts_as_sklearn_pls(shape):
    from sklearn.cross_decomposition import PLSRegression

    from neurofit.encoding.pls import kernel_pls_predict
    from neurofit.encoding.ridge import Design

    n, p, t = shape
    rng = np.random.default_rng(7)
    x = rng.normal(size=(n, p)) + 2.0
    y = x @ rng.normal(size=(p, t)) / np.sqrt(p) + rng.normal(size=(n, t)) + 1.0
    fit, test = np.arange(n - 10), np.arange(n - 10, n)
    k_ff, k_ef = Design(x).centred_kernels(fit, test)
    components = min(25, p, len(fit) - 1)
    expected = PLSRegression(components, scale=False).fit(x[fit], y[fit]).predict(x[test]).reshape(10, t)
    np.testing.assert_allclose(kernel_pls_predict(k_ff, k_ef, y[fit], components), expected, atol=1e-9)


def test_cka_resamples_of_each_kind_equal_cka_of_the_resampled_data():
    """Each kind the fit draws (stimuli, permutation, neuroids) has its own vectorised path."""
    from neurofit.encoding.fit import _cka_resampler
    from neurofit.encoding.similarity import _centred_gram

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(14, 30)) + 2, rng.normal(size=(14, 5)) - 1
    resample = _cka_resampler(_centred_gram(x), y)
    rows, cols = np.arange(14), np.arange(5)
    drawn = rng.integers(0, 14, (6, 14))
    drawn[0, :] = drawn[0, 0]  # one distinct stimulus: too few for the estimator
    perm = np.array([rng.permutation(14) for _ in range(6)])
    neuroids = rng.integers(0, 5, (6, 5))
    kinds = {"stimuli": (drawn, drawn, np.tile(cols, (6, 1))),
             "permutation": (np.tile(rows, (6, 1)), perm, np.tile(cols, (6, 1))),
             "neuroids": (np.tile(rows, (6, 1)), np.tile(rows, (6, 1)), neuroids)}
    for kind, (rm, rn, nb) in kinds.items():
        got = resample(rm, rn, nb)
        for b in range(6):
            first = np.unique(rm[b], return_index=True)[1]
            if len(first) < 4:
                assert np.isnan(got[b]), kind
                continue
            want = linear_cka(x[rm[b][first]], y[rn[b][first]][:, nb[b]])
            assert got[b] == pytest.approx(want, abs=1e-10), kind


def test_rsa_resamples_equal_rsa_of_the_resampled_data():
    """Ranks from histograms of a fixed RDM's entries (stimulus draws, permutations) and from one sort
    per draw (neuroid draws) equal Spearman of the resampled RDMs, ties and left-out pairs included."""
    from neurofit.encoding.fit import _rsa_resampler
    from neurofit.encoding.similarity import rdm_similarity

    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(12, 20)).round(1), rng.normal(size=(12, 4))
    x[3] = x[2]  # equal RDM entries: tied ranks
    model = rdm(x)
    resample = _rsa_resampler(model, y)
    rows, cols = np.arange(12), np.arange(4)
    drawn = rng.integers(0, 12, (5, 12))
    perm = np.array([rng.permutation(12) for _ in range(5)])
    neuroids = rng.integers(0, 4, (5, 4))
    kinds = {"stimuli": (drawn, drawn, np.tile(cols, (5, 1))),
             "permutation": (np.tile(rows, (5, 1)), perm, np.tile(cols, (5, 1))),
             "neuroids": (np.tile(rows, (5, 1)), np.tile(rows, (5, 1)), neuroids),
             "both": (drawn, drawn, neuroids)}
    for kind, (rm, rn, nb) in kinds.items():
        got = resample(rm, rn, nb)
        for b in range(5):
            want = rdm_similarity(model, rdm(y[:, nb[b]]), rm[b], rn[b])
            assert got[b] == pytest.approx(want, abs=1e-12), kind
