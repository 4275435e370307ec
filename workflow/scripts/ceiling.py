from neurofit.cli import run_from_snakemake

run_from_snakemake("ceiling", snakemake)  # noqa: F821 (injected by Snakemake)
