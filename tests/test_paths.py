"""The naming scheme: paths name what decides their content."""

from __future__ import annotations

from neurofit.paths import Layout, short_hash


def test_simulated_key_changes_with_settings_not_with_key_order():
    a = Layout.simulated_key("sim", {"n_stimuli": 10, "seed": 0})
    assert a == Layout.simulated_key("sim", {"seed": 0, "n_stimuli": 10})
    assert a != Layout.simulated_key("sim", {"n_stimuli": 11, "seed": 0})
    assert a.startswith("sim-") and len(a) == len("sim-") + 10


def test_layout_puts_results_and_resources_where_configured():
    layout = Layout(results="results/paper", resources="/cache")
    assert layout.fit("d", "ridge", "m", "conv1", "V1") == "results/paper/fits/d/ridge/m/conv1/V1.nc"
    assert layout.simulated_dandiset("sim-abc") == "/cache/simulated/sim-abc/dandiset"
    assert layout.features("d", "m", "fc") == "results/paper/features/d/m/fc.nc"


def test_short_hash_depends_on_list_order():
    assert short_hash([1, 2]) != short_hash([2, 1])
