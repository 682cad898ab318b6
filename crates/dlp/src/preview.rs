//! `dlp augment-preview`: a PNG grid of training images (or audio features: spectrograms, low
//! frequencies at the bottom) beside their augmented versions, so a user can see what the model
//! will see before training.

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
    if config.train.augment.is_empty() && config.train.augment_audio.is_none() {
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
    let audio = matches!(prepared.test_raw.inputs, pipeline_core::raw::RawInputs::Audio(_));
    // With train.augment_audio the training set is the originals then each copy of them; draw
    // d of a recording shows its copy ((d - 1) mod copies) + 1.
    let copies = if audio { config.train.augment_audio.as_ref().map_or(0, |a| a.copies) } else { 0 };
    let originals = train.len() / (copies + 1);
    let rows = augment::preview::one_per_class(train, options.rows);
    let source = move |i: usize, d: usize| if copies == 0 { i } else { i + originals * ((d - 1) % copies + 1) };
    let png = augment::preview::grid_png_from(train, &rows, &source, &augmenter, options.draws, options.zoom, audio)?;
    write_atomic(out, &png).with_context(|| format!("writing {}", out.display()))?;
    Ok(rows.len())
}
