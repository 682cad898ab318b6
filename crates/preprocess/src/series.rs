//! Time series: one ordered series (a table with a row per step) cut into forecasting windows.
//!
//! `preprocess.series` ([`SeriesConfig`]) names the `time` column (rows must be in strictly
//! increasing time order, one per step), the observed `covariates` (known up to the forecast
//! origin) and the `known` future covariates (known for the forecast steps too: a calendar, a
//! plan, a schedule). The target column is channel 0 of every step.
//!
//! The split is temporal ([`split_in_time`]): the last `round(n × test)` steps are the test
//! window, the `round(n × validation)` before them the validation window, the rest training,
//! with `preprocess.split.gap` steps left out before each later window. An example is a forecast
//! origin `t`: its inputs are the `history` steps before `t` (every channel) and the `horizon`
//! steps from `t` of the known covariates, its targets the `horizon` values from `t`. An
//! example belongs to the window that holds all of its targets, so no training target lies in a
//! later window; its history may reach back into earlier windows (those values are the past at
//! forecast time). Scaling (`preprocess.scale`: `standard`, `min_max` or `none`, per channel) is
//! fitted on the training window's steps only.
//!
//! At serving ([`SeriesTransform::window`]) a request is the recent rows of one series: the last
//! `history` rows with a target value are the history, and, when the model takes known
//! covariates, the `horizon` rows after them give those.

use pipeline_core::raw::{Column, RawDataset, RawInputs, RawSchema, Table, Values};
use pipeline_core::{Dataset, Feature, FeatureKind, InputSchema, Schema, Target, Targets, Task};
use serde::{Deserialize, Serialize};

use crate::config::Scale;
pub use crate::config::SeriesConfig;
use crate::{Error, InputTransform, PreprocessConfig, Preprocessor, Result, Split, TargetEncoder};

/// The fitted series transform: `bundle/preprocess.json`'s inputs for a forecasting model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesTransform {
    /// The configuration, as fitted.
    pub config: SeriesConfig,
    /// The target column (channel 0).
    pub target: String,
    /// Per channel (target, covariates, known): subtracted.
    pub shift: Vec<f64>,
    /// Per channel: divided by (1 where the training values are constant).
    pub scale: Vec<f64>,
    /// For a time column with a constant step: that step (in seconds for dates and times), so
    /// forecast times follow it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_step: Option<f64>,
    /// For dates or date-times: their `chrono` format (`%Y-%m-%dT%H:%M`, `%Y-%m-%d`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_format: Option<String>,
}

/// A series read in time order: the channels' values and the time labels.
struct Ordered {
    /// `channels[c][t]`: target, covariates, known.
    channels: Vec<Vec<f64>>,
    /// Time labels (text), one per step; row numbers without a time column.
    times: Vec<String>,
    /// Numeric times, when the time column is numeric.
    numeric_times: Option<Vec<f64>>,
}

impl SeriesTransform {
    /// The channel names: target, covariates, known.
    pub fn channel_names(&self) -> Vec<String> {
        std::iter::once(self.target.clone())
            .chain(self.config.covariates.iter().cloned())
            .chain(self.config.known.iter().cloned())
            .collect()
    }

    /// The input layout it produces.
    pub fn output(&self) -> InputSchema {
        InputSchema::Series {
            history: self.config.history,
            channels: 1 + self.config.covariates.len() + self.config.known.len(),
            horizon: self.config.horizon,
            future: self.config.known.len(),
        }
    }

    /// The raw columns a request must have: the time column (if any), the target, the
    /// covariates and the known covariates.
    pub fn raw_schema(&self) -> RawSchema {
        let numeric = |n: &String| Feature { name: n.clone(), kind: FeatureKind::Numeric };
        let mut columns: Vec<Feature> = Vec::new();
        if let Some(t) = &self.config.time {
            columns.push(Feature { name: t.clone(), kind: FeatureKind::Categorical });
        }
        columns.extend(self.channel_names().iter().map(numeric));
        RawSchema::Table { columns }
    }

    fn scaled(&self, c: usize, v: f64) -> f32 {
        ((v - self.shift[c]) / self.scale[c]) as f32
    }

