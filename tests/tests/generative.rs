//! A GAN pipeline through the real command line: `dlp run` with `arch: gan` trains and bundles a
//! generator, a run interrupted after a mid-epoch checkpoint resumes with `dlp train --resume` to
//! the same generator, and `dlp sample` draws images from it and has a classifier bundle label them.
//! (Whether the generated digits are good is measured on the full config, in docs/results.md;
//! this test trains for one short epoch.)

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

use std::path::{Path, PathBuf};

mod common;
use common::{dlp, metrics_without_timings, repo};

fn run(dir: &Path, name: &str, model: &str, train: &str) -> PathBuf {
    let data = repo().join("data/mnist-t10k");
    let cfg = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &cfg,
        format!(
            "name: {name}
seed: 5
threads: 1
data:
  format: idx
  images: {0}/t10k-images-idx3-ubyte.gz
  labels: {0}/t10k-labels-idx1-ubyte.gz
preprocess:
  scale: pixel
  split: {{train: 0.03, validation: 0.0, test: 0.97}}
model:
{model}
train:
{train}
",
            data.display()
        ),
    )
    .unwrap();
    let out = dlp(&["run", cfg.to_str().unwrap(), "--runs-dir", dir.join("runs").to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(stdout.lines().find_map(|l| l.strip_prefix("run directory: ")).unwrap())
}

#[test]
fn a_gan_run_bundles_a_generator_that_dlp_sample_draws_from() {
    let tmp = tempfile::tempdir().unwrap();
    let gan = run(
        tmp.path(),
        "gan",
        "  arch: gan\n  latent_dim: 8\n  generator: [8, 4]\n  discriminator: [4, 8]\n  discriminator_kernel: 5",
        "  epochs: 2\n  batch_size: 32\n  optimizer: {kind: adam, lr: 0.0002, beta1: 0.5}\n  gan: {ema: 0.9}\n  \
         checkpoint: {every_steps: 4, keep: 10}",
    );
    for f in [
        "samples.png",
        "training_curves.png",
        "metrics.jsonl",
        "bundle/model.safetensors",
        "bundle/discriminator.safetensors",
    ] {
        assert!(gan.join(f).is_file(), "missing {f}");
    }
    let epochs: Vec<serde_json::Value> = std::fs::read_to_string(gan.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(epochs.len(), 2);
    for e in &epochs {
        for k in ["d_loss", "g_loss", "d_real", "d_fake"] {
            assert!(e[k].as_f64().unwrap().is_finite(), "{e}");
        }
    }
    // Stopped before the bundle was written (as if killed then), then resumed from a checkpoint
    // in the middle of the first epoch: the same generator and discriminator, the same figures.
    let interrupted = tmp.path().join("interrupted");
    copy_dir(&gan, &interrupted);
    std::fs::remove_dir_all(interrupted.join("bundle")).unwrap();
    let from = interrupted.join("checkpoints/epoch-0001-batch-00004.ckpt");
    assert!(from.is_file(), "the run writes mid-epoch checkpoints");
    let out = dlp(&["train", "--resume", interrupted.to_str().unwrap(), "--checkpoint", from.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for f in ["bundle/model.safetensors", "bundle/discriminator.safetensors"] {
        assert!(std::fs::read(interrupted.join(f)).unwrap() == std::fs::read(gan.join(f)).unwrap(), "{f} differs");
    }
    assert_eq!(metrics_without_timings(&interrupted), metrics_without_timings(&gan));

    let samples = image::open(gan.join("samples.png")).unwrap();
    assert!(samples.width() >= 8 * 84, "an 8x8 grid of enlarged 28x28 images");

    // A classifier to label the samples: a small MLP on the same images.
    let clf = run(tmp.path(), "clf", "  arch: mlp\n  hidden: [32]", "  epochs: 1\n  batch_size: 32");
    let png = tmp.path().join("grid.png");
    let out = dlp(&[
        "sample",
        gan.join("bundle").to_str().unwrap(),
        "--out",
        png.to_str().unwrap(),
        "--count",
        "30",
        "--classify",
        clf.join("bundle").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("wrote 30 samples") && stdout.contains("mean top-class confidence: "), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(png.with_extension("json")).unwrap()).unwrap();
    let counts = summary["counts"].as_object().unwrap();
    assert_eq!(counts.len(), 10);
    assert_eq!(counts.values().map(|v| v.as_u64().unwrap()).sum::<u64>(), 30);
    let confidence = summary["mean_confidence"].as_f64().unwrap();
    assert!((0.1..=1.0).contains(&confidence), "{confidence}");
    // The same seed draws the same images; another seed others.
    let draw = |name: &str, seed: &str| {
        let p = tmp.path().join(name);
        let out = dlp(&[
            "sample",
            gan.join("bundle").to_str().unwrap(),
            "--out",
            p.to_str().unwrap(),
            "--count",
            "9",
            "--seed",
            seed,
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::read(p).unwrap()
    };
    assert_eq!(draw("a.png", "1"), draw("b.png", "1"));
    assert_ne!(draw("a.png", "1"), draw("c.png", "2"));

    // A classifier's bundle cannot generate.
    let out = dlp(&["sample", clf.join("bundle").to_str().unwrap(), "--out", png.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a GAN"), "{}", String::from_utf8_lossy(&out.stderr));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
