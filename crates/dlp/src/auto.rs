//! `dlp auto <config|data> --budget <minutes|trials>`: a tuning study over model families, each
//! trial scored by k-fold cross-validation on the training part, then a final fit of the best
//! and the full test report.
//!
//! From a data file the base config is the one `dlp init` writes (kept as `init.yaml` in the
//! study directory); from a config, its `data:`, `preprocess:` (split included) and `eval:`
//! sections are kept and the model and training settings are the study's. The families follow
//! the data: logistic regression and MLPs for tabular classes; ridge and MLPs for tabular
//! values; logistic regression over n-gram TF-IDF variants and an MLP for text; an MLP and
//! LeNet-5 for images. Each family is one study (crate `tune`: TPE sampler, ASHA pruning, the
//! trials in `<family>.db`) with an equal share of the budget — a family that ends early hands
//! its unused time to the next. A trial's objective is the mean over `folds` folds of the
//! non-test records (accuracy, or RMSE for regression); the folds are the rungs of ASHA, so a
//! trial that is clearly behind after its first folds stops there. The test part is never seen
//! by a trial.
//!
//! At the end, the best trial of the best family is written as `best.yaml` and run with
//! `dlp run` (preprocessing refitted on the whole training part, the report, the bundle), and
//! `auto.md` / `auto.json` compare every family: trials, the best cross-validated score ± its
//! standard deviation over folds, the parameters.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use pipeline_core::run::{write_atomic, write_json};
use pipeline_core::{Direction, Predictions, RunDir, Targets, rng};
use preprocess::Split;
use serde::Serialize;
use serde_yaml::Value as Yaml;
use tune::storage::{SqliteStorage, TrialRecord, TrialState};
use tune::{Study, StudyOptions, Trial, TuneConfig};

use crate::config::{PipelineConfig, base_value, trial_config};
use crate::experiment::Experiment;
use crate::pipeline::{Loaded, fit_parts, load};

/// How much searching `dlp auto` may do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    /// Wall time for the studies (the final fit comes after).
    Time(Duration),
    /// Trials over all families.
    Trials(usize),
}

impl std::str::FromStr for Budget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || format!("a budget is minutes (`10m`, `10min`, `90s`) or a trial count (`40`), got {s:?}");
        let num = |t: &str| t.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0);
        if let Some(m) = s.strip_suffix("min").or_else(|| s.strip_suffix('m')) {
            return num(m).map(|v| Budget::Time(Duration::from_secs_f64(v * 60.0))).ok_or_else(bad);
        }
        if let Some(sec) = s.strip_suffix('s') {
            return num(sec).map(|v| Budget::Time(Duration::from_secs_f64(v))).ok_or_else(bad);
        }
        match s.parse::<usize>() {
            Ok(n) if n > 0 => Ok(Budget::Trials(n)),
            _ => Err(bad()),
        }
    }
}

/// A time budget also stops a family after this many trials: past it, TPE on these small
/// spaces has long converged.
const MAX_TRIALS_PER_FAMILY: usize = 60;

/// One model family: the model and training sections it starts from and the space searched.
struct Family {
    name: &'static str,
    model: &'static str,
    train: &'static str,
    space: &'static str,
}

