//! Every kind of bad config fails before any work starts, with one line naming the file, the
//! line, the column and the key, and exit code 2. Bad data and bad paths fail with one
//! `error:` line and exit code 1. Nothing panics.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

use std::path::{Path, PathBuf};
use std::process::Command;

const GOOD: &str = "name: t
seed: 1
data:
  format: idx
  images: IMAGES
  labels: LABELS
preprocess:
  scale: pixel
  split: {train: 0.8, validation: 0.1, test: 0.1}
model:
  arch: mlp
  hidden: [16]
train:
  epochs: 2
  optimizer:
    kind: adamw
    lr: 0.001
";

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    /// Writes the good config with `from` replaced by `to` (a plain text edit) and returns its path.
    fn config(&self, from: &str, to: &str) -> PathBuf {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-t10k");
        let text = GOOD
            .replace("IMAGES", &data.join("t10k-images-idx3-ubyte.gz").display().to_string())
            .replace("LABELS", &data.join("t10k-labels-idx1-ubyte.gz").display().to_string());
        assert!(text.contains(from), "the edit must apply: {from}");
        let p = self.dir.path().join("pipeline.yaml");
        std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
        p
    }

    /// Runs `dlp run` on `config`; returns (exit code, stderr) and checks no run was started.
    fn run(&self, config: &Path) -> (i32, String) {
        let runs = self.dir.path().join("runs");
        let out = Command::new(env!("CARGO_BIN_EXE_dlp"))
            .args(["run", config.to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!stderr.contains("panicked"), "{stderr}");
        (out.status.code().unwrap(), stderr)
    }

    fn expect(&self, from: &str, to: &str, message: &str) {
        let config = self.config(from, to);
        let (code, stderr) = self.run(&config);
        assert_eq!(stderr, format!("error: {}:{message}\n", config.display()));
        assert_eq!(code, 2);
        assert!(!self.dir.path().join("runs").exists(), "no work may start on a bad config");
    }
}

#[test]
fn unknown_key() {
    Case::new().expect(
        "  epochs: 2",
        "  epochz: 2",
        "14:3: train.epochz: unknown field `epochz`, expected one of `epochs`, `batch_size`, `shuffle`, \
         `optimizer`, `schedule`, `warmup`, `loss`, `penalty`, `clip_norm`, `clip_value`, `accumulate`, \
         `early_stopping`, `checkpoint`, `lr_scale`, `drop_last`, `augment`, `augment_audio`, `loader`, `gan`",
    );
}

#[test]
fn unknown_key_inside_a_tagged_section() {
    Case::new().expect(
        "    lr: 0.001",
        "    lrate: 0.001",
        "17:5: train.optimizer.lrate: unknown field `lrate`, expected one of `lr`, `beta1`, `beta2`, `eps`, \
         `weight_decay`, `amsgrad`",
    );
}

#[test]
fn unknown_top_level_key() {
    Case::new().expect(
        "seed: 1",
        "seeds: 1",
        "2:1: seeds: unknown field `seeds`, expected one of `name`, `seed`, `device`, `threads`, `data`, \
         `preprocess`, `model`, `train`, `eval`, `tune`",
    );
}

#[test]
fn wrong_type() {
    Case::new().expect(
        "  epochs: 2",
        "  epochs: two",
        "14:3: train.epochs: invalid type: string \"two\", expected usize",
    );
}

#[test]
fn wrong_type_inside_a_tagged_section() {
    Case::new().expect(
        "    lr: 0.001",
        "    lr: fast",
        "17:5: train.optimizer.lr: invalid type: string \"fast\", expected f64",
    );
}

#[test]
fn unknown_architecture() {
    Case::new().expect(
        "  arch: mlp",
        "  arch: mpl",
        "11:3: model.arch: unknown variant `mpl`, expected one of `mlp`, `logistic`, `ridge`, `cnn`, `cnn1d`, \
         `lenet5`, `resnet`, `rnn`, `transformer`, `bert`, `gan`",
    );
}

#[test]
fn missing_data_file() {
    let case = Case::new();
    let config = case.config("t10k-images-idx3", "no-such-images-idx3");
    let (code, stderr) = case.run(&config);
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-t10k").canonicalize().unwrap();
    let missing = data.join("no-such-images-idx3-ubyte.gz");
    assert_eq!(
        stderr,
        format!("error: {}:5:3: data.images: file not found: {}\n", config.display(), missing.display())
    );
    assert_eq!(code, 2);
}

