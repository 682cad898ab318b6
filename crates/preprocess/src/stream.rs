//! Fitting a table's preprocessing in a streaming pass, for data larger than memory.
//!
//! [`TableFit`] takes the training records chunk by chunk ([`TableFit::add`]) and keeps only
//! per-column statistics: counts, sums, minima and maxima, category counts. A second pass
//! ([`TableFit::add_deviations`]) sums squared deviations from the mean when scaling is
//! `standard`. The result is the [`Preprocessor`] that [`Preprocessor::fit`] gives on the same
//! records in memory:
//!
//! - exactly (bit for bit) for mean, constant and most-frequent fills, min-max scaling,
//!   categories and their encodings, and standard scaling of a column without missing values
//!   (the sums are taken in record order, as in memory);
//! - standard scaling of a column with missing values: the mean of the filled values is the
//!   present values' sum plus the fills, rather than one running sum, so it may differ in the
//!   last bits;
//! - the median fill is approximate: the median of a seeded uniform sample of up to
//!   [`MEDIAN_SAMPLE`] present values per column (exact for columns of fewer values).
//!
//! Not streamed: text columns (tokenizer training and document frequencies need every text),
//! outlier handling (bounds are quantiles of the filled column, and dropping rows changes the
//! other statistics), and duplicate removal (every record's key would be kept). [`TableFit::new`]
//! refuses them with the key to change.

use std::collections::BTreeMap;

use pipeline_core::raw::{Column, RawSchema, Table, Values};
use pipeline_core::{Feature, FeatureKind, InputSchema, Rng};
use rand::Rng as _;

use crate::config::{CategoricalImpute, NumericImpute, PreprocessConfig, Scale};
use crate::tabular::ColumnTransform;
use crate::{Error, InputTransform, Preprocessor, Result, TargetEncoder};

/// Present values kept per column for an approximate median.
pub const MEDIAN_SAMPLE: usize = 100_000;

/// One column's running statistics.
#[derive(Debug, Clone)]
enum Stats {
    Numeric {
        present: usize,
        missing: usize,
        sum: f64,
        min: f64,
        max: f64,
        /// Value counts by order-preserving key (most-frequent fill only).
        counts: Option<BTreeMap<u64, usize>>,
        /// A uniform sample of present values (median fill only).
        sample: Option<Vec<f64>>,
        /// Σ (x − mean)² of the filled values (second pass).
        deviations: f64,
    },
    Boolean {
        counts: BTreeMap<u64, usize>,
    },
    Categorical {
        counts: BTreeMap<String, usize>,
        missing: usize,
    },
}

/// The streaming fit of a table's preprocessing; see the module documentation.
#[derive(Debug, Clone)]
pub struct TableFit {
    config: PreprocessConfig,
    columns: Vec<(Feature, Stats)>,
    rows: usize,
    rng: Rng,
    /// The fills and means once the first pass is over.
    first: Option<Vec<(Option<f64>, f64)>>,
}

fn key(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 { !bits } else { bits | (1 << 63) }
}

fn unkey(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
}

fn most_frequent(counts: &BTreeMap<u64, usize>) -> Option<f64> {
    let best = counts.values().max()?;
    counts.iter().find(|(_, c)| *c == best).map(|(k, _)| unkey(*k))
}

