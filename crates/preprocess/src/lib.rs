//! Preprocessing: seeded splits and transforms fitted on the training part only.
//!
//! The `preprocess:` section ([`PreprocessConfig`]) says how to split the data
//! ([`SplitConfig`], [`split`]) and how to scale it ([`Scale`]). [`Preprocessor::fit`] learns the
//! transform's state from the training part only; that state is serialized into the model bundle
//! (`preprocess.json`) and [`Preprocessor::transform_rows`] re-applies it identically at
//! prediction time, so nothing is re-fitted at serving time.
//!
//! What it must not do: know about models.

mod scale;
mod split;

use pipeline_core::Dataset;
use pipeline_core::config::Issue;
use serde::{Deserialize, Serialize};

pub use scale::{FittedScaler, Scale};
pub use split::{Split, SplitConfig, split};

/// What can go wrong in preprocessing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Rows whose width is not the fitted one.
    #[error("expected rows of {expected} values (the width the preprocessing was fitted on), found {found} values")]
    Width {
        /// The fitted width.
        expected: usize,
        /// The number of values given (not a multiple of `expected`).
        found: usize,
    },
    /// A split that leaves a part empty.
    #[error("the split leaves the {part} part empty ({examples} examples in all): use a larger fraction or more data")]
    EmptySplit {
        /// `train`, `validation` or `test`.
        part: &'static str,
        /// The dataset size.
        examples: usize,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The `preprocess:` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreprocessConfig {
    /// How to scale input values.
    #[serde(default)]
    pub scale: Scale,
    /// How to split into train / validation / test.
    #[serde(default)]
    pub split: SplitConfig,
}

impl PreprocessConfig {
    /// Checks the values that serde cannot (fractions in range and summing to one).
    pub fn validate(&self) -> Vec<Issue> {
        self.split.validate("preprocess.split")
    }
}

/// The fitted preprocessing state: everything needed to transform new rows as the training
/// run did. Serialized into the bundle as `preprocess.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocessor {
    /// Values per row.
    pub width: usize,
    /// The fitted scaler.
    pub scaler: FittedScaler,
}

impl Preprocessor {
    /// Fits the transforms of `config` on `train` (the training part only).
    pub fn fit(config: &PreprocessConfig, train: &Dataset) -> Self {
        Self { width: train.width(), scaler: FittedScaler::fit(config.scale, train.features(), train.width()) }
    }

    /// Transforms row-major `values` (any number of rows of `width` values) in place.
    pub fn transform_rows(&self, values: &mut [f32]) -> Result<()> {
        if self.width == 0 || !values.len().is_multiple_of(self.width) {
            return Err(Error::Width { expected: self.width, found: values.len() });
        }
        self.scaler.transform(values, self.width);
        Ok(())
    }

    /// Transforms a dataset's rows in place.
    pub fn transform(&self, dataset: &mut Dataset) -> Result<()> {
        self.transform_rows(dataset.features_mut())
    }
}
