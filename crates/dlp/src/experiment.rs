//! One place that turns a config and the prepared data's schema into a model ready to train:
//! the model checked against the data (errors located in the config file), parameters
//! initialised from the seed's `init` stream, the network built on the device, and the
//! [`Trainer`] and prediction settings that go with them. Every command that trains (`run`,
//! `train --resume`, `cv`, `tune`, `retrain`, `model summary`) and the benchmarks build here.

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::Device;
use models::{ModelSpec, Network, Params};
use pipeline_core::{Dataset, Head, Predictions, Schema, rng};
use train::{TrainConfig, Trainer};

use crate::config::PipelineConfig;

/// A built model with everything needed to train it and predict with it.
pub struct Experiment {
    /// The output head (softmax, sigmoid, identity) for the task and loss.
    pub head: Head,
    /// The model's input shape and output width.
    pub spec: ModelSpec,
    /// Its variables.
    pub params: Params,
    /// The network.
    pub model: Box<dyn Network>,
    /// Where its tensors live.
    pub device: Device,
    train: TrainConfig,
    seed: u64,
    solver: Option<train::linear::Solver>,
}

/// Rows per forward pass when predicting a whole part.
const PREDICT_BATCH: usize = 512;

impl Experiment {
    /// Checks `config`'s model (and augmentation) against `schema` — problems are located in
    /// `config_path` — and builds it on `device` with parameters from `rng(seed, "init")`.
    pub fn build(config: &PipelineConfig, schema: &Schema, device: &Device, config_path: &Path) -> Result<Self> {
        let (head, spec) = model_spec(config, schema, config_path)?;
        let params = Params::new(rng(config.seed, "init"));
        let (model, _) =
            models::build_for_training(&config.model, &spec, &params, device).context("building the model")?;
        let solver = train::linear::Solver::for_model(&config.model);
        Ok(Self {
            head,
            spec,
            params,
            model,
            device: device.clone(),
            train: config.train.clone(),
            seed: config.seed,
            solver,
        })
    }

    /// The fit loop for this model, with the config's `train:` section and seed, writing
    /// checkpoints to `checkpoint_dir` when given.
    pub fn trainer<'a>(&'a self, checkpoint_dir: Option<&'a Path>) -> Trainer<'a> {
        Trainer {
            model: self.model.as_ref(),
            params: &self.params,
            config: &self.train,
            seed: self.seed,
            device: &self.device,
            checkpoint_dir,
            solver: self.solver.clone(),
        }
    }

    /// The `train:` section the trainer uses (the benchmarks shorten it).
    pub fn train_config_mut(&mut self) -> &mut TrainConfig {
        &mut self.train
    }

    /// The model's predictions for every example of `part` (probabilities or values, in the
    /// model's encoded units: decode them with the preprocessor's target encoder).
    pub fn predict(&self, part: &Dataset) -> Result<Predictions> {
        let run = |rows: &[f32]| -> Result<Predictions> {
            Ok(models::predict(
                self.model.as_ref(),
                rows,
                &self.spec.input_shape,
                self.head,
                PREDICT_BATCH,
                &self.device,
            )?)
        };
        match part.in_memory() {
            true => run(part.features()),
            // A part on disk is read a few batches at a time.
            false => pipeline_core::metric::predict_in_chunks(part, PREDICT_BATCH * 16, &mut |rows| run(rows)),
        }
    }

    /// The model's layer table (`dlp model summary`).
    pub fn summary(&self) -> String {
        models::summarize(self.model.as_ref(), &self.params, &self.spec.input_shape).table(&self.spec.input_shape)
    }
}

/// The output head and model spec for data of `schema`, after checking the architecture fits
/// the data's shapes (problems are config errors located in `config_path`).
pub fn model_spec(config: &PipelineConfig, schema: &Schema, config_path: &Path) -> Result<(Head, ModelSpec)> {
    let head = Trainer::head(&config.train, &schema.target.task)?;
    let spec = ModelSpec::new(&schema.input, head.outputs(&schema.target.task));
    let mut issues = config.model.check(&spec);
    if let Some(solver) = train::linear::Solver::for_model(&config.model)
        && let Err((key, message)) = solver.check(&config.train, &schema.target.task)
    {
        issues.push(pipeline_core::config::Issue::new(key, message));
    }
    issues.extend(augment::config::check(&config.train.augment, "train.augment", &schema.input));
    if !issues.is_empty() {
        return Err(crate::config::located(config_path, issues).into());
    }
    Ok((head, spec))
}
