from neurofit.cli import run_from_snakemake

run_from_snakemake("trial_fit", snakemake)  # noqa: F821 (injected by Snakemake)
