//! Deployment end to end, through the real command line: `dlp predict` over all of MNIST-10k
//! against the run's own test predictions, `dlp serve` stopped by SIGTERM mid-request, and
//! `dlp export` checked by ONNX Runtime and the `safetensors` package (Python, installed by
//! `cargo xtask test`).

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use candle_core::Device;
use pipeline_core::raw::{ImageSet, RawInputs};
use pipeline_core::{Head, Predictions};
use serde_json::Value;

mod common;
use common::{dlp, ok, repo};

fn images() -> PathBuf {
    repo().join("data/mnist-t10k/t10k-images-idx3-ubyte.gz")
}

/// Trains a small model on MNIST-10k (`model` is the YAML of the `model:` section) and
/// returns its run directory. The directory lives for the whole test process.
fn train(name: &str, model: &str, train_fraction: f64) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dlp-e2e-serve-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let data = repo().join("data/mnist-t10k");
    let config = format!(
        "name: {name}
seed: 5
threads: 1
data:
  format: idx
  images: {d}/t10k-images-idx3-ubyte.gz
  labels: {d}/t10k-labels-idx1-ubyte.gz
preprocess:
  scale: pixel
  split: {{train: {train_fraction}, validation: 0.05, test: {test}}}
model:
{model}
train:
  epochs: 1
  batch_size: 64
",
        d = data.display(),
        test = ((0.95 - train_fraction) * 100.0).round() / 100.0,
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let stdout = ok(dlp(&["run", path.to_str().unwrap(), "--runs-dir", dir.join("runs").to_str().unwrap()]));
    PathBuf::from(stdout.lines().find_map(|l| l.strip_prefix("run directory: ")).unwrap())
}

fn mlp_run() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| train("mlp", "  arch: mlp\n  hidden: [32]", 0.7))
}

#[test]
fn predict_over_all_images_reproduces_the_runs_test_predictions() {
    let run = mlp_run();
    let out = run.join("all.csv");
    let stdout = ok(dlp(&[
        "predict",
        run.join("bundle").to_str().unwrap(),
        "--input",
        images().to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--chunk",
        "700",
    ]));
    assert_eq!(stdout.trim(), format!("wrote 10000 predictions to {}", out.display()));
    let predicted: Vec<Vec<String>> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    assert_eq!(predicted.len(), 10_000);
    // The run's predictions.csv: row,actual,label,confidence,p_0…p_9 for each test record.
    let run_preds = std::fs::read_to_string(run.join("predictions.csv")).unwrap();
    let mut lines = run_preds.lines();
    assert!(lines.next().unwrap().starts_with("row,actual,label,confidence,p_0"));
    let mut checked = 0;
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let row: usize = f[0].parse().unwrap();
        let ours = &predicted[row];
        assert_eq!(ours[0], f[0]);
        assert_eq!(ours[1], f[2], "row {row}: label");
        for (a, b) in ours[2..].iter().zip(&f[3..]) {
            let (a, b): (f64, f64) = (a.parse().unwrap(), b.parse().unwrap());
            // Same model, other batch boundaries: equal up to float summation order and the
            // 6 printed decimals.
            assert!((a - b).abs() <= 2e-6, "row {row}: {ours:?} vs {line}");
        }
        checked += 1;
    }
    let split: Value = serde_json::from_str(&std::fs::read_to_string(run.join("split.json")).unwrap()).unwrap();
    assert_eq!(checked, split["test"].as_array().unwrap().len(), "every test record of the run");
    assert!(checked > 2000);

    // A bad input leaves no output behind.
    let bad = run.join("bad.idx");
    std::fs::write(&bad, [0u8, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2, 3]).unwrap();
    let out_bad = run.join("bad.csv");
    let fail = dlp(&[
        "predict",
        run.join("bundle").to_str().unwrap(),
        "--input",
        bad.to_str().unwrap(),
        "--output",
        out_bad.to_str().unwrap(),
    ]);
    assert_eq!(fail.status.code(), Some(1));
    let err = String::from_utf8_lossy(&fail.stderr);
    assert!(err.contains("IDX body truncated: record 0 of 2 is incomplete"), "{err}");
    assert!(!out_bad.exists());
}