const LOGISTIC: Family = Family {
    name: "logistic",
    model: "{arch: logistic, c: 1.0}",
    train: "{}",
    space: "{model.c: {loguniform: [0.01, 100.0]}}",
};
const MLP_CLASSES: Family = Family {
    name: "mlp",
    model: "{arch: mlp, hidden: [256], activation: relu, dropout: 0.2}",
    train: "{epochs: 60, batch_size: 32, optimizer: {kind: adamw, lr: 0.001, weight_decay: 0.01}, schedule: {kind: cosine}}",
    space: "{model.hidden: {choice: [[64], [128], [256], [512], [256, 128]]}, model.dropout: {uniform: [0.0, 0.4]}, \
            train.optimizer.lr: {loguniform: [0.0003, 0.003]}, train.optimizer.weight_decay: {loguniform: [0.0001, 0.1]}}",
};
const RIDGE: Family = Family {
    name: "ridge",
    model: "{arch: ridge, alpha: 1.0}",
    train: "{}",
    space: "{model.alpha: {loguniform: [0.01, 1000.0]}}",
};
const MLP_VALUES: Family = Family {
    name: "mlp",
    model: "{arch: mlp, hidden: [16], activation: tanh, dropout: 0.1}",
    train: "{epochs: 400, batch_size: 32, optimizer: {kind: adamw, lr: 0.001, weight_decay: 0.0}, penalty: {l2: 0.001}, \
            loss: {kind: huber, delta: 1.0}}",
    space: "{model.hidden: {choice: [[8], [16], [32], [64]]}, model.activation: {choice: [tanh, relu]}, \
            model.dropout: {uniform: [0.0, 0.3]}, train.optimizer.lr: {loguniform: [0.0003, 0.003]}, \
            train.penalty.l2: {loguniform: [0.0001, 0.01]}}",
};
const TEXT_LOGISTIC: Family = Family {
    name: "logistic",
    model: "{arch: logistic, c: 10.0}",
    train: "{}",
    space: "{model.c: {loguniform: [1.0, 100.0]}, preprocess.text.tokenizer: {choice: [\
            {kind: ngrams, analyzer: char_wb, ngram_range: [2, 4], min_df: 2, max_features: 20000}, \
            {kind: ngrams, analyzer: char_wb, ngram_range: [2, 5], min_df: 2, max_features: 30000}, \
            {kind: ngrams, analyzer: word, ngram_range: [1, 2], min_df: 2, max_features: 20000}]}}",
};
const TEXT_MLP: Family = Family {
    name: "mlp",
    model: "{arch: mlp, hidden: [64], activation: relu, dropout: 0.3}",
    train: "{epochs: 10, batch_size: 32, optimizer: {kind: adamw, lr: 0.001, weight_decay: 0.01}}",
    space: "{model.hidden: {choice: [[32], [64], [128]]}, train.optimizer.lr: {loguniform: [0.0003, 0.003]}}",
};
const IMAGE_MLP: Family = Family {
    name: "mlp",
    model: "{arch: mlp, hidden: [256, 128], activation: relu, dropout: 0.2}",
    train: "{epochs: 15, batch_size: 64, optimizer: {kind: adamw, lr: 0.001, weight_decay: 0.0001}}",
    space: "{model.dropout: {uniform: [0.0, 0.4]}, train.optimizer.lr: {loguniform: [0.0003, 0.003]}}",
};
const IMAGE_LENET: Family = Family {
    name: "lenet5",
    model: "{arch: lenet5}",
    train: "{epochs: 15, batch_size: 64, optimizer: {kind: adamw, lr: 0.001, weight_decay: 0.0001}}",
    space: "{train.optimizer.lr: {loguniform: [0.0003, 0.003]}}",
};

fn families(images: bool, text: bool, classification: bool) -> Vec<Family> {
    match (images, classification) {
        (true, _) => vec![IMAGE_MLP, IMAGE_LENET],
        _ if text && classification => vec![TEXT_LOGISTIC, TEXT_MLP],
        (_, true) => vec![LOGISTIC, MLP_CLASSES],
        (_, false) => vec![RIDGE, MLP_VALUES],
    }
}

/// One family's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct FamilyResult {
    /// The family.
    pub family: String,
    /// Trials complete, pruned, failed.
    pub trials: (usize, usize, usize),
    /// The best trial's cross-validated score: mean and standard deviation over folds.
    pub best: Option<(f64, f64)>,
    /// Its parameters.
    pub params: Option<tune::Params>,
    /// Seconds spent.
    pub seconds: f64,
}

/// What `dlp auto` did.
#[derive(Debug, Clone)]
pub struct AutoSummary {
    /// The study directory.
    pub dir: PathBuf,
    /// `accuracy` or `rmse`.
    pub metric: &'static str,
    /// Each family, in the order tried.
    pub families: Vec<FamilyResult>,
    /// The winner's name.
    pub winner: String,
    /// The final run.
    pub run: crate::pipeline::RunSummary,
}

impl AutoSummary {
    /// The lines `dlp auto` prints.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .families
            .iter()
            .map(|f| {
                let best = f.best.map(|(m, s)| format!("{} {m:.4} ± {s:.4}", self.metric)).unwrap_or("-".into());
                format!(
                    "family {}: {} trials ({} complete, {} pruned, {} failed), best cross-validated {best}",
                    f.family,
                    f.trials.0 + f.trials.1 + f.trials.2,
                    f.trials.0,
                    f.trials.1,
                    f.trials.2
                )
            })
            .collect();
        lines.push(format!("best family: {} (config: {})", self.winner, self.dir.join("best.yaml").display()));
        lines.extend(self.run.lines());
        lines.push(format!("comparison: {}", self.dir.join("auto.md").display()));
        lines
    }
}