impl TableFit {
    /// A fit of the columns `schema` (the raw table's, in order) under `config`, drawing the
    /// median samples from `rng`. Refuses what cannot be fitted in a stream.
    pub fn new(config: &PreprocessConfig, schema: &[Feature], rng: Rng) -> Result<Self> {
        let refuse = |key: &str, why: &str| {
            Err(Error::Schema(format!(
                "{key}: {why}, which needs every training record in memory, and the data is larger than \
                 data.memory_limit (raise the limit, or change {key})"
            )))
        };
        if config.dedup {
            return refuse("preprocess.dedup", "duplicate removal keeps a key of every record");
        }
        if config.outliers.is_some() {
            return refuse("preprocess.outliers", "outlier bounds are quantiles of each whole column");
        }
        if config.series.is_some() {
            return refuse("preprocess.series", "a series is cut into windows as a whole");
        }
        let mut columns = Vec::new();
        for f in schema {
            let stats = match f.kind {
                FeatureKind::Numeric => Stats::Numeric {
                    present: 0,
                    missing: 0,
                    sum: 0.0,
                    min: f64::INFINITY,
                    max: f64::NEG_INFINITY,
                    counts: (config.missing.numeric == NumericImpute::MostFrequent).then(BTreeMap::new),
                    sample: (config.missing.numeric == NumericImpute::Median).then(Vec::new),
                    deviations: 0.0,
                },
                FeatureKind::Boolean => Stats::Boolean { counts: BTreeMap::new() },
                FeatureKind::Categorical => Stats::Categorical { counts: BTreeMap::new(), missing: 0 },
                FeatureKind::Text => {
                    return Err(Error::Column {
                        column: f.name.clone(),
                        message: "is a text column: tokenizers and document frequencies are fitted on every text, \
                                  and the data is larger than data.memory_limit (raise the limit, or leave the \
                                  column out with data.columns)"
                            .into(),
                    });
                }
            };
            columns.push((f.clone(), stats));
        }
        Ok(Self { config: config.clone(), columns, rows: 0, rng, first: None })
    }

    /// Training records seen so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Adds the records at `rows` of `table` (a chunk of the data, columns as in the schema),
    /// in that order, to the first pass.
    pub fn add(&mut self, table: &Table, rows: &[usize]) -> Result<()> {
        if self.first.is_some() {
            return Err(Error::Schema("a streaming fit's first pass is over".into()));
        }
        self.check(table)?;
        for ((_, stats), col) in self.columns.iter_mut().zip(&table.columns) {
            match (stats, &col.values) {
                (Stats::Numeric { present, missing, sum, min, max, counts, sample, .. }, Values::Numbers(v)) => {
                    for &i in rows {
                        let x = v[i];
                        if x.is_nan() {
                            *missing += 1;
                            continue;
                        }
                        *present += 1;
                        *sum += x;
                        *min = min.min(x);
                        *max = max.max(x);
                        if let Some(c) = counts {
                            *c.entry(key(x)).or_default() += 1;
                        }
                        if let Some(s) = sample {
                            // Algorithm R: every present value is kept with the same probability.
                            if s.len() < MEDIAN_SAMPLE {
                                s.push(x);
                            } else {
                                let j = self.rng.random_range(0..*present);
                                if j < MEDIAN_SAMPLE {
                                    s[j] = x;
                                }
                            }
                        }
                    }
                }
                (Stats::Boolean { counts }, Values::Numbers(v)) => {
                    for &i in rows {
                        if !v[i].is_nan() {
                            *counts.entry(key(v[i])).or_default() += 1;
                        }
                    }
                }
                (Stats::Categorical { counts, missing }, values) => {
                    for &i in rows {
                        match values.text(i) {
                            Some(t) => *counts.entry(t).or_default() += 1,
                            None => *missing += 1,
                        }
                    }
                }
                (_, _) => return Err(kind_error(col)),
            }
        }
        self.rows += rows.len();
        Ok(())
    }

    /// Whether [`TableFit::add_deviations`] must see the training records again (standard
    /// scaling of a numeric column).
    pub fn needs_second_pass(&self) -> bool {
        self.config.scale == Scale::Standard && self.columns.iter().any(|(_, s)| matches!(s, Stats::Numeric { .. }))
    }

    /// Each numeric column's fill and the mean of its filled values, after the first pass.
    fn fills(&mut self) -> &[(Option<f64>, f64)] {
        let config = &self.config;
        let rows = self.rows;
        self.first.get_or_insert_with(|| {
            self.columns
                .iter_mut()
                .map(|(_, s)| match s {
                    Stats::Numeric { present, missing, sum, counts, sample, .. } => {
                        let fill = match config.missing.numeric {
                            NumericImpute::Drop => None,
                            NumericImpute::Constant => Some(config.missing.fill_number),
                            _ if *present == 0 => Some(0.0),
                            NumericImpute::Mean => Some(*sum / *present as f64),
                            NumericImpute::Median => sample.as_mut().map(|s| {
                                s.sort_by(f64::total_cmp);
                                crate::tabular::percentile(s, 0.5)
                            }),
                            NumericImpute::MostFrequent => counts.as_ref().and_then(most_frequent),
                        };
                        let filled_sum = match *missing {
                            0 => *sum,
                            m => *sum + m as f64 * fill.unwrap_or(0.0),
                        };
                        (fill, filled_sum / rows.max(1) as f64)
                    }
                    _ => (None, 0.0),
                })
                .collect()
        })
    }

