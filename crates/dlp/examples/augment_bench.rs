//! The cost of augmentation, for `cargo xtask bench augment`: the training loader's throughput
//! alone, and training epochs with and without augmentation, side by side in one process.
//!
//! Usage: `augment_bench <plain.yaml> <augmented.yaml> <rounds>` — two pipeline configs that
//! differ only in `train.augment`. Prints a Markdown report.

#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use augment::{Augmenter, Loader};
use candle_core::Device;
use dlp::config::PipelineConfig;
use dlp::experiment::Experiment;
use dlp::pipeline::{Clock, prepare};
use pipeline_core::{Dataset, rng};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Images per second of one loader epoch (batches assembled, augmented and made tensors, no
/// training).
fn loader_rate(data: &Dataset, config: &PipelineConfig, augment: bool, workers: usize) -> Result<f64> {
    let c = &config.train;
    let a = match augment {
        true => Some(Augmenter::new(&c.augment, "train.augment", &data.schema().input, config.seed)?),
        false => None,
    };
    let loader = Loader::new(data, c.batch_size, c.drop_last, a, workers, c.loader.prefetch);
    let order = loader.order(Some(&mut rng(config.seed, "shuffle")));
    let started = Instant::now();
    let mut n = 0;
    std::thread::scope(|s| -> Result<()> {
        for b in loader.epoch(s, 1, &order, 0, &Device::Cpu) {
            n += b?.rows.len();
        }
        Ok(())
    })?;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Seconds of one training epoch of `config` on `data`, from fresh weights.
fn epoch_seconds(config: &PipelineConfig, path: &Path, data: &Dataset) -> Result<f64> {
    let mut exp = Experiment::build(config, data.schema(), &Device::Cpu, path)?;
    exp.train_config_mut().epochs = 1;
    let report = exp.trainer(None).fit(data, None, &mut [])?;
    Ok(report.history[0].train_seconds)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: augment_bench <plain.yaml> <augmented.yaml> <rounds>";
    let (Some(plain_path), Some(aug_path)) = (args.get(1), args.get(2)) else { bail!(usage) };
    let rounds: usize = args.get(3).map(|r| r.parse()).transpose()?.unwrap_or(3);
    let (plain_path, aug_path) = (Path::new(plain_path), Path::new(aug_path));
    let plain = dlp::config::load(plain_path)?;
    let aug = dlp::config::load(aug_path)?;
    if aug.train.augment.is_empty() || !plain.train.augment.is_empty() {
        bail!("the first config must have no train.augment, the second one some");
    }
    let data = prepare(&aug, None, &mut Clock::start()).context("preparing the data")?.train;
    let n = data.len();
    let transforms: Vec<&str> = aug.train.augment.iter().map(|t| t.kind()).collect();
    let mut out = format!(
        "{n} training images, batch size {}, transforms: {}; medians of {rounds} rounds.\n\n",
        aug.train.batch_size,
        transforms.join(", ")
    );
    out += "| loader alone (one epoch, no training) | images/s |\n|---|---|\n";
    for (augment, workers) in [(false, 0), (true, 0), (true, 1), (true, 2)] {
        let rates = (0..rounds).map(|_| loader_rate(&data, &aug, augment, workers)).collect::<Result<Vec<_>>>()?;
        let what = if augment { "assembled + augmented" } else { "assembled only" };
        let how = if workers == 0 { "in the training thread".to_string() } else { format!("{workers} worker(s)") };
        out += &format!("| {what}, {how} | {:.0} |\n", median(rates));
    }
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        eprintln!("augment_bench: training round {}/{rounds}", round + 1);
        without.push(epoch_seconds(&plain, plain_path, &data)?);
        with.push(epoch_seconds(&aug, aug_path, &data)?);
    }
    let (w, wo) = (median(with), median(without));
    out += &format!(
        "\n| training epoch (`{}`) | seconds | images/s |\n|---|---|---|\n| without augmentation | {wo:.2} | {:.0} |\n\
         | with augmentation ({} worker(s)) | {w:.2} | {:.0} |\n| ratio with / without | {:.3} | |\n",
        plain.name,
        n as f64 / wo,
        aug.train.loader.workers,
        n as f64 / w,
        w / wo
    );
    println!("{out}");
    Ok(())
}
