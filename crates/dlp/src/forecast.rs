//! Forecasting pipelines (`preprocess.series`): the series is read as it is (no cleaning:
//! dropping a row would shift time), cut into windows by [`preprocess::series`], trained like any
//! regressor with one output per forecast step, and evaluated as forecasts: MASE, MAE, RMSE,
//! MAPE and sMAPE overall and per step ahead, beside the naive, seasonal-naive and linear
//! autoregression baselines of [`eval::forecast`] — each forecasting every test origin from the
//! whole series before it, the autoregression fitted on every step before the test window (as
//! statsmodels' `AutoReg` would be) — and a ridge regression per step ahead on the model's own
//! inputs (covariates included), and plots of forecasts against what happened.

use std::path::Path;

use anyhow::{Context, Result, bail};
use eval::forecast::{Autoregression, ForecastReport};
use eval::plot::{Chart, Series};
use pipeline_core::Predictions;
use preprocess::series::{SeriesConfig, SeriesTransform, Windows};
use serde::{Deserialize, Serialize};

use crate::config::PipelineConfig;
use crate::evaluate::{BaselineScore, EvalConfig, EvalInput, Evaluation, Plot, TestReport};
use crate::pipeline::{Clock, Prepared};

/// The series behind a forecasting run's windows, for its evaluation.
#[derive(Debug, Clone)]
pub struct SeriesData {
    /// The target series in its own units, in time order.
    pub values: Vec<f64>,
    /// Each step's time label.
    pub times: Vec<String>,
    /// The temporal split.
    pub windows: Windows,
    /// The fitted transform (configuration, MASE scale).
    pub transform: SeriesTransform,
}

/// A forecast's scores: over every step of every forecast, and per step ahead.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForecastScores {
    /// Over all forecast values.
    #[serde(flatten)]
    pub overall: ForecastReport,
    /// Forecasts (origins) scored.
    pub examples: usize,
    /// Steps per forecast.
    pub horizon: usize,
    /// `by_step[j]`: the scores of the forecasts `j + 1` steps ahead.
    pub by_step: Vec<ForecastReport>,
}

impl ForecastScores {
    /// Scores row-major forecasts (`horizon` values per origin) against `actual`; `scale` is
    /// MASE's denominator.
    pub fn compute(actual: &[f32], predicted: &[f32], horizon: usize, scale: Option<f64>) -> Result<Self> {
        let a: Vec<f64> = actual.iter().map(|&v| f64::from(v)).collect();
        let p: Vec<f64> = predicted.iter().map(|&v| f64::from(v)).collect();
        Self::compute_f64(&a, &p, horizon, scale)
    }

    fn compute_f64(actual: &[f64], predicted: &[f64], horizon: usize, scale: Option<f64>) -> Result<Self> {
        if horizon == 0 || actual.len() != predicted.len() || !actual.len().is_multiple_of(horizon) {
            bail!("{} forecast values for {} actual values of {horizon} steps each", predicted.len(), actual.len());
        }
        let overall = eval::forecast::report(actual, predicted, scale).context("no forecasts to score")?;
        let by_step = (0..horizon)
            .map(|j| {
                let a: Vec<f64> = actual.iter().skip(j).step_by(horizon).copied().collect();
                let p: Vec<f64> = predicted.iter().skip(j).step_by(horizon).copied().collect();
                eval::forecast::report(&a, &p, scale).context("no forecasts to score")
            })
            .collect::<Result<_>>()?;
        Ok(Self { overall, examples: actual.len() / horizon, horizon, by_step })
    }
}

/// Reads the series of `config` and cuts its windows ([`preprocess::series::fit`]).
pub fn prepare(
    config: &PipelineConfig,
    series: &SeriesConfig,
    expect: Option<&[pipeline_core::run::InputFile]>,
    clock: &mut Clock,
) -> Result<Prepared> {
    let ingested = crate::pipeline::ingest(config, expect)?;
    clock.lap("ingest");
    let fit = preprocess::series::fit(&config.preprocess, series, &ingested.data)?;
    let reference =
        bundle::reference::Reference::fit_inputs(&fit.train_rows.inputs, &crate::pipeline::reference_options(config))
            .context("fitting the drift reference statistics")?;
    let test_raw = ingested.data.select(&fit.split.test);
    let preprocess::series::SeriesFit { preprocessor, train, validation, test, split, values, times, windows, .. } =
        fit;
    let Some(transform) = preprocessor.series().cloned() else { bail!("a series fit has a series transform") };
    clock.lap("preprocess");
    Ok(Prepared {
        inputs: ingested.inputs,
        read_report: ingested.report,
        cleaning: preprocess::CleanReport::default(),
        split,
        preprocessor,
        train,
        validation,
        test,
        test_raw,
        reference,
        series: Some(SeriesData { values, times, windows, transform }),
    })
}

