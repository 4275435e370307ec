from neurofit.cli import run_from_snakemake

run_from_snakemake("stimuli", snakemake)  # noqa: F821 (injected by Snakemake)
