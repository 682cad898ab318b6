//! The training and inference benchmark behind `cargo xtask bench train`: one model of one
//! pipeline config, trained and timed through the pipeline's own code path (config loading,
//! `data-ingest`, the fitted `preprocess` transform, `models::build_for_training`,
//! `train::Trainer::fit`), then timed at inference.
//!
//! `train_bench CONFIG EPOCHS [TRAIN_ROWS]` splits the data in order — the first `TRAIN_ROWS`
//! records (default 8,000) train, the rest test — as the PyTorch peer does, instead of the
//! config's seeded stratified split. It prints one JSON object: the training samples/s of every
//! epoch, the test accuracy after the last, the median batch-1 latency and batch-256
//! throughput of the trained model's forward pass, and the process's peak resident memory
//! (`VmHWM`).
#![allow(clippy::print_stdout, reason = "the JSON report is the program's output")]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};
use pipeline_core::{Ctx, Targets};
use preprocess::{Preprocessor, TargetEncoder};
use train::{Callback, Control, EpochMetrics};

/// Keeps every epoch's metrics.
#[derive(Default)]
struct Collect(Vec<EpochMetrics>);

impl Callback for Collect {
    fn on_epoch_end(&mut self, metrics: &EpochMetrics) -> train::Result<Control> {
        self.0.push(metrics.clone());
        Ok(Control::Continue)
    }
}

/// The median of `f`'s wall time over `runs` calls, after `warmup` calls, in seconds.
fn median_time(warmup: usize, runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    for _ in 0..warmup {
        f()?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// The process's peak resident set size in KiB (`VmHWM` of `/proc/self/status`).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config_path, epochs, rest @ ..] = &args[..] else {
        bail!("usage: train_bench CONFIG EPOCHS [TRAIN_ROWS]");
    };
    let config_path = PathBuf::from(config_path);
    let epochs: usize = epochs.parse().context("EPOCHS must be a whole number")?;
    let train_rows: usize = match rest.first() {
        Some(v) => v.parse().context("TRAIN_ROWS must be a whole number")?,
        None => 8000,
    };
    let mut config = dlp::config::load(&config_path)?;
    dlp::device::set_threads(config.threads);
    config.train.epochs = epochs;
    let device = Device::Cpu;

    // The pipeline's preparation, with an ordered split.
    let ingested = data_ingest::load(&config.data).context("reading the data")?;
    let (data, _, _) = preprocess::clean(&ingested.data, &config.preprocess);
    if data.rows() <= train_rows {
        bail!("{} records after cleaning: none left to test on after {train_rows} for training", data.rows());
    }
    let target = data.target.as_ref().context("the data has no target column")?;
    let encoder = TargetEncoder::fit(target, &config.data.target_spec())?;
    let train_idx: Vec<usize> = (0..train_rows).collect();
    let test_idx: Vec<usize> = (train_rows..data.rows()).collect();
    let train_raw = data.select(&train_idx);
    let (preprocessor, _) = Preprocessor::fit(&config.preprocess, &train_raw, encoder)?;
    let train_part = preprocessor.transform(&train_raw)?;
    let test_part = preprocessor.transform(&data.select(&test_idx))?;

    let exp = dlp::experiment::Experiment::build(&config, train_part.schema(), &device, &config_path)?;
    let trainer = exp.trainer(None);
    let mut collect = Collect::default();
    trainer.fit(&train_part, None, &mut [&mut collect])?;

    let preds = exp.predict(&test_part)?;
    let (model, spec) = (&exp.model, &exp.spec);
    let Targets::Classes(actual) = test_part.targets() else { bail!("the benchmark needs a classification task") };
    let predicted = preds.argmax().context("classification predictions")?;
    let accuracy = predicted.iter().zip(actual).filter(|(p, a)| p == a).count() as f64 / actual.len() as f64;

    // Inference: the model's forward pass on test rows, as PyTorch's `net(x)` under no_grad.
    let width: usize = spec.input_shape.iter().product();
    let rows = |start: usize, n: usize| -> Result<Tensor> {
        let mut shape = vec![n];
        shape.extend_from_slice(&spec.input_shape);
        Ok(Tensor::from_slice(&test_part.features()[start * width..(start + n) * width], shape, &device)?)
    };
    let one: Vec<Tensor> = (0..200).map(|i| rows(i, 1)).collect::<Result<_>>()?;
    let mut i = 0;
    let latency = median_time(50, 1000, || {
        let y = model.forward(&one[i % one.len()], &mut Ctx::infer())?;
        i += 1;
        std::hint::black_box(y);
        Ok(())
    })?;
    let batch = rows(0, 256.min(test_part.len()))?;
    let batch_time = median_time(5, 50, || {
        std::hint::black_box(model.forward(&batch, &mut Ctx::infer())?);
        Ok(())
    })?;

    let report = serde_json::json!({
        "config": config_path.display().to_string(),
        "threads": rayon::current_num_threads(),
        "train_samples_per_sec": collect.0.iter().map(|m| m.samples_per_sec).collect::<Vec<_>>(),
        "train_loss": collect.0.last().map(|m| m.train_loss),
        "test_accuracy": accuracy,
        "latency_b1_ms": latency * 1e3,
        "throughput_b256": batch.dim(0)? as f64 / batch_time,
        "peak_rss_kib": peak_rss_kib(),
    });
    println!("{report}");
    Ok(())
}
