//! The `preprocess:` section.

use std::path::{Path, PathBuf};

use pipeline_core::config::Issue;
use serde::{Deserialize, Serialize};

use crate::split::SplitConfig;

/// `preprocess:`: cleaning, encoding, scaling, tokenization and the split. Everything fitted is
/// fitted on the training part only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreprocessConfig {
    /// Train / validation / test fractions.
    #[serde(default)]
    pub split: SplitConfig,
    /// Remove exact duplicate records (every input and the target equal) before splitting.
    #[serde(default)]
    pub dedup: bool,
    /// How missing values are filled (or their rows dropped).
    #[serde(default)]
    pub missing: MissingConfig,
    /// Outlier handling for numeric columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outliers: Option<OutlierConfig>,
    /// Scaling of numeric columns, or of image pixels.
    #[serde(default)]
    pub scale: Scale,
    /// Encoding of categorical columns.
    #[serde(default)]
    pub categorical: CategoricalConfig,
    /// Tokenization and vectorization of text columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextConfig>,
    /// The features of audio clips (log-mel by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<crate::audio::AudioConfig>,
    /// Forecasting: the data is one series, cut into (history, horizon) windows and split in
    /// time (`preprocess::series`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<SeriesConfig>,
    /// For regression: train on standardized targets (training mean and standard deviation),
    /// mapping predictions back. Makes one learning rate fit targets of any magnitude.
    #[serde(default = "yes")]
    pub scale_target: bool,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        Self {
            split: SplitConfig::default(),
            dedup: false,
            missing: MissingConfig::default(),
            outliers: None,
            scale: Scale::default(),
            categorical: CategoricalConfig::default(),
            text: None,
            audio: None,
            series: None,
            scale_target: true,
        }
    }
}

/// How numeric and image values are scaled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// As they are.
    #[default]
    None,
    /// Divide 8-bit pixel values by 255 (images, or pixel columns).
    Pixel,
    /// Subtract the training mean, divide by the training standard deviation (population; a
    /// constant is divided by 1) — per column for tables (scikit-learn's `StandardScaler`), per
    /// channel for images, per band (mel band or coefficient) for audio features.
    Standard,
    /// Map the training minimum to 0 and maximum to 1, per column (`MinMaxScaler`).
    MinMax,
}

/// How missing numbers are filled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumericImpute {
    /// The training mean.
    #[default]
    Mean,
    /// The training median.
    Median,
    /// The most frequent training value (the smallest on ties).
    MostFrequent,
    /// `fill_number`.
    Constant,
    /// Drop records with a missing value (before splitting); serving refuses them.
    Drop,
}

/// How missing categories (and booleans, and texts) are filled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CategoricalImpute {
    /// The most frequent training value (the first in sorted order on ties).
    #[default]
    MostFrequent,
    /// `fill_category` (texts: the empty text).
    Constant,
    /// Drop records with a missing value (before splitting); serving refuses them.
    Drop,
}

/// `preprocess.missing`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MissingConfig {
    /// For numeric columns.
    #[serde(default)]
    pub numeric: NumericImpute,
    /// For categorical, boolean and text columns.
    #[serde(default)]
    pub categorical: CategoricalImpute,
    /// The fill of `numeric: constant`.
    #[serde(default)]
    pub fill_number: f64,
    /// The fill of `categorical: constant`.
    #[serde(default = "default_fill_category")]
    pub fill_category: String,
}

fn default_fill_category() -> String {
    "missing".into()
}

impl Default for MissingConfig {
    fn default() -> Self {
        Self {
            numeric: NumericImpute::default(),
            categorical: CategoricalImpute::default(),
            fill_number: 0.0,
            fill_category: default_fill_category(),
        }
    }
}

/// Outlier detection method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutlierMethod {
    /// Beyond `threshold` training standard deviations from the training mean (default 3).
    Zscore,
    /// Beyond `threshold` interquartile ranges outside the training quartiles (default 1.5).
    Iqr,
}

/// What to do with outliers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutlierAction {
    /// Clamp values to the bounds (in training and at serving).
    Clip,
    /// Drop training records with a value outside the bounds (other parts are kept whole).
    Drop,
}

/// `preprocess.outliers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierConfig {
    /// How bounds are found.
    pub method: OutlierMethod,
    /// The bound's distance; absent, 3 (z-score) or 1.5 (IQR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Clip or drop.
    pub action: OutlierAction,
}

