//! The configured transforms: `train.augment`, a list of [`Transform`]s tagged by `kind`, and
//! `train.loader` ([`LoaderConfig`]).
//!
//! ```yaml
//! train:
//!   augment:
//!     - {kind: rotate, degrees: 10}
//!     - {kind: translate, fraction: 0.1}
//!     - {kind: cutout, p: 0.5}
//! ```
//!
//! Every transform has a probability `p` (the chance it is applied to an example; the default is
//! torchvision's: 0.5 for flips and cutout, 1 for the rest) and its own parameters. They are
//! applied in the order listed.

use pipeline_core::InputSchema;
use pipeline_core::config::Issue;
use serde::{Deserialize, Serialize};

/// One configured transform, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Transform {
    /// Mirror left ↔ right (images).
    Hflip(Flip),
    /// Mirror top ↔ bottom (images).
    Vflip(Flip),
    /// Rotate by an angle drawn uniformly from `[-degrees, degrees]`, bilinear (images).
    Rotate(Rotate),
    /// Scale about the centre by a factor drawn uniformly from `[min, max]`, bilinear (images).
    Zoom(Zoom),
    /// Shift by whole pixels, each axis uniformly within `±fraction` of its size (images).
    Translate(Translate),
    /// Pad every side by `padding` and crop a random window of the original size (images).
    Crop(Crop),
    /// Add Gaussian noise to every value (images).
    Noise(Noise),
    /// Multiply every value by a factor drawn from `[1 - factor, 1 + factor]` (images).
    Brightness(Jitter),
    /// Scale the distance of every value from the image mean by a factor drawn from
    /// `[1 - factor, 1 + factor]` (images).
    Contrast(Jitter),
    /// Random erasing: set a random rectangle to `value` (images).
    Cutout(Cutout),
    /// Delete each token with probability `rate` and pad at the end (token sequences).
    TokenDropout(TokenOp),
    /// Swap each pair of adjacent tokens with probability `rate` (token sequences).
    TokenSwap(TokenOp),
    /// Add Gaussian noise to the features of table rows (all, or the listed `columns`).
    FeatureNoise(FeatureNoiseConfig),
    /// SpecAugment time masks: whole frames (columns) of a spectrogram set to `value`.
    TimeMask(Mask),
    /// SpecAugment frequency masks: whole bands (rows) of a spectrogram set to `value`.
    FreqMask(Mask),
    /// Shift a spectrogram by whole frames, up to `max_frames` either way.
    TimeShift(TimeShift),
}

pipeline_core::tagged_enum!(Transform, "kind", [
    "hflip" => Transform::Hflip,
    "vflip" => Transform::Vflip,
    "rotate" => Transform::Rotate,
    "zoom" => Transform::Zoom,
    "translate" => Transform::Translate,
    "crop" => Transform::Crop,
    "noise" => Transform::Noise,
    "brightness" => Transform::Brightness,
    "contrast" => Transform::Contrast,
    "cutout" => Transform::Cutout,
    "token_dropout" => Transform::TokenDropout,
    "token_swap" => Transform::TokenSwap,
    "feature_noise" => Transform::FeatureNoise,
    "time_mask" => Transform::TimeMask,
    "freq_mask" => Transform::FreqMask,
    "time_shift" => Transform::TimeShift,
]);

/// What kind of examples a transform works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// `channels × height × width` images.
    Image,
    /// Padded token-id sequences.
    Sequence,
    /// Table rows.
    Tabular,
    /// Series windows (forecasting); the tabular transforms apply to them too.
    Series,
}

impl Input {
    /// The kind of `schema`.
    pub fn of(schema: &InputSchema) -> Self {
        match schema {
            InputSchema::Image { .. } => Input::Image,
            InputSchema::Sequence { .. } => Input::Sequence,
            InputSchema::Tabular { .. } => Input::Tabular,
            InputSchema::Series { .. } => Input::Series,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Input::Image => "image",
            Input::Sequence => "token-sequence",
            Input::Tabular => "tabular",
            Input::Series => "series-window",
        }
    }
}

