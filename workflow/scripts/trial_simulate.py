from neurofit.cli import run_from_snakemake

run_from_snakemake("trial_simulate", snakemake)  # noqa: F821 (injected by Snakemake)