impl OutlierConfig {
    /// The threshold, defaulted by method.
    pub fn threshold(&self) -> f64 {
        self.threshold.unwrap_or(match self.method {
            OutlierMethod::Zscore => 3.0,
            OutlierMethod::Iqr => 1.5,
        })
    }
}

/// How categories become numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// One 0/1 column per training category (`OneHotEncoder`).
    #[default]
    OneHot,
    /// One column: the category's index in sorted order (`OrdinalEncoder`).
    Ordinal,
}

/// What a category unseen in training becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unknown {
    /// An error naming the column and value.
    Error,
    /// All zeros (one-hot) or -1 (ordinal), as scikit-learn's `handle_unknown="ignore"` /
    /// `unknown_value=-1`.
    #[default]
    Ignore,
}

/// `preprocess.categorical`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoricalConfig {
    /// One-hot or ordinal.
    #[serde(default)]
    pub encoding: Encoding,
    /// The policy for categories unseen in training.
    #[serde(default)]
    pub unknown: Unknown,
}

/// `preprocess.text`: tokenization with the `tokenizers` crate, then vectorization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextConfig {
    /// The tokenizer: trained on the training part, or loaded.
    pub tokenizer: TokenizerConfig,
    /// Tokens per text for `sequence` output (longer texts are truncated, shorter padded).
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// What the model sees.
    #[serde(default)]
    pub output: TextOutput,
    /// TF-IDF: replace each count `tf` by `1 + ln(tf)` (scikit-learn's `sublinear_tf`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub sublinear_tf: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn default_max_length() -> usize {
    128
}

/// What text becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextOutput {
    /// Token ids, padded / truncated to `max_length` (for sequence models).
    Sequence,
    /// Token counts per vocabulary entry.
    BagOfWords,
    /// TF-IDF over the vocabulary: raw counts × smoothed IDF (`ln((1 + n) / (1 + df)) + 1`,
    /// fitted on the training part), each row L2-normalised — scikit-learn's `TfidfVectorizer`
    /// defaults.
    #[default]
    Tfidf,
}

/// `preprocess.text.tokenizer`, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TokenizerConfig {
    /// Train a WordPiece vocabulary (BERT's scheme) on the training texts.
    Wordpiece(TrainTokenizer),
    /// Train a byte-pair-encoding vocabulary on the training texts.
    Bpe(TrainTokenizer),
    /// Load a BERT `vocab.txt` (WordPiece, `[CLS] … [SEP]` added).
    Vocab(VocabFile),
    /// Load a `tokenizer.json` saved by the `tokenizers` library (Rust or Python).
    File(TokenizerFile),
    /// Word or character n-grams, scikit-learn's `CountVectorizer` / `TfidfVectorizer`
    /// analyzers: the vocabulary is every n-gram of the training texts within the document
    /// frequency bounds.
    Ngrams(NgramTokenizer),
}

pipeline_core::tagged_enum!(TokenizerConfig, "kind", [
    "wordpiece" => TokenizerConfig::Wordpiece,
    "bpe" => TokenizerConfig::Bpe,
    "vocab" => TokenizerConfig::Vocab,
    "file" => TokenizerConfig::File,
    "ngrams" => TokenizerConfig::Ngrams,
]);

/// What an n-gram is made of (scikit-learn's `analyzer`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Analyzer {
    /// Words: runs of two or more letters, digits or underscores (`(?u)\b\w\w+\b`), joined
    /// by one space.
    #[default]
    Word,
    /// Characters of the text, whitespace runs collapsed to one space.
    Char,
    /// Characters inside word boundaries: each whitespace-separated word padded with a space on
    /// both sides.
    CharWb,
}

/// A document-frequency bound: a count of training texts (an integer) or a fraction of them
/// (a number with a decimal point), as scikit-learn's `min_df` / `max_df`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DocFrequency {
    /// At least / at most this many texts.
    Count(u64),
    /// At least / at most this fraction of the texts, in `[0, 1]`.
    Fraction(f64),
}

impl DocFrequency {
    /// The bound in texts, for `n` training texts.
    pub fn texts(self, n: usize) -> f64 {
        match self {
            DocFrequency::Count(c) => c as f64,
            DocFrequency::Fraction(f) => f * n as f64,
        }
    }
}