impl Transform {
    /// The `kind` name.
    pub fn kind(&self) -> &'static str {
        match self {
            Transform::Hflip(_) => "hflip",
            Transform::Vflip(_) => "vflip",
            Transform::Rotate(_) => "rotate",
            Transform::Zoom(_) => "zoom",
            Transform::Translate(_) => "translate",
            Transform::Crop(_) => "crop",
            Transform::Noise(_) => "noise",
            Transform::Brightness(_) => "brightness",
            Transform::Contrast(_) => "contrast",
            Transform::Cutout(_) => "cutout",
            Transform::TokenDropout(_) => "token_dropout",
            Transform::TokenSwap(_) => "token_swap",
            Transform::FeatureNoise(_) => "feature_noise",
            Transform::TimeMask(_) => "time_mask",
            Transform::FreqMask(_) => "freq_mask",
            Transform::TimeShift(_) => "time_shift",
        }
    }

    /// The probability of applying it to an example.
    pub fn p(&self) -> f64 {
        match self {
            Transform::Hflip(f) | Transform::Vflip(f) => f.p,
            Transform::Rotate(r) => r.p,
            Transform::Zoom(z) => z.p,
            Transform::Translate(t) => t.p,
            Transform::Crop(c) => c.p,
            Transform::Noise(n) => n.p,
            Transform::FeatureNoise(n) => n.p,
            Transform::Brightness(j) | Transform::Contrast(j) => j.p,
            Transform::Cutout(c) => c.p,
            Transform::TokenDropout(t) | Transform::TokenSwap(t) => t.p,
            Transform::TimeMask(m) | Transform::FreqMask(m) => m.p,
            Transform::TimeShift(t) => t.p,
        }
    }

    /// The inputs it works on.
    pub fn input(&self) -> Input {
        match self {
            Transform::TokenDropout(_) | Transform::TokenSwap(_) => Input::Sequence,
            Transform::FeatureNoise(_) => Input::Tabular,
            _ => Input::Image,
        }
    }

    /// Problems with its values; keys start with `key` (e.g. `train.augment[0]`).
    pub fn validate(&self, key: &str) -> Vec<Issue> {
        let mut issues = Vec::new();
        let mut check = |ok: bool, field: &str, message: String| {
            if !ok {
                issues.push(Issue::new(format!("{key}.{field}"), message));
            }
        };
        let p = self.p();
        check((0.0..=1.0).contains(&p), "p", format!("must be a probability in [0, 1], got {p}"));
        match self {
            Transform::Hflip(_) | Transform::Vflip(_) => {}
            Transform::Rotate(r) => check(
                r.degrees.is_finite() && (0.0..=180.0).contains(&r.degrees),
                "degrees",
                format!("must be in [0, 180] (angles are drawn from [-degrees, degrees]), got {}", r.degrees),
            ),
            Transform::Zoom(z) => {
                check(z.min > 0.0 && z.min.is_finite(), "min", format!("must be positive, got {}", z.min));
                check(
                    z.max >= z.min && z.max.is_finite(),
                    "max",
                    format!("must be at least min ({}), got {}", z.min, z.max),
                );
            }
            Transform::Translate(t) => check(
                (0.0..1.0).contains(&t.fraction),
                "fraction",
                format!("must be in [0, 1) (the largest shift as a fraction of the size), got {}", t.fraction),
            ),
            Transform::Crop(_) | Transform::TimeShift(_) => {}
            Transform::TimeMask(m) | Transform::FreqMask(m) => {
                check(m.count >= 1, "count", "must be at least 1".into());
                check(m.value.is_finite(), "value", format!("must be a finite number, got {}", m.value));
            }
            Transform::Noise(Noise { std, .. }) | Transform::FeatureNoise(FeatureNoiseConfig { std, .. }) => {
                check(*std >= 0.0 && std.is_finite(), "std", format!("must be at least 0, got {std}"));
            }
            Transform::Brightness(j) | Transform::Contrast(j) => check(
                (0.0..=1.0).contains(&j.factor),
                "factor",
                format!("must be in [0, 1] (factors are drawn from [1 - factor, 1 + factor]), got {}", j.factor),
            ),
            Transform::Cutout(c) => {
                let [lo, hi] = c.scale;
                check(
                    lo > 0.0 && lo <= hi && hi <= 1.0,
                    "scale",
                    format!("must be [min, max] with 0 < min <= max <= 1 (fractions of the area), got [{lo}, {hi}]"),
                );
                let [lo, hi] = c.ratio;
                check(
                    lo > 0.0 && lo <= hi && hi.is_finite(),
                    "ratio",
                    format!("must be [min, max] with 0 < min <= max (height / width), got [{lo}, {hi}]"),
                );
            }
            Transform::TokenDropout(t) | Transform::TokenSwap(t) => {
                check((0.0..=1.0).contains(&t.rate), "rate", format!("must be in [0, 1], got {}", t.rate));
            }
        }
        issues
    }
}

/// Problems with `transforms` (the list at `key`, e.g. `train.augment`): impossible values.
pub fn validate(transforms: &[Transform], key: &str) -> Vec<Issue> {
    transforms.iter().enumerate().flat_map(|(i, t)| t.validate(&format!("{key}[{i}]"))).collect()
}

