"""Ridge against scikit-learn, against a brute-force alpha search, across backends and dtypes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold

from neurofit.encoding.backend import get_ops
from neurofit.encoding.regression import RidgeCV
from neurofit.encoding.ridge import DEFAULT_ALPHAS, Design, FitTargets, pearson_columns, ridge_cv, ridge_predict

SHAPES = [(60, 200), (200, 30)]  # dual (stimuli < features) and primal


def data(n: int, p: int, t: int = 6, seed: int = 0, noise: float = 1.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p)) + 3.0  # an offset, so a missing intercept would show
    y = x @ rng.normal(size=(p, t)) / np.sqrt(p) + noise * rng.normal(size=(n, t)) + 5.0
    return x, y


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("alpha", [0.01, 1.0, 1e4])
def test_equals_sklearn_ridge_at_a_fixed_alpha(shape, alpha):
    x, y = data(*shape)
    x_test = np.random.default_rng(9).normal(size=(25, shape[1])) + 3.0
    expected = Ridge(alpha=alpha).fit(x, y).predict(x_test)
    np.testing.assert_allclose(ridge_predict(x, y, x_test, alpha), expected, rtol=0, atol=1e-8)


@pytest.mark.parametrize("shape", SHAPES)
def test_regression_interface_predicts_like_sklearn_at_the_chosen_alphas(shape):
    x, y = data(*shape)
    model = RidgeCV(backend="numpy").fit(x, y)
    x_test = x[:10] + 0.5
    expected = np.column_stack([Ridge(alpha=a).fit(x, y[:, j]).predict(x_test) for j, a in enumerate(model.alpha_)])
    np.testing.assert_allclose(model.predict(x_test), expected, atol=1e-8)


@pytest.mark.parametrize("shape", SHAPES)
def test_per_neuroid_alpha_equals_brute_force_grid_search_on_the_same_folds(shape):
    x, y = data(*shape, t=8, noise=2.0)
    fit = np.arange(len(x))
    result = ridge_cv(Design(x), y[fit], fit, None, DEFAULT_ALPHAS, inner_folds=5, seed=3)
    errors = np.zeros((len(DEFAULT_ALPHAS), y.shape[1]))
    out_of_fold = np.zeros((len(DEFAULT_ALPHAS),) + y.shape)
    for train, valid in KFold(5, shuffle=True, random_state=3).split(fit):
        for i, alpha in enumerate(DEFAULT_ALPHAS):
            pred = Ridge(alpha=alpha).fit(x[train], y[train]).predict(x[valid])
            errors[i] += ((pred - y[valid]) ** 2).sum(0)
            out_of_fold[i][valid] = pred
    np.testing.assert_allclose(result.cv_error, errors, rtol=1e-9)
    best = errors.argmin(0)
    assert len(set(best)) > 1, "the test data should need different alphas per neuroid"
    np.testing.assert_array_equal(result.alpha, DEFAULT_ALPHAS[best])
    expected_r = pearson_columns(out_of_fold[best, :, np.arange(y.shape[1])].T, y)
    np.testing.assert_allclose(result.inner_r, expected_r, atol=1e-10)


def test_chunking_over_alphas_changes_nothing():
    x, y = data(80, 150, t=5)
    fit, test = np.arange(70), np.arange(70, 80)
    whole = ridge_cv(Design(x), y[fit], fit, test, chunk_elements=1 << 30)
    one_by_one = ridge_cv(Design(x), y[fit], fit, test, chunk_elements=1)
    np.testing.assert_allclose(whole.cv_error, one_by_one.cv_error, rtol=1e-12)
    np.testing.assert_allclose(whole.prediction, one_by_one.prediction, atol=1e-10)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("shape", SHAPES)
def test_torch_backend_equals_numpy(shape, device):
    torch = pytest.importorskip("torch")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    x, y = data(*shape)
    fit, test = np.arange(shape[0] - 10), np.arange(shape[0] - 10, shape[0])
    reference = ridge_cv(Design(x, get_ops("numpy")), y[fit], fit, test)
    torch_run = ridge_cv(Design(x, get_ops("torch", device=device)), y[fit], fit, test)
    np.testing.assert_array_equal(torch_run.alpha, reference.alpha)
    np.testing.assert_allclose(torch_run.prediction, reference.prediction, atol=1e-8)
    np.testing.assert_allclose(torch_run.inner_r, reference.inner_r, atol=1e-8)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_float32_is_close_to_float64(backend):
    pytest.importorskip("torch")
    x, y = data(150, 400)
    fit, test = np.arange(130), np.arange(130, 150)
    double = ridge_cv(Design(x, get_ops("numpy")), y[fit], fit, test)
    single = ridge_cv(Design(x, get_ops(backend, "float32", device="cpu")), y[fit], fit, test)
    assert single.prediction.dtype == np.float32
    np.testing.assert_allclose(single.prediction, double.prediction, rtol=1e-3, atol=1e-3)


def test_held_out_r_approaches_its_noise_limited_value():
    # y = x w + noise with var(x w) = var(noise): the best possible r is sqrt(1/2) ~ 0.707
    rng = np.random.default_rng(1)
    n, p, t = 2000, 40, 20
    x = rng.normal(size=(n, p))
    signal = x @ rng.normal(size=(p, t)) / np.sqrt(p)
    y = signal + rng.normal(size=(n, t))
    fit, test = np.arange(1500), np.arange(1500, n)
    result = ridge_cv(Design(x), y[fit], fit, test)
    limit = pearson_columns(signal[test], y[test])  # r of the true map on these very stimuli
    r = pearson_columns(result.prediction, y[test])
    assert (r <= limit + 0.01).all() and np.mean(limit - r) < 0.015  # estimation costs ~p/n of r
    assert abs(np.median(r) - np.sqrt(0.5)) < 0.03


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_targets_read_as_shifted_rows_of_the_responses_equal_their_copy(shape, dtype):
    # FitTargets gathers the fit rows of the caller's responses per use, shifted in float64 before rounding:
    # exactly what the shifted copy of those rows gives
    x, y = data(*shape, t=7)
    rows = np.random.default_rng(3).permutation(len(x))
    fit, test = np.sort(rows[: int(0.8 * len(x))]), np.sort(rows[int(0.8 * len(x)):])
    shift = y[fit].mean(0)
    design = Design(x.astype(np.float32), get_ops("numpy", dtype))
    read = ridge_cv(design, FitTargets(y, fit, shift), fit, test)
    copied = ridge_cv(design, y[fit] - shift, fit, test)
    for name in ("alpha", "inner_r", "cv_error", "prediction"):
        np.testing.assert_array_equal(getattr(read, name), getattr(copied, name))


def test_shuffled_target_scores_near_zero():
    x, y = data(300, 100, t=20, noise=0.5)
    y = y[np.random.default_rng(2).permutation(len(y))]
    fit, test = np.arange(250), np.arange(250, 300)
    result = ridge_cv(Design(x), y[fit], fit, test)
    assert abs(np.median(pearson_columns(result.prediction, y[test]))) < 0.1
    assert abs(np.median(result.inner_r)) < 0.1


def _bench_data(n: int, p: int, t: int):
    """The benchmark's data (benchmarks/bench_encoding.py: decaying spectrum, varied signal-to-noise)."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).parents[2] / "benchmarks" / "bench_encoding.py"
    spec = importlib.util.spec_from_file_location("bench_encoding", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_encoding"] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module.make_data(n, p, t)


@pytest.mark.parametrize("size", [(500, 2048, 200), (900, 256, 300)])  # dual and primal
def test_mixed_precision_held_out_r_is_within_1e_5_of_float64_on_the_benchmark_data(size):
    x, y = _bench_data(*size)
    x = x.astype(np.float32)  # as the features stage stores them
    split = np.random.default_rng(1).permutation(len(x))
    fit, test = np.sort(split[: int(0.9 * len(x))]), np.sort(split[int(0.9 * len(x)):])
    r = {}
    for dtype in ("float64", "mixed"):
        model = RidgeCV(backend="numpy", dtype=dtype)
        (split_fit,) = model.cross_validated(x, y, [(fit, test)], seed=0)
        assert split_fit.prediction.dtype == np.float64
        r[dtype] = pearson_columns(split_fit.prediction, y[test])
    assert np.abs(r["mixed"] - r["float64"]).max() < 1e-5


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("shape", SHAPES)
def test_cholesky_refit_per_alpha_equals_the_eigendecomposition_refit(shape, backend):
    if backend == "torch":
        pytest.importorskip("torch")
    x, y = data(*shape, t=40, noise=2.0)  # more targets than test rows: both right-hand sides are used
    fit, test = np.arange(shape[0] - 15), np.arange(shape[0] - 15, shape[0])
    ops = get_ops(backend, device="cpu")
    eigh = ridge_cv(Design(x, ops), y[fit], fit, test, refit_solver="eigh")
    counts = np.unique(eigh.alpha, return_counts=True)[1]
    assert counts.max() > len(test) > counts.min()  # both right-hand sides: the targets and the test rows
    for solver in ("cholesky", "auto"):
        other = ridge_cv(Design(x, ops), y[fit], fit, test, refit_solver=solver)
        np.testing.assert_array_equal(other.alpha, eigh.alpha)
        np.testing.assert_allclose(other.prediction, eigh.prediction, rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="refit_solver"):
        ridge_cv(Design(x, ops), y[fit], fit, test, refit_solver="lu")


@pytest.mark.parametrize("shape", SHAPES)
def test_a_failed_cholesky_refit_falls_back_to_the_eigendecomposition(shape, monkeypatch):
    """The Cholesky refit forms its system in the alpha search's moments (spent there): when a
    factorisation fails, the eigendecomposition refit forms them anew and gives the same predictions."""
    x, y = data(*shape, t=10)
    fit, test = np.arange(shape[0] - 15), np.arange(shape[0] - 15, shape[0])
    ops = get_ops("numpy", "float64")
    eigh = ridge_cv(Design(x, ops), y[fit], fit, test, refit_solver="eigh")

    def not_positive_definite(*args, **kwargs):
        raise np.linalg.LinAlgError("not positive definite")

    monkeypatch.setattr(ops, "solve_spd", not_positive_definite)
    fallback = ridge_cv(Design(x, ops), y[fit], fit, test, refit_solver="cholesky")
    np.testing.assert_array_equal(fallback.alpha, eigh.alpha)
    np.testing.assert_allclose(fallback.prediction, eigh.prediction, rtol=0, atol=1e-10)


def test_pearson_columns_along_either_axis_with_a_chosen_value_for_constant_columns():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    a[:, 2] = 1.0
    expected = [np.corrcoef(a[:, j], b[:, j])[0, 1] for j in (0, 1, 3)]
    np.testing.assert_allclose(pearson_columns(a, b)[[0, 1, 3]], expected, atol=1e-12)
    assert pearson_columns(a, b)[2] == 0.0 and np.isnan(pearson_columns(a, b, constant=np.nan)[2])
    np.testing.assert_array_equal(pearson_columns(a.T, b.T, axis=1, constant=np.nan),
                                  pearson_columns(a, b, constant=np.nan))


@pytest.mark.parametrize(("n", "p"), [(90, 20), (90, 70), (60, 200), (120, 100)])
@pytest.mark.parametrize("refit_solver", ["eigh", "cholesky"])
def test_primal_and_dual_forms_give_the_same_fit(n, p, refit_solver):
    """The primal (p x p covariance) and dual (n x n Gram) eigenproblems are one ridge: equal alphas per
    neuroid, CV errors, inner r and predictions, in float64, whichever is the smaller."""
    from neurofit.encoding.backend import get_ops
    from neurofit.encoding.ridge import Design, ridge_cv

    rng = np.random.default_rng(n + p)
    x = rng.normal(size=(n, p)) @ np.diag(np.linspace(0.2, 3, p)) + 1.5
    y = x @ rng.normal(size=(p, 6)) / np.sqrt(p) + np.linspace(0.1, 3, 6) * rng.normal(size=(n, 6))
    fit, evaluate = np.arange(n - n // 10), np.arange(n - n // 10, n)
    ops = get_ops("numpy", "float64")
    results = {form: ridge_cv(Design(x, ops, form=form), y[fit], fit, evaluate, np.logspace(-2, 4, 13), 5, 0,
                              refit_solver=refit_solver) for form in ("primal", "dual")}
    primal, dual = results["primal"], results["dual"]
    assert len(np.unique(dual.alpha)) > 1  # per-neuroid alphas
    np.testing.assert_array_equal(primal.alpha, dual.alpha)
    scale = np.abs(dual.cv_error).max()
    np.testing.assert_allclose(primal.cv_error / scale, dual.cv_error / scale, rtol=0, atol=1e-10)
    np.testing.assert_allclose(primal.inner_r, dual.inner_r, rtol=0, atol=1e-10)
    np.testing.assert_allclose(primal.prediction, dual.prediction, rtol=0, atol=1e-10)


def test_design_refuses_an_unknown_form():
    from neurofit.encoding.ridge import Design

    with pytest.raises(ValueError, match="unknown form 'kernel'"):
        Design(np.zeros((4, 3)), form="kernel")


@pytest.mark.parametrize("dtype", ["mixed", "float64"])
def test_a_narrow_layer_never_builds_the_stimulus_gram_matrix(dtype):
    """Fewer features than the refit's stimuli: every fit of the job, inner folds included (whose
    stimuli may be fewer than the features), solves the p x p primal problem: no n x n Gram matrix."""
    from neurofit.encoding.regression import RidgeCV
    from neurofit.encoding.ridge import Design
    from neurofit.encoding.splits import stimulus_splits

    rng = np.random.default_rng(0)
    n, p = 200, 170  # outer fit 180 > p > inner fit 144
    x = rng.normal(size=(n, p)).astype(np.float32)
    y = x[:, :10].astype(np.float64) @ rng.normal(size=(10, 4)) + rng.normal(size=(n, 4))
    model = RidgeCV(np.logspace(-2, 4, 7), 5, backend="numpy", dtype=dtype)
    design = Design(x, model.ops)
    model.cross_validated(design, y, stimulus_splits(n, n_splits=2), 0)
    assert design._gram is None


@pytest.mark.parametrize("n_eval", [20, 90])  # fewer and more evaluation rows than spectral components (40)
@pytest.mark.parametrize("chunk", [1, 1 << 30])
def test_prediction_sqnorms_equal_the_explicit_predictions_norms(n_eval, chunk):
    from neurofit.encoding.ridge import _prediction_sqnorms, _Spectral

    rng = np.random.default_rng(3)
    k, t = 40, 7
    sp = _Spectral(rng.normal(size=(n_eval, k)), rng.uniform(0, 50, size=k), rng.normal(size=(k, t)), np.zeros(t))
    predictions = [sp.basis @ (sp.projected / (sp.spectrum + a)[:, None]) for a in DEFAULT_ALPHAS]
    expected = np.stack([(p**2).sum(0) for p in predictions])
    got = _prediction_sqnorms(sp, DEFAULT_ALPHAS, get_ops("numpy"), chunk)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gram_is_the_symmetric_product_of_the_centred_features(dtype):
    x = data(50, 300)[0].astype(dtype)
    design = Design(x, get_ops("numpy", dtype), block_bytes=1 << 12)  # many column blocks
    gram = design.gram()
    centred = x.astype(np.float64) - x.astype(np.float64).mean(0)
    assert np.array_equal(gram, gram.T)
    np.testing.assert_allclose(gram, centred @ centred.T, rtol=0, atol=(1e-9 if dtype == "float64" else 2e-2))
