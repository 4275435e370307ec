# Stage 6: tidy predictivity tables, figures and the provenance records the report shows.


rule tables:
    input:
        fit_files=[LAYOUT.fit(**key) for key in fit_keys()],
        ceiling_files=[LAYOUT.ceiling(d) for d in DATASETS],
    output:
        csv_out=report(LAYOUT.table("predictivity"), caption="../report/predictivity.rst", category="Tables"),
        parquet_out=LAYOUT.table("predictivity", "parquet"),
        best_out=report(LAYOUT.table("best_layer"), caption="../report/best_layer_table.rst", category="Tables"),
    params:
        fits=[{**key, "path": LAYOUT.fit(**key)} for key in fit_keys()],
        ceilings={d: LAYOUT.ceiling(d) for d in DATASETS},
        settings={k: config["encoding"][k] for k in ("ci", "normalisation")},
        **stage_params("tables"),
    log:
        LAYOUT.log("tables"),
    benchmark:
        LAYOUT.benchmark("tables")
    resources:
        **job_resources("tables"),
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/stage.py"


rule comparisons:
    input:
        fit_files=[LAYOUT.fit(**key) for key in fit_keys()],
        ceiling_files=[LAYOUT.ceiling(d) for d in DATASETS],
    output:
        csv_out=report(LAYOUT.table("comparisons"), caption="../report/comparisons.rst", category="Tables"),
    params:
        fits=[{**key, "path": LAYOUT.fit(**key)} for key in fit_keys()],
        ceilings={d: LAYOUT.ceiling(d) for d in DATASETS},
        settings={k: config["encoding"][k] for k in ("ci", "normalisation")},
        **stage_params("comparisons"),
    log:
        LAYOUT.log("comparisons"),
    benchmark:
        LAYOUT.benchmark("comparisons")
    resources:
        **job_resources("tables"),
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/stage.py"


rule figures:
    input:
        table_path=LAYOUT.table("predictivity"),
        best_path=LAYOUT.table("best_layer"),
        comparisons_path=LAYOUT.table("comparisons"),
    output:
        heatmaps=[
            report(LAYOUT.figure(f"heatmap_{m}", ext), caption="../report/heatmap.rst", category="Figures")
            for m in MODELS
            for ext in ("png", "svg")
        ],
        best_layer=[
            report(LAYOUT.figure("best_layer", ext), caption="../report/best_layer.rst", category="Figures")
            for ext in ("png", "svg")
        ],
    params:
        metric=FIGURE_METRIC,
        layer_orders=canonical({m: nf_config.layers(config, m) for m in MODELS}),
        region_order=region_order(),
        heatmap_paths={m: [LAYOUT.figure(f"heatmap_{m}", ext) for ext in ("png", "svg")] for m in MODELS},
        **stage_params("figures"),
    log:
        LAYOUT.log("figures"),
    benchmark:
        LAYOUT.benchmark("figures")
    resources:
        **job_resources("figures"),
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/stage.py"


rule figure_performance:
    input:
        best_path=LAYOUT.table("best_layer"),
        comparisons_path=LAYOUT.table("comparisons"),
        performance_files=[LAYOUT.performance(m) for m in MODELS],
    output:
        figure=[
            report(
                LAYOUT.figure("performance_vs_predictivity", ext),
                caption="../report/performance_vs_predictivity.rst",
                category="Figures",
            )
            for ext in ("png", "svg")
        ],
        correlations_out=report(
            LAYOUT.table("performance_vs_predictivity"),
            caption="../report/performance_vs_predictivity_table.rst",
            category="Tables",
        ),
    params:
        metric=FIGURE_METRIC,
        performance={m: LAYOUT.performance(m) for m in MODELS},
        models={m: nf_config.model_settings(config, m) for m in MODELS},
        region_order=region_order(),
        **stage_params("figure_performance"),
    log:
        LAYOUT.log("figure_performance"),
    benchmark:
        LAYOUT.benchmark("figure_performance")
    resources:
        **job_resources("figures"),
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/stage.py"