#[test]
fn serve_finishes_the_request_in_flight_on_sigterm() {
    let run = mlp_run();
    let mut child = common::dlp_command()
        .args(["serve", run.join("bundle").to_str().unwrap(), "--addr", "127.0.0.1:0", "--batch-window-ms", "1500"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("{line:?}")).to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "binds to loopback: {base}");
    let url = format!("{base}/v2/models/mlp/infer");
    let body = serde_json::json!({"inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "UINT8", "data": vec![0; 784]}]});
    let request = std::thread::spawn(move || {
        let r = ureq::AgentBuilder::new().timeout(Duration::from_secs(20)).build().post(&url).send_json(body);
        match r {
            Ok(resp) => (resp.status(), resp.into_string().unwrap()),
            Err(ureq::Error::Status(s, resp)) => (s, resp.into_string().unwrap()),
            Err(e) => panic!("{e}"),
        }
    });
    std::thread::sleep(Duration::from_millis(600));
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let (status, text) = request.join().unwrap();
    assert_eq!(status, 200, "{text}");
    let out: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(out["model_name"], "mlp");
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("dlp serve: serving mlp version 1"), "{err}");
    assert!(err.trim_end().ends_with("dlp serve: stopped"), "{err}");
}

#[test]
fn serve_refuses_an_empty_token_from_the_flag_or_the_environment() {
    // `--token "$TOKEN"` with an unset variable must not serve without authentication.
    let bundle = mlp_run().join("bundle");
    for (args, env) in [(vec!["--token", ""], None), (vec!["--token", "  "], None), (vec![], Some(""))] {
        let mut cmd = common::dlp_command();
        cmd.args(["serve", bundle.to_str().unwrap(), "--addr", "127.0.0.1:0"]).args(&args);
        if let Some(v) = env {
            cmd.env("DLP_SERVE_TOKEN", v);
        }
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error: --token (or DLP_SERVE_TOKEN) is empty"), "{err}");
        assert!(out.stdout.is_empty(), "never listened: {}", String::from_utf8_lossy(&out.stdout));
    }
}

#[test]
fn predict_refuses_to_write_over_its_input() {
    let run = mlp_run();
    let input = run.join("self.idx.gz");
    std::fs::copy(images(), &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    // The same file, also through another spelling of its path, a symbolic link and a hard link.
    let other = run.join(".").join("self.idx.gz");
    let symlink = run.join("self-link.idx.gz");
    std::os::unix::fs::symlink(&input, &symlink).unwrap();
    let hardlink = run.join("self-hard.idx.gz");
    std::fs::hard_link(&input, &hardlink).unwrap();
    for output in [&input, &other, &symlink, &hardlink] {
        let out = dlp(&[
            "predict",
            run.join("bundle").to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("is the input file; predictions would overwrite the records"), "{err}");
        assert_eq!(std::fs::read(&input).unwrap(), before, "the input is untouched");
    }
}

/// The Python that has onnxruntime, safetensors and numpy: `DLP_TEST_PYTHON` (set by
/// `cargo xtask test`, which installs them), else `python3` if it has them. `None` (the
/// check is skipped, loudly) only when neither exists and `DLP_REQUIRE_PYTHON` is unset.
fn python() -> Option<String> {
    let candidates: Vec<String> =
        std::env::var("DLP_TEST_PYTHON").map(|p| vec![p]).unwrap_or_else(|_| vec!["python3".into()]);
    for py in candidates {
        let probe = Command::new(&py).args(["-c", "import onnxruntime, safetensors, numpy"]).output();
        if probe.is_ok_and(|o| o.status.success()) {
            return Some(py);
        }
    }
    assert!(
        std::env::var_os("DLP_REQUIRE_PYTHON").is_none(),
        "DLP_REQUIRE_PYTHON is set but no Python with onnxruntime, safetensors and numpy was found \
         (DLP_TEST_PYTHON={:?}); `cargo xtask test` installs them",
        std::env::var("DLP_TEST_PYTHON").ok()
    );
    eprintln!(
        "\n*** SKIPPED: the ONNX Runtime / safetensors export check needs a Python with onnxruntime, \
         safetensors and numpy; run `cargo xtask test` (it installs them) or set DLP_TEST_PYTHON ***\n"
    );
    None
}

/// The first `n` MNIST images as raw inputs.
fn first_images(n: usize) -> RawInputs {
    use std::io::Read;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(images()).unwrap()).read_to_end(&mut bytes).unwrap();
    let pixels = bytes[16..16 + n * 784].iter().map(|&b| f32::from(b)).collect();
    RawInputs::Images(ImageSet { channels: 1, height: 28, width: 28, pixels })
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

#[track_caller]
fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}");
    let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= tol, "{what}: largest difference {worst} > {tol}");
}

