"""Datasets: DANDI or local dandiset folders -> a manifest of the NWB files used. Knows no networks."""