fn yaml(s: &str) -> Result<Yaml> {
    serde_yaml::from_str(s).with_context(|| format!("a built-in family section does not parse (a bug): {s}"))
}

/// The cross-validated score of `cfg`: the mean over the folds of the non-test records, each
/// fold reported to `trial` (ASHA's rungs) — `None` when the pruner stopped it.
fn cv_score(
    cfg: &PipelineConfig,
    loaded: &Loaded,
    folds: &[(Vec<usize>, Vec<usize>)],
    device: &candle_core::Device,
    config_path: &Path,
    trial: Option<&Trial<'_>>,
) -> Result<Option<Vec<f64>>> {
    let mut scores = Vec::with_capacity(folds.len());
    for (f, (train, held)) in folds.iter().enumerate() {
        let split = Split { train: train.clone(), validation: Vec::new(), test: held.clone() };
        let p = fit_parts(cfg, loaded, &split)?;
        let exp = Experiment::build(cfg, p.train.schema(), device, config_path)?;
        exp.trainer(None).fit(&p.train, None, &mut [])?;
        let preds = p.preprocessor.target.decode(exp.predict(&p.test)?);
        let score = match p.test.targets() {
            Targets::Classes(y) => {
                let predicted = preds.argmax().context("class predictions for a classification task")?;
                eval::metrics::accuracy(y, &predicted)?
            }
            Targets::Steps { .. } => bail!("dlp auto does not search forecasting models yet"),
            Targets::Values(v) => {
                let (Predictions::Values(truth), Predictions::Values(predicted)) =
                    (p.preprocessor.target.decode(Predictions::Values(v.clone())), &preds)
                else {
                    bail!("the predictions do not match the task");
                };
                eval::RegressionReport::compute(&truth, predicted)?.rmse
            }
        };
        scores.push(score);
        if let Some(t) = trial {
            let mean = scores.iter().sum::<f64>() / scores.len() as f64;
            if t.report(f + 1, mean)? {
                return Ok(None);
            }
        }
    }
    Ok(Some(scores))
}

