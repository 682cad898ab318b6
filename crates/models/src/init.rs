//! Seeded weight initialisation.
//!
//! candle's CPU random generator cannot be seeded, so a `VarMap` initialises weights differently
//! on every run. [`Params`] is a `VarMap` whose new variables are drawn from a seeded
//! [`Rng`](pipeline_core::Rng) instead: the same seed and the same model give the same weights.

use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::{FanInOut, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use pipeline_core::Rng;
use rand_distr::{Distribution, Normal, Uniform};
use serde::{Deserialize, Serialize};

/// How a layer's weights are initialised (`model.init`). Biases are zero except under `torch`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitScheme {
    /// PyTorch's default for `nn.Linear` / `nn.Conv2d`: weights and biases uniform in
    /// `±1/sqrt(fan_in)` (`kaiming_uniform_(a=sqrt(5))`).
    #[default]
    Torch,
    /// Glorot / Xavier uniform: `±sqrt(6 / (fan_in + fan_out))`.
    XavierUniform,
    /// Glorot / Xavier normal: std `sqrt(2 / (fan_in + fan_out))`.
    XavierNormal,
    /// He / Kaiming uniform for ReLU: `±sqrt(6 / fan_in)`.
    KaimingUniform,
    /// He / Kaiming normal for ReLU: std `sqrt(2 / fan_in)`.
    KaimingNormal,
}

impl InitScheme {
    /// The initialisation of a weight of `shape` (`[out, in, ..kernel]`).
    pub fn weight(self, shape: &Shape) -> Init {
        let fan_in = FanInOut::FanIn.for_shape(shape) as f64;
        let fan_out = FanInOut::FanOut.for_shape(shape) as f64;
        match self {
            InitScheme::Torch => {
                let b = 1.0 / fan_in.sqrt();
                Init::Uniform { lo: -b, up: b }
            }
            InitScheme::XavierUniform => {
                let b = (6.0 / (fan_in + fan_out)).sqrt();
                Init::Uniform { lo: -b, up: b }
            }
            InitScheme::XavierNormal => Init::Randn { mean: 0.0, stdev: (2.0 / (fan_in + fan_out)).sqrt() },
            InitScheme::KaimingUniform => {
                let b = (6.0 / fan_in).sqrt();
                Init::Uniform { lo: -b, up: b }
            }
            InitScheme::KaimingNormal => Init::Randn { mean: 0.0, stdev: (2.0 / fan_in).sqrt() },
        }
    }

    /// The initialisation of the bias of a layer with `fan_in` inputs.
    pub fn bias(self, fan_in: usize) -> Init {
        match self {
            InitScheme::Torch => {
                let b = 1.0 / (fan_in as f64).sqrt();
                Init::Uniform { lo: -b, up: b }
            }
            _ => Init::Const(0.0),
        }
    }
}

/// Trainable parameters: a `VarMap` initialised from a seeded stream, with some variables
/// optionally frozen (left out of [`trainable_vars`](Self::trainable_vars)).
#[derive(Clone)]
pub struct Params {
    varmap: VarMap,
    rng: Arc<Mutex<Rng>>,
    frozen: Arc<Mutex<Vec<String>>>,
}

impl Params {
    /// Empty parameters whose variables will be drawn from `rng`, in the order the model
    /// creates them.
    pub fn new(rng: Rng) -> Self {
        Self { varmap: VarMap::new(), rng: Arc::new(Mutex::new(rng)), frozen: Arc::default() }
    }

    /// A `VarBuilder` that creates (or returns existing) variables in these parameters.
    pub fn var_builder(&self, device: &Device) -> VarBuilder<'static> {
        let backend = SeededBackend { varmap: self.varmap.clone(), rng: self.rng.clone() };
        VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone())
    }

    /// The variables, for an optimizer or for saving.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// All variables, sorted by name (deterministic order).
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let data = self.varmap.data().lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Freezes every variable whose name starts with `prefix`: the optimizer leaves it alone.
    pub fn freeze(&self, prefix: &str) {
        self.frozen.lock().unwrap_or_else(|p| p.into_inner()).push(prefix.to_string());
    }

    /// The variables the optimizer updates, sorted by name.
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        let frozen = self.frozen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.named_vars().into_iter().filter(|(n, _)| !frozen.iter().any(|f| n.starts_with(f.as_str()))).collect()
    }

    /// The number of scalar parameters.
    pub fn count(&self) -> usize {
        self.named_vars().iter().map(|(_, v)| v.elem_count()).sum()
    }
}

