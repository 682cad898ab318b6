//! Search spaces: which config keys a study varies, and over what.
//!
//! A space maps dotted key paths of the pipeline config (`train.optimizer.lr`) to a
//! [`Distribution`], written in YAML as a one-key mapping:
//!
//! ```yaml
//! train.optimizer.lr: {loguniform: [1.0e-4, 1.0e-1]}
//! model.dropout: {uniform: [0.0, 0.5]}
//! model.hidden: {choice: [[128], [256, 128]]}
//! train.batch_size: {int: [16, 128], step: 16}
//! train.optimizer.weight_decay: {float: [0.0, 0.1], step: 0.01}
//! train.epochs: {fixed: 30}
//! ```
//!
//! `int` may also take `log: true` (sampled uniformly in log space). A parameter's value is a
//! JSON value ([`Value`]): numbers for the ranges, anything YAML can write for `choice` and
//! `fixed`. Parsing checks each entry's shape (one kind, two bounds, `low <= high`, a positive
//! step, a non-empty choice list) and names the key in its message.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
pub use serde_json::Value;

/// One trial's parameter values, by key path.
pub type Params = BTreeMap<String, Value>;

/// What one parameter is drawn from.
#[derive(Debug, Clone, PartialEq)]
pub enum Distribution {
    /// A real number, uniform in `[low, high]`.
    Uniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// A positive real number, uniform in log space over `[low, high]`.
    LogUniform {
        /// Lower bound (> 0).
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// A real number on the grid `low, low + step, …` up to `high`.
    Float {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
        /// Grid spacing (> 0).
        step: f64,
    },
    /// An integer in `[low, high]` on the grid `low, low + step, …`; with `log`, uniform in log
    /// space (step 1 only).
    Int {
        /// Lower bound.
        low: i64,
        /// Upper bound.
        high: i64,
        /// Grid spacing (≥ 1).
        step: i64,
        /// Draw in log space.
        log: bool,
    },
    /// One of a list of values.
    Choice(Vec<Value>),
    /// Always this value (a parameter of the trial config that is not searched).
    Fixed(Value),
}

/// How a numeric distribution is handled internally: a real interval (in log space for log
/// parameters), and how to turn a point of it back into a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Numeric {
    /// The interval's ends in internal space (widened by half a step for grids, so that each
    /// grid point owns an equal share).
    pub low: f64,
    /// Upper end.
    pub high: f64,
    /// Internal space is the logarithm of the value.
    pub log: bool,
}

impl Distribution {
    /// The numeric view of a range; `None` for `choice` and `fixed`.
    pub fn numeric(&self) -> Option<Numeric> {
        match *self {
            Distribution::Uniform { low, high } => Some(Numeric { low, high, log: false }),
            Distribution::LogUniform { low, high } => Some(Numeric { low: low.ln(), high: high.ln(), log: true }),
            Distribution::Float { low, high, step } => {
                let top = low + self.grid_len().saturating_sub(1) as f64 * step;
                let _ = high;
                Some(Numeric { low: low - step / 2.0, high: top + step / 2.0, log: false })
            }
            Distribution::Int { low, high, log: true, .. } => {
                Some(Numeric { low: (low as f64 - 0.5).ln(), high: (high as f64 + 0.5).ln(), log: true })
            }
            Distribution::Int { low, step, .. } => {
                let top = low + (self.grid_len().saturating_sub(1) as i64) * step;
                Some(Numeric { low: low as f64 - step as f64 / 2.0, high: top as f64 + step as f64 / 2.0, log: false })
            }
            Distribution::Choice(_) | Distribution::Fixed(_) => None,
        }
    }

    /// The value for the internal point `x` (see [`Distribution::numeric`]): exponentiated for
    /// log parameters, rounded to the grid, clamped into the range.
    pub fn from_internal(&self, x: f64) -> Value {
        match *self {
            Distribution::Uniform { low, high } => float(x.clamp(low, high)),
            Distribution::LogUniform { low, high } => float(x.exp().clamp(low, high)),
            Distribution::Float { low, step, .. } => {
                let k = ((x - low) / step).round().clamp(0.0, self.grid_len().saturating_sub(1) as f64);
                // Round away binary noise: 0.1 * 3 is 0.30000000000000004.
                float(round_to(low + k * step, step))
            }
            Distribution::Int { low, high, step, log } => {
                let v = if log { x.exp() } else { x };
                let k = ((v - low as f64) / step as f64).round().max(0.0) as i64;
                Value::from((low + k * step).clamp(low, high))
            }
            Distribution::Choice(_) | Distribution::Fixed(_) => Value::Null,
        }
    }