/// Runs `dlp auto` on `source` (a config or a data file).
pub fn auto(
    source: &Path,
    target: Option<String>,
    budget: Budget,
    folds: usize,
    runs_dir: &Path,
) -> Result<AutoSummary> {
    if folds < 2 {
        bail!("--folds must be at least 2, got {folds}");
    }
    let is_config = source.is_file()
        && source.extension().is_some_and(|e| e == "yaml" || e == "yml")
        && std::fs::read_to_string(source).is_ok_and(|t| t.contains("data:"));
    let name = source.file_stem().map(|s| s.to_string_lossy().split('.').next().unwrap_or("").to_string());
    let stem = format!("{}-auto-{}", name.unwrap_or_default(), chrono::Utc::now().format("%Y%m%d-%H%M%S"));
    if is_config && crate::config::load(source)?.preprocess.series.is_some() {
        bail!(
            "{}: dlp auto does not search forecasting configs (preprocess.series) yet: tune one with a tune: section \
             (dlp tune) and backtest it with dlp cv",
            source.display()
        );
    }
    let dir = RunDir::create(runs_dir, &stem).context("creating the study directory")?;
    let dir = dir.root().to_path_buf();
    let (config_path, mut config) = if is_config {
        (source.to_path_buf(), crate::config::load(source)?)
    } else {
        let out = dir.join("init.yaml");
        let options = crate::init::InitOptions {
            data: source.to_path_buf(),
            target,
            target_file: None,
            task: None,
            name: None,
            out: out.clone(),
        };
        crate::init::init(&options)?;
        let c = crate::config::load(&out)?;
        (out, c)
    };
    config.tune = None;
    crate::device::set_threads(config.threads);
    let device = config.device.open()?;
    let loaded = load(&config, None)?;
    let classification = loaded.targets.classes().is_some();
    let (metric, direction) =
        if classification { ("accuracy", Direction::Maximize) } else { ("rmse", Direction::Minimize) };
    let outer = preprocess::split_records(
        &loaded.targets,
        loaded.data.parts.as_deref(),
        &config.preprocess.split,
        &mut rng(config.seed, "split"),
    )?;
    let pool: Vec<usize> = outer.train.iter().chain(&outer.validation).copied().collect();
    let stratified = config.preprocess.split.stratify && classification;
    let folds: Vec<(Vec<usize>, Vec<usize>)> =
        preprocess::kfold(&loaded.targets.select(&pool), folds, stratified, &mut rng(config.seed, "auto-cv"))
            .into_iter()
            .map(|(tr, te)| (tr.iter().map(|&i| pool[i]).collect(), te.iter().map(|&i| pool[i]).collect()))
            .collect();
    let images = matches!(loaded.data.inputs, pipeline_core::raw::RawInputs::Images(_));
    let families = families(images, config.preprocess.text.is_some(), classification);

    let mut base = base_value(&config);
    if let Yaml::Mapping(m) = &mut base {
        m.remove("tune");
    }
    let start = Instant::now();
    let mut results = Vec::new();
    let mut winners: Vec<(f64, &'static str, Yaml, tune::Params)> = Vec::new();
    for (i, family) in families.iter().enumerate() {
        let mut fam = base.clone();
        if let Yaml::Mapping(m) = &mut fam {
            m.insert("model".into(), yaml(family.model)?);
            m.insert("train".into(), yaml(family.train)?);
            if let Some(Yaml::Mapping(p)) = m.get_mut("preprocess") {
                // Cross-validation folds carve no validation part.
                let split = yaml(&format!(
                    "{{train: {}, validation: 0.0, test: {}}}",
                    1.0 - config.preprocess.split.test,
                    config.preprocess.split.test
                ))?;
                p.insert("split".into(), split);
            }
        }
        let left = families.len() - i;
        let (trials, time) = match budget {
            Budget::Trials(n) => ((n / families.len()).max(1) + usize::from(i < n % families.len()), None),
            Budget::Time(t) => {
                let remaining = t.saturating_sub(start.elapsed());
                (MAX_TRIALS_PER_FAMILY, Some(remaining.div_f64(left as f64)))
            }
        };
        let tune_yaml = format!(
            "objective: {{metric: train_loss}}\nbudget: {{trials: {trials}}}\nsampler: {{kind: tpe, startup_trials: 4, seed: {}}}\n\
             pruner: {{kind: asha, min_resource: 1, reduction_factor: 3}}\nparallel: {{trials: 1}}\nspace: {}\n",
            config.seed, family.space
        );
        let t: TuneConfig =
            serde_yaml::from_str(&tune_yaml).with_context(|| format!("the {} family's study", family.name))?;
        let family_start = Instant::now();
        let storage = SqliteStorage::open(&dir.join(format!("{}.db", family.name)))?;
        let scores: Mutex<Vec<(usize, Vec<f64>)>> = Mutex::new(Vec::new());
        let run_trial = |trial: &Trial<'_>| -> Result<f64> {
            let cfg = trial_config(&fam, trial.params()).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
            match cv_score(&cfg, &loaded, &folds, &device, &config_path, Some(trial))? {
                Some(s) => {
                    let mean = s.iter().sum::<f64>() / s.len() as f64;
                    scores.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((trial.number(), s));
                    Ok(mean)
                }
                None => Ok(f64::NAN),
            }
        };
        let on_trial = |r: &TrialRecord| {
            let what = match (r.state, r.value) {
                (TrialState::Complete, Some(v)) => format!("cross-validated {metric} {v:.4}"),
                (TrialState::Pruned, _) => format!("pruned after fold {}", r.last_step().unwrap_or(0)),
                _ => format!("failed: {}", r.error.as_deref().unwrap_or("")),
            };
            eprintln!("{} trial {}: {what}", family.name, r.number);
        };
        let study = Study {
            storage: &storage,
            space: &t.space,
            direction,
            sampler: t.build_sampler(direction, config.seed),
            pruner: t.build_pruner(),
            options: StudyOptions { trials, time, workers: 1, threads_per_trial: 0 },
        };
        let records = study.optimize(|trial| run_trial(trial).map_err(Into::into), &on_trial)?;
        let totals = tune::report::totals(&records);
        let best = tune::best(&records, direction);
        let scores = scores.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        let best_scores = best.and_then(|b| scores.iter().find(|(n, _)| *n == b.number)).map(|(_, s)| {
            let m = crate::cv::MeanStd::of(s);
            (m.mean, m.std)
        });
        if let (Some(b), Some((mean, _))) = (best, best_scores) {
            winners.push((mean, family.name, fam.clone(), b.params.clone()));
        }
        results.push(FamilyResult {
            family: family.name.into(),
            trials: (totals.complete, totals.pruned, totals.failed),
            best: best_scores,
            params: best.map(|b| b.params.clone()),
            seconds: family_start.elapsed().as_secs_f64(),
        });
    }
    let better = |a: f64, b: f64| if direction == Direction::Maximize { a > b } else { a < b };
    let (_, winner, fam, params) = winners
        .iter()
        .reduce(|best, w| if better(w.0, best.0) { w } else { best })
        .context("no trial of any family completed: raise the budget")?;
    let winner = winner.to_string();
    let best_cfg = trial_config(fam, params).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    let best_path = dir.join("best.yaml");
    let header = format!(
        "# The best of `dlp auto` ({}): family {winner}, cross-validated {metric} over {} folds of the training part.\n",
        dir.display(),
        folds.len()
    );
    // Written where the source config was read, so relative data paths keep their meaning.
    let mut best_yaml = best_cfg.to_yaml();
    best_yaml.insert_str(0, &header);
    write_atomic(&best_path, best_yaml.as_bytes())?;
    let best_loaded = crate::config::load(&best_path)?;
    let run = crate::pipeline::run(
        &best_path,
        &best_loaded,
        &crate::pipeline::RunOptions { runs_dir: dir.join("runs"), compare: None },
    )?;

    let mut md = format!(
        "# dlp auto: {}\n\nEach trial scored by {}-fold cross-validation on the {} non-test records ({metric}); \
         ASHA pruning over folds; TPE within each family. Best family: **{winner}**; its final fit and test report: \
         `{}`.\n\n| family | trials (complete / pruned / failed) | best cross-validated {metric} | parameters | seconds |\n|---|---|---|---|---|\n",
        config.name,
        folds.len(),
        pool.len(),
        run.run_dir.display()
    );
    for r in &results {
        let best = r.best.map(|(m, s)| format!("{m:.4} ± {s:.4}")).unwrap_or("-".into());
        let params = r
            .params
            .as_ref()
            .map(|p| {
                p.iter().map(|(k, v)| format!("{k}={}", tune::report::cell(Some(v)))).collect::<Vec<_>>().join(", ")
            })
            .unwrap_or_default();
        let _ = writeln!(
            md,
            "| {} | {} / {} / {} | {best} | {params} | {:.0} |",
            r.family, r.trials.0, r.trials.1, r.trials.2, r.seconds
        );
    }
    if run.evaluation.is_some() {
        let _ = writeln!(md, "\nTest report of the final fit:\n");
        for l in run.lines() {
            let _ = writeln!(md, "- {l}");
        }
    }
    write_atomic(&dir.join("auto.md"), md.as_bytes())?;
    write_json(
        &dir.join("auto.json"),
        &serde_json::json!({ "metric": metric, "folds": folds.len(), "families": results, "winner": winner,
                             "run": run.run_dir.display().to_string() }),
    )?;
    Ok(AutoSummary { dir, metric, families: results, winner, run })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_are_minutes_seconds_or_trials() {
        assert_eq!("10m".parse::<Budget>(), Ok(Budget::Time(Duration::from_secs(600))));
        assert_eq!("2.5min".parse::<Budget>(), Ok(Budget::Time(Duration::from_secs(150))));
        assert_eq!("90s".parse::<Budget>(), Ok(Budget::Time(Duration::from_secs(90))));
        assert_eq!("40".parse::<Budget>(), Ok(Budget::Trials(40)));
        for bad in ["0", "-3m", "soon", "m", ""] {
            assert!(bad.parse::<Budget>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_family_section_and_space_parses() {
        for f in [LOGISTIC, MLP_CLASSES, RIDGE, MLP_VALUES, TEXT_LOGISTIC, TEXT_MLP, IMAGE_MLP, IMAGE_LENET] {
            yaml(f.model).unwrap();
            yaml(f.train).unwrap();
            let space: tune::Space = serde_yaml::from_str(f.space).unwrap();
            assert!(!space.is_empty(), "{}", f.name);
        }
    }
}
