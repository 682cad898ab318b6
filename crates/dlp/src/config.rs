//! The pipeline YAML: one file, one section per phase crate, checked before any work starts.

use std::fmt;
use std::path::{Path, PathBuf};

use data_ingest::DataConfig;
use models::ModelConfig;
use pipeline_core::Direction;
use pipeline_core::config::{Issue, KEY_MARK};
use preprocess::PreprocessConfig;
use serde::{Deserialize, Serialize};
use serde_yaml::Value as Yaml;
use train::{Monitor, TrainConfig};

use crate::locate::KeyIndex;

/// A whole pipeline. Each section is owned and validated by its crate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// The pipeline's name: run directories are called `<name>-<timestamp>`.
    pub name: String,
    /// The base seed of every random choice (split, initialisation, shuffling, dropout).
    #[serde(default)]
    pub seed: u64,
    /// Where tensors live: `cpu`, `cuda`, `cuda:<n>` or `metal` (the GPU ones need a build with
    /// that cargo feature).
    #[serde(default)]
    pub device: crate::device::DeviceSpec,
    /// CPU threads for tensor kernels; 0 uses every core.
    #[serde(default)]
    pub threads: usize,
    /// Where the data comes from (`data-ingest`).
    pub data: DataConfig,
    /// Scaling and splitting (`preprocess`).
    #[serde(default)]
    pub preprocess: PreprocessConfig,
    /// The architecture (`models`).
    pub model: ModelConfig,
    /// The fit loop (`train`).
    #[serde(default)]
    pub train: TrainConfig,
    /// Evaluation: top-k, baselines, bootstrap, the deployment gate (`eval`).
    #[serde(default)]
    pub eval: crate::evaluate::EvalConfig,
    /// Hyperparameter search (`tune`; used by `dlp tune`, ignored by `dlp run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tune: Option<tune::TuneConfig>,
}

impl PipelineConfig {
    /// The problems of a parsed config (semantic checks of every section).
    pub(crate) fn validate(&self) -> Vec<Issue> {
        let mut issues = Vec::new();
        let name_ok = !self.name.is_empty()
            && self.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !self.name.starts_with('.');
        if !name_ok {
            issues.push(Issue::new(
                "name",
                format!("must be letters, digits, '-', '_' or '.' (it names run directories), got {:?}", self.name),
            ));
        }
        issues.extend(self.data.validate());
        issues.extend(self.preprocess.validate());
        issues.extend(self.model.validate());
        issues.extend(self.train.validate(self.preprocess.split.validation > 0.0));
        issues.extend(self.eval.validate());
        if matches!(self.model, ModelConfig::Gan(_)) {
            issues.extend(self.gan_issues());
        } else if self.train.gan.is_some() {
            issues.push(Issue::new("train.gan", "is for `model: {arch: gan}` only; this model is not a GAN"));
        }
        if let Some(t) = &self.tune {
            issues.extend(t.validate());
        }
        if issues.is_empty() {
            // The search space is checked against the rest of the config, so only once that is sound.
            issues.extend(tune_issues(self));
        }
        issues
    }

    /// A GAN run reads pixel-scaled images and, of `train`, only [`train::gan::TRAIN_KEYS`]: any
    /// other training key set away from its default would be silently ignored.
    fn gan_issues(&self) -> Vec<Issue> {
        let mut issues = Vec::new();
        if self.preprocess.scale != preprocess::Scale::Pixel {
            issues.push(Issue::new(
                "preprocess.scale",
                "a GAN's generator ends in a sigmoid, so real images must be scaled to [0, 1]: use `pixel`",
            ));
        }
        issues.extend(train::gan::unused_settings(&self.train));
        issues
    }

    /// The config as YAML, with every default filled in.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_else(|e| format!("# cannot serialize the config: {e}\n"))
    }
}

/// One problem in a config file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
    /// Dotted key path; empty for the document itself.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a config file; displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<Located>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{l}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Locates `issues` (found after loading, e.g. a model that does not fit the data's shapes) in
/// the config file at `path`.
pub fn located(path: &Path, issues: Vec<Issue>) -> ConfigError {
    let index = KeyIndex::new(&std::fs::read_to_string(path).unwrap_or_default());
    ConfigError(
        issues
            .into_iter()
            .map(|i| Located { file: path.into(), position: index.find(&i.key), key: i.key, message: i.message })
            .collect(),
    )
}

/// Reads, parses and validates the pipeline config at `path`. Relative data paths are resolved
/// against the config file's directory, so the returned config means the same from anywhere.
pub fn load(path: &Path) -> Result<PipelineConfig, ConfigError> {
    load_with(path, |_| {})
}

