"""config/examples/zoo.yaml end to end, offline, at reduced size: a transformers ResNet-50 and ViT-B/16
with random weights and a built-in net on the simulated dataset, at 224 px; the usual tables and
figures, the input stated in every features file, the weights identity on the models page."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import xarray as xr
import yaml

pytestmark = pytest.mark.e2e
pytest.importorskip("transformers", reason="the transformers extra is not installed")


def reduced_zoo(repo: Path, results: Path) -> dict:
    """zoo.yaml with few stimuli, two regions, one layer per model, few splits and resamples."""
    config = yaml.safe_load((repo / "config/examples/zoo.yaml").read_text())
    config["results"], config["resources"] = str(results / "results"), str(results / "resources")
    config["datasets"]["sim"]["simulate"] = {"n_stimuli": 40, "n_repeats": 4, "units_per_region": 8,
                                             "regions": {"V1": "conv1", "IT": "fc"}, "reference_epochs": 1}
    config["models"]["resnet50-random"]["layers"] = ["encoder.stages.0"]
    config["models"]["vit-b16-random"]["layers"] = ["layers.0"]
    config["models"]["alexnet"].update(epochs=1, n_train=300, n_test=100, layers=["fc"])
    config["encoding"].update(splits={"preset": "kfold", "n_splits": 3, "seed": 1}, inner_folds=3,
                              bootstrap={"n": 50}, permutations={"n": 20})
    return config


@pytest.fixture(scope="module")
def zoo_run(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("zoo")
    (workdir / "config.yaml").write_text(yaml.safe_dump(reduced_zoo(repo, workdir)))
    run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory",
                          str(workdir), "--configfile", str(workdir / "config.yaml"), "-c2"],
                         capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stderr[-4000:]
    return workdir / "results"


def test_zoo_writes_the_usual_tables_and_figures(zoo_run: Path) -> None:
    table = pd.read_csv(zoo_run / "tables/predictivity.csv")
    assert set(zip(table["model"], table["layer"], strict=True)) == {
        ("resnet50-random", "encoder.stages.0"), ("vit-b16-random", "layers.0"), ("alexnet", "fc")}
    assert set(table["region"]) == {"V1", "IT"}
    assert table[["raw", "ceiling", "score"]].notna().all().all()
    for figure in ("best_layer", "heatmap_resnet50-random", "heatmap_vit-b16-random", "performance_vs_predictivity"):
        assert (zoo_run / "figures" / f"{figure}.png").stat().st_size > 1000


def test_each_network_saw_its_own_input(zoo_run: Path) -> None:
    resnet = xr.open_dataarray(zoo_run / "features/sim/resnet50-random/encoder.stages.0.nc", engine="h5netcdf")
    assert resnet.sizes["feature"] == 256 * 56 * 56  # ResNet-50's layer1 at 224 px
    assert resnet.attrs["input_size"] == "resized to 224x224 px (bilinear), RGB"
    assert "ResNetConfig" in resnet.attrs["input_origin"]
    alexnet = xr.open_dataarray(zoo_run / "features/sim/alexnet/fc.nc", engine="h5netcdf")
    assert alexnet.attrs["input_size"] == "resized to 32x32 px (bilinear), luminance as RGB"


def test_models_page_names_the_weights(zoo_run: Path) -> None:
    record = json.loads((zoo_run / "models/vit-b16-random/performance.json").read_text())
    assert record["weights_identity"]["seed"] == 0 and 85e6 < record["n_parameters"] < 87e6
    assert record["performance"] is None
    page = (zoo_run / "provenance/models.html").read_text()
    assert "transformers: ViTConfig" in page and "seed: 0" in page and "alexnet_small" in page
