//! `dlp init` and `dlp auto` end to end on the shipped data: the written configs pass
//! `dlp check`, are the same on a second run, and cross-validate to at least the scikit-learn
//! reference figures of `data/README.md` (5-fold, the same files); `dlp auto` compares its
//! families and fits the best.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

mod common;

use std::path::Path;

use common::{dlp, ok, repo};

fn init(args: &[&str], out: &Path) -> String {
    let mut all = vec!["init"];
    all.extend_from_slice(args);
    all.extend(["--out", out.to_str().unwrap()]);
    ok(dlp(&all))
}

/// The model's mean of `metric` in `dlp cv`'s summary.
fn cv_mean(config: &Path, runs: &Path, metric: &str) -> f64 {
    let out = ok(dlp(&["cv", config.to_str().unwrap(), "--folds", "5", "--runs-dir", runs.to_str().unwrap()]));
    let dir = out.lines().find_map(|l| l.strip_prefix("report: ")).unwrap();
    let cv: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(dir).with_file_name("cv.json")).unwrap()).unwrap();
    cv["summary"].as_array().unwrap().iter().find(|m| m["metric"] == metric).unwrap()["model"]["mean"].as_f64().unwrap()
}

#[test]
fn init_configs_check_are_stable_and_reach_the_references() {
    let dir = tempfile::tempdir().unwrap();
    let data = repo().join("data/sklearn");
    let cases: [(&str, Vec<String>, &str, f64); 3] = [
        // (name, init arguments, metric, reference: at least / at most)
        ("iris", vec!["--data".into(), data.join("iris.csv").display().to_string()], "accuracy", 0.960),
        ("digits", vec!["--data".into(), data.join("digits.csv.gz").display().to_string()], "accuracy", 0.977),
        (
            "diabetes",
            vec![
                "--data".into(),
                data.join("diabetes_data_raw.csv.gz").display().to_string(),
                "--target-file".into(),
                data.join("diabetes_target.csv.gz").display().to_string(),
            ],
            "rmse",
            54.5,
        ),
    ];
    for (name, args, metric, reference) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let path = dir.path().join(format!("{name}.yaml"));
        let said = init(&args, &path);
        assert!(said.contains("wrote"), "{said}");
        let first = std::fs::read_to_string(&path).unwrap();
        ok(dlp(&["check", path.to_str().unwrap()]));
        // Same data, same file.
        init(&args, &path);
        assert_eq!(first, std::fs::read_to_string(&path).unwrap(), "{name}: init is not stable");
        // Every key written is explained by a comment somewhere in its section.
        assert!(first.lines().filter(|l| l.contains('#')).count() >= 4, "{name}: too few comments\n{first}");
        let mean = cv_mean(&path, &dir.path().join("runs"), metric);
        if metric == "rmse" {
            assert!(mean <= reference, "{name}: 5-fold rmse {mean} above scikit-learn's ridge {reference}");
        } else {
            assert!(mean >= reference, "{name}: 5-fold {metric} {mean} below the reference {reference}");
        }
    }
}

#[test]
fn init_reads_text_lines_and_writes_an_ngram_logistic_regression() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sms.yaml");
    let said = init(&["--data", repo().join("data/sms-spam/SMSSpamCollection").to_str().unwrap()], &path);
    assert!(said.contains("class balance: ham 4827, spam 747"), "{said}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("format: text_lines") && text.contains("header: true"), "{text}");
    assert!(text.contains("kind: ngrams") && text.contains("arch: logistic"), "{text}");
    ok(dlp(&["check", path.to_str().unwrap()]));
}

