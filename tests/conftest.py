"""Shared fixtures: the repository root, the real NWB files (tests/data/real_nwb, in the repository), a
small simulated dandiset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Real DANDI files, byte for byte as published, with their ids, versions, sha256 and licence in README.md there.
SHARED_DATA = REPO / "tests" / "data" / "real_nwb"

os.environ.setdefault("DANDI_NO_ET", "1")  # no telemetry from the dandi client in tests


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder holding ``dandi/<id>/<asset path>`` of the real NWB files (part of the repository)."""
    return SHARED_DATA


SMALL_SIMULATION = {"n_stimuli": 48, "n_repeats": 4, "units_per_region": 8}


@pytest.fixture(scope="session")
def small_simulation() -> dict[str, int]:
    return dict(SMALL_SIMULATION)


@pytest.fixture(scope="session")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated dandiset folder (dandiset/, ground_truth.json, reference_model.pt)."""
    from neurofit.simulate import SimulationSpec, simulate

    out = tmp_path_factory.mktemp("simulated")
    simulate(SimulationSpec.from_config(SMALL_SIMULATION), out)
    return out


@pytest.fixture(scope="session")
def simulated_nwb(simulated: Path) -> Path:
    return next((simulated / "dandiset").rglob("*.nwb"))


SLOW_MARKERS = ("e2e", "slurm")  # Snakemake runs end to end (pipeline, paper configs, DANDI, SLURM)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every end-to-end or SLURM test is also ``slow``: ``pytest -m "not slow"`` is the quick subset."""
    for item in items:
        if any(item.get_closest_marker(name) for name in SLOW_MARKERS):
            item.add_marker(pytest.mark.slow)