/// The config at `config_path` with its data file replaced by `data` (`dlp retrain --data`,
/// `dlp evaluate --data`): the file of a csv, jsonl, text_lines, parquet or arrow section.
pub fn with_data(config_path: &Path, data: &Path) -> anyhow::Result<PipelineConfig> {
    use data_ingest::DataConfig;
    let mut format_ok = true;
    let config = load_with(config_path, |c| match &mut c.data {
        DataConfig::Csv(c) => c.path = data.to_path_buf(),
        DataConfig::TextLines(c) => c.path = data.to_path_buf(),
        DataConfig::Jsonl(c) => c.path = data.to_path_buf(),
        DataConfig::Parquet(c) | DataConfig::Arrow(c) => c.path = data.to_path_buf(),
        _ => format_ok = false,
    })?;
    if !format_ok {
        anyhow::bail!(
            "{}: --data replaces the file of a `format: csv`, `jsonl`, `text_lines`, `parquet` or `arrow` data section; \
             this config reads another format: put the new data in a config and give it with --config",
            config_path.display()
        );
    }
    Ok(config)
}

/// [`load`], with `edit` applied to the parsed config (paths resolved) before it is validated:
/// `dlp retrain` puts the new data file in place of the config's before its existence is
/// checked.
pub fn load_with(path: &Path, edit: impl FnOnce(&mut PipelineConfig)) -> Result<PipelineConfig, ConfigError> {
    let one = |position, key: &str, message: String| {
        ConfigError(vec![Located { file: path.into(), position, key: key.into(), message }])
    };
    let text = std::fs::read_to_string(path).map_err(|e| one(None, "", format!("cannot read the config: {e}")))?;
    let index = KeyIndex::new(&text);
    let de = serde_yaml::Deserializer::from_str(&text);
    let mut config: PipelineConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let (key, message, location) = split_error(e);
        let position = match index.find(&key) {
            Some(p) if !key.is_empty() => Some(p),
            _ => location.map(|l| (l.line(), l.column() + 1)),
        };
        one(position, &key, message)
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = std::path::absolute(&base).unwrap_or(base);
    config.data.resolve_paths(&base);
    config.preprocess.resolve_paths(&base);
    let hub_cache = data_ingest::hub::cache_dir();
    config.model.resolve_paths(&base, &hub_cache);
    edit(&mut config);
    let mut hub_issues = Vec::new();
    if let Some(path) = config.preprocess.tokenizer_path_mut()
        && data_ingest::hub::parse(path).is_some()
    {
        match data_ingest::hub::resolve(path) {
            Ok(local) => *path = local,
            Err(e) => hub_issues.push(Issue::new("preprocess.text.tokenizer.path", e.to_string())),
        }
    }
    let mut issues = config.validate();
    issues.extend(hub_issues);
    if !issues.is_empty() {
        return Err(ConfigError(
            issues
                .into_iter()
                .map(|i| Located { file: path.into(), position: index.find(&i.key), key: i.key, message: i.message })
                .collect(),
        ));
    }
    Ok(config)
}

/// The dotted key and the message of a deserialization error (moving the key that a tagged
/// section marks inside its message, or that serde_yaml prefixes, into the key), and where
/// serde_yaml saw it.
pub(crate) fn split_error(
    e: serde_path_to_error::Error<serde_yaml::Error>,
) -> (String, String, Option<serde_yaml::Location>) {
    let mut key = e.path().to_string();
    if key == "." || key == "?" {
        key.clear();
    }
    let inner = e.into_inner();
    let mut message = inner.to_string();
    // serde_yaml appends " at line L column C" and may prefix a path of its own; the key
    // and position are reported in our own format instead.
    if let Some(cut) = message.rfind(" at line ") {
        message.truncate(cut);
    }
    // A tagged section (`model:`, `train.optimizer:`, …) marks the key inside it.
    if let Some((inner_key, rest)) = message.split_once(KEY_MARK).and_then(|(_, r)| r.split_once(KEY_MARK)) {
        key = match (key.is_empty(), inner_key.starts_with('[')) {
            (true, _) => inner_key.to_string(),
            (false, true) => format!("{key}{inner_key}"),
            (false, false) => format!("{key}.{inner_key}"),
        };
        message = rest.trim_start().to_string();
    } else if let Some((prefix, rest)) = message.split_once(": ")
        && !prefix.contains(' ')
        && (key.is_empty()
            || prefix == key
            || prefix.starts_with(&format!("{key}."))
            || key.starts_with(&format!("{prefix}.")))
    {
        // serde_yaml's own path: keep the more precise of the two.
        if prefix.len() > key.len() {
            key = prefix.to_string();
        }
        message = rest.to_string();
    }
    (key, message, inner.location())
}

// The `tune:` section: trial configs (the base config with a trial's parameters set) and the
// checks of the search space against the rest of the config. Here, not in `tuning`, because
// checking a space means validating configs: `validate` calls them, they call `validate`.

/// The per-epoch metric that `name` designates, if it is a validation metric.
pub(crate) fn monitor(name: &str) -> Option<Monitor> {
    match name {
        "val_accuracy" => Some(Monitor::ValAccuracy),
        "val_loss" => Some(Monitor::ValLoss),
        _ => None,
    }
}