    /// The internal point of a value of this distribution (`None` if it is not a number).
    pub fn to_internal(&self, v: &Value) -> Option<f64> {
        let x = v.as_f64()?;
        let n = self.numeric()?;
        Some(if n.log { x.ln() } else { x })
    }

    /// The number of grid points of a discrete distribution (`int`, `float`, `choice`,
    /// `fixed`); 0 for the continuous ones.
    pub fn grid_len(&self) -> usize {
        match self {
            Distribution::Uniform { .. } | Distribution::LogUniform { .. } => 0,
            Distribution::Float { low, high, step } => ((high - low) / step + 1e-9).floor() as usize + 1,
            Distribution::Int { low, high, step, .. } => ((high - low) / step) as usize + 1,
            Distribution::Choice(c) => c.len(),
            Distribution::Fixed(_) => 1,
        }
    }

    /// Grid point `i` (`i < grid_len()`).
    pub fn grid_value(&self, i: usize) -> Value {
        match self {
            Distribution::Float { low, step, .. } => float(round_to(low + i as f64 * step, *step)),
            Distribution::Int { low, step, .. } => Value::from(low + i as i64 * step),
            Distribution::Choice(c) => c.get(i).cloned().unwrap_or(Value::Null),
            Distribution::Fixed(v) => v.clone(),
            Distribution::Uniform { .. } | Distribution::LogUniform { .. } => Value::Null,
        }
    }

    /// The values that bound what this distribution can produce: both ends of a range, every
    /// choice, the fixed value. Checking these against the config catches a key or a range
    /// the config rejects before any trial runs.
    pub fn extremes(&self) -> Vec<Value> {
        match self {
            Distribution::Uniform { low, high } | Distribution::LogUniform { low, high } => {
                vec![float(*low), float(*high)]
            }
            Distribution::Float { .. } | Distribution::Int { .. } => {
                vec![self.grid_value(0), self.grid_value(self.grid_len().saturating_sub(1))]
            }
            Distribution::Choice(c) => c.clone(),
            Distribution::Fixed(v) => vec![v.clone()],
        }
    }

    /// The distribution's YAML kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Distribution::Uniform { .. } => "uniform",
            Distribution::LogUniform { .. } => "loguniform",
            Distribution::Float { .. } => "float",
            Distribution::Int { .. } => "int",
            Distribution::Choice(_) => "choice",
            Distribution::Fixed(_) => "fixed",
        }
    }
}

fn float(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// `x` rounded to the decimals that `step` has (at most 12), so that grid values print as
/// they are written.
fn round_to(x: f64, step: f64) -> f64 {
    let mut scale = 1.0;
    let mut s = step;
    for _ in 0..12 {
        if (s - s.round()).abs() < 1e-9 {
            break;
        }
        s *= 10.0;
        scale *= 10.0;
    }
    (x * scale).round() / scale
}

/// The YAML form of one distribution, before its checks.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uniform: Option<[f64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    loguniform: Option<[f64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    float: Option<[f64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    int: Option<[i64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    step: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    choice: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fixed: Option<Value>,
}

impl TryFrom<Spec> for Distribution {
    type Error = String;

