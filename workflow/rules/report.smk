# Stage 6: tidy predictivity tables and figures.


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
        normalisation=config["encoding"]["normalisation"],
        ci=config["encoding"]["ci"],
        code=code_hash("report", "encoding"),
    log:
        LAYOUT.log("tables"),
    benchmark:
        LAYOUT.benchmark("tables")
    resources:
        **job_resources("tables"),
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/tables.py"


rule figures:
    input:
        table_path=LAYOUT.table("predictivity"),
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
        layer_orders={m: nf_config.layers(config, m) for m in MODELS},
        region_order=region_order(),
        heatmap_paths={m: [LAYOUT.figure(f"heatmap_{m}", ext) for ext in ("png", "svg")] for m in MODELS},
        code=code_hash("report"),
    log:
        LAYOUT.log("figures"),
    benchmark:
        LAYOUT.benchmark("figures")
    resources:
        **job_resources("figures"),
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/figures.py"
