//! The shared vocabulary of the pipeline.
//!
//! Every phase crate (`data-ingest`, `preprocess`, `augment`, `models`, `train`, `tune`, `eval`,
//! `serve`) depends on this crate and on nothing else of the workspace, so that a team can import
//! only the phases it needs. It holds plain data and traits:
//!
//! - [`raw`]: records as a source holds them ([`RawDataset`](raw::RawDataset): a typed
//!   [`Table`](raw::Table) or an [`ImageSet`](raw::ImageSet), and a target column);
//! - [`data`]: [`Dataset`], [`Example`], [`Batch`], the feature [`Schema`] and the [`Task`] kind;
//! - [`model`]: the [`Model`] trait every architecture implements, its forward [`Ctx`], and
//!   the output [`Head`] that turns outputs into predictions;
//! - [`metric`]: the [`Metric`] trait, [`Predictions`] and the optimisation [`Direction`];
//! - [`config`]: the [`Issue`](config::Issue) a config section's validation reports;
//! - [`seed`]: how one configured seed becomes independent random streams, one per purpose;
//! - [`rows`]: feature rows in a file ([`RowFile`](rows::RowFile)), the storage of a dataset
//!   larger than the memory budget;
//! - [`run`]: the run-directory and model-bundle layout, the run [`Manifest`], and
//!   [`write_atomic`](run::write_atomic), the one way the pipeline writes a file.
//!
//! What it must not do: know about any phase, or do IO beyond the small helpers in [`run`] and
//! the row files of [`rows`].

pub mod config;
pub mod data;
pub mod error;
pub mod metric;
pub mod model;
pub mod raw;
pub mod rows;
pub mod run;
pub mod seed;

pub use data::{
    Batch, Dataset, Example, Feature, FeatureKind, InputSchema, Schema, Target, TargetValue, Targets, Task,
};
pub use error::{Error, Result};
pub use metric::{Direction, Metric, Predictions};
pub use model::{Ctx, Head, Model};
pub use run::{BundleDir, BundleIndex, Manifest, RunDir};
pub use seed::{Rng, derive_seed, rng};

/// The version of the pipeline crates, recorded in manifests and bundles.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
