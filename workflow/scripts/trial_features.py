from neurofit.cli import run_from_snakemake

run_from_snakemake("trial_features", snakemake)  # noqa: F821 (injected by Snakemake)
