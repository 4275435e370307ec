from neurofit.cli import run_from_snakemake

run_from_snakemake("comparisons", snakemake)  # noqa: F821 (injected by Snakemake)
