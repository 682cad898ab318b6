//! What every crate's config section shares: the way a semantic problem is reported.
//!
//! Each phase crate owns one top-level section of the pipeline YAML as a
//! `#[serde(deny_unknown_fields)]` struct with defaults. Type errors and unknown keys are caught
//! by serde; values that parse but make no sense (a split that does not sum to one, zero epochs,
//! a missing data file) are caught by the section's `validate` method, which returns [`Issue`]s.
//! The CLI turns each issue into one line naming the file, the line and the key.

use std::fmt;

/// The options of a tagged variant that has none (`kind: constant`): any key besides the tag
/// is an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

/// A problem with one config key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Dotted key path from the top of the file, e.g. `train.epochs`.
    pub key: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl Issue {
    /// An issue with `key` (dotted path).
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Implements `Deserialize` for an internally tagged config enum through [`Tagged`], listing
/// each variant once: its tag value and the constructor of the variant from its struct (a
/// tuple variant's name, or a closure for a unit variant, e.g. `|_: NoOptions| Schedule::Constant`).
/// Also defines `TAGS`, the accepted tag values in that order.
///
/// ```ignore
/// pipeline_core::tagged_enum!(DataConfig, "format", ["idx" => DataConfig::Idx, "csv" => DataConfig::Csv]);
/// ```
#[macro_export]
macro_rules! tagged_enum {
    ($ty:ty, $tag:literal, [$($name:literal => $ctor:expr),+ $(,)?]) => {
        impl $ty {
            /// The values its tag accepts.
            pub const TAGS: &'static [&'static str] = &[$($name),+];
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                let t = $crate::config::Tagged::read(d, $tag, <$ty>::TAGS)?;
                $(
                    if t.variant == $name {
                        return t.parse().map($ctor);
                    }
                )+
                Err(<D::Error as ::serde::de::Error>::custom("Tagged::read admits only the listed variants"))
            }
        }
    };
}

/// Marks the key path inside an error message from [`Tagged::parse`], so that the caller can
/// move it into the key it reports: `"\u{1f}lr\u{1f} invalid type: …"`.
pub const KEY_MARK: char = '\u{1f}';

/// Deserialization of internally tagged config enums (`arch: mlp`, `kind: adamw`, …) that keeps
/// the path of an error inside the variant.
///
/// `#[serde(tag = "…")]` buffers the variant's content, and an error inside it loses its key:
/// `train.optimizer: invalid type` instead of `train.optimizer.lr: invalid type`. A config enum
/// instead implements `Deserialize` by reading the section as a [`Tagged`] and parsing the
/// variant's struct with [`Tagged::parse`], whose errors carry the inner key path (between
/// [`KEY_MARK`]s) for the config loader to report.
#[derive(Debug, Clone)]
pub struct Tagged {
    /// The variant named by the tag.
    pub variant: String,
    body: serde_json::Value,
}

impl Tagged {
    /// Reads a mapping with the string field `tag`, which must be one of `variants`.
    pub fn read<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
        tag: &str,
        variants: &'static [&'static str],
    ) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut body = <serde_json::Value as serde::Deserialize>::deserialize(deserializer)?;
        let Some(map) = body.as_object_mut() else {
            return Err(D::Error::custom(format!("expected a mapping with a `{tag}` field")));
        };
        let variant = match map.remove(tag) {
            None => return Err(D::Error::missing_field(leak(tag))),
            Some(serde_json::Value::String(s)) => s,
            Some(other) => {
                return Err(D::Error::custom(format!("{KEY_MARK}{tag}{KEY_MARK} expected a string, found {other}")));
            }
        };
        if !variants.contains(&variant.as_str()) {
            return Err(D::Error::custom(format!(
                "{KEY_MARK}{tag}{KEY_MARK} unknown variant `{variant}`, expected {}",
                one_of(variants)
            )));
        }
        Ok(Self { variant, body })
    }

    /// Parses the rest of the mapping as the variant's struct `T`.
    pub fn parse<T: serde::de::DeserializeOwned, E: serde::de::Error>(self) -> Result<T, E> {
        serde_path_to_error::deserialize(self.body).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            let path = if path == "." || path == "?" { String::new() } else { path };
            // A nested tagged enum already marked its inner path: prepend ours.
            let (inner, message) = match message.split_once(KEY_MARK).and_then(|(_, r)| r.split_once(KEY_MARK)) {
                Some((inner, rest)) => (inner.to_string(), rest.trim_start().to_string()),
                None => (String::new(), message),
            };
            let full = match (path.is_empty(), inner.is_empty()) {
                (true, _) => inner,
                (false, true) => path,
                (false, false) if inner.starts_with('[') => format!("{path}{inner}"),
                (false, false) => format!("{path}.{inner}"),
            };
            if full.is_empty() {
                E::custom(message)
            } else {
                E::custom(format!("{KEY_MARK}{full}{KEY_MARK} {message}"))
            }
        })
    }
}

/// `missing_field` wants a `&'static str`; tag names are static in practice, but the API takes
/// `&str` for convenience. Only called once per failed load, so the leak is bounded.
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn one_of(names: &[&str]) -> String {
    match names {
        [one] => format!("`{one}`"),
        _ => format!("one of {}", names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        lr: f64,
        #[serde(default)]
        list: Vec<u32>,
    }

    #[derive(Debug, PartialEq)]
    enum Opt {
        A(Inner),
    }

    impl<'de> Deserialize<'de> for Opt {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let t = Tagged::read(d, "kind", &["a"])?;
            assert_eq!(t.variant, "a");
            t.parse().map(Opt::A)
        }
    }

    fn err(json: &str) -> String {
        serde_json::from_str::<Opt>(json).unwrap_err().to_string().replace(KEY_MARK, "|")
    }

    #[test]
    fn errors_keep_the_inner_key() {
        assert_eq!(
            serde_json::from_str::<Opt>(r#"{"kind": "a", "lr": 0.5}"#).unwrap(),
            Opt::A(Inner { lr: 0.5, list: vec![] })
        );
        assert!(err(r#"{"kind": "a", "lr": "x"}"#).starts_with("|lr| invalid type: string \"x\", expected f64"));
        assert!(err(r#"{"kind": "a", "lr": 1, "list": [1, "x"]}"#).starts_with("|list[1]| invalid type"));
        assert!(
            err(r#"{"kind": "a", "lr": 1, "lx": 1}"#).starts_with("|lx| unknown field `lx`, expected `lr` or `list`")
        );
        assert!(err(r#"{"kind": "b"}"#).starts_with("|kind| unknown variant `b`, expected `a`"));
        assert!(err(r#"{"lr": 1}"#).starts_with("missing field `kind`"));
    }
}
