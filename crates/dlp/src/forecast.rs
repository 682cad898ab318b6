//! The evaluation of forecasting runs (`preprocess.series`). The series is read as it is (no
//! cleaning: dropping a row would shift time) and cut into windows by [`preprocess::series`] in
//! `pipeline::prepare`, trained like any regressor with one output per forecast step, and
//! evaluated here, by `dlp run` and by `dlp cv`'s rolling-origin backtest, as forecasts: MASE, MAE, RMSE,
//! MAPE and sMAPE overall and per step ahead, beside the naive, seasonal-naive and linear
//! autoregression baselines of [`eval::forecast`] — each forecasting every test origin from the
//! whole series before it, the autoregression fitted on every step before the test window (as
//! statsmodels' `AutoReg` would be) — and a ridge regression per step ahead on the model's own
//! inputs (covariates included), and plots of forecasts against what happened.

use std::path::Path;

use anyhow::{Context, Result, bail};
use eval::forecast::{Autoregression, ForecastScores};
use eval::plot::{Chart, Series};
use pipeline_core::Predictions;

use crate::evaluate::{BaselineScore, EvalConfig, EvalInput, Evaluation, Plot, SeriesData, TestReport};

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
    // MASE's scale: the in-sample seasonal-naive MAE of the steps before the test window.
    let scale = eval::forecast::mase_scale(&series.values[..series.windows.test_start], series.transform.config.season);
    let actual = match crate::evaluate::Actual::of(input.test, input.preprocessor)? {
        crate::evaluate::Actual::Values(v) => v,
        crate::evaluate::Actual::Classes(_) => bail!("forecast targets are values"),
    };
    let Predictions::Values(predicted) = input.predictions else { bail!("a forecasting model predicts values") };
    let to64 = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
    let actual64 = to64(&actual);
    let scores = |p: &[f64], scale: Option<f64>| {
        ForecastScores::compute(&actual64, p, k, scale).with_context(|| {
            format!("{} forecast values for {} actual values of {k} steps each", p.len(), actual64.len())
        })
    };
    let test = TestReport::Forecast(scores(&to64(predicted), scale)?);
    let mut notes = Vec::new();
    if scale.is_none() {
        notes.push("No MASE: the series before the test window is not longer than a season.".into());
    }
    let baseline_forecasts = if config.baselines { baselines(series, input, &mut notes)? } else { Vec::new() };
    let mut scored = Vec::new();
    for (name, description, v) in &baseline_forecasts {
        let report = TestReport::Forecast(scores(v, scale)?);
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
        Some(dir) => plots(dir, series, input.test_rows, predicted, &baseline_forecasts, &scored, &test)?,
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
    scored: &[BaselineScore],
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
    // Each baseline's scores per step ahead, as the evaluation computed them.
    let steps_of = |b: &BaselineScore| match &b.report {
        TestReport::Forecast(f) => Some(f.by_step.clone()),
        _ => None,
    };
    let baseline_steps: Vec<Vec<eval::forecast::ForecastReport>> = scored.iter().filter_map(steps_of).collect();
    // The best baseline one step ahead.
    let best = baselines
        .iter()
        .zip(&baseline_steps)
        .min_by(|a, b| a.1[0].mae.total_cmp(&b.1[0].mae))
        .map(|(forecast, _)| forecast);
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
    for ((name, _, _), steps) in baselines.iter().zip(&baseline_steps) {
        by_step.push(Series {
            name: name.clone(),
            points: steps.iter().enumerate().map(|(j, r)| ((j + 1) as f64, r.mae)).collect(),
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
