from neurofit.cli import run_from_snakemake

run_from_snakemake("models_manifest", snakemake)  # noqa: F821 (injected by Snakemake)