#[test]
fn relative_data_paths_are_relative_to_the_config_file() {
    let case = Case::new();
    let config = case.config("format: idx", "format: idx");
    let text = std::fs::read_to_string(&config).unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-t10k/").display().to_string();
    std::fs::write(&config, text.replace(&data, "elsewhere/")).unwrap();
    let (code, stderr) = case.run(&config);
    let expected = case.dir.path().join("elsewhere/t10k-images-idx3-ubyte.gz");
    assert!(
        stderr.starts_with(&format!(
            "error: {}:5:3: data.images: file not found: {}\n",
            config.display(),
            expected.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains(":6:3: data.labels: file not found:"), "{stderr}");
    assert_eq!(code, 2);
}

#[test]
fn split_that_does_not_sum_to_one() {
    Case::new().expect(
        "train: 0.8,",
        "train: 0.7,",
        "9:3: preprocess.split: train + validation + test must sum to 1, got 0.9 (0.7 + 0.1 + 0.1)",
    );
}

#[test]
fn zero_epochs() {
    Case::new().expect("  epochs: 2", "  epochs: 0", "14:3: train.epochs: must be at least 1, got 0");
}

#[test]
fn impossible_layer_width() {
    Case::new().expect(
        "hidden: [16]",
        "hidden: [16, 0]",
        "12:16: model.hidden[1]: a layer needs at least 1 unit, got 0",
    );
}

#[test]
fn several_problems_are_all_reported() {
    let case = Case::new();
    let config = case.config("  epochs: 2", "  epochs: 0\n  batch_size: 0");
    let (code, stderr) = case.run(&config);
    let c = config.display();
    assert_eq!(
        stderr,
        format!(
            "error: {c}:14:3: train.epochs: must be at least 1, got 0\nerror: {c}:15:3: train.batch_size: must be at least 1, got 0\n"
        )
    );
    assert_eq!(code, 2);
}

#[test]
fn a_gan_config_refuses_what_a_gan_run_would_ignore() {
    let case = Case::new();
    let config = case.config(
        "  scale: pixel\n  split: {train: 0.8, validation: 0.1, test: 0.1}\nmodel:\n  arch: mlp\n  hidden: [16]\ntrain:\n  epochs: 2",
        "  scale: standard\n  split: {train: 0.8, validation: 0.1, test: 0.1}\nmodel:\n  arch: gan\ntrain:\n  epochs: 2\n  clip_norm: 1.0",
    );
    let (code, stderr) = case.run(&config);
    let c = config.display();
    assert_eq!(
        stderr,
        format!(
            "error: {c}:8:3: preprocess.scale: a GAN's generator ends in a sigmoid, so real images must be scaled to \
             [0, 1]: use `pixel`\nerror: {c}:14:3: train.clip_norm: a GAN run does not use it (of `train` it reads \
             only epochs, batch_size, shuffle, optimizer, schedule, warmup, checkpoint, drop_last, loader, gan)\n"
        )
    );
    assert_eq!(code, 2);
}

#[test]
fn yaml_syntax_error() {
    Case::new().expect(
        "hidden: [16]",
        "hidden: [16",
        "12:3: model.hidden: did not find expected ',' or ']' at line 13 column 6, while parsing a flow sequence",
    );
}

#[test]
fn missing_config_file() {
    let case = Case::new();
    let p = case.dir.path().join("nope.yaml");
    let (code, stderr) = case.run(&p);
    assert_eq!(
        stderr,
        format!("error: {}: cannot read the config: No such file or directory (os error 2)\n", p.display())
    );
    assert_eq!(code, 2);
}

#[test]
fn corrupt_data_is_one_line_and_exit_1() {
    let case = Case::new();
    let bad = case.dir.path().join("bad-images.gz");
    std::fs::write(&bad, b"\x1f\x8bnot really gzip").unwrap();
    let config = case.config("format: idx", "format: idx");
    let text = std::fs::read_to_string(&config).unwrap();
    let images = text.lines().find_map(|l| l.strip_prefix("  images: ")).unwrap().to_string();
    std::fs::write(&config, text.replace(&images, &bad.display().to_string())).unwrap();
    let (code, stderr) = case.run(&config);
    assert!(
        stderr.starts_with(&format!("error: reading the data: {}: corrupt gzip stream", bad.display())),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(code, 1);
}

#[test]
fn check_accepts_a_good_config() {
    let case = Case::new();
    let config = case.config("format: idx", "format: idx");
    let out = Command::new(env!("CARGO_BIN_EXE_dlp")).args(["check", config.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{}: ok\n", config.display()));
}

#[test]
fn predict_with_a_missing_bundle() {
    let case = Case::new();
    let bundle = case.dir.path().join("no-bundle");
    let out = Command::new(env!("CARGO_BIN_EXE_dlp"))
        .args(["predict", bundle.to_str().unwrap(), "--input", "x.idx", "--output", "y.csv"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr,
        format!(
            "error: bundle {}: {}: No such file or directory (os error 2)\n",
            bundle.display(),
            bundle.join("bundle.json").display()
        )
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn check_refuses_a_target_that_is_not_among_the_names() {
    let case = Case::new();
    std::fs::write(case.dir.path().join("t.csv"), "1,2,0\n3,4,1\n").unwrap();
    let config = case.dir.path().join("csv.yaml");
    std::fs::write(
        &config,
        "name: t
data:
  format: csv
  path: t.csv
  header: false
  names: [a, b, c]
  target: label
model: {arch: mlp, hidden: [4]}
train: {epochs: 1}
",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dlp")).args(["check", config.to_str().unwrap()]).output().unwrap();
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!("error: {}:7:3: data.target: `label` is not among data.names (`a`, `b`, `c`)\n", config.display())
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn unknown_device() {
    Case::new().expect(
        "seed: 1",
        "seed: 1\ndevice: gpu",
        "3:1: device: expected cpu, cuda, cuda:<n> or metal, got \"gpu\"",
    );
}