#[test]
fn init_writes_checked_configs_for_recordings_and_image_folders() {
    let dir = tempfile::tempdir().unwrap();
    // Class folders of FSDD recordings (digits 0-2, indices 0-9 of every speaker).
    let rec = repo().join("data/fsdd/recordings");
    let audio = dir.path().join("spoken");
    for entry in std::fs::read_dir(&rec).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let parts: Vec<&str> = name.trim_end_matches(".wav").split('_').collect();
        if parts[0].parse::<u32>().unwrap() < 3 && parts[2].parse::<u32>().unwrap() < 10 {
            std::fs::create_dir_all(audio.join(parts[0])).unwrap();
            std::fs::copy(rec.join(&name), audio.join(parts[0]).join(&name)).unwrap();
        }
    }
    let out = dir.path().join("spoken.yaml");
    let said = init(&["--data", audio.to_str().unwrap()], &out);
    assert!(said.contains("recordings at 8000 Hz") && said.contains("180 records of audio"), "{said}");
    let text = std::fs::read_to_string(&out).unwrap();
    for want in ["format: audio_folder", "sample_rate: 8000", "duration: 0.", "arch: cnn", "kind: time_mask"] {
        assert!(text.contains(want), "{want}: {text}");
    }
    ok(dlp(&["check", out.to_str().unwrap()]));

    // A CSV listing recordings with their labels and an official split.
    let list = dir.path().join("list.csv");
    let mut text = String::from("file,speaker,digit,part\n");
    for (i, name) in
        ["0_theo_1.wav", "1_theo_2.wav", "2_theo_12.wav", "0_lucas_30.wav", "1_lucas_31.wav", "2_lucas_32.wav"]
            .iter()
            .enumerate()
    {
        let part = if i < 3 { "test" } else { "train" };
        text.push_str(&format!("{},{},{},{part}\n", rec.join(name).display(), &name[2..6], &name[..1]));
    }
    std::fs::write(&list, text).unwrap();
    let out = dir.path().join("list.yaml");
    let said = init(&["--data", list.to_str().unwrap(), "--target", "digit"], &out);
    assert!(said.contains("the split of column `part`"), "{said}");
    let text = std::fs::read_to_string(&out).unwrap();
    for want in ["format: audio_list", "file_column: file", "target: digit", "split_column: part", "from_data: true"] {
        assert!(text.contains(want), "{want}: {text}");
    }
    ok(dlp(&["check", out.to_str().unwrap()]));

    // An image folder: the split init writes sums to 1 (it once wrote 0.8 + 0.1 + 0.2).
    let images = dir.path().join("shapes");
    for (class, v) in [("dark", 20u8), ("light", 230)] {
        std::fs::create_dir_all(images.join(class)).unwrap();
        for i in 0..6u8 {
            image::GrayImage::from_pixel(28, 28, image::Luma([v + i]))
                .save(images.join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    let out = dir.path().join("shapes.yaml");
    init(&["--data", images.to_str().unwrap()], &out);
    ok(dlp(&["check", out.to_str().unwrap()]));
}

#[test]
fn init_refuses_what_it_cannot_read_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one.csv");
    std::fs::write(&one, "a,b\n").unwrap();
    let out = dlp(&["init", "--data", one.to_str().unwrap(), "--out", dir.path().join("c.yaml").to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fewer than two records"), "{err}");
    assert!(!dir.path().join("c.yaml").exists(), "nothing written");
    let idx = repo().join("data/mnist-t10k/t10k-images-idx3-ubyte.gz");
    let out = dlp(&["init", "--data", idx.to_str().unwrap(), "--out", dir.path().join("m.yaml").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--target-file"), "{out:?}");
    let out = dlp(&["auto", one.to_str().unwrap(), "--budget", "soon"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("a budget is minutes"), "{out:?}");
}

#[test]
fn auto_compares_families_and_fits_the_best() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let out = ok(dlp(&[
        "auto",
        repo().join("data/sklearn/iris.csv").to_str().unwrap(),
        "--budget",
        "8",
        "--folds",
        "3",
        "--runs-dir",
        runs.to_str().unwrap(),
    ]));
    assert!(out.contains("family logistic: 4 trials") && out.contains("family mlp: 4 trials"), "{out}");
    let md = out.lines().find_map(|l| l.strip_prefix("comparison: ")).unwrap();
    let study = Path::new(md).parent().unwrap();
    let auto: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(study.join("auto.json")).unwrap()).unwrap();
    let families = auto["families"].as_array().unwrap();
    assert_eq!(families.len(), 2);
    let best = |f: &serde_json::Value| f["best"][0].as_f64().unwrap_or(0.0);
    let winner = families.iter().max_by(|a, b| best(a).total_cmp(&best(b))).unwrap();
    assert_eq!(auto["winner"], winner["family"]);
    assert!(best(winner) >= 0.9, "{winner}");
    // The final run: a full test report and bundle from best.yaml.
    ok(dlp(&["check", study.join("best.yaml").to_str().unwrap()]));
    let run = Path::new(auto["run"].as_str().unwrap());
    assert!(run.join("eval.json").is_file() && run.join("bundle").is_dir());
    assert!(std::fs::read_to_string(study.join("auto.md")).unwrap().contains("| logistic |"));
}