    /// Adds the records at `rows` of `table` to the second pass: squared deviations of the
    /// filled values from the first pass's means.
    pub fn add_deviations(&mut self, table: &Table, rows: &[usize]) -> Result<()> {
        self.check(table)?;
        let fills = self.fills().to_vec();
        for (((_, stats), col), (fill, mean)) in self.columns.iter_mut().zip(&table.columns).zip(fills) {
            if let (Stats::Numeric { deviations, .. }, Values::Numbers(v)) = (stats, &col.values) {
                for &i in rows {
                    let x = if v[i].is_nan() { fill.unwrap_or(0.0) } else { v[i] };
                    *deviations += (x - mean).powi(2);
                }
            }
        }
        Ok(())
    }

    fn check(&self, table: &Table) -> Result<()> {
        let same = table.columns.len() == self.columns.len()
            && table.columns.iter().zip(&self.columns).all(|(c, (f, _))| c.name == f.name && c.kind == f.kind);
        match same {
            true => Ok(()),
            false => Err(Error::Schema("a chunk's columns differ from the first chunk's".into())),
        }
    }

    /// The fitted preprocessor, with `target` (scaled on `train_target`, the training records'
    /// target column, when `scale_target` is set).
    pub fn finish(mut self, target: TargetEncoder, train_target: &Column) -> Result<Preprocessor> {
        let fills = self.fills().to_vec();
        let n = self.rows.max(1) as f64;
        let config = &self.config;
        let mut columns = Vec::new();
        for ((feature, stats), (fill, mean)) in self.columns.iter().zip(fills) {
            let name = feature.name.clone();
            let t = match stats {
                Stats::Numeric { missing, min, max, deviations, .. } => {
                    let (shift, scale) = match config.scale {
                        Scale::None => (0.0, 1.0),
                        Scale::Pixel => (0.0, 255.0),
                        Scale::Standard => (mean, crate::tabular::nonzero((deviations / n).sqrt())),
                        Scale::MinMax if self.rows == 0 => (0.0, 1.0),
                        Scale::MinMax => {
                            let f = fill.unwrap_or(0.0);
                            let (lo, hi) = if *missing > 0 { (min.min(f), max.max(f)) } else { (*min, *max) };
                            (lo, crate::tabular::nonzero(hi - lo))
                        }
                    };
                    ColumnTransform::Numeric { name, fill, clip: None, shift, scale }
                }
                Stats::Boolean { counts } => {
                    let fill = match config.missing.categorical {
                        CategoricalImpute::Drop => None,
                        CategoricalImpute::Constant => Some(0.0),
                        CategoricalImpute::MostFrequent => Some(most_frequent(counts).unwrap_or(0.0)),
                    };
                    ColumnTransform::Boolean { name, fill }
                }
                Stats::Categorical { counts, missing } => {
                    let fill = match config.missing.categorical {
                        CategoricalImpute::Drop => None,
                        CategoricalImpute::Constant => Some(config.missing.fill_category.clone()),
                        CategoricalImpute::MostFrequent => {
                            let best = counts.values().max();
                            Some(
                                counts
                                    .iter()
                                    .find(|(_, c)| Some(*c) == best)
                                    .map(|(k, _)| k.clone())
                                    .unwrap_or_default(),
                            )
                        }
                    };
                    let mut categories: Vec<String> = counts.keys().cloned().collect();
                    if *missing > 0
                        && let Some(f) = &fill
                        && let Err(at) = categories.binary_search(f)
                    {
                        categories.insert(at, f.clone());
                    }
                    ColumnTransform::Categorical {
                        name,
                        fill,
                        categories,
                        encoding: config.categorical.encoding,
                        unknown: config.categorical.unknown,
                    }
                }
            };
            columns.push(t);
        }
        let target = if config.scale_target { target.fit_scale(train_target) } else { target };
        let mut features = Vec::new();
        for c in &columns {
            features.extend(c.features()?);
        }
        let raw = RawSchema::Table { columns: self.columns.iter().map(|(f, _)| f.clone()).collect() };
        Ok(Preprocessor {
            raw,
            inputs: InputTransform::Table { columns },
            output: InputSchema::Tabular { features },
            target,
            target_name: train_target.name.clone(),
        })
    }
}

