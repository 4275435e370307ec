# Stage 5: one cross-validated encoding fit per dataset x metric x model x layer x region.


rule fit:
    input:
        features_path=LAYOUT.features("{dataset}", "{model}", "{layer}"),
        responses_path=LAYOUT.responses("{dataset}"),
    output:
        out=LAYOUT.fit("{dataset}", "{metric}", "{model}", "{layer}", "{region}"),
    params:
        settings=lambda w: {
            k: v for k, v in config["encoding"].items() if k not in ("metrics", "normalisation", "ci", "ceiling")
        },
        code=code_hash("encoding"),
    log:
        LAYOUT.log("fit", "{dataset}", "{metric}", "{model}", "{layer}", "{region}"),
    benchmark:
        LAYOUT.benchmark("fit", "{dataset}", "{metric}", "{model}", "{layer}", "{region}")
    resources:
        **job_resources("fit"),
    conda:
        "../../envs/encoding.yaml"
    script:
        "../scripts/fit.py"