/// Rolling-origin backtest (`dlp cv` of a forecasting config): fold `f` of `folds` cuts the series
/// after `n - (folds - f) × n_test` steps and runs the config's temporal split on that: its last
/// `n_test` steps are the fold's test window, validation and gap before them as configured, and
/// everything earlier is trained on (an expanding window). The last fold is `dlp run`'s split.
pub fn backtest(
    config: &PipelineConfig,
    config_path: &Path,
    series: &SeriesConfig,
    folds: usize,
    device: &candle_core::Device,
) -> Result<Vec<crate::cv::Fold>> {
    let ingested = crate::pipeline::ingest(config, None)?;
    let n = ingested.data.rows();
    let split = &config.preprocess.split;
    let (n_test, n_val) = ((n as f64 * split.test).round() as usize, (n as f64 * split.validation).round() as usize);
    let eval_config = EvalConfig { gate: None, ..config.eval.clone() };
    let mut out = Vec::with_capacity(folds);
    for f in 0..folds {
        let end = n.checked_sub((folds - 1 - f) * n_test).filter(|&e| e > n_test + n_val).with_context(|| {
            format!("{folds} backtest folds of {n_test} test steps do not fit in the {n} steps of the series")
        })?;
        let mut pre = config.preprocess.clone();
        pre.split.test = n_test as f64 / end as f64;
        pre.split.validation = n_val as f64 / end as f64;
        pre.split.train = 1.0 - pre.split.test - pre.split.validation;
        let rows: Vec<usize> = (0..end).collect();
        let fit = preprocess::series::fit(&pre, series, &ingested.data.select(&rows))
            .with_context(|| format!("fold {}: the series up to step {end}", f + 1))?;
        let exp = crate::experiment::Experiment::build(config, fit.train.schema(), device, config_path)?;
        let validation = (!fit.validation.is_empty()).then_some(&fit.validation);
        exp.trainer(None).fit(&fit.train, validation, &mut []).with_context(|| format!("training fold {}", f + 1))?;
        let preds = fit.preprocessor.target.decode(exp.predict(&fit.test)?);
        let Some(transform) = fit.preprocessor.series().cloned() else { bail!("a series fit has a series transform") };
        let data = SeriesData { values: fit.values.clone(), times: fit.times.clone(), windows: fit.windows, transform };
        let test_raw = ingested.data.select(&fit.split.test);
        let e = crate::evaluate::evaluate(
            &eval_config,
            &EvalInput {
                task: &fit.test.schema().target.task,
                preprocessor: &fit.preprocessor,
                train: &fit.train,
                test: &fit.test,
                test_raw: &test_raw,
                test_rows: &fit.split.test,
                predictions: &preds,
                seed: config.seed,
                plot_dir: None,
                compare: None,
                series: Some(&data),
            },
        )?;
        eprintln!("fold {}/{folds} (test from {}): {}", f + 1, fit.times[fit.windows.test_start], e.test.headline());
        out.push(crate::cv::Fold {
            fold: f + 1,
            parts: (fit.train.len(), fit.validation.len(), fit.test.len()),
            model: e.test,
            baselines: e.baselines.into_iter().map(|b| (b.name, b.report)).collect(),
        });
    }
    Ok(out)
}