fn kind_error(col: &Column) -> Error {
    Error::Column { column: col.name.clone(), message: "holds values of another kind than its first chunk's".into() }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use pipeline_core::raw::{RawDataset, RawInputs, TargetSpec};
    use rand::SeedableRng;

    use super::*;
    use crate::config::Encoding;

    /// A table whose columns have every kind the stream fits, `missing` of them with gaps.
    fn data(rows: usize, missing: bool, seed: u64) -> RawDataset {
        let mut r = Rng::seed_from_u64(seed);
        let gap = |r: &mut Rng| missing && r.random_bool(0.1);
        let x: Vec<f64> = (0..rows).map(|_| if gap(&mut r) { f64::NAN } else { r.random_range(-5.0..50.0) }).collect();
        let k: Vec<f64> =
            (0..rows).map(|_| if gap(&mut r) { f64::NAN } else { f64::from(r.random_range(0..6)) }).collect();
        let b: Vec<f64> =
            (0..rows).map(|_| if gap(&mut r) { f64::NAN } else { f64::from(r.random_range(0..2)) }).collect();
        let c: Vec<Option<String>> = (0..rows)
            .map(|_| (!gap(&mut r)).then(|| ["red", "green", "blue", "ochre"][r.random_range(0..4)].to_string()))
            .collect();
        let y: Vec<f64> = (0..rows).map(|_| r.random_range(0.0..100.0)).collect();
        let col = |name: &str, kind, values| Column { name: name.into(), kind, values };
        RawDataset {
            inputs: RawInputs::Table(Table {
                columns: vec![
                    col("x", FeatureKind::Numeric, Values::Numbers(x)),
                    col("k", FeatureKind::Categorical, Values::Numbers(k)),
                    col("b", FeatureKind::Boolean, Values::Numbers(b)),
                    col("c", FeatureKind::Categorical, Values::from_strings(c)),
                ],
            }),
            target: Some(col("y", FeatureKind::Numeric, Values::Numbers(y))),
            parts: None,
        }
    }

    fn streamed(config: &PreprocessConfig, d: &RawDataset, rows: &[usize], chunk: usize) -> Preprocessor {
        let RawInputs::Table(t) = &d.inputs else { unreachable!() };
        let schema: Vec<Feature> = t.columns.iter().map(Column::feature).collect();
        let mut fit = TableFit::new(config, &schema, Rng::seed_from_u64(1)).unwrap();
        // Chunks of the table, each with the training rows that fall in it.
        let chunks: Vec<(Table, Vec<usize>)> = (0..t.rows())
            .step_by(chunk)
            .map(|start| {
                let end = (start + chunk).min(t.rows());
                let local: Vec<usize> = rows.iter().filter(|&&i| i >= start && i < end).map(|&i| i - start).collect();
                (t.select(&(start..end).collect::<Vec<_>>()), local)
            })
            .collect();
        for (c, local) in &chunks {
            fit.add(c, local).unwrap();
        }
        if fit.needs_second_pass() {
            for (c, local) in &chunks {
                fit.add_deviations(c, local).unwrap();
            }
        }
        let y = d.target.as_ref().unwrap();
        let encoder = TargetEncoder::fit(y, &TargetSpec::default()).unwrap();
        fit.finish(encoder, &Column { values: y.values.select(rows), ..y.clone() }).unwrap()
    }

    fn configs() -> Vec<PreprocessConfig> {
        let mut out = Vec::new();
        for scale in [Scale::Standard, Scale::MinMax, Scale::None] {
            for numeric in [NumericImpute::Mean, NumericImpute::Constant, NumericImpute::MostFrequent] {
                for categorical in [CategoricalImpute::MostFrequent, CategoricalImpute::Constant] {
                    for encoding in [Encoding::OneHot, Encoding::Ordinal] {
                        let mut c = PreprocessConfig { scale, ..Default::default() };
                        c.missing.numeric = numeric;
                        c.missing.categorical = categorical;
                        c.categorical.encoding = encoding;
                        out.push(c);
                    }
                }
            }
        }
        out
    }

    #[test]
    fn a_streamed_fit_is_the_in_memory_fit_bit_for_bit_without_missing_values() {
        let d = data(3000, false, 3);
        let rows: Vec<usize> = (0..3000).filter(|i| i % 5 != 0).rev().collect();
        let y = d.target.as_ref().unwrap();
        for config in configs() {
            for chunk in [1, 7, 500, 5000] {
                let encoder = TargetEncoder::fit(y, &TargetSpec::default()).unwrap();
                // In memory, the rows are fitted in their order too.
                let sorted: Vec<usize> = rows.iter().rev().copied().collect();
                let (want, _) = Preprocessor::fit(&config, &d.select(&sorted), encoder).unwrap();
                let got = streamed(&config, &d, &sorted, chunk);
                assert_eq!(got, want, "{config:?}, chunks of {chunk}");
            }
        }
    }

    #[test]
    fn with_missing_values_only_a_standard_scale_may_differ_in_the_last_bits() {
        let d = data(2000, true, 4);
        let rows: Vec<usize> = (0..2000).collect();
        let y = d.target.as_ref().unwrap();
        for config in configs() {
            let encoder = TargetEncoder::fit(y, &TargetSpec::default()).unwrap();
            let (want, _) = Preprocessor::fit(&config, &d.select(&rows), encoder).unwrap();
            let got = streamed(&config, &d, &rows, 333);
            let (InputTransform::Table { columns: a }, InputTransform::Table { columns: b }) =
                (&got.inputs, &want.inputs)
            else {
                unreachable!()
            };
            for (a, b) in a.iter().zip(b) {
                match (a, b) {
                    (
                        ColumnTransform::Numeric { fill: f1, shift: s1, scale: c1, .. },
                        ColumnTransform::Numeric { fill: f2, shift: s2, scale: c2, .. },
                    ) => {
                        assert_eq!(f1, f2, "{config:?}");
                        assert!((s1 - s2).abs() <= 1e-12 * s2.abs().max(1.0), "{config:?}: {s1} vs {s2}");
                        assert!((c1 - c2).abs() <= 1e-12 * c2.abs(), "{config:?}: {c1} vs {c2}");
                    }
                    _ => assert_eq!(a, b, "{config:?}"),
                }
            }
            assert_eq!(got.output, want.output);
            assert_eq!(got.target, want.target);
        }
    }

    #[test]
    fn the_median_fill_comes_from_a_sample_and_what_cannot_stream_is_refused() {
        let d = data(MEDIAN_SAMPLE + 5000, true, 5);
        let rows: Vec<usize> = (0..d.rows()).collect();
        let mut config = PreprocessConfig::default();
        config.missing.numeric = NumericImpute::Median;
        let y = d.target.as_ref().unwrap();
        let encoder = TargetEncoder::fit(y, &TargetSpec::default()).unwrap();
        let (want, _) = Preprocessor::fit(&config, &d, encoder).unwrap();
        let got = streamed(&config, &d, &rows, 10_000);
        let fill = |p: &Preprocessor| match &p.inputs {
            InputTransform::Table { columns } => match &columns[0] {
                ColumnTransform::Numeric { fill, .. } => fill.unwrap(),
                _ => unreachable!(),
            },
            _ => unreachable!(),
        };
        // The values are uniform on [-5, 50): a sample of 100,000 puts the median within 0.5.
        assert!((fill(&got) - fill(&want)).abs() < 0.5, "{} vs {}", fill(&got), fill(&want));

        let schema = [Feature { name: "t".into(), kind: FeatureKind::Text }];
        let e = TableFit::new(&PreprocessConfig::default(), &schema, Rng::seed_from_u64(0)).unwrap_err().to_string();
        assert!(e.contains("`t`") || e.contains("t:") || e.contains("is a text column"), "{e}");
        let dedup = PreprocessConfig { dedup: true, ..Default::default() };
        let e = TableFit::new(&dedup, &[], Rng::seed_from_u64(0)).unwrap_err().to_string();
        assert!(e.starts_with("preprocess.dedup: duplicate removal"), "{e}");
    }
}