struct SeededBackend {
    varmap: VarMap,
    rng: Arc<Mutex<Rng>>,
}

impl SeededBackend {
    fn sample(&self, shape: &Shape, init: Init) -> candle_core::Result<Vec<f32>> {
        let n = shape.elem_count();
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let err = |e: &dyn std::fmt::Display| candle_core::Error::Msg(format!("weight initialisation: {e}"));
        Ok(match init {
            Init::Const(c) => vec![c as f32; n],
            Init::Uniform { lo, up } => {
                let d = Uniform::new(lo as f32, up as f32).map_err(|e| err(&e))?;
                (0..n).map(|_| d.sample(&mut *rng)).collect()
            }
            Init::Randn { mean, stdev } => {
                let d = Normal::new(mean as f32, stdev as f32).map_err(|e| err(&e))?;
                (0..n).map(|_| d.sample(&mut *rng)).collect()
            }
            Init::Kaiming { dist, fan, non_linearity } => {
                let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
                drop(rng);
                return match dist {
                    NormalOrUniform::Uniform => {
                        let b = 3f64.sqrt() * std;
                        self.sample(shape, Init::Uniform { lo: -b, up: b })
                    }
                    NormalOrUniform::Normal => self.sample(shape, Init::Randn { mean: 0.0, stdev: std }),
                };
            }
        })
    }
}

impl SimpleBackend for SeededBackend {
    fn get(&self, shape: Shape, name: &str, init: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        if let Some(v) = self.varmap.data().lock().unwrap_or_else(|p| p.into_inner()).get(name) {
            let t = v.as_tensor();
            if t.shape() != &shape {
                return Err(candle_core::Error::UnexpectedShape {
                    msg: format!("shape mismatch for {name}"),
                    expected: shape,
                    got: t.shape().clone(),
                });
            }
            return Ok(t.clone());
        }
        let values = self.sample(&shape, init)?;
        let var = Var::from_tensor(&Tensor::from_vec(values, shape, dev)?.to_dtype(dtype)?)?;
        let t = var.as_tensor().clone();
        self.varmap.data().lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), var);
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        match self.varmap.data().lock().unwrap_or_else(|p| p.into_inner()).get(name) {
            Some(v) => v.as_tensor().to_dtype(dtype)?.to_device(dev),
            None => Err(candle_core::Error::CannotFindTensor { path: name.to_string() }),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap.data().lock().unwrap_or_else(|p| p.into_inner()).contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use pipeline_core::rng;

    use super::*;

    #[test]
    fn same_seed_same_weights() {
        let make = |seed| {
            let p = Params::new(rng(seed, "init"));
            let vb = p.var_builder(&Device::Cpu);
            vb.get_with_hints((4, 3), "w", InitScheme::Torch.weight(&Shape::from((4, 3)))).unwrap();
            p.named_vars()[0].1.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        assert_eq!(make(1), make(1));
        assert_ne!(make(1), make(2));
        let w = make(1);
        let bound = 1.0 / 3f32.sqrt();
        assert!(w.iter().all(|x| x.abs() <= bound));
    }

    #[test]
    fn schemes_use_the_right_fans() {
        let s = Shape::from((10, 20, 3, 3)); // fan_in 180, fan_out 90
        match InitScheme::XavierUniform.weight(&s) {
            Init::Uniform { up, .. } => assert!((up - (6.0f64 / 270.0).sqrt()).abs() < 1e-12),
            other => panic!("{other:?}"),
        }
        match InitScheme::KaimingNormal.weight(&s) {
            Init::Randn { stdev, .. } => assert!((stdev - (2.0f64 / 180.0).sqrt()).abs() < 1e-12),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn existing_variables_are_returned_not_redrawn() {
        let p = Params::new(rng(1, "init"));
        let vb = p.var_builder(&Device::Cpu);
        let a = vb.get_with_hints(3, "b", Init::Const(0.5)).unwrap();
        let b = vb.get_with_hints(3, "b", Init::Const(9.0)).unwrap();
        assert_eq!(a.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap());
        assert!(vb.get_with_hints(4, "b", Init::Const(0.0)).is_err());
        assert_eq!(p.count(), 3);
    }
}