/// The config without its `tune:` section, as a YAML value: what each trial's parameters are
/// written into.
pub fn base_value(config: &PipelineConfig) -> Yaml {
    let base = PipelineConfig { tune: None, ..config.clone() };
    serde_yaml::to_value(&base).unwrap_or(Yaml::Null)
}

/// Sets the dotted `key` of `value` (creating absent sections) to `v`.
pub(crate) fn set_path(value: &mut Yaml, key: &str, v: Yaml) -> Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    let mut cur = value;
    for (i, part) in parts.iter().enumerate() {
        if cur.is_null() {
            *cur = Yaml::Mapping(Default::default());
        }
        let Yaml::Mapping(map) = cur else {
            return Err(format!("unknown key path: {} is a value, not a section", parts[..i].join(".")));
        };
        let k = Yaml::String((*part).to_string());
        if i + 1 == parts.len() {
            map.insert(k, v);
            return Ok(());
        }
        cur = map.entry(k).or_insert(Yaml::Null);
    }
    Ok(())
}

/// Why a trial's config is not a valid config.
pub(crate) enum TrialConfigError {
    /// The key path cannot be set.
    Path(String),
    /// The config does not parse: the key and the message.
    Parse(String, String),
    /// It parses but its sections report problems.
    Invalid(Vec<Issue>),
}

impl TrialConfigError {
    pub(crate) fn message(&self) -> String {
        match self {
            TrialConfigError::Path(m) => m.clone(),
            TrialConfigError::Parse(k, m) => format!("{k}: {m}"),
            TrialConfigError::Invalid(issues) => issues.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        }
    }
}

/// The config of a trial: `base` with `params` set, parsed and validated.
pub(crate) fn trial_config<'p>(
    base: &Yaml,
    params: impl IntoIterator<Item = (&'p String, &'p tune::Value)>,
) -> Result<PipelineConfig, TrialConfigError> {
    let mut value = base.clone();
    for (key, v) in params {
        let v = serde_yaml::to_value(v).map_err(|e| TrialConfigError::Path(e.to_string()))?;
        set_path(&mut value, key, v).map_err(TrialConfigError::Path)?;
    }
    let config: PipelineConfig = serde_path_to_error::deserialize(value).map_err(|e| {
        let (key, message, _) = split_error(e);
        TrialConfigError::Parse(key, message)
    })?;
    let issues = config.validate();
    if !issues.is_empty() {
        return Err(TrialConfigError::Invalid(issues));
    }
    Ok(config)
}

/// The `tune:` section's problems that need the rest of the config: the objective, and each
/// key path of the space tried with its distribution's extreme values.
pub(crate) fn tune_issues(config: &PipelineConfig) -> Vec<Issue> {
    let Some(t) = &config.tune else { return Vec::new() };
    let mut issues = Vec::new();
    match monitor(&t.objective.metric) {
        None => issues.push(Issue::new(
            "tune.objective.metric",
            format!(
                "expected `val_accuracy` or `val_loss` (a validation metric the fit loop reports after every epoch), \
                 got {:?}",
                t.objective.metric
            ),
        )),
        Some(m) => {
            if config.preprocess.split.validation <= 0.0 {
                issues.push(Issue::new(
                    "tune.objective.metric",
                    format!(
                        "{} needs a validation part: set preprocess.split.validation above 0 (trials never see the test part)",
                        m.name()
                    ),
                ));
            }
            if let Some(d) = t.objective.direction
                && d != m.direction()
            {
                issues.push(Issue::new(
                    "tune.objective.direction",
                    format!("{} improves by {}, not by {}", m.name(), word(m.direction()), word(d)),
                ));
            }
        }
    }
    let base = base_value(config);
    for (key, d) in &t.space.0 {
        let at = format!("tune.space.{key}");
        if key == "tune" || key.starts_with("tune.") {
            issues.push(Issue::new(at, "the tune section itself cannot be searched"));
            continue;
        }
        for v in d.extremes() {
            let shown = serde_json::to_string(&v).unwrap_or_default();
            let problem = match trial_config(&base, [(key, &v)]) {
                Ok(_) => None,
                Err(TrialConfigError::Path(m)) => Some(m),
                Err(TrialConfigError::Parse(k, m)) if m.starts_with("unknown field") => {
                    Some(format!("unknown key path: {k}: {m}"))
                }
                Err(TrialConfigError::Parse(k, m)) => {
                    Some(format!("{key} = {shown} does not fit the config: {k}: {m}"))
                }
                Err(TrialConfigError::Invalid(found)) => found
                    .into_iter()
                    .find(|i| {
                        i.key == *key || i.key.starts_with(&format!("{key}.")) || i.key.starts_with(&format!("{key}["))
                    })
                    .map(|i| format!("{key} = {shown} is not allowed: {}", i.message)),
            };
            if let Some(p) = problem {
                issues.push(Issue::new(at, p));
                break;
            }
        }
    }
    issues
}

pub(crate) fn word(d: Direction) -> &'static str {
    match d {
        Direction::Maximize => "maximize",
        Direction::Minimize => "minimize",
    }
}