rule figure_neuroids:
    input:
        unpack(neuroid_figure_input),
        best_path=LAYOUT.table("best_layer"),
    output:
        figure=[
            report(
                LAYOUT.figure("neuroid_scores_{dataset}_{metric}", ext),
                caption="../report/neuroid_scores.rst",
                category="Figures",
            )
            for ext in ("png", "svg")
        ],
    params:
        fits=lambda w: [{**key, "path": LAYOUT.fit(**key)} for key in fit_keys(w.dataset, w.metric)],
        normalisation=config["encoding"]["normalisation"],
        region_order=region_order(),
        **stage_params("figure_neuroids"),
    wildcard_constraints:
        metric="|".join(PER_NEUROID_METRICS),
    log:
        LAYOUT.log("figure_neuroids", "{dataset}", "{metric}"),
    benchmark:
        LAYOUT.benchmark("figure_neuroids", "{dataset}", "{metric}")
    resources:
        **job_resources("figures"),
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/stage.py"


rule figure_learning_rules:
    input:
        best_path=LAYOUT.table("best_layer"),
        performance_files=[LAYOUT.performance(m) for m in MODELS],
    output:
        figure=[
            report(LAYOUT.figure("learning_rules", ext), caption="../report/learning_rules.rst", category="Figures")
            for ext in ("png", "svg")
        ],
    params:
        metric=FIGURE_METRIC,
        models=canonical({m: nf_config.training_settings(config, m) for m in MODELS}),
        performance={m: LAYOUT.performance(m) for m in MODELS},
        region_order=region_order(),
        **stage_params("figure_learning_rules"),
    log:
        LAYOUT.log("figure_learning_rules"),
    benchmark:
        LAYOUT.benchmark("figure_learning_rules")
    resources:
        **job_resources("figures"),
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/stage.py"


rule table_pages:
    input:
        predictivity=LAYOUT.table("predictivity"),
        best_layer=LAYOUT.table("best_layer"),
        comparisons=LAYOUT.table("comparisons"),
    output:
        predictivity_html=report(
            LAYOUT.table("predictivity", "html"), caption="../report/predictivity.rst", category="Tables"
        ),
        best_layer_html=report(
            LAYOUT.table("best_layer", "html"), caption="../report/best_layer_table.rst", category="Tables"
        ),
        comparisons_html=report(
            LAYOUT.table("comparisons", "html"), caption="../report/comparisons.rst", category="Tables"
        ),
    params:
        **stage_params("table_pages"),
    log:
        LAYOUT.log("table_pages"),
    benchmark:
        LAYOUT.benchmark("table_pages")
    resources:
        **job_resources("tables"),
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/stage.py"


rule provenance:
    output:
        config_out=report(LAYOUT.provenance("config.yaml"), caption="../report/config.rst", category="Provenance"),
        software_json=LAYOUT.provenance("software.json"),
        software_html=report(
            LAYOUT.provenance("software.html"), caption="../report/software.rst", category="Provenance"
        ),
    params:
        config=canonical(config),
        software=canonical(SOFTWARE),
        **stage_params("provenance"),
    log:
        LAYOUT.log("provenance"),
    benchmark:
        LAYOUT.benchmark("provenance")
    resources:
        **job_resources("tables"),
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/stage.py"


rule data_manifest:
    input:
        manifest_files=[LAYOUT.manifest(d) for d in DATASETS],
        responses_files=[LAYOUT.responses(d) for d in DATASETS],
        summary_files=[LAYOUT.responses_summary(d) for d in DATASETS],
    output:
        html_out=report(
            LAYOUT.provenance("data_manifest.html"), caption="../report/data_manifest.rst", category="Provenance"
        ),
        json_out=LAYOUT.provenance("data_manifest.json"),
    params:
        manifests={d: LAYOUT.manifest(d) for d in DATASETS},
        responses={d: LAYOUT.responses(d) for d in DATASETS},
        summaries={d: LAYOUT.responses_summary(d) for d in DATASETS},
        **stage_params("data_manifest"),
    log:
        LAYOUT.log("data_manifest"),
    benchmark:
        LAYOUT.benchmark("data_manifest")
    resources:
        **job_resources("tables"),
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/stage.py"


rule models_manifest:
    input:
        performance_files=[LAYOUT.performance(m) for m in MODELS],
    output:
        html_out=report(LAYOUT.provenance("models.html"), caption="../report/models.rst", category="Provenance"),
        json_out=LAYOUT.provenance("models.json"),
    params:
        performance={m: LAYOUT.performance(m) for m in MODELS},
        **stage_params("models_manifest"),
    log:
        LAYOUT.log("models_manifest"),
    benchmark:
        LAYOUT.benchmark("models_manifest")
    resources:
        **job_resources("tables"),
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/stage.py"