    /// The model-input row of the forecast at origin `t` of `channels` (scaled).
    fn row(&self, channels: &[Vec<f64>], t: usize, out: &mut Vec<f32>) {
        let (h, k) = (self.config.history, self.config.horizon);
        for s in t - h..t {
            for (c, ch) in channels.iter().enumerate() {
                out.push(self.scaled(c, ch[s]));
            }
        }
        let first_known = 1 + self.config.covariates.len();
        for s in t..t + k {
            for (c, ch) in channels.iter().enumerate().skip(first_known) {
                out.push(self.scaled(c, ch[s]));
            }
        }
    }

    /// Reads the series of `table` (every channel column, and the time column), checking that
    /// the rows are in time order; `what` names the table in errors.
    fn order(&self, table: &Table, what: &str) -> Result<Ordered> {
        let n = table.rows();
        let get = |name: &str| -> Result<&Column> {
            table.column(name).ok_or_else(|| {
                Error::Schema(format!(
                    "{what}: no column `{name}` (the series reads {})",
                    self.raw_schema().column_names().iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
                ))
            })
        };
        let mut channels = Vec::new();
        for name in self.channel_names() {
            let col = get(&name)?;
            let v = match &col.values {
                Values::Numbers(v) => v.clone(),
                Values::Strings(s) => s
                    .iter()
                    .enumerate()
                    .map(|(i, x)| match x {
                        None => Ok(f64::NAN),
                        Some(x) => x.trim().parse::<f64>().map_err(|_| Error::Column {
                            column: name.clone(),
                            message: format!("row {}: {x:?} is not a number (series channels are numeric)", i + 1),
                        }),
                    })
                    .collect::<Result<Vec<f64>>>()?,
            };
            channels.push(v);
        }
        let (times, numeric_times) = match &self.config.time {
            None => ((1..=n).map(|i| i.to_string()).collect(), None),
            Some(name) => {
                let col = get(name)?;
                let texts: Vec<String> = (0..n)
                    .map(|i| {
                        col.values.text(i).ok_or_else(|| Error::Column {
                            column: name.clone(),
                            message: format!("row {}: the time is missing", i + 1),
                        })
                    })
                    .collect::<Result<_>>()?;
                let numbers = match &col.values {
                    Values::Numbers(v) => Some(v.clone()),
                    Values::Strings(_) => texts.iter().map(|t| t.trim().parse::<f64>().ok()).collect(),
                };
                for i in 1..n {
                    let after = match &numbers {
                        Some(v) => v[i] > v[i - 1],
                        None => texts[i] > texts[i - 1],
                    };
                    if !after {
                        return Err(Error::Column {
                            column: name.clone(),
                            message: format!(
                                "row {} ({}) is not after row {} ({}): a series needs one row per step, in time order",
                                i + 1,
                                texts[i],
                                i,
                                texts[i - 1]
                            ),
                        });
                    }
                }
                (texts, numbers)
            }
        };
        Ok(Ordered { channels, times, numeric_times })
    }

    /// The forecast times of the `horizon` steps after the last of `times` (numeric times with a
    /// constant step), or `+1` … `+horizon`.
    pub fn forecast_times(&self, last: Option<&str>) -> Vec<String> {
        let k = self.config.horizon;
        let relative = || (1..=k).map(|j| format!("+{j}")).collect();
        let (Some(step), Some(last)) = (self.time_step, last.map(str::trim)) else { return relative() };
        match &self.time_format {
            Some(format) => match parse_time(last, format) {
                Some(t) => (1..=k)
                    .map(|j| (t + chrono::Duration::seconds((step * j as f64) as i64)).format(format).to_string())
                    .collect(),
                None => relative(),
            },
            None => match last.parse::<f64>() {
                Ok(t) => (1..=k).map(|j| format_number(t + step * j as f64)).collect(),
                Err(_) => relative(),
            },
        }
    }

