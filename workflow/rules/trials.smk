# Trial-structured, time-resolved datasets (config key `trials:`) and task-trained recurrent networks: NWB trials
# table -> condition PSTHs + split-half ceilings; task -> RNN weights + performance.json -> each layer over time on
# the dataset's epochs -> time-resolved ridge per layer x region -> table and figures. Logic: neurofit.cli stage_trial_*.


include: "trials_common.smk"


rule trial_simulate:
    output:
        dandiset=directory(TLAYOUT.trial_simulated_dandiset("{dataset}-{hash}")),
        truth=TLAYOUT.trial_simulated_truth("{dataset}-{hash}"),
        weights=TLAYOUT.trial_simulated_weights("{dataset}-{hash}"),
    params:
        out_dir=lambda w: TLAYOUT.trial_simulated_dir(f"{w.dataset}-{w.hash}"),
        settings=lambda w: TRIALS["datasets"][w.dataset].get("simulate", {}),
        **stage_params("trial_simulate"),
    log:
        TLAYOUT.log("trial_simulate", "{dataset}-{hash}"),
    benchmark:
        TLAYOUT.benchmark("trial_simulate", "{dataset}-{hash}")
    resources:
        **job_resources("simulate"),
    conda:
        "../../envs/models.yaml"
    script:
        "../scripts/stage.py"


rule trial_manifest:
    input:
        unpack(trial_manifest_input),
    output:
        out=TLAYOUT.trial_manifest("{dataset}"),
    params:
        dataset=lambda w: TRIALS["datasets"][w.dataset],
        name=lambda w: f"trials.datasets.{w.dataset}",
        cache=lambda w: TRIALS["datasets"][w.dataset].get("cache_dir", config["resources"]),
        **stage_params("manifest"),
    log:
        TLAYOUT.log("trial_manifest", "{dataset}"),
    benchmark:
        TLAYOUT.benchmark("trial_manifest", "{dataset}")
    resources:
        **job_resources("manifest"),
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/stage.py"


rule trial_responses:
    input:
        manifest_path=TLAYOUT.trial_manifest("{dataset}"),
    output:
        psth_out=TLAYOUT.trial_psth("{dataset}"),
        summary_out=TLAYOUT.trial_summary("{dataset}"),
    params:
        settings=lambda w: TRIALS["datasets"][w.dataset]["responses"],
        regions=lambda w: trial_regions(w.dataset),
        ceiling=TRIALS.get("encoding", {}).get("ceiling", {}),
        **stage_params("trial_responses"),
    log:
        TLAYOUT.log("trial_responses", "{dataset}"),
    benchmark:
        TLAYOUT.benchmark("trial_responses", "{dataset}")
    resources:
        **job_resources("responses"),
    conda:
        "../../envs/neural.yaml"
    script:
        "../scripts/stage.py"


rule trial_train:
    input:
        unpack(trial_weights_input),
    output:
        weights_out=TLAYOUT.trial_weights("{model}"),
        performance_out=TLAYOUT.trial_performance("{model}"),
    params:
        settings=lambda w: {k: v for k, v in TRIALS["models"][w.model].items() if k != "weights"},
        **stage_params("trial_train"),
    log:
        TLAYOUT.log("trial_train", "{model}"),
    benchmark:
        TLAYOUT.benchmark("trial_train", "{model}")
    threads: 1
    resources:
        **job_resources("train"),
    conda:
        "../../envs/models.yaml"
    script:
        "../scripts/stage.py"


rule trial_features:
    input:
        weights=TLAYOUT.trial_weights("{model}"),
        psth_path=TLAYOUT.trial_psth("{dataset}"),
    output:
        out=TLAYOUT.trial_features("{dataset}", "{model}"),
    params:
        task_map=lambda w: TRIALS["datasets"][w.dataset]["task"],
        **stage_params("trial_features"),
    log:
        TLAYOUT.log("trial_features", "{dataset}", "{model}"),
    benchmark:
        TLAYOUT.benchmark("trial_features", "{dataset}", "{model}")
    resources:
        **job_resources("features"),
    conda:
        "../../envs/models.yaml"
    script:
        "../scripts/stage.py"


