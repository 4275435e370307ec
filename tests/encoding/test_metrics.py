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
    from neurofit.encoding.settings import EncodingSettings

    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 50))
    y = x @ rng.normal(size=(50, 10)) / 7 + rng.normal(size=(120, 10))
    labels = np.repeat(np.arange(6), 20)
    features, responses, ids = labelled(x, y)
    settings = EncodingSettings.from_config({"bootstrap": {"n": 10}, "permutations": {"n": 10}})
    stratify = ("object_name", dict(zip(ids, labels, strict=True)))
    fit = fit_metric("pls", features, responses, settings, stratify=stratify)
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


def _draws_with_edge_cases(m, t, n_draws, seed, one_neuroid=True):
    from neurofit.encoding.fit import _draws

    rows, cols, perm = _draws(m, t, n_draws, n_draws, [seed, 1])
    rows[0] = rows[0, 0]  # one distinct stimulus: too few pairs (RSA scores 0, CKA NaN)
    rows[1, :3] = rows[1, 0]  # fewer than 4 distinct stimuli in CKA
    rows[1, 3:] = rows[1, 1]
    if one_neuroid:  # (its rows are constant: rdm's correlations of them are rounding noise, so not for RSA)
        cols[2] = cols[2, 0]
    return rows, cols, perm


@pytest.mark.parametrize("seed", [3, 4])
def test_vectorised_cka_resamples_equal_a_per_draw_loop(seed):
    """Every kind of draw the fit makes, vectorised, against CKA of each draw's resampled data."""
    from neurofit.encoding.resampling import cka_resamples
    from neurofit.encoding.similarity import _centred_gram

    rng = np.random.default_rng(seed)
    m, t = 14, 5
    x, y = rng.normal(size=(m, 30)) + 2, rng.normal(size=(m, t)) - 1
    rows, cols, perm = _draws_with_edge_cases(m, t, 12, seed)
    got = cka_resamples(_centred_gram(x), [y], rows, [(cols, perm)])[0]
    for b in range(12):
        first = np.sort(np.unique(rows[b]))
        want = {"boot_stimuli": linear_cka(x[first], y[first]) if len(first) >= 4 else np.nan,
                "boot_neuroids": linear_cka(x, y[:, cols[b]]),
                "boot_both": linear_cka(x[first], y[first][:, cols[b]]) if len(first) >= 4 else np.nan,
                "null": linear_cka(x, y[perm[b]])}
        for kind, value in want.items():
            if np.isnan(value):
                assert np.isnan(got[kind][b]), (kind, b)
            else:
                assert got[kind][b] == pytest.approx(value, abs=1e-10), (kind, b)


@pytest.mark.parametrize("ties", [False, True])
def test_vectorised_rsa_resamples_equal_a_per_draw_loop(ties):
    """Ranks from the fixed RDMs' sort orders (stimulus draws, permutations) and from one sort per
    neuroid draw equal Spearman of each draw's resampled RDMs, ties and left-out pairs included."""
    from neurofit.encoding.resampling import rsa_resamples
    from neurofit.encoding.similarity import rdm_similarity

    rng = np.random.default_rng(5)
    # draws of two distinct neuroids are left out: their RDM entries are all 0 or 2 up to rounding, whose ties
    # then depend on the order of the floating-point operations
    m, t = 12, 6
    x, y = rng.normal(size=(m, 20)), rng.normal(size=(m, t))
    if ties:
        x = x.round(1)
        x[3] = x[2]  # equal model RDM entries: tied ranks
        y[5] = y[4]  # equal neural RDM entries in every draw
    model = rdm(x)
    rows, cols, perm = _draws_with_edge_cases(m, t, 15, 2, one_neuroid=False)
    assert all(len(np.unique(c)) != 2 for c in cols)
    got = rsa_resamples(model, [y], rows, [(cols, perm)])[0]
    every = np.arange(m)
    for b in range(15):
        want = {"boot_stimuli": rdm_similarity(model, rdm(y), rows[b]),
                "boot_neuroids": rdm_similarity(model, rdm(y[:, cols[b]])),
                "boot_both": rdm_similarity(model, rdm(y[:, cols[b]]), rows[b]),
                "null": rdm_similarity(model, rdm(y), every, perm[b])}
        for kind, value in want.items():
            assert got[kind][b] == pytest.approx(value, abs=1e-12), (kind, b)
