# Stage 5: one cross-validated encoding fit per dataset x metric x model x layer, for every region of the
# dataset at once (the Gram matrix and eigendecompositions do not depend on the responses, so they are
# computed once per layer). Each region still gets its own file, LAYOUT.fit(dataset, metric, model, layer,
# region), exactly as a fit of that region alone would write it. One rule per dataset: its regions fix the
# list of output files.


for _dataset in DATASETS:

    rule:
        name:
            f"fit_{_dataset}".replace("-", "_").replace(".", "_")
        input:
            features_path=LAYOUT.features(_dataset, "{model}", "{layer}"),
            responses_path=LAYOUT.responses(_dataset),
        output:
            out=[LAYOUT.fit(_dataset, "{metric}", "{model}", "{layer}", r) for r in nf_config.regions(config, _dataset)],
        params:
            regions=nf_config.regions(config, _dataset),
            settings=lambda w: {
                k: v for k, v in config["encoding"].items() if k not in ("metrics", "normalisation", "ci", "ceiling")
            },
            **stage_params("fit"),
        log:
            LAYOUT.log("fit", _dataset, "{metric}", "{model}", "{layer}"),
        benchmark:
            LAYOUT.benchmark("fit", _dataset, "{metric}", "{model}", "{layer}")
        resources:
            **job_resources("fit"),
        conda:
            "../../envs/encoding.yaml"
        script:
            "../scripts/stage.py"