/// Exports `run`'s bundle both ways and checks them in Python against the pipeline's own
/// logits and probabilities on 256 test images.
fn check_export(run: &Path, names: &[&str]) {
    let bundle = run.join("bundle");
    let onnx = run.join("model.onnx");
    let st = run.join("export.safetensors");
    let args = |fmt: &str, out: &Path| {
        ok(dlp(&["export", bundle.to_str().unwrap(), "--format", fmt, "--output", out.to_str().unwrap()]))
    };
    assert_eq!(args("onnx", &onnx).trim(), format!("wrote {}", onnx.display()));
    assert!(args("safetensors", &st).starts_with("wrote "));
    let Some(py) = python() else { return };
    let n = 256;
    let script = repo().join("tests/python/check_export.py");
    let out = Command::new(&py)
        .arg(&script)
        .args([onnx.as_os_str(), st.as_os_str(), images().as_os_str()])
        .arg(n.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let py: Value = serde_json::from_slice(&out.stdout).unwrap();

    // The pipeline's own outputs, from the bundle.
    let b = serve::Bundle::load(&bundle, &Device::Cpu).unwrap();
    let inputs = first_images(n);
    let Predictions::Classes { probs, classes } = b.predict(&inputs).unwrap() else { panic!("classes") };
    assert_eq!(classes, 10);
    let spec = models::ModelSpec::new(&b.index.schema.input, 10);
    let model = models::load_weights(&b.model_config, &spec, &bundle.join("model.safetensors"), &Device::Cpu).unwrap();
    let rows = b.transform(&inputs).unwrap();
    let Predictions::Values(logits) =
        models::predict(model.as_ref(), &rows, &[1, 28, 28], Head::Identity, 64, &Device::Cpu).unwrap()
    else {
        panic!("values")
    };
    assert_eq!(py["inputs"], serde_json::json!([["pixels", ["N", 1, 28, 28]]]));
    assert_eq!(py["outputs"], serde_json::json!(["logits", "probabilities"]));
    assert_close("onnxruntime logits", &floats(&py["logits"]), &logits, 1e-4);
    assert_close("onnxruntime probabilities", &floats(&py["probabilities"]), &probs, 1e-4);
    if let Some(np) = py.get("numpy_probabilities") {
        assert_close("numpy forward from the safetensors names", &floats(np), &probs, 1e-4);
    }
    // The documented names, and the metadata.
    let tensors = py["tensors"].as_object().unwrap();
    let got: Vec<&str> = tensors.keys().map(String::as_str).collect();
    assert_eq!(got, names);
    let meta = &py["metadata"];
    assert_eq!(meta["format"], "pt");
    assert_eq!(meta["dlp.input_shape"], "[1,28,28]");
    assert_eq!(meta["dlp.labels"], r#"["0","1","2","3","4","5","6","7","8","9"]"#);
}

#[test]
fn exported_mlp_runs_in_onnx_runtime_and_loads_in_python() {
    let run = mlp_run();
    check_export(run, &["layers.0.bias", "layers.0.weight", "layers.1.bias", "layers.1.weight"]);
}

#[test]
fn exported_lenet5_runs_in_onnx_runtime_and_loads_in_python() {
    let run = train("lenet5", "  arch: lenet5", 0.15);
    check_export(
        &run,
        &[
            "blocks.0.conv.bias",
            "blocks.0.conv.weight",
            "blocks.1.conv.bias",
            "blocks.1.conv.weight",
            "head.0.bias",
            "head.0.weight",
            "head.1.bias",
            "head.1.weight",
            "head.2.bias",
            "head.2.weight",
        ],
    );
}