/// The naive, seasonal-naive and autoregressive forecasts of every test origin, each from the
/// whole series before it, and a ridge regression per step ahead on the model's own inputs.
fn baselines(
    series: &SeriesData,
    input: &EvalInput<'_>,
    notes: &mut Vec<String>,
) -> Result<Vec<(String, String, Vec<f64>)>> {
    let origins = input.test_rows;
    let c = &series.transform.config;
    let (k, m) = (c.horizon, c.season);
    let before_test = &series.values[..series.windows.test_start];
    let mut out = Vec::new();
    let all = |f: &dyn Fn(&[f64]) -> Option<Vec<f64>>| -> Option<Vec<f64>> {
        let mut v = Vec::with_capacity(origins.len() * k);
        for &t in origins {
            v.extend(f(&series.values[..t])?);
        }
        Some(v)
    };
    if let Some(v) = all(&|h| eval::forecast::naive(h, k)) {
        out.push(("naive".into(), "the last observed value, for every step ahead".into(), v));
    }
    if m > 1 {
        match all(&|h| eval::forecast::seasonal_naive(h, m, k)) {
            Some(v) => out.push((
                "seasonal_naive".into(),
                format!("the value one season ({m} steps) before each forecast step"),
                v,
            )),
            None => notes.push(format!(
                "No seasonal-naive baseline: the series before the test window is shorter than a season ({m} steps)."
            )),
        }
    }
    let p = c.ar_order();
    match Autoregression::fit(before_test, p) {
        Some(ar) => match all(&|h| ar.forecast(h, k)) {
            Some(v) => out.push((
                "autoregression".into(),
                format!(
                    "AR({p}) with a constant, least squares on the {} steps before the test window \
                     (statsmodels' AutoReg(trend=\"c\")), forecast recursively",
                    before_test.len()
                ),
                v,
            )),
            None => {
                notes.push(format!("No autoregression baseline: a test origin has fewer than {p} steps before it."))
            }
        },
        None => {
            notes.push(format!("No autoregression baseline: AR({p}) cannot be fitted on {} steps.", before_test.len()))
        }
    }
    // The linear model of the network's inputs (every channel of the window, the known future):
    // one ridge regression per step ahead, on the training windows.
    let (train, test) = (input.train, input.test);
    if let Some(y) = train.targets().values() {
        let mut steps = Vec::with_capacity(k);
        for j in 0..k {
            let yj: Vec<f32> = y.iter().skip(j).step_by(k).copied().collect();
            let m = train::baseline::Ridge::fit(train.features(), train.width(), &yj, 1.0)
                .context("fitting the ridge regression baseline")?;
            let Predictions::Values(p) = input.preprocessor.target.decode(m.predict(test.features())) else {
                bail!("ridge predicts values")
            };
            steps.push(p);
        }
        let v = (0..test.len()).flat_map(|i| steps.iter().map(move |s| f64::from(s[i]))).collect();
        out.push((
            "ridge".into(),
            format!(
                "ridge regression (alpha = 1) of each step ahead on the model's inputs: the scaled window of every \
                 channel{}, fitted on the {} training windows",
                if series.transform.config.known.is_empty() { "" } else { " and the known future covariates" },
                train.len()
            ),
            v,
        ));
    }
    Ok(out)
}

/// The evaluation phase of a forecasting model.
pub fn evaluate(config: &EvalConfig, input: &EvalInput<'_>, series: &SeriesData) -> Result<Evaluation> {
    let k = series.transform.config.horizon;
    let scale = series.transform.mase_scale;
    let actual = match crate::evaluate::Actual::of(input.test, input.preprocessor)? {
        crate::evaluate::Actual::Values(v) => v,
        crate::evaluate::Actual::Classes(_) => bail!("forecast targets are values"),
    };
    let Predictions::Values(predicted) = input.predictions else { bail!("a forecasting model predicts values") };
    let test = TestReport::Forecast(ForecastScores::compute(&actual, predicted, k, scale)?);
    let mut notes = Vec::new();
    if scale.is_none() {
        notes.push("No MASE: the series before the test window is not longer than a season.".into());
    }
    let actual64: Vec<f64> = actual.iter().map(|&v| f64::from(v)).collect();
    let baseline_forecasts = if config.baselines { baselines(series, input, &mut notes)? } else { Vec::new() };
    let mut scored = Vec::new();
    for (name, description, v) in &baseline_forecasts {
        let report = TestReport::Forecast(ForecastScores::compute_f64(&actual64, v, k, scale)?);
        scored.push(BaselineScore { name: name.clone(), description: description.clone(), report });
    }
    if input.compare.is_some() {
        notes.push("--compare: comparing forecasting runs is not supported yet; compare the MASE figures.".into());
    }
    let gate = match &config.gate {
        Some(g) => Some(crate::evaluate::apply_gate(g, &test, &scored, None)?),
        None => None,
    };
    let plots = match input.plot_dir {
        Some(dir) => plots(dir, series, input.test_rows, predicted, &baseline_forecasts, &test)?,
        None => Vec::new(),
    };
    Ok(Evaluation { test, baselines: scored, comparison: None, gate, errors: Vec::new(), plots, notes })
}

