from neurofit.cli import run_from_snakemake

run_from_snakemake("checkpoint_variant", snakemake)  # noqa: F821 (injected by Snakemake)
