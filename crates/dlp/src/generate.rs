//! Generative pipelines (`model: {arch: gan}`) and `dlp sample`.
//!
//! A GAN run trains the generator and discriminator of [`models::gan`] with
//! [`train::gan::GanTrainer`] — the same loop as every model, with the GAN's step — on the
//! training part's images (labels unused), as the `train:` section says (`train.gan` for its
//! own settings; `optimizer` is used for both networks). It writes `metrics.jsonl`
//! (discriminator and generator loss, the discriminator's mean belief in real and generated
//! images, per epoch), checkpoints that `dlp train --resume` continues exactly,
//! `training_curves.png`, a grid of generated images `samples.png`, and a bundle whose model is
//! the generator (`discriminator.safetensors` beside it).
//!
//! `dlp sample <bundle> --out grid.png` draws images from a bundle's generator; with
//! `--classify <classifier-bundle>` each image is also classified by a trained classifier —
//! how many classes the generator covers and how confidently its images are recognised.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};
use eval::plot::{Chart, Series, Tile};
use models::gan::{Discriminator, GanConfig, Generator};
use models::{ModelConfig, ModelSpec, Params};
use pipeline_core::raw::{ImageSet, RawInputs};
use pipeline_core::run::{read_json, write_json};
use pipeline_core::{BundleDir, BundleIndex, Ctx, Head, InputSchema, Model, RunDir, Schema, Target, Task, rng};
use serde::Serialize;
use train::gan::GanTrainer;
use train::{Checkpoint, EpochMetrics, MetricsLog, Progress};

use crate::config::PipelineConfig;

/// What a finished GAN run reports.
#[derive(Debug, Clone, Serialize)]
pub struct GanSummary {
    /// The last epoch's figures (`d_loss`, `g_loss`, `d_real`, `d_fake` in `extra`).
    pub last: Option<EpochMetrics>,
    /// The sample grid.
    pub samples: PathBuf,
}

/// Trains the GAN of `config` on `train_part` into `run` (checkpoints in its `checkpoints/`;
/// with `resume`, continuing from that checkpoint); returns the generator's parameters (for
/// the bundle), the discriminator's, and the summary. `config` must have passed the config
/// checks (what `dlp check` runs), which require `scale: pixel` for a GAN.
pub fn train_gan(
    run: &RunDir,
    config: &PipelineConfig,
    gan: &GanConfig,
    train_part: &pipeline_core::Dataset,
    device: &Device,
    resume: Option<Checkpoint>,
) -> Result<(Params, Params, GanSummary)> {
    let spec = ModelSpec::new(&train_part.schema().input, 0);
    let seed = config.seed;
    let (gp, dp) = (Params::new(rng(seed, "init-generator")), Params::new(rng(seed, "init-discriminator")));
    let generator = Generator::new(gan, &spec, gp.var_builder(device)).context("building the generator")?;
    let discriminator = Discriminator::new(gan, &spec, dp.var_builder(device)).context("building the discriminator")?;
    let checkpoints = run.checkpoints();
    let trainer = GanTrainer {
        generator: &generator,
        generator_params: &gp,
        discriminator: &discriminator,
        discriminator_params: &dp,
        latent_dim: gan.latent_dim,
        config: &config.train,
        seed,
        device,
        checkpoint_dir: Some(&checkpoints),
    };
    let mut progress = Progress::auto();
    let mut log = match &resume {
        Some(ck) => MetricsLog::resume(&run.metrics_log(), &ck.state.history),
        None => MetricsLog::create(&run.metrics_log()),
    }
    .with_context(|| run.metrics_log().display().to_string())?;
    let callbacks: &mut [&mut dyn train::Callback] = &mut [&mut progress, &mut log];
    let report = match resume {
        Some(ck) => trainer.resume(ck, train_part, callbacks)?,
        None => trainer.fit(train_part, callbacks)?,
    };
    gan_curves(&report.history, &run.curves())?;
    let samples = run.root().join("samples.png");
    let images = generate(&generator, gan.latent_dim, 64, seed, device)?;
    grid(&images, &spec.input_shape, None, "Generated samples", &samples)?;
    Ok((gp, dp, GanSummary { last: report.history.last().cloned(), samples }))
}

/// The bundle index of a GAN: it generates images of the data's shape.
pub fn bundle_index(config: &PipelineConfig, input: &InputSchema, created_at: String) -> BundleIndex {
    BundleIndex {
        format_version: pipeline_core::run::BUNDLE_FORMAT_VERSION,
        name: config.name.clone(),
        schema: Schema { input: input.clone(), target: Target { name: "generated".into(), task: Task::Generation } },
        head: Head::Identity,
        pipeline_version: pipeline_core::VERSION.to_string(),
        created_at,
        seed: config.seed,
    }
}

/// `n` images from `generator` (row-major `[n, c, h, w]` values in [0, 1]), from noise seeded
/// by `seed`.
pub fn generate(generator: &dyn Model, latent_dim: usize, n: usize, seed: u64, device: &Device) -> Result<Vec<f32>> {
    let mut noise_rng = rng(seed, "samples");
    let mut out = Vec::new();
    let mut left = n;
    while left > 0 {
        let b = left.min(256);
        let z = train::gan::noise(b, latent_dim, &mut noise_rng, device)?;
        let images: Tensor = generator.forward(&z, &mut Ctx::infer())?;
        out.extend(images.flatten_all()?.to_vec1::<f32>()?);
        left -= b;
    }
    Ok(out)
}