/// `kind: ngrams`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NgramTokenizer {
    /// Words or characters.
    #[serde(default)]
    pub analyzer: Analyzer,
    /// The smallest and largest n (`[1, 2]`: single words and pairs of adjacent words).
    #[serde(default = "default_ngram_range")]
    pub ngram_range: [usize; 2],
    /// Lower-case the text first.
    #[serde(default = "yes")]
    pub lowercase: bool,
    /// Keep n-grams that occur in at least this many (or this fraction of) training texts.
    #[serde(default = "default_min_df")]
    pub min_df: DocFrequency,
    /// Drop n-grams that occur in more than this many (or this fraction of) training texts.
    #[serde(default = "default_max_df")]
    pub max_df: DocFrequency,
    /// Keep only the this many n-grams most frequent over the training texts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_features: Option<usize>,
}

fn default_ngram_range() -> [usize; 2] {
    [1, 1]
}
fn default_min_df() -> DocFrequency {
    DocFrequency::Count(1)
}
fn default_max_df() -> DocFrequency {
    DocFrequency::Fraction(1.0)
}

impl Default for NgramTokenizer {
    fn default() -> Self {
        Self {
            analyzer: Analyzer::default(),
            ngram_range: default_ngram_range(),
            lowercase: true,
            min_df: default_min_df(),
            max_df: default_max_df(),
            max_features: None,
        }
    }
}

/// `kind: wordpiece` / `kind: bpe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainTokenizer {
    /// Vocabulary size, special tokens included.
    #[serde(default = "default_vocab_size")]
    pub vocab_size: usize,
    /// Pieces seen fewer times are not kept.
    #[serde(default = "default_min_frequency")]
    pub min_frequency: u64,
    /// Lower-case (and strip accents) before tokenizing.
    #[serde(default = "yes")]
    pub lowercase: bool,
}

fn default_vocab_size() -> usize {
    8000
}
fn default_min_frequency() -> u64 {
    2
}
fn yes() -> bool {
    true
}

/// `kind: vocab`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VocabFile {
    /// The `vocab.txt` (one token per line, `##` continuation prefix).
    pub path: PathBuf,
    /// Lower-case (and strip accents) first, as uncased BERT models expect.
    #[serde(default = "yes")]
    pub lowercase: bool,
}

/// `kind: file`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerFile {
    /// The `tokenizer.json`.
    pub path: PathBuf,
}

impl NgramTokenizer {
    fn validate(&self, key: &str, output: TextOutput) -> Vec<Issue> {
        let mut issues = Vec::new();
        let [lo, hi] = self.ngram_range;
        if lo == 0 || hi < lo {
            issues.push(Issue::new(
                format!("{key}.ngram_range"),
                format!("must be [min, max] with 1 <= min <= max, got [{lo}, {hi}]"),
            ));
        }
        for (name, b) in [("min_df", self.min_df), ("max_df", self.max_df)] {
            if let DocFrequency::Fraction(f) = b
                && !(0.0..=1.0).contains(&f)
            {
                issues.push(Issue::new(
                    format!("{key}.{name}"),
                    format!("a fraction of the texts must be in [0, 1], got {f} (an integer is a count of texts)"),
                ));
            }
        }
        if self.max_features == Some(0) {
            issues.push(Issue::new(format!("{key}.max_features"), "must be at least 1, got 0"));
        }
        if output == TextOutput::Sequence {
            issues.push(Issue::new(
                "preprocess.text.output",
                "n-grams are counted, not sequenced: use output tfidf or bag_of_words (or a wordpiece / bpe \
                 tokenizer for sequences)",
            ));
        }
        issues
    }
}

