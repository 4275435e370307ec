"""Fixtures for DANDI tests: a small simulated NWB file and a loopback DANDI archive serving it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from dandi_server import DANDISET, NWB_PATH, OTHER_PATH, SECOND_PATH, VERSION, FakeArchive

# The dandi client caches digests under XDG_CACHE_HOME: keep that out of the user's home during tests.
os.environ.setdefault("XDG_CACHE_HOME", tempfile.mkdtemp(prefix="neurofit-xdg-cache-"))


@pytest.fixture(scope="session")
def dandi_nwb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated NWB session (untrained reference network, so it is quick to make)."""
    from neurofit.simulate import SimulationSpec, simulate

    out = tmp_path_factory.mktemp("dandi-sim")
    simulate(SimulationSpec.from_config({"n_stimuli": 48, "n_repeats": 4, "units_per_region": 8,
                                         "reference_epochs": 0}), out)
    return next((out / "dandiset").rglob("*.nwb"))


@pytest.fixture
def archive(dandi_nwb: Path) -> Iterator[FakeArchive]:
    """Dandiset 000999: one published version and its draft, three assets (two listing pages)."""
    server = FakeArchive(page_size=2)
    data = dandi_nwb.read_bytes()
    for version in (VERSION, "draft"):
        server.add(DANDISET, version, NWB_PATH, data)
        server.add(DANDISET, version, SECOND_PATH, data[::-1])
        server.add(DANDISET, version, OTHER_PATH, os.urandom(200_000))
    yield server
    server.close()
