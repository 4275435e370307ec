from neurofit.cli import run_from_snakemake

run_from_snakemake("figure_learning_rules", snakemake)  # noqa: F821 (injected by Snakemake)
