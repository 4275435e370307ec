from neurofit.cli import run_from_snakemake

run_from_snakemake("provenance", snakemake)  # noqa: F821 (injected by Snakemake)
