# Stage 2: NWB -> per-region responses (repeats kept); the stimulus images (a job of their own); noise ceilings.


rule responses:
    input:
        manifest_path=LAYOUT.manifest("{dataset}"),
    output:
        responses_out=LAYOUT.responses("{dataset}"),
        binned_out=LAYOUT.responses_binned("{dataset}"),
        summary_out=LAYOUT.responses_summary("{dataset}"),
    params:
        settings=lambda w: canonical(config["datasets"][w.dataset].get("responses", {})),
        regions=lambda w: nf_config.regions(config, w.dataset),
        **stage_params("responses"),
    log:
        LAYOUT.log("responses", "{dataset}"),
    benchmark:
        LAYOUT.benchmark("responses", "{dataset}")
    resources:
        **job_resources("responses"),
    conda:
        "../../envs/neural.yaml"
    script:
        "../scripts/stage.py"


# The images alone, so that features (which read nothing else of the data) do not rerun when a setting of
# the responses alone (window, bins, regions, unit filters) changes.
rule stimuli:
    input:
        manifest_path=LAYOUT.manifest("{dataset}"),
    output:
        out=LAYOUT.stimuli("{dataset}"),
    params:
        settings=lambda w: canonical(stimulus_settings(config["datasets"][w.dataset].get("responses", {}))),
        **stage_params("stimuli"),
    log:
        LAYOUT.log("stimuli", "{dataset}"),
    benchmark:
        LAYOUT.benchmark("stimuli", "{dataset}")
    resources:
        **job_resources("responses"),
    conda:
        "../../envs/neural.yaml"
    script:
        "../scripts/stage.py"


rule ceiling:
    input:
        responses_path=LAYOUT.responses("{dataset}"),
    output:
        out=LAYOUT.ceiling("{dataset}"),
    params:
        settings=canonical(config["encoding"]["ceiling"]),
        **stage_params("ceiling"),
    log:
        LAYOUT.log("ceiling", "{dataset}"),
    benchmark:
        LAYOUT.benchmark("ceiling", "{dataset}")
    resources:
        **job_resources("ceiling"),
    conda:
        "../../envs/encoding.yaml"
    script:
        "../scripts/stage.py"