rule trial_fit:
    input:
        features_path=TLAYOUT.trial_features("{dataset}", "{model}"),
        psth_path=TLAYOUT.trial_psth("{dataset}"),
    output:
        rows_out=TLAYOUT.trial_fit("{dataset}", "{model}"),
        time_out=TLAYOUT.trial_fit_time("{dataset}", "{model}"),
    params:
        settings={k: v for k, v in TRIALS.get("encoding", {}).items() if k != "ceiling"},
        regions=lambda w: trial_regions(w.dataset),
        **stage_params("trial_fit"),
    log:
        TLAYOUT.log("trial_fit", "{dataset}", "{model}"),
    benchmark:
        TLAYOUT.benchmark("trial_fit", "{dataset}", "{model}")
    resources:
        **job_resources("fit"),
    conda:
        "../../envs/encoding.yaml"
    script:
        "../scripts/stage.py"


rule trial_tables:
    input:
        fits=[TLAYOUT.trial_fit(d, m) for d in TRIAL_DATASETS for m in TRIAL_MODELS],
        performance_files=[TLAYOUT.trial_performance(m) for m in TRIAL_MODELS],
    output:
        csv_out=report(
            TLAYOUT.trial_table("predictivity"),
            caption="../report/trial_predictivity.rst",
            category="Time-resolved",
            subcategory="Tables",
        ),
        parquet_out=TLAYOUT.trial_table("predictivity", "parquet"),
    params:
        performance={m: TLAYOUT.trial_performance(m) for m in TRIAL_MODELS},
        **stage_params("trial_tables"),
    log:
        TLAYOUT.log("trial_tables"),
    benchmark:
        TLAYOUT.benchmark("trial_tables")
    resources:
        **job_resources("tables"),
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/stage.py"


rule trial_figures:
    input:
        psth_path=TLAYOUT.trial_psth("{dataset}"),
        table_path=TLAYOUT.trial_table("predictivity"),
        feature_files=lambda w: [TLAYOUT.trial_features(w.dataset, m) for m in TRIAL_MODELS],
        time_files=lambda w: [TLAYOUT.trial_fit_time(w.dataset, m) for m in TRIAL_MODELS],
    output:
        trajectories_out=trial_figure_report("trajectories", "png"),
        trajectories_svg=trial_figure_report("trajectories", "svg"),
        over_time_out=trial_figure_report("over_time", "png"),
        over_time_svg=trial_figure_report("over_time", "svg"),
    params:
        features=lambda w: {m: TLAYOUT.trial_features(w.dataset, m) for m in TRIAL_MODELS},
        time_curves=lambda w: {m: TLAYOUT.trial_fit_time(w.dataset, m) for m in TRIAL_MODELS},
        **stage_params("trial_figures"),
    log:
        TLAYOUT.log("trial_figures", "{dataset}"),
    benchmark:
        TLAYOUT.benchmark("trial_figures", "{dataset}")
    resources:
        **job_resources("figures"),
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/stage.py"


rule trial_report_pages:
    input:
        table_path=TLAYOUT.trial_table("predictivity"),
        performance_files=[TLAYOUT.trial_performance(m) for m in TRIAL_MODELS],
    output:
        predictivity_html=report(
            TLAYOUT.trial_table("predictivity", "html"),
            caption="../report/trial_predictivity.rst",
            category="Time-resolved",
            subcategory="Tables",
        ),
        networks_html=report(
            TLAYOUT.trial_table("networks", "html"),
            caption="../report/trial_networks.rst",
            category="Time-resolved",
            subcategory="Networks",
        ),
    params:
        performance={m: TLAYOUT.trial_performance(m) for m in TRIAL_MODELS},
        **stage_params("trial_report_pages"),
    log:
        TLAYOUT.log("trial_report_pages"),
    benchmark:
        TLAYOUT.benchmark("trial_report_pages")
    resources:
        **job_resources("tables"),
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/stage.py"


rule trial_data_manifest:
    input:
        manifest_files=[TLAYOUT.trial_manifest(d) for d in TRIAL_DATASETS],
        psth_files=[TLAYOUT.trial_psth(d) for d in TRIAL_DATASETS],
    output:
        html_out=report(
            LAYOUT.provenance("trial_data_manifest.html"),
            caption="../report/trial_data_manifest.rst",
            category="Time-resolved",
            subcategory="Data",
        ),
        json_out=LAYOUT.provenance("trial_data_manifest.json"),
    params:
        manifests={d: TLAYOUT.trial_manifest(d) for d in TRIAL_DATASETS},
        # no summaries: a trial summary records no unit filters (the trial stage applies none)
        responses={d: TLAYOUT.trial_psth(d) for d in TRIAL_DATASETS},
        **stage_params("data_manifest"),
    log:
        TLAYOUT.log("trial_data_manifest"),
    benchmark:
        TLAYOUT.benchmark("trial_data_manifest")
    resources:
        **job_resources("tables"),
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/stage.py"
