"""NWB recordings -> per-region responses as labelled xarray data. Knows no networks."""