    fn try_from(s: Spec) -> Result<Self, String> {
        let kinds: Vec<&str> = [
            ("uniform", s.uniform.is_some()),
            ("loguniform", s.loguniform.is_some()),
            ("float", s.float.is_some()),
            ("int", s.int.is_some()),
            ("choice", s.choice.is_some()),
            ("fixed", s.fixed.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, on)| on.then_some(k))
        .collect();
        let kind = match kinds.as_slice() {
            [one] => *one,
            [] => {
                return Err("expected one of `uniform`, `loguniform`, `float`, `int`, `choice` or `fixed`".into());
            }
            many => return Err(format!("give one kind of distribution, found {}", many.join(" and "))),
        };
        let ordered = |low: f64, high: f64| {
            if low.is_finite() && high.is_finite() && low <= high {
                Ok(())
            } else if low > high {
                Err(format!("{kind}: low {low} is above high {high}"))
            } else {
                Err(format!("{kind}: bounds must be finite numbers, got [{low}, {high}]"))
            }
        };
        if s.step.is_some() && !matches!(kind, "float" | "int") {
            return Err(format!("`step` applies to `float` and `int`, not `{kind}`"));
        }
        if s.log.is_some() && kind != "int" {
            return Err(format!("`log` applies to `int` (use `loguniform` for real numbers), not `{kind}`"));
        }
        Ok(match (kind, s) {
            ("uniform", Spec { uniform: Some([low, high]), .. }) => {
                ordered(low, high)?;
                Distribution::Uniform { low, high }
            }
            ("loguniform", Spec { loguniform: Some([low, high]), .. }) => {
                ordered(low, high)?;
                if low <= 0.0 {
                    return Err(format!("loguniform: low must be above 0, got {low}"));
                }
                Distribution::LogUniform { low, high }
            }
            ("float", Spec { float: Some([low, high]), step, .. }) => {
                ordered(low, high)?;
                let Some(step) = step else {
                    return Err("float: needs a `step` (use `uniform` for a continuous range)".into());
                };
                if !(step > 0.0 && step.is_finite()) {
                    return Err(format!("float: step must be above 0, got {step}"));
                }
                Distribution::Float { low, high, step }
            }
            ("int", Spec { int: Some([low, high]), step, log, .. }) => {
                ordered(low as f64, high as f64)?;
                let step = step.unwrap_or(1.0);
                if step < 1.0 || step.fract() != 0.0 {
                    return Err(format!("int: step must be a whole number of at least 1, got {step}"));
                }
                let log = log.unwrap_or(false);
                if log && low < 1 {
                    return Err(format!("int: with log: true, low must be at least 1, got {low}"));
                }
                if log && step != 1.0 {
                    return Err("int: log: true takes no step".into());
                }
                Distribution::Int { low, high, step: step as i64, log }
            }
            ("choice", Spec { choice: Some(c), .. }) => {
                if c.is_empty() {
                    return Err("choice: the list of values is empty".into());
                }
                Distribution::Choice(c)
            }
            ("fixed", Spec { fixed: Some(v), .. }) => Distribution::Fixed(v),
            _ => return Err(format!("{kind}: malformed")),
        })
    }
}

impl From<&Distribution> for Spec {
    fn from(d: &Distribution) -> Self {
        match d.clone() {
            Distribution::Uniform { low, high } => Spec { uniform: Some([low, high]), ..Default::default() },
            Distribution::LogUniform { low, high } => Spec { loguniform: Some([low, high]), ..Default::default() },
            Distribution::Float { low, high, step } => {
                Spec { float: Some([low, high]), step: Some(step), ..Default::default() }
            }
            Distribution::Int { low, high, step, log } => Spec {
                int: Some([low, high]),
                step: (step != 1).then_some(step as f64),
                log: log.then_some(true),
                ..Default::default()
            },
            Distribution::Choice(c) => Spec { choice: Some(c), ..Default::default() },
            Distribution::Fixed(v) => Spec { fixed: Some(v), ..Default::default() },
        }
    }
}

impl<'de> Deserialize<'de> for Distribution {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spec = Spec::deserialize(d)?;
        Distribution::try_from(spec).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Distribution {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Spec::from(self).serialize(s)
    }
}

/// The search space: parameters in the order the config lists them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Space(pub Vec<(String, Distribution)>);

impl Space {
    /// The parameters' key paths, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    /// Whether the space has no parameter.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of points of a fully discrete space (the grid sampler's trials); `None`
    /// when a parameter is continuous (`uniform`, `loguniform`).
    pub fn grid_size(&self) -> Option<usize> {
        self.0.iter().try_fold(1usize, |acc, (_, d)| match d.grid_len() {
            0 => None,
            n => Some(acc.saturating_mul(n)),
        })
    }

    /// Grid point `index` (mixed radix over the parameters, the last varying fastest).
    pub fn grid_point(&self, mut index: usize) -> Params {
        let mut p = Params::new();
        for (key, d) in self.0.iter().rev() {
            let n = d.grid_len().max(1);
            p.insert(key.clone(), d.grid_value(index % n));
            index /= n;
        }
        p
    }
}

