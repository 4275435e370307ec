# neurofit: which task-optimised network explains which brain region, and how well.
# The rules only wire files together; the logic lives in src/neurofit (see workflow/rules/common.smk).


# The default config applies only when no --configfile is given: a paper config replaces it
# rather than being merged into it (so its models and datasets are exactly those it lists).
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/neural.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/encoding.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/trials.smk"


rule all:
    input:
        final_outputs(),
        trial_outputs(),
    default_target: True
