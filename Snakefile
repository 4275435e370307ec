# neurofit: which task-optimised network explains which brain region, and how well.
# The rules only wire files together; the logic lives in src/neurofit (see workflow/rules/common.smk).


import sys
import time

from neurofit import config as nf_config
from neurofit.errors import report_failures_at_exit
from neurofit.runlock import clear_stale_locks, record_run

# Failure notes written after this moment belong to this run (printed last by onerror, below).
RUN_STARTED = time.time()
# A run killed outright left its lock: removed here (before Snakemake locks) when its process is gone.
if workflow.is_main_process and (_cleared := clear_stale_locks()):
    print(_cleared, file=sys.stderr)


# The default config applies only when no --configfile is given: a paper config replaces it
# rather than being merged into it (so its models and datasets are exactly those it lists).
if not workflow.config_settings.configfiles:
    try:  # a YAML syntax error names the line (Snakemake's own message does not)
        nf_config.load_yaml("config/config.yaml")
    except nf_config.ConfigError as _error:
        sys.exit(f"neurofit: {_error}")  # the message, last and alone (no traceback of the Snakefile)

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/neural.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/encoding.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/trials.smk"


onstart:
    record_run()


onerror:
    # Each failed stage left its message beside its log; they are printed after Snakemake's closing lines.
    report_failures_at_exit(LAYOUT.logs_dir(), RUN_STARTED)


rule all:
    input:
        final_outputs(),
        trial_outputs(),
    default_target: True
