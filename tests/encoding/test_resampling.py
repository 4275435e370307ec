"""The RSA and CKA resamples of several groups of neuroids at once (neurofit.encoding.resampling) against a
straightforward per-draw loop: every kind of draw the fit makes, each draw's data resampled and scored
by the plain metric (rdm_similarity / linear_cka)."""

from __future__ import annotations

import numpy as np
import pytest

from neurofit.encoding.fit import _draws, _split_draws
from neurofit.encoding.resampling import _row_orders, cka_resamples, rsa_resamples
from neurofit.encoding.similarity import _centred_gram, linear_cka, rdm, rdm_similarity


def _group_draws(m: int, sizes: list[int], n_draws: int, seed: int):
    """The fit's draws for groups of ``sizes`` neuroids: stimulus rows and permutations shared, then each
    group's own neuroid columns."""
    rows, perm, neuroid_draws = _split_draws(m, n_draws, n_draws, [seed, 1])
    return rows, [(neuroid_draws(size), perm) for size in sizes]


def test_group_draws_are_those_of_a_fit_of_each_group_alone():
    rows, drawn = _group_draws(12, [5, 7], 20, 3)
    for size, (cols, perm) in zip([5, 7], drawn, strict=True):
        alone = _draws(12, size, 20, 20, [3, 1])
        for got, want in zip((rows, cols, perm), alone, strict=True):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("model_ties", [False, True])
def test_rsa_resamples_of_several_groups_equal_a_per_draw_loop(model_ties):
    """Groups of different sizes (own neuroid draws; shared stimulus draws and permutations); one group
    has two stimuli with equal responses (tied neural RDM entries in the fixed RDM and in every neuroid
    draw: the tie path), the others none (the sorted-key path); the model RDM with or without ties."""
    rng = np.random.default_rng(11)
    m, sizes, n_draws = 16, [7, 9, 8], 60
    x = rng.normal(size=(m, 25))
    if model_ties:
        x = x.round(1)
        x[3] = x[2]
    ys = [rng.normal(size=(m, t)) for t in sizes]
    ys[1][6] = ys[1][5]
    model = rdm(x)
    rows, drawn = _group_draws(m, sizes, n_draws, 4)
    rows[0] = rows[0, 0]  # one distinct stimulus: no pairs (scores 0)
    got = rsa_resamples(model, ys, rows, drawn)
    every = np.arange(m)
    compared = 0
    for y, (cols, perm), out in zip(ys, drawn, got, strict=True):
        for b in range(n_draws):
            want = {"boot_stimuli": rdm_similarity(model, rdm(y), rows[b]),
                    "null": rdm_similarity(model, rdm(y), every, perm[b])}
            # a draw of two distinct neuroids has RDM entries 0 or 2 up to rounding, whose ties then depend
            # on the order of the floating-point operations: left out
            if len(np.unique(cols[b])) > 2:
                want["boot_neuroids"] = rdm_similarity(model, rdm(y[:, cols[b]]))
                want["boot_both"] = rdm_similarity(model, rdm(y[:, cols[b]]), rows[b])
            for kind, value in want.items():
                assert out[kind][b] == pytest.approx(value, abs=1e-12), (kind, b)
                compared += 1
    assert compared > 3 * n_draws * 3.5


@pytest.mark.parametrize("seed", [3, 4])
def test_cka_resamples_of_several_groups_equal_a_per_draw_loop(seed):
    rng = np.random.default_rng(seed)
    m, sizes, n_draws = 14, [5, 8, 1], 30
    x = rng.normal(size=(m, 30)) + 2
    ys = [rng.normal(size=(m, t)) - 1 for t in sizes]
    rows, drawn = _group_draws(m, sizes, n_draws, seed)
    rows[0] = rows[0, 0]  # fewer than 4 distinct stimuli: NaN
    rows[1, :3] = rows[1, 0]
    rows[1, 3:] = rows[1, 1]
    got = cka_resamples(_centred_gram(x), ys, rows, drawn)
    for y, (cols, perm), out in zip(ys, drawn, got, strict=True):
        for b in range(n_draws):
            kept = np.sort(np.unique(rows[b]))
            enough = len(kept) >= 4
            want = {"boot_stimuli": linear_cka(x[kept], y[kept]) if enough else np.nan,
                    "boot_neuroids": linear_cka(x, y[:, cols[b]]),
                    "boot_both": linear_cka(x[kept], y[kept][:, cols[b]]) if enough else np.nan,
                    "null": linear_cka(x, y[perm[b]])}
            for kind, value in want.items():
                if np.isnan(value):
                    assert np.isnan(out[kind][b]), (kind, b)
                else:
                    assert out[kind][b] == pytest.approx(value, abs=1e-10), (kind, b)


def test_row_orders_sort_each_row_and_find_the_tied_rows():
    """Sorted integer keys: exact ties found, values equal in all but their lowest bits (keys that collide)
    sorted exactly, negative values and zero ordered as floats."""
    rng = np.random.default_rng(0)
    values = rng.uniform(-0.5, 2.0, (6, 40))
    values[1, 7] = values[1, 30]  # a tie
    values[2, 3] = np.nextafter(values[2, 9], 3.0)  # keys collide, no tie
    values[3, :5] = [0.0, -1e-17, 1e-17, -0.25, 0.25]
    values[4] = values[4, ::-1].round(1)  # many ties
    shape = values.shape
    order, tied = _row_orders(values, np.empty(shape, np.int64), np.empty(shape, np.int64), np.empty(shape, bool))
    for b in range(len(values)):
        assert sorted(order[b]) == list(range(values.shape[1]))
        assert (np.diff(values[b, order[b]]) >= 0).all(), b
    np.testing.assert_array_equal(tied, [1, 4])
    want = np.argsort(values[[0, 2, 3, 5]], axis=1)  # no ties: one order
    np.testing.assert_array_equal(order[[0, 2, 3, 5]], want)


@pytest.mark.parametrize("values", [np.arange(0.0), np.array([2.0]), np.array([1.0, np.nan, 0.5]),
                                    np.random.default_rng(1).normal(size=500),
                                    np.random.default_rng(2).normal(size=500).round(1)])
def test_average_ranks_are_scipys_rankdata(values):
    """The point scores' ranks (RSA on the test and training stimuli): the same numbers as before."""
    import scipy.stats

    from neurofit.encoding.similarity import average_ranks

    np.testing.assert_array_equal(average_ranks(values), scipy.stats.rankdata(values))


@pytest.mark.parametrize("resample", [rsa_resamples, cka_resamples])
def test_no_draws_give_empty_resamples(resample):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 5)), rng.normal(size=(8, 4))
    model = rdm(x) if resample is rsa_resamples else _centred_gram(x)
    empty = np.zeros((0, 8), dtype=int)
    (out,) = resample(model, [y], empty, [(np.zeros((0, 4), dtype=int), empty)])
    kinds = ("boot_stimuli", "boot_neuroids", "boot_both", "null")
    assert {k: v.shape for k, v in out.items()} == {k: (0,) for k in kinds}