/// `forecast.png`: the test window's series with the model's forecasts one step ahead and
/// `horizon` steps ahead, beside the best baseline's; `forecast_by_step.png`: MAE per step
/// ahead, for the model and each baseline.
fn plots(
    dir: &Path,
    series: &SeriesData,
    origins: &[usize],
    predicted: &[f32],
    baselines: &[(String, String, Vec<f64>)],
    report: &TestReport,
) -> Result<Vec<Plot>> {
    let k = series.transform.config.horizon;
    let x = |t: usize| series.times[t].trim().parse::<f64>().unwrap_or(t as f64);
    let start = series.windows.test_start.saturating_sub(series.transform.config.history);
    let actual = Series {
        name: "actual".into(),
        points: (start..series.values.len()).map(|t| (x(t), series.values[t])).collect(),
    };
    let steps = |name: String, v: &dyn Fn(usize) -> f64, j: usize| Series {
        name,
        points: origins.iter().enumerate().map(|(i, &t)| (x(t + j), v(i * k + j))).collect(),
    };
    let mut lines = vec![actual, steps("model, 1 step ahead".into(), &|i| f64::from(predicted[i]), 0)];
    if k > 1 {
        lines.push(steps(format!("model, {k} steps ahead"), &|i| f64::from(predicted[i]), k - 1));
    }
    let TestReport::Forecast(model) = report else { bail!("a forecast report") };
    // The best baseline by MASE (MAE without a scale), one step ahead.
    let best = baselines.iter().min_by(|a, b| {
        let mae = |v: &[f64]| v.iter().step_by(k).zip(origins).map(|(p, &t)| (p - series.values[t]).abs()).sum::<f64>();
        mae(&a.2).total_cmp(&mae(&b.2))
    });
    if let Some((name, _, v)) = best {
        lines.push(steps(format!("{name}, 1 step ahead"), &|i| v[i], 0));
    }
    let target = &series.transform.target;
    let numeric = series.times.iter().all(|t| t.trim().parse::<f64>().is_ok());
    let time = match &series.transform.config.time {
        Some(t) if numeric => t.clone(),
        _ => "step (row of the series)".into(),
    };
    let chart = Chart {
        title: "Test window: forecasts and actual".into(),
        x_label: time,
        y_label: target.clone(),
        series: lines,
    };
    eval::plot::charts_png(&[chart], (900, 420), &dir.join("forecast.png"))?;
    let mut out =
        vec![Plot { title: "Test window: forecasts against actual values".into(), file: "forecast.png".into() }];
    let mut by_step = vec![Series {
        name: "model".into(),
        points: model.by_step.iter().enumerate().map(|(j, r)| ((j + 1) as f64, r.mae)).collect(),
    }];
    let actual: Vec<f64> = origins.iter().flat_map(|&t| (t..t + k).map(|j| series.values[j])).collect();
    for (name, _, v) in baselines {
        let s = ForecastScores::compute_f64(&actual, v, k, None)?;
        by_step.push(Series {
            name: name.clone(),
            points: s.by_step.iter().enumerate().map(|(j, r)| ((j + 1) as f64, r.mae)).collect(),
        });
    }
    let chart = Chart {
        title: "MAE by steps ahead".into(),
        x_label: "steps ahead".into(),
        y_label: "MAE".into(),
        series: by_step,
    };
    eval::plot::charts_png(&[chart], (560, 400), &dir.join("forecast_by_step.png"))?;
    out.push(Plot { title: "MAE by steps ahead (model and baselines)".into(), file: "forecast_by_step.png".into() });
    Ok(out)
}

/// `predictions.csv` of a forecasting run: one line per forecast step of each test origin.
pub fn predictions_csv(series: &SeriesData, origins: &[usize], predicted: &Predictions) -> Result<Vec<u8>> {
    let Predictions::Values(p) = predicted else { bail!("a forecasting model predicts values") };
    let k = series.transform.config.horizon;
    let mut out = String::from("origin,time,step,predicted,actual\n");
    for (i, &t) in origins.iter().enumerate() {
        for j in 0..k {
            let time = &series.times[t + j];
            out.push_str(&format!(
                "{},{},{},{},{}\n",
                series.times[t - 1],
                csv_field(time),
                j + 1,
                p[i * k + j],
                series.values[t + j]
            ));
        }
    }
    Ok(out.into_bytes())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}