impl<'de> Deserialize<'de> for Space {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Space;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of config key paths to distributions")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Space, A::Error> {
                let mut out: Vec<(String, Distribution)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    let d = map.next_value::<Distribution>()?;
                    if out.iter().any(|(k, _)| *k == key) {
                        return Err(serde::de::Error::custom(format!("the key path {key} appears twice")));
                    }
                    out.push((key, d));
                }
                Ok(Space(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl Serialize for Space {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, d) in &self.0 {
            m.serialize_entry(k, d)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Space, String> {
        serde_yaml::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_every_kind_in_order() {
        let s = parse(
            "b.lr: {loguniform: [1.0e-4, 0.1]}\na.d: {uniform: [0, 0.5]}\nw: {float: [0, 0.1], step: 0.01}\n\
             n: {int: [16, 128], step: 16}\nh: {choice: [[128], [256, 128]]}\ne: {fixed: 3}\nl: {int: [1, 64], log: true}\n",
        )
        .unwrap();
        assert_eq!(s.keys().collect::<Vec<_>>(), ["b.lr", "a.d", "w", "n", "h", "e", "l"]);
        assert_eq!(s.0[2].1.grid_len(), 11);
        assert_eq!(s.0[3].1.grid_len(), 8);
        assert_eq!(s.0[3].1.grid_value(7), Value::from(128));
        assert_eq!(s.0[2].1.grid_value(3), serde_json::json!(0.03));
        assert_eq!(s.grid_size(), None);
        // Round trip through YAML.
        let again: Space = serde_yaml::from_str(&serde_yaml::to_string(&s).unwrap()).unwrap();
        assert_eq!(again, s);
    }

    #[test]
    fn rejects_malformed_entries() {
        let e = |y: &str| parse(y).unwrap_err();
        assert!(e("k: {uniform: [2, 1]}").starts_with("uniform: low 2 is above high 1"));
        assert!(e("k: {loguniform: [0, 1]}").contains("loguniform: low must be above 0, got 0"));
        assert!(
            e("k: {uniform: [1, 2], choice: [1]}").contains("give one kind of distribution, found uniform and choice")
        );
        assert!(e("k: {normal: [0, 1]}").contains("unknown field `normal`"));
        assert!(e("k: {}").contains("expected one of `uniform`"));
        assert!(e("k: {choice: []}").contains("choice: the list of values is empty"));
        assert!(e("k: {float: [0, 1]}").contains("float: needs a `step`"));
        assert!(e("k: {int: [1, 8], step: 0.5}").contains("int: step must be a whole number"));
        assert!(e("k: {uniform: [1]}").contains("invalid length 1"));
        assert!(e("k: {uniform: [0, 1], step: 0.1}").contains("`step` applies to `float` and `int`"));
        assert!(e("k: {int: [1, 2]}\nk: {int: [1, 3]}").contains("appears twice"));
    }

    #[test]
    fn internal_space_round_trips_and_respects_grids() {
        let d = Distribution::Int { low: 16, high: 128, step: 16, log: false };
        let n = d.numeric().unwrap();
        assert_eq!((n.low, n.high), (8.0, 136.0));
        assert_eq!(d.from_internal(8.0), Value::from(16));
        assert_eq!(d.from_internal(135.9), Value::from(128));
        assert_eq!(d.from_internal(39.0), Value::from(32));
        let l = Distribution::LogUniform { low: 1e-4, high: 1e-1 };
        let n = l.numeric().unwrap();
        assert!((n.low - 1e-4f64.ln()).abs() < 1e-12);
        assert_eq!(l.to_internal(&l.from_internal(-5.0)), Some(-5.0));
        let f = Distribution::Float { low: 0.0, high: 0.1, step: 0.01 };
        assert_eq!(f.from_internal(0.0299), serde_json::json!(0.03));
        let space = Space(vec![
            ("a".into(), Distribution::Choice(vec![Value::from("x"), Value::from("y")])),
            ("b".into(), Distribution::Int { low: 1, high: 3, step: 1, log: false }),
        ]);
        assert_eq!(space.grid_size(), Some(6));
        let p = space.grid_point(4);
        assert_eq!((p["a"].clone(), p["b"].clone()), (Value::from("y"), Value::from(2)));
    }
}