    /// The model input of one forecast from the recent rows of a series (`table`, in time order
    /// or with a time column): the last `history` rows that have a target value, and, with known
    /// covariates, the `horizon` rows after them (whose target may be empty). Returns the row
    /// and the time of the last history step.
    pub fn window(&self, table: &Table) -> Result<(Vec<f32>, String)> {
        let s = self.order(table, "the series")?;
        let (h, k) = (self.config.history, self.config.horizon);
        let target = &s.channels[0];
        let known = !self.config.known.is_empty();
        // The origin: after the last row with a target value.
        let origin = target.iter().rposition(|v| !v.is_nan()).map_or(0, |i| i + 1);
        if origin < h {
            return Err(Error::Schema(format!(
                "the series has {origin} steps with a `{}` value; the model needs the last {h}",
                self.target
            )));
        }
        let ahead = s.channels[0].len() - origin;
        if known && ahead < k {
            return Err(Error::Schema(format!(
                "the model forecasts {k} steps from known covariates ({}): give their {k} future rows after the \
                 history (with `{}` empty), found {ahead}",
                self.config.known.join(", "),
                self.target
            )));
        }
        let first_known = 1 + self.config.covariates.len();
        for (c, ch) in s.channels.iter().enumerate() {
            let end = if c >= first_known { origin + k } else { origin };
            if let Some(bad) = (origin - h..end).find(|&i| ch[i].is_nan()) {
                return Err(Error::Column {
                    column: self.channel_names()[c].clone(),
                    message: format!("row {}: the value is missing (every step of the window needs one)", bad + 1),
                });
            }
        }
        let mut row = Vec::with_capacity(self.output().width());
        self.row(&s.channels, origin, &mut row);
        Ok((row, s.times[origin - 1].clone()))
    }
}

/// The formats a time column's dates and date-times are recognised in.
const TIME_FORMATS: [&str; 6] =
    ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y/%m/%d"];

fn parse_time(s: &str, format: &str) -> Option<chrono::NaiveDateTime> {
    chrono::NaiveDateTime::parse_from_str(s, format)
        .ok()
        .or_else(|| chrono::NaiveDate::parse_from_str(s, format).ok().and_then(|d| d.and_hms_opt(0, 0, 0)))
}

/// The format every one of `times` parses in, and their step in seconds when it is constant.
fn date_times(times: &[String]) -> Option<(String, Option<f64>)> {
    let format = TIME_FORMATS.iter().find(|f| times.iter().all(|t| parse_time(t.trim(), f).is_some()))?;
    let parsed: Vec<chrono::NaiveDateTime> = times.iter().filter_map(|t| parse_time(t.trim(), format)).collect();
    let steps: Vec<i64> = parsed.windows(2).map(|p| (p[1] - p[0]).num_seconds()).collect();
    let step = steps.first().copied().filter(|d| steps.iter().all(|s| s == d)).map(|d| d as f64);
    Some((format.to_string(), step))
}

fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") }
}

/// The windows of a temporal split: steps `[start, end)` of each part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Windows {
    /// Training steps end (exclusive; they start at 0).
    pub train_end: usize,
    /// Validation steps.
    pub validation: (usize, usize),
    /// Test steps (they end at the series' end).
    pub test_start: usize,
}

/// Cuts `n` steps in time: test last, validation before it, `gap` steps left out before each
/// later window.
pub fn split_in_time(n: usize, validation: f64, test: f64, gap: usize) -> Windows {
    let n_test = (n as f64 * test).round() as usize;
    let n_val = (n as f64 * validation).round() as usize;
    let test_start = n.saturating_sub(n_test);
    let val_end = test_start.saturating_sub(gap);
    let val_start = val_end.saturating_sub(n_val);
    let train_end = if n_val == 0 { val_end } else { val_start.saturating_sub(gap) };
    Windows { train_end, validation: (val_start, if n_val == 0 { val_start } else { val_end }), test_start }
}

/// What fitting a series gives: the preprocessing, the three parts, and what forecast
/// evaluation needs.
pub struct SeriesFit {
    /// The fitted preprocessing (its inputs are [`InputTransform::Series`]).
    pub preprocessor: Preprocessor,
    /// The parts; each example is a forecast origin.
    pub train: Dataset,
    /// The validation part (possibly empty).
    pub validation: Dataset,
    /// The test part.
    pub test: Dataset,
    /// The origins (row indices in time order) of each part's examples.
    pub split: Split,
    /// The target series in its own units, in time order.
    pub values: Vec<f64>,
    /// The time label of each step.
    pub times: Vec<String>,
    /// The windows.
    pub windows: Windows,
    /// The training window's rows (every column but the time), for the drift reference.
    pub train_rows: RawDataset,
}

