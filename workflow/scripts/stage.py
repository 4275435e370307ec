"""The script of every rule: runs the neurofit.cli stage named by the rule's ``stage`` param."""

from neurofit.cli import run_from_snakemake, spare_shutdown

run_from_snakemake(snakemake.params.stage, snakemake)  # noqa: F821 (injected by Snakemake)
spare_shutdown()  # reached only when the stage succeeded: a failure exits with status 1 above