/// Draws `images` (values in [0, 1], each of `shape`) as a grid, with `captions` under them.
fn grid(images: &[f32], shape: &[usize], captions: Option<&[String]>, title: &str, path: &Path) -> Result<()> {
    let [c, h, w] = shape[..] else { bail!("a GAN generates images, not {shape:?}") };
    let size = c * h * w;
    let tiles: Vec<Tile> = images
        .chunks_exact(size)
        .enumerate()
        .map(|(i, px)| Tile {
            channels: c,
            height: h,
            width: w,
            pixels: px.iter().map(|v| v * 255.0).collect(),
            caption: captions.and_then(|cs| cs.get(i).cloned()).unwrap_or_default(),
        })
        .collect();
    let columns = (tiles.len() as f64).sqrt().ceil() as usize;
    eval::plot::image_grid_png(title, &tiles, columns.max(1), path)?;
    Ok(())
}

fn gan_curves(history: &[EpochMetrics], path: &Path) -> Result<()> {
    let series = |name: &str, key: &str| Series {
        name: name.into(),
        points: history.iter().filter_map(|e| Some((e.epoch as f64, *e.extra.get(key)?))).collect(),
    };
    let charts = [
        Chart {
            title: "Losses".into(),
            x_label: "epoch".into(),
            y_label: "binary cross-entropy".into(),
            series: vec![series("discriminator", "d_loss"), series("generator", "g_loss")],
        },
        Chart {
            title: "Discriminator's belief".into(),
            x_label: "epoch".into(),
            y_label: "mean P(real)".into(),
            series: vec![series("real images", "d_real"), series("generated", "d_fake")],
        },
    ];
    Ok(eval::plot::charts_png(&charts, (480, 360), path)?)
}

/// What `dlp sample --classify` found.
#[derive(Debug, Clone, Serialize)]
pub struct Classified {
    /// Images per predicted class (every class of the classifier, including those with none).
    pub counts: BTreeMap<String, usize>,
    /// Classes that received at least one image.
    pub covered: usize,
    /// Mean probability of each image's predicted class.
    pub mean_confidence: f64,
}

/// `dlp sample`: `count` images from the generator of the bundle at `bundle_dir` into a PNG grid
/// at `out`; with `classifier`, each classified by that bundle (captions show the class and its
/// probability).
pub fn sample(
    bundle_dir: &Path,
    out: &Path,
    count: usize,
    seed: u64,
    classifier: Option<&Path>,
) -> Result<Option<Classified>> {
    if count == 0 {
        bail!("--count must be at least 1");
    }
    let device = Device::Cpu;
    let b = BundleDir::new(bundle_dir);
    let index: BundleIndex =
        read_json(&b.index()).with_context(|| format!("{}: not a model bundle", bundle_dir.display()))?;
    let config: ModelConfig = read_json(&b.model_config())?;
    let ModelConfig::Gan(gan) = &config else {
        bail!("{}: the bundle's model is not a GAN (arch: gan), so it cannot generate samples", bundle_dir.display());
    };
    let spec = ModelSpec::new(&index.schema.input, 0);
    let generator = models::load_weights(&config, &spec, &b.weights(), &device)?;
    let images = generate(generator.as_ref(), gan.latent_dim, count, seed, &device)?;
    let mut classified = None;
    let mut captions = None;
    if let Some(path) = classifier {
        let clf = bundle::Bundle::load(path, &device).with_context(|| format!("--classify {}", path.display()))?;
        let Task::Classification { labels } = clf.task().clone() else {
            bail!("--classify {}: not a classifier", path.display());
        };
        let [c, h, w] = spec.input_shape[..] else { bail!("a GAN generates images") };
        let raw = RawInputs::Images(ImageSet {
            channels: c,
            height: h,
            width: w,
            pixels: images.iter().map(|v| (v * 255.0).round().clamp(0.0, 255.0)).collect(),
        });
        let predictions = clf.predict(&raw).with_context(|| format!("--classify {}", path.display()))?;
        let pipeline_core::Predictions::Classes { probs, classes } = &predictions else {
            bail!("--classify {}: not a classifier", path.display());
        };
        let predicted = predictions.argmax().unwrap_or_default();
        let mut counts: BTreeMap<String, usize> = labels.iter().map(|l| (l.clone(), 0)).collect();
        let mut confidence = 0.0;
        let mut caps = Vec::new();
        for (i, &p) in predicted.iter().enumerate() {
            let label = labels.get(p as usize).cloned().unwrap_or_else(|| p.to_string());
            let conf = f64::from(probs[i * classes + p as usize]);
            *counts.entry(label.clone()).or_default() += 1;
            confidence += conf;
            caps.push(format!("{label} ({conf:.2})"));
        }
        let covered = counts.values().filter(|&&n| n > 0).count();
        classified = Some(Classified { counts, covered, mean_confidence: confidence / predicted.len().max(1) as f64 });
        captions = Some(caps);
    }
    let title = if classified.is_some() {
        "Generated samples (class and confidence of the classifier)"
    } else {
        "Generated samples"
    };
    grid(&images, &spec.input_shape, captions.as_deref(), title, out)?;
    if let Some(c) = &classified {
        write_json(&out.with_extension("json"), c)?;
    }
    Ok(classified)
}
