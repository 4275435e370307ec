"""Encoding models and metrics: pure array math (numpy, optionally torch tensors). Imports no NWB,
DANDI, network or Snakemake code."""