impl PreprocessConfig {
    /// Checks the values serde cannot.
    pub fn validate(&self) -> Vec<Issue> {
        let mut issues = self.split.validate("preprocess.split");
        match &self.series {
            Some(s) => {
                issues.extend(s.validate("preprocess.series"));
                if self.split.from_data {
                    issues.push(Issue::new(
                        "preprocess.split.from_data",
                        "a series is split in time, not by the data's parts",
                    ));
                }
            }
            None if self.split.gap > 0 => issues.push(Issue::new(
                "preprocess.split.gap",
                "leaves steps out between the windows of a time split: it needs preprocess.series",
            )),
            None => {}
        }
        if let Some(a) = &self.audio {
            issues.extend(a.validate("preprocess.audio"));
        }
        if let Some(o) = &self.outliers
            && !(o.threshold().is_finite() && o.threshold() > 0.0)
        {
            issues.push(Issue::new(
                "preprocess.outliers.threshold",
                format!("must be a positive number, got {}", o.threshold()),
            ));
        }
        if !self.missing.fill_number.is_finite() {
            issues.push(Issue::new("preprocess.missing.fill_number", "must be a finite number"));
        }
        if let Some(t) = &self.text {
            if t.max_length == 0 {
                issues.push(Issue::new("preprocess.text.max_length", "must be at least 1, got 0"));
            }
            match &t.tokenizer {
                TokenizerConfig::Wordpiece(c) | TokenizerConfig::Bpe(c) if c.vocab_size < 10 => {
                    issues.push(Issue::new(
                        "preprocess.text.tokenizer.vocab_size",
                        format!("must be at least 10, got {}", c.vocab_size),
                    ))
                }
                TokenizerConfig::Ngrams(c) => issues.extend(c.validate("preprocess.text.tokenizer", t.output)),
                TokenizerConfig::Vocab(VocabFile { path, .. }) | TokenizerConfig::File(TokenizerFile { path })
                    if !path.is_file() =>
                {
                    issues.push(Issue::new(
                        "preprocess.text.tokenizer.path",
                        format!("file not found: {}", path.display()),
                    ))
                }
                _ => {}
            }
        }
        issues
    }

    /// The tokenizer file, if the config names one.
    pub fn tokenizer_path_mut(&mut self) -> Option<&mut PathBuf> {
        match &mut self.text.as_mut()?.tokenizer {
            TokenizerConfig::Vocab(VocabFile { path, .. }) | TokenizerConfig::File(TokenizerFile { path }) => {
                Some(path)
            }
            _ => None,
        }
    }

    /// Makes the tokenizer's file path relative to `base` (the config file's directory);
    /// `hf://` paths are left for the caller to resolve through the hub cache.
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(path) = self.tokenizer_path_mut()
            && path.is_relative()
            && !path.to_string_lossy().starts_with("hf://")
        {
            *path = base.join(&*path);
        }
    }
}

fn one_step() -> usize {
    1
}

/// `preprocess.series`: how a series becomes forecasting examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesConfig {
    /// The time column: numbers or text (ISO dates sort as text), strictly increasing. Without
    /// it, rows are taken in file order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Past steps each forecast sees.
    pub history: usize,
    /// Steps forecast at once.
    #[serde(default = "one_step")]
    pub horizon: usize,
    /// The season length in steps (12 for monthly data with a yearly cycle): the seasonal-naive
    /// baseline and MASE's scale use it; 1 means none (the naive forecast).
    #[serde(default = "one_step")]
    pub season: usize,
    /// Observed numeric covariates: inputs for the history steps only.
    #[serde(default)]
    pub covariates: Vec<String>,
    /// Known-future numeric covariates: inputs for the history and for the forecast steps.
    #[serde(default)]
    pub known: Vec<String>,
    /// Steps between consecutive forecast origins in each window (1: every step).
    #[serde(default = "one_step")]
    pub stride: usize,
    /// Lags of the linear-autoregression baseline (default: `history`, the window the model
    /// sees).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ar_lags: Option<usize>,
}

impl SeriesConfig {
    /// Problems with the values; keys start with `key`.
    pub fn validate(&self, key: &str) -> Vec<Issue> {
        let mut issues = Vec::new();
        for (name, v) in
            [("history", self.history), ("horizon", self.horizon), ("season", self.season), ("stride", self.stride)]
        {
            if v == 0 {
                issues.push(Issue::new(format!("{key}.{name}"), "must be at least 1, got 0"));
            }
        }
        if self.ar_lags == Some(0) {
            issues.push(Issue::new(format!("{key}.ar_lags"), "must be at least 1, got 0"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (list, names) in [("covariates", &self.covariates), ("known", &self.known)] {
            for (i, n) in names.iter().enumerate() {
                if Some(n) == self.time.as_ref() {
                    issues.push(Issue::new(format!("{key}.{list}[{i}]"), format!("`{n}` is the time column")));
                } else if !seen.insert(n.clone()) {
                    issues.push(Issue::new(format!("{key}.{list}[{i}]"), format!("`{n}` is listed twice")));
                }
            }
        }
        issues
    }

    /// The baseline's AR order.
    pub fn ar_order(&self) -> usize {
        self.ar_lags.unwrap_or(self.history)
    }
}
