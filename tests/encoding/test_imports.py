"""A fit job on a CPU machine imports neither torch nor scikit-learn nor scipy.stats (together 2 s of a 3 s job),
and the ``auto`` backend still takes torch on CUDA whenever torch would find a GPU."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from neurofit.encoding import backend

HEAVY = ("torch", "sklearn", "scipy.stats", "matplotlib")


def _imported_after(code: str) -> list[str]:
    """The HEAVY modules in sys.modules after running ``code`` in a fresh interpreter with no GPU device visible."""
    probe = ("import sys\nfrom neurofit.encoding import backend\nbackend.GPU_DEVICE_FILES = ()\n" + code +
             f"\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return [m for m in done.stdout.strip().split(",") if m]


def test_the_fit_stage_and_its_auto_backend_import_no_torch_sklearn_or_scipy_stats():
    code = ("import neurofit.cli, neurofit.encoding.fit, neurofit.encoding.layer, neurofit.encoding.settings\n"
            "import neurofit.neural.responses, neurofit.encoding.ceiling, neurofit.report.tables\n"
            "ops = backend.get_ops('auto')\nassert ops.name == 'numpy', ops.name")
    assert _imported_after(code) == []


def test_a_ridge_fit_through_the_auto_backend_imports_none_of_them(tmp_path):
    code = ("import numpy as np, xarray as xr\n"
            "from neurofit.encoding.fit import fit_groups\nfrom neurofit.encoding.layer import LayerFeatures\n"
            "from neurofit.encoding.settings import EncodingSettings\n"
            "rng = np.random.default_rng(0)\nids = [f's{i:03d}' for i in range(40)]\n"
            "x = xr.DataArray(rng.normal(size=(40, 12)), dims=('stimulus', 'feature'),"
            " coords={'stimulus_id': ('stimulus', ids)})\n"
            "y = xr.DataArray(rng.normal(size=(40, 4)), dims=('stimulus', 'neuroid'),"
            " coords={'stimulus_id': ('stimulus', ids), 'region': ('neuroid', ['V1'] * 4)})\n"
            "fit_groups('ridge', LayerFeatures.from_xarray(x), y, {'V1': np.ones(4, bool)},"
            " EncodingSettings.from_config({'splits': {'n_splits': 3}, 'bootstrap': {'n': 5},"
            " 'permutations': {'n': 5}}))")
    assert _imported_after(code) == []


def test_auto_takes_numpy_without_importing_torch_when_there_is_no_gpu_device(monkeypatch):
    monkeypatch.setattr(backend, "GPU_DEVICE_FILES", ())
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    imported = []
    real_import = __builtins__["__import__"] if isinstance(__builtins__, dict) else __builtins__.__import__

    def spy(name, *args, **kwargs):
        imported.append(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr("builtins.__import__", spy)
    assert not backend.cuda_available()
    assert backend.get_ops("auto").name == "numpy"
    assert "torch" not in imported


def _fake_torch(cuda: bool) -> types.ModuleType:
    torch = types.ModuleType("torch")
    torch.cuda = types.SimpleNamespace(is_available=lambda: cuda)
    return torch


@pytest.mark.parametrize("cuda", [True, False])
def test_an_imported_torch_is_asked_even_without_a_device_file(monkeypatch, cuda):
    monkeypatch.setattr(backend, "GPU_DEVICE_FILES", ())
    monkeypatch.setitem(sys.modules, "torch", _fake_torch(cuda))
    assert backend.cuda_available() is cuda


@pytest.mark.parametrize("cuda", [True, False])
def test_a_gpu_device_file_makes_auto_import_torch_and_ask_it(monkeypatch, tmp_path, cuda):
    (tmp_path / "nvidia0").touch()
    monkeypatch.setattr(backend, "GPU_DEVICE_FILES", (str(tmp_path / "nvidia[0-9]*"),))
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    fake = _fake_torch(cuda)
    real_import = __builtins__["__import__"] if isinstance(__builtins__, dict) else __builtins__.__import__

    def importer(name, *args, **kwargs):
        if name == "torch":
            sys.modules["torch"] = fake
            return fake
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr("builtins.__import__", importer)
    assert backend.cuda_available() is cuda


def test_auto_builds_torch_ops_on_cuda_when_torch_finds_a_gpu(monkeypatch):
    built = []

    class Recorder(backend.Ops):
        def __init__(self, dtype="float64", device=None):
            super().__init__(dtype)
            built.append(device)

    monkeypatch.setattr(backend, "cuda_available", lambda: True)
    monkeypatch.setattr(backend, "TorchOps", Recorder)
    assert isinstance(backend.get_ops("auto", "float32"), Recorder) and built == [None]
    monkeypatch.setattr(backend, "cuda_available", lambda: False)
    assert backend.get_ops("auto").name == "numpy"

