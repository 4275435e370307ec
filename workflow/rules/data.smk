# Stage 1: datasets -> manifest.json (+ the simulated dandiset when the source is "simulated"; the verified
# downloads, or the URLs to stream, when it is "dandi").


rule simulate:
    output:
        dandiset=directory(LAYOUT.simulated_dandiset("{dataset}-{hash}")),
        truth=LAYOUT.simulated_truth("{dataset}-{hash}"),
        weights=LAYOUT.simulated_reference_weights("{dataset}-{hash}"),
    params:
        out_dir=lambda w: LAYOUT.simulated_dir(f"{w.dataset}-{w.hash}"),
        settings=lambda w: canonical(sim_settings(w.dataset)),
        **stage_params("simulate"),
    log:
        LAYOUT.log("simulate", "{dataset}-{hash}"),
    benchmark:
        LAYOUT.benchmark("simulate", "{dataset}-{hash}")
    # First: every stimulus, response, feature and fit waits on the simulated dandiset (the run's critical path).
    priority: 50
    resources:
        **job_resources("simulate"),
    conda:
        "../../envs/models.yaml"
    script:
        "../scripts/stage.py"


rule manifest:
    input:
        unpack(manifest_input),
    output:
        out=report(LAYOUT.manifest("{dataset}"), caption="../report/manifest.rst", category="Data"),
    params:
        dataset=lambda w: canonical(nf_config.manifest_settings(config, w.dataset)),
        name=lambda w: w.dataset,
        cache=lambda w: dandi_cache(w.dataset),
        **stage_params("manifest"),
    log:
        LAYOUT.log("manifest", "{dataset}"),
    benchmark:
        LAYOUT.benchmark("manifest", "{dataset}")
    resources:
        **job_resources("manifest"),
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/stage.py"
