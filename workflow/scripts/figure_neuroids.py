from neurofit.cli import run_from_snakemake

run_from_snakemake("figure_neuroids", snakemake)  # noqa: F821 (injected by Snakemake)