/// Transforms of `transforms` (the list at `key`) that do not fit examples of `input`: the
/// wrong kind of input, or feature names the data does not have.
pub fn check(transforms: &[Transform], key: &str, input: &InputSchema) -> Vec<Issue> {
    let have = Input::of(input);
    let mut issues = Vec::new();
    for (i, t) in transforms.iter().enumerate() {
        let fits = t.input() == have || (t.input() == Input::Tabular && have == Input::Series);
        if !fits {
            issues.push(Issue::new(
                format!("{key}[{i}].kind"),
                format!(
                    "`{}` transforms {} inputs, but the data has {} inputs",
                    t.kind(),
                    t.input().name(),
                    have.name()
                ),
            ));
        } else if let (Transform::FeatureNoise(n), InputSchema::Tabular { features }) = (t, input) {
            for (j, c) in n.columns.iter().enumerate() {
                if !features.iter().any(|f| &f.name == c) {
                    let names: Vec<&str> = features.iter().take(20).map(|f| f.name.as_str()).collect();
                    issues.push(Issue::new(
                        format!("{key}[{i}].columns[{j}]"),
                        format!("no model-input feature is named {c:?} (the features are {})", names.join(", ")),
                    ));
                }
            }
        }
    }
    issues
}

fn half() -> f64 {
    0.5
}
fn one() -> f64 {
    1.0
}

/// `hflip` / `vflip`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flip {
    /// Probability of flipping.
    #[serde(default = "half")]
    pub p: f64,
}

/// `rotate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    /// Probability of rotating.
    #[serde(default = "one")]
    pub p: f64,
    /// The largest angle; positive angles turn counter-clockwise.
    pub degrees: f64,
    /// The value of pixels that come from outside the image.
    #[serde(default)]
    pub fill: f32,
}

/// `zoom`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zoom {
    /// Probability of zooming.
    #[serde(default = "one")]
    pub p: f64,
    /// Smallest factor (below 1 shrinks the content).
    #[serde(default = "zoom_min")]
    pub min: f64,
    /// Largest factor (above 1 enlarges it).
    #[serde(default = "zoom_max")]
    pub max: f64,
    /// The value of pixels that come from outside the image.
    #[serde(default)]
    pub fill: f32,
}

fn zoom_min() -> f64 {
    0.9
}
fn zoom_max() -> f64 {
    1.1
}

/// `translate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Translate {
    /// Probability of shifting.
    #[serde(default = "one")]
    pub p: f64,
    /// The largest shift, as a fraction of the width (horizontally) and height (vertically);
    /// shifts are rounded to whole pixels, as torchvision's `RandomAffine` does.
    pub fraction: f64,
    /// The value of pixels that come from outside the image.
    #[serde(default)]
    pub fill: f32,
}

/// `crop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Crop {
    /// Probability of cropping.
    #[serde(default = "one")]
    pub p: f64,
    /// Pixels of `fill` added on every side before cropping.
    pub padding: usize,
    /// The padding value.
    #[serde(default)]
    pub fill: f32,
}

/// `noise`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Noise {
    /// Probability of adding noise to an example.
    #[serde(default = "one")]
    pub p: f64,
    /// Standard deviation of the noise, in the units of the preprocessed values.
    pub std: f64,
}

/// `feature_noise`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureNoiseConfig {
    /// Probability of adding noise to a row.
    #[serde(default = "one")]
    pub p: f64,
    /// Standard deviation of the noise, in the units of the preprocessed features (with
    /// `scale: standard`, training standard deviations).
    pub std: f64,
    /// The model-input features that get noise, by name (a numeric column keeps its name, a
    /// one-hot column `c` becomes `c=<category>`); empty: all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
}

/// `brightness` / `contrast`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jitter {
    /// Probability of jittering.
    #[serde(default = "one")]
    pub p: f64,
    /// The factor is drawn uniformly from `[1 - factor, 1 + factor]`.
    pub factor: f64,
}

/// `cutout`: torchvision's `RandomErasing`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cutout {
    /// Probability of erasing.
    #[serde(default = "half")]
    pub p: f64,
    /// The erased area as a fraction of the image, drawn uniformly from `[min, max]`.
    #[serde(default = "cutout_scale")]
    pub scale: [f64; 2],
    /// The erased rectangle's height / width, drawn log-uniformly from `[min, max]`.
    #[serde(default = "cutout_ratio")]
    pub ratio: [f64; 2],
    /// The value written into the rectangle.
    #[serde(default)]
    pub value: f32,
}

fn cutout_scale() -> [f64; 2] {
    [0.02, 0.33]
}
fn cutout_ratio() -> [f64; 2] {
    [0.3, 3.3]
}