/// Fits `config.series` on `data` (a table and its target column) and cuts the examples.
pub fn fit(config: &PreprocessConfig, series: &SeriesConfig, data: &RawDataset) -> Result<SeriesFit> {
    let RawInputs::Table(inputs) = &data.inputs else {
        return Err(Error::Schema("preprocess.series: a series is read from a table (csv, tsv, …)".into()));
    };
    let target =
        data.target.as_ref().ok_or_else(|| Error::Schema("preprocess.series: the data has no target column".into()))?;
    let mut table = inputs.clone();
    table.columns.push(target.clone());
    let draft = SeriesTransform {
        config: series.clone(),
        target: target.name.clone(),
        shift: Vec::new(),
        scale: Vec::new(),
        time_step: None,
        time_format: None,
    };
    let s = draft.order(&table, "the data")?;
    let n = s.times.len();
    for (c, ch) in s.channels.iter().enumerate() {
        if let Some(bad) = ch.iter().position(|v| !v.is_finite()) {
            return Err(Error::Column {
                column: draft.channel_names()[c].clone(),
                message: format!(
                    "row {}: the value is missing or not finite (fill gaps in a series before training)",
                    bad + 1
                ),
            });
        }
    }
    let (h, k) = (series.history, series.horizon);
    let w = split_in_time(n, config.split.validation, config.split.test, config.split.gap);
    let origins = |start: usize, end: usize| -> Vec<usize> {
        (start.max(h)..end.saturating_sub(k - 1)).step_by(series.stride.max(1)).collect()
    };
    let split = Split {
        train: origins(0, w.train_end),
        validation: origins(w.validation.0, w.validation.1),
        test: origins(w.test_start, n),
    };
    for (part, o) in [("train", &split.train), ("test", &split.test)] {
        if o.is_empty() {
            return Err(Error::Schema(format!(
                "preprocess.series: the {part} window has no forecast origin ({n} steps: training {}, validation {}, \
                 test {}, history {h}, horizon {k}); use less history, a shorter horizon or a larger {part} fraction",
                w.train_end,
                w.validation.1 - w.validation.0,
                n - w.test_start
            )));
        }
    }
    // Scaling fitted on the training window's steps only.
    let (mut shift, mut scale) = (Vec::new(), Vec::new());
    for ch in &s.channels {
        let train = &ch[..w.train_end];
        let m = train.len().max(1) as f64;
        let (a, b) = match config.scale {
            Scale::None => (0.0, 1.0),
            Scale::Standard => {
                let mean = train.iter().sum::<f64>() / m;
                let sd = (train.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / m).sqrt();
                (mean, if sd > 1e-12 { sd } else { 1.0 })
            }
            Scale::MinMax => {
                let lo = train.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = train.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                (lo, if hi - lo > 1e-12 { hi - lo } else { 1.0 })
            }
            Scale::Pixel => {
                return Err(Error::Schema(
                    "preprocess.scale: a series is scaled with standard, min_max or none".into(),
                ));
            }
        };
        shift.push(a);
        scale.push(b);
    }
    let (time_format, time_step) = match (&series.time, &s.numeric_times) {
        (Some(_), Some(t)) => (
            None,
            t.get(1)
                .map(|t1| t1 - t[0])
                .filter(|d| t.windows(2).all(|p| ((p[1] - p[0]) - d).abs() <= 1e-9 * d.abs().max(1.0))),
        ),
        (Some(_), None) => match date_times(&s.times) {
            Some((format, step)) => (Some(format), step),
            None => (None, None),
        },
        (None, _) => (None, None),
    };
    let values = s.channels[0].clone();
    let transform = SeriesTransform { shift, scale, time_step, time_format, ..draft };
    let output = transform.output();
    let encoder = TargetEncoder::Values { shift: transform.shift[0], scale: transform.scale[0] };
    let schema = Schema {
        input: output.clone(),
        target: Target { name: target.name.clone(), task: Task::Forecast { horizon: k } },
    };
    let part = |origins: &[usize]| -> Result<Dataset> {
        let mut rows = Vec::with_capacity(origins.len() * output.width());
        let mut targets = Vec::with_capacity(origins.len() * k);
        for &t in origins {
            transform.row(&s.channels, t, &mut rows);
            targets.extend((t..t + k).map(|j| transform.scaled(0, values[j])));
        }
        Ok(Dataset::new(schema.clone(), rows, Targets::Steps { values: targets, horizon: k })?)
    };
    let (train, validation, test) = (part(&split.train)?, part(&split.validation)?, part(&split.test)?);
    let train_steps: Vec<usize> = (0..w.train_end).collect();
    let mut monitored = table.select(&train_steps);
    monitored.columns.retain(|c| Some(&c.name) != series.time.as_ref());
    let train_rows = RawDataset { inputs: RawInputs::Table(monitored), target: None, parts: None };
    let preprocessor = Preprocessor {
        raw: transform.raw_schema(),
        inputs: InputTransform::Series(transform),
        output,
        target: encoder,
        target_name: target.name.clone(),
    };
    Ok(SeriesFit { preprocessor, train, validation, test, split, values, times: s.times, windows: w, train_rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(n: usize) -> RawDataset {
        let t: Vec<f64> = (0..n).map(|i| 2000.0 + i as f64).collect();
        let y: Vec<f64> = (0..n).map(|i| (i * i) as f64).collect();
        let x: Vec<f64> = (0..n).map(|i| i as f64 * 10.0).collect();
        let col = |name: &str, v: Vec<f64>| Column {
            name: name.into(),
            kind: FeatureKind::Numeric,
            values: Values::Numbers(v),
        };
        RawDataset {
            inputs: RawInputs::Table(Table { columns: vec![col("year", t), col("plan", x)] }),
            target: Some(col("y", y)),
            parts: None,
        }
    }

    fn config(validation: f64, test: f64, gap: usize) -> PreprocessConfig {
        let mut c = PreprocessConfig::default();
        c.split.train = 1.0 - validation - test;
        c.split.validation = validation;
        c.split.test = test;
        c.split.gap = gap;
        c
    }

    fn series() -> SeriesConfig {
        SeriesConfig {
            time: Some("year".into()),
            history: 3,
            horizon: 2,
            season: 1,
            covariates: vec![],
            known: vec!["plan".into()],
            stride: 1,
            ar_lags: None,
        }
    }

    #[test]
    fn windows_hold_their_targets_and_leave_the_gap_out() {
        let w = split_in_time(20, 0.2, 0.2, 1);
        assert_eq!(w, Windows { train_end: 10, validation: (11, 15), test_start: 16 });
        let fit = fit(&config(0.2, 0.2, 1), &series(), &table(20)).unwrap();
        // Origins: every target of an example inside its window.
        assert_eq!(fit.split.train, vec![3, 4, 5, 6, 7, 8]);
        assert_eq!(fit.split.validation, vec![11, 12, 13]);
        assert_eq!(fit.split.test, vec![16, 17, 18]);
        // Unscaled (scale: none): the row is 3 steps of (y, plan), then the plan of the 2 steps.
        assert_eq!(fit.train.row(0), &[0., 0., 1., 10., 4., 20., 30., 40.]);
        assert_eq!(fit.train.targets().values().unwrap()[..2], [9., 16.]);
        assert_eq!(fit.test.schema().target.task, Task::Forecast { horizon: 2 });
        let InputTransform::Series(t) = &fit.preprocessor.inputs else { panic!() };
        assert_eq!(t.time_step, Some(1.0));
        assert_eq!(t.forecast_times(Some("2019")), vec!["2020", "2021"]);
    }

    #[test]
    fn scaling_is_fitted_on_the_training_window_only() {
        let mut c = config(0.2, 0.2, 0);
        c.scale = Scale::Standard;
        let fit = fit(&c, &series(), &table(20)).unwrap();
        let InputTransform::Series(t) = &fit.preprocessor.inputs else { panic!() };
        let train: Vec<f64> = (0..12).map(|i| (i * i) as f64).collect();
        let mean = train.iter().sum::<f64>() / 12.0;
        assert!((t.shift[0] - mean).abs() < 1e-12, "{t:?}");
        assert_eq!(fit.preprocessor.target, TargetEncoder::Values { shift: t.shift[0], scale: t.scale[0] });
    }

    #[test]
    fn a_serving_window_is_the_training_row_of_the_same_origin() {
        let data = table(20);
        let fit = fit(&config(0.2, 0.2, 0), &series(), &data).unwrap();
        let InputTransform::Series(t) = &fit.preprocessor.inputs else { panic!() };
        // Rows 0..18 with the target of rows 16, 17 blanked: origin 16, the known plan ahead.
        let RawInputs::Table(mut tab) = data.inputs.clone() else { panic!() };
        let mut y = data.target.clone().unwrap();
        let Values::Numbers(v) = &mut y.values else { panic!() };
        v[16] = f64::NAN;
        v[17] = f64::NAN;
        tab.columns.push(y);
        let tab = tab.select(&(0..18).collect::<Vec<_>>());
        let (row, last) = t.window(&tab).unwrap();
        assert_eq!(last, "2015");
        let i = fit.split.test.iter().position(|&o| o == 16).unwrap();
        assert_eq!(row, fit.test.row(i));
        // Too short a history, and missing known rows, are named.
        let short = tab.select(&[0, 1, 16, 17]);
        assert!(t.window(&short).unwrap_err().to_string().contains("needs the last 3"));
        let no_future = tab.select(&(0..16).collect::<Vec<_>>());
        assert!(t.window(&no_future).unwrap_err().to_string().contains("give their 2 future rows"));
    }

    #[test]
    fn dates_continue_at_their_step() {
        let times: Vec<String> =
            ["2026-03-28T22:00", "2026-03-28T23:00", "2026-03-29T00:00"].map(String::from).to_vec();
        let (format, step) = date_times(&times).unwrap();
        assert_eq!((format.as_str(), step), ("%Y-%m-%dT%H:%M", Some(3600.0)));
        let days: Vec<String> = ["2024-02-28", "2024-02-29", "2024-03-01"].map(String::from).to_vec();
        assert_eq!(date_times(&days).unwrap(), ("%Y-%m-%d".to_string(), Some(86400.0)));
        let t = SeriesTransform {
            config: SeriesConfig { horizon: 2, ..series() },
            target: "y".into(),
            shift: vec![0.0],
            scale: vec![1.0],
            time_step: step,
            time_format: Some(format),
        };
        assert_eq!(t.forecast_times(Some("2026-03-29T00:00")), ["2026-03-29T01:00", "2026-03-29T02:00"]);
        assert!(date_times(&["2024-02-28".to_string(), "soon".to_string()]).is_none());
    }

    #[test]
    fn bad_series_are_named() {
        let mut data = table(20);
        let RawInputs::Table(t) = &mut data.inputs else { panic!() };
        let Values::Numbers(years) = &mut t.columns[0].values else { panic!() };
        years[5] = years[4];
        let e = fit(&config(0.2, 0.2, 0), &series(), &data).err().unwrap().to_string();
        assert_eq!(
            e,
            "column `year`: row 6 (2004) is not after row 5 (2004): a series needs one row per step, in time order"
        );
        let e =
            fit(&config(0.0, 0.1, 0), &SeriesConfig { history: 30, ..series() }, &table(20)).err().unwrap().to_string();
        assert!(e.contains("the train window has no forecast origin"), "{e}");
        let bad = SeriesConfig { history: 0, known: vec!["year".into()], ..series() };
        let keys: Vec<String> = bad.validate("preprocess.series").into_iter().map(|i| i.to_string()).collect();
        assert_eq!(
            keys,
            [
                "preprocess.series.history: must be at least 1, got 0",
                "preprocess.series.known[0]: `year` is the time column"
            ]
        );
    }
}
