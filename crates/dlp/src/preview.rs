//! `dlp augment-preview`: a PNG grid of training images beside their augmented versions, so a
//! user can see what the model will see before training.

use std::path::Path;

use anyhow::{Context, Result, bail};
use augment::Augmenter;
use pipeline_core::InputSchema;
use pipeline_core::run::write_atomic;

use crate::config::PipelineConfig;
use crate::pipeline::{Clock, prepare};

/// What the preview shows.
#[derive(Debug, Clone, Copy)]
pub struct PreviewOptions {
    /// Images (rows of the grid): the first training example of each class, up to this many.
    pub rows: usize,
    /// Augmented versions per image (epochs 1 to `draws`).
    pub draws: usize,
    /// Each pixel becomes a `zoom × zoom` square.
    pub zoom: u32,
}

/// Prepares the data of `config` (read from `config_path`) as training would, and writes the
/// grid to `out` (atomically). Returns the number of rows drawn.
pub fn augment_preview(
    config: &PipelineConfig,
    config_path: &Path,
    out: &Path,
    options: PreviewOptions,
) -> Result<usize> {
    if config.train.augment.is_empty() {
        bail!("{}: train.augment is empty, so training sees the images as they are", config_path.display());
    }
    let prepared = prepare(config, None, &mut Clock::start())?;
    let train = &prepared.train;
    let input = &train.schema().input;
    if !matches!(input, InputSchema::Image { .. }) {
        bail!("{}: augment-preview draws images, but this pipeline's inputs are not images", config_path.display());
    }
    let issues = config.train.check_data(input, train.len());
    if !issues.is_empty() {
        return Err(crate::config::located(config_path, issues).into());
    }
    // The seed of training, so the grid shows exactly what epochs 1, 2, … will draw.
    let augmenter = Augmenter::new(&config.train.augment, "train.augment", input, config.seed)?;
    let rows = augment::preview::one_per_class(train, options.rows);
    let png = augment::preview::grid_png(train, &rows, &augmenter, options.draws, options.zoom)?;
    write_atomic(out, &png).with_context(|| format!("writing {}", out.display()))?;
    Ok(rows.len())
}