/// `time_mask` / `freq_mask` (SpecAugment; torchaudio's `TimeMasking` / `FrequencyMasking`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mask {
    /// Probability of masking an example.
    #[serde(default = "one")]
    pub p: f64,
    /// The widest mask, in frames (time) or bands (frequency); widths are drawn from
    /// `0..=max_width`.
    pub max_width: usize,
    /// Masks per example.
    #[serde(default = "one_usize")]
    pub count: usize,
    /// The masked value (0: the training mean of standardised features).
    #[serde(default)]
    pub value: f32,
}

fn one_usize() -> usize {
    1
}

/// `time_shift`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeShift {
    /// Probability of shifting.
    #[serde(default = "one")]
    pub p: f64,
    /// The largest shift in frames, drawn uniformly from `-max_frames..=max_frames`.
    pub max_frames: usize,
    /// The value of frames shifted in.
    #[serde(default)]
    pub fill: f32,
}

/// `token_dropout` / `token_swap`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenOp {
    /// Probability of touching an example at all.
    #[serde(default = "one")]
    pub p: f64,
    /// Per-token probability of deletion (dropout) or per-pair probability of swapping.
    pub rate: f64,
    /// The padding id (never a token; the pipeline's tokenizers use 0).
    #[serde(default)]
    pub pad_id: u32,
    /// Ids that are never deleted or moved (e.g. `[CLS]` and `[SEP]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep: Vec<u32>,
}

/// `train.loader`: how training batches are prepared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoaderConfig {
    /// Background threads that assemble and augment batches ahead of the training step; 0
    /// prepares each batch in the training thread when it is needed. Results do not depend on it.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Batches prepared ahead per worker (the queue bound: at most `workers × (prefetch + 1)`
    /// batches exist at once, whatever the dataset's size).
    #[serde(default = "default_prefetch")]
    pub prefetch: usize,
}

fn default_workers() -> usize {
    1
}
fn default_prefetch() -> usize {
    2
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self { workers: default_workers(), prefetch: default_prefetch() }
    }
}

impl LoaderConfig {
    /// Problems with its values; keys start with `key` (`train.loader`).
    pub fn validate(&self, key: &str) -> Vec<Issue> {
        let mut issues = Vec::new();
        if self.prefetch == 0 {
            issues.push(Issue::new(format!("{key}.prefetch"), "must be at least 1"));
        }
        if self.workers > 256 {
            issues.push(Issue::new(format!("{key}.workers"), format!("must be at most 256, got {}", self.workers)));
        }
        issues
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Vec<Transform>, String> {
        serde_yaml::from_str(yaml).map_err(|e| e.to_string().replace(pipeline_core::config::KEY_MARK, "|"))
    }

    #[test]
    fn parses_with_defaults_and_round_trips() {
        let t = parse("[{kind: hflip}, {kind: rotate, degrees: 10}, {kind: cutout, value: -1}]").unwrap();
        assert_eq!(t[0], Transform::Hflip(Flip { p: 0.5 }));
        assert_eq!(t[1], Transform::Rotate(Rotate { p: 1.0, degrees: 10.0, fill: 0.0 }));
        assert_eq!(t[2], Transform::Cutout(Cutout { p: 0.5, scale: [0.02, 0.33], ratio: [0.3, 3.3], value: -1.0 }));
        let back: Vec<Transform> = serde_yaml::from_str(&serde_yaml::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse("[{kind: rotate, degrees: 10}, {kind: rotate, degree: 10}]").unwrap_err();
        assert!(e.contains("|degree| unknown field `degree`"), "{e}");
        let e = parse("[{kind: spin}]").unwrap_err();
        assert!(e.contains("|kind| unknown variant `spin`, expected one of `hflip`"), "{e}");
        let e = parse("[{kind: translate}]").unwrap_err();
        assert!(e.contains("missing field `fraction`"), "{e}");
    }

    #[test]
    fn impossible_values_and_wrong_inputs_are_issues() {
        let t = parse(
            "[{kind: rotate, degrees: 200, p: 1.5}, {kind: zoom, min: 1.2, max: 1.1}, {kind: token_swap, rate: 0.1}]",
        )
        .unwrap();
        let keys: Vec<String> = validate(&t, "train.augment").into_iter().map(|i| i.key).collect();
        assert_eq!(keys, ["train.augment[0].p", "train.augment[0].degrees", "train.augment[1].max"]);
        let image = InputSchema::Image { channels: 1, height: 4, width: 4 };
        let issues = check(&t, "train.augment", &image);
        assert_eq!(issues.len(), 1);
        assert_eq!(
            issues[0].to_string(),
            "train.augment[2].kind: `token_swap` transforms token-sequence inputs, but the data has image inputs"
        );
    }
}
