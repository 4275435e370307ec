# Stage 2: NWB -> per-region responses (repeats kept) and the stimulus images; noise ceilings.


rule responses:
    input:
        manifest_path=LAYOUT.manifest("{dataset}"),
    output:
        responses_out=LAYOUT.responses("{dataset}"),
        binned_out=LAYOUT.responses_binned("{dataset}"),
        summary_out=LAYOUT.responses_summary("{dataset}"),
        stimuli_out=LAYOUT.stimuli("{dataset}"),
    params:
        settings=lambda w: config["datasets"][w.dataset].get("responses", {}),
        regions=lambda w: nf_config.regions(config, w.dataset),
        code=code_hash("neural"),
    log:
        LAYOUT.log("responses", "{dataset}"),
    benchmark:
        LAYOUT.benchmark("responses", "{dataset}")
    resources:
        **job_resources("responses"),
    conda:
        "../../envs/neural.yaml"
    script:
        "../scripts/responses.py"


rule ceiling:
    input:
        responses_path=LAYOUT.responses("{dataset}"),
    output:
        out=LAYOUT.ceiling("{dataset}"),
    params:
        settings=config["encoding"]["ceiling"],
        code=code_hash("encoding"),
    log:
        LAYOUT.log("ceiling", "{dataset}"),
    benchmark:
        LAYOUT.benchmark("ceiling", "{dataset}")
    resources:
        **job_resources("ceiling"),
    conda:
        "../../envs/encoding.yaml"
    script:
        "../scripts/ceiling.py"
