# Stages 3-4: train (or load) each model, then extract each layer's activations for each stimulus set.


rule train:
    input:
        unpack(model_weights_input),
    output:
        weights_out=LAYOUT.weights("{model}"),
        performance_out=LAYOUT.performance("{model}"),
    wildcard_constraints:
        model=nf_config.name_pattern(TRAINED),
    params:
        settings=lambda w: canonical(nf_config.training_settings(config, w.model)),
        checkpoint=lambda w: LAYOUT.checkpoint(w.model),
        **stage_params("train"),
    log:
        LAYOUT.log("train", "{model}"),
    benchmark:
        LAYOUT.benchmark("train", "{model}")
    threads: lambda w: nf_config.train_threads(config, w.model)
    resources:
        **job_resources("train"),
    conda:
        "../../envs/models.yaml"
    script:
        "../scripts/stage.py"


# A model with `checkpoints`: one training job saves every listed epoch; each becomes the model
# <model>_e<epoch> (own weights and performance.json) through a copy job.
rule train_checkpoints:
    output:
        epochs_out=directory(LAYOUT.checkpoint_epochs("{model}")),
    wildcard_constraints:
        model=nf_config.name_pattern(CHECKPOINT_RUNS),
    params:
        settings=lambda w: canonical(nf_config.training_settings(config, w.model)),
        checkpoint=lambda w: LAYOUT.checkpoint(w.model),
        **stage_params("train"),
    log:
        LAYOUT.log("train", "{model}"),
    benchmark:
        LAYOUT.benchmark("train", "{model}")
    threads: 2
    resources:
        **job_resources("train"),
    conda:
        "../../envs/models.yaml"
    script:
        "../scripts/stage.py"


localrules:
    checkpoint_variant,


rule checkpoint_variant:
    input:
        epochs_dir=LAYOUT.checkpoint_epochs("{run}"),
    output:
        weights_out=LAYOUT.weights("{run}_e{epoch}"),
        performance_out=LAYOUT.performance("{run}_e{epoch}"),
    wildcard_constraints:
        run=nf_config.name_pattern(CHECKPOINT_RUNS),
        epoch="[0-9]+",
    params:
        **stage_params("checkpoint_variant"),
    log:
        LAYOUT.log("checkpoint_variant", "{run}_e{epoch}"),
    conda:
        "../../envs/models.yaml"
    script:
        "../scripts/stage.py"


rule features:
    input:
        weights=LAYOUT.weights("{model}"),
        stimuli_path=LAYOUT.stimuli("{dataset}"),
        record=LAYOUT.performance("{model}"),
        pca_image_files=lambda w: nf_config.pca_image_files(config, w.model),
    output:
        out=LAYOUT.features("{dataset}", "{model}", "{layer}"),
    params:
        settings=lambda w: canonical(nf_config.feature_settings(config, w.model)),
        **stage_params("features"),
    log:
        LAYOUT.log("features", "{dataset}", "{model}", "{layer}"),
    benchmark:
        LAYOUT.benchmark("features", "{dataset}", "{model}", "{layer}")
    resources:
        **job_resources("features"),
    conda:
        "../../envs/models.yaml"
    script:
        "../scripts/stage.py"
