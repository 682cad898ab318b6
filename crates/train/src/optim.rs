//! Optimizers: SGD (momentum, dampening, Nesterov), Adam (L2, AMSGrad), AdamW, RMSprop
//! (centered, momentum) and Adagrad (learning-rate decay), each following PyTorch's update rule
//! step for step, with their state exposed as named tensors for checkpoints.
//!
//! For CPU f32 parameters, SGD, Adam and AdamW update each parameter and its state in place in
//! one fused pass (`kernels::sgd_step` / `kernels::adam_step`: the same float operations in the
//! same order as the tensor-by-tensor update below, so bit-identical results and no
//! allocation); other devices and dtypes take the tensor ops.

use std::collections::HashMap;

use candle_core::{DType, Result, Tensor, Var};
use pipeline_core::config::Issue;
use serde::{Deserialize, Serialize};

/// `train.optimizer`, tagged by `kind`. Defaults are PyTorch's.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OptimizerConfig {
    /// Stochastic gradient descent, as `torch.optim.SGD`.
    Sgd(SgdConfig),
    /// Adam with L2 weight decay added to the gradient, as `torch.optim.Adam`.
    Adam(AdamConfig),
    /// Adam with decoupled weight decay, as `torch.optim.AdamW`.
    #[serde(rename = "adamw")]
    AdamW(AdamWConfig),
    /// RMSprop, as `torch.optim.RMSprop`.
    #[serde(rename = "rmsprop")]
    RmsProp(RmsPropConfig),
    /// Adagrad, as `torch.optim.Adagrad`.
    Adagrad(AdagradConfig),
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self::AdamW(AdamWConfig::default())
    }
}

pipeline_core::tagged_enum!(OptimizerConfig, "kind", [
    "sgd" => OptimizerConfig::Sgd,
    "adam" => OptimizerConfig::Adam,
    "adamw" => OptimizerConfig::AdamW,
    "rmsprop" => OptimizerConfig::RmsProp,
    "adagrad" => OptimizerConfig::Adagrad,
]);

macro_rules! defaults {
    ($($name:ident: $t:ty = $v:expr;)*) => {
        $(fn $name() -> $t { $v })*
    };
}

defaults! {
    lr_1e3: f64 = 1e-3;
    lr_1e2: f64 = 1e-2;
    beta1: f64 = 0.9;
    beta2: f64 = 0.999;
    eps_8: f64 = 1e-8;
    eps_10: f64 = 1e-10;
    wd_adamw: f64 = 0.01;
    alpha: f64 = 0.99;
}

/// `kind: sgd`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SgdConfig {
    /// Learning rate.
    #[serde(default = "lr_1e3")]
    pub lr: f64,
    /// Momentum factor (0: none).
    #[serde(default)]
    pub momentum: f64,
    /// Dampening of the momentum's new gradient.
    #[serde(default)]
    pub dampening: f64,
    /// Nesterov momentum (needs momentum > 0 and no dampening).
    #[serde(default)]
    pub nesterov: bool,
    /// L2 weight decay, added to the gradient.
    #[serde(default)]
    pub weight_decay: f64,
}

/// `kind: adam`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamConfig {
    /// Learning rate.
    #[serde(default = "lr_1e3")]
    pub lr: f64,
    /// Decay of the first-moment estimate.
    #[serde(default = "beta1")]
    pub beta1: f64,
    /// Decay of the second-moment estimate.
    #[serde(default = "beta2")]
    pub beta2: f64,
    /// Added to the denominator for stability.
    #[serde(default = "eps_8")]
    pub eps: f64,
    /// L2 weight decay, added to the gradient.
    #[serde(default)]
    pub weight_decay: f64,
    /// Use the maximum of past second moments (AMSGrad).
    #[serde(default)]
    pub amsgrad: bool,
}

/// `kind: adamw`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamWConfig {
    /// Learning rate.
    #[serde(default = "lr_1e3")]
    pub lr: f64,
    /// Decay of the first-moment estimate.
    #[serde(default = "beta1")]
    pub beta1: f64,
    /// Decay of the second-moment estimate.
    #[serde(default = "beta2")]
    pub beta2: f64,
    /// Added to the denominator for stability.
    #[serde(default = "eps_8")]
    pub eps: f64,
    /// Decoupled weight decay: each step multiplies the weights by `1 - lr · weight_decay`.
    #[serde(default = "wd_adamw")]
    pub weight_decay: f64,
    /// Use the maximum of past second moments (AMSGrad).
    #[serde(default)]
    pub amsgrad: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { lr: lr_1e3(), beta1: beta1(), beta2: beta2(), eps: eps_8(), weight_decay: wd_adamw(), amsgrad: false }
    }
}

/// `kind: rmsprop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RmsPropConfig {
    /// Learning rate.
    #[serde(default = "lr_1e2")]
    pub lr: f64,
    /// Smoothing constant of the squared-gradient average.
    #[serde(default = "alpha")]
    pub alpha: f64,
    /// Added to the denominator for stability.
    #[serde(default = "eps_8")]
    pub eps: f64,
    /// L2 weight decay, added to the gradient.
    #[serde(default)]
    pub weight_decay: f64,
    /// Momentum factor (0: none).
    #[serde(default)]
    pub momentum: f64,
    /// Normalise by the variance rather than the raw second moment.
    #[serde(default)]
    pub centered: bool,
}

/// `kind: adagrad`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdagradConfig {
    /// Learning rate.
    #[serde(default = "lr_1e2")]
    pub lr: f64,
    /// Learning-rate decay: step `t` uses `lr / (1 + (t - 1) · lr_decay)`.
    #[serde(default)]
    pub lr_decay: f64,
    /// L2 weight decay, added to the gradient.
    #[serde(default)]
    pub weight_decay: f64,
    /// Starting value of the squared-gradient sums.
    #[serde(default)]
    pub initial_accumulator_value: f64,
    /// Added to the denominator for stability.
    #[serde(default = "eps_10")]
    pub eps: f64,
}

impl OptimizerConfig {
    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd(c) => c.lr,
            OptimizerConfig::Adam(c) => c.lr,
            OptimizerConfig::AdamW(c) => c.lr,
            OptimizerConfig::RmsProp(c) => c.lr,
            OptimizerConfig::Adagrad(c) => c.lr,
        }
    }

    pub(crate) fn validate(&self, issues: &mut Vec<Issue>) {
        let k = "train.optimizer";
        let mut positive = |name: &str, v: f64| {
            if !(v.is_finite() && v > 0.0) {
                issues.push(Issue::new(format!("{k}.{name}"), format!("must be a positive number, got {v}")));
            }
        };
        positive("lr", self.lr());
        match self {
            OptimizerConfig::Adam(AdamConfig { eps, .. }) | OptimizerConfig::AdamW(AdamWConfig { eps, .. }) => {
                positive("eps", *eps)
            }
            OptimizerConfig::RmsProp(c) => positive("eps", c.eps),
            OptimizerConfig::Adagrad(c) => positive("eps", c.eps),
            OptimizerConfig::Sgd(_) => {}
        }
        let mut unit = |name: &str, v: f64| {
            if !(0.0..1.0).contains(&v) {
                issues.push(Issue::new(format!("{k}.{name}"), format!("must be in [0, 1), got {v}")));
            }
        };
        match self {
            OptimizerConfig::Adam(AdamConfig { beta1, beta2, .. })
            | OptimizerConfig::AdamW(AdamWConfig { beta1, beta2, .. }) => {
                unit("beta1", *beta1);
                unit("beta2", *beta2);
            }
            OptimizerConfig::Sgd(c) => {
                unit("momentum", c.momentum);
                unit("dampening", c.dampening);
            }
            OptimizerConfig::RmsProp(c) => {
                unit("alpha", c.alpha);
                unit("momentum", c.momentum);
            }
            OptimizerConfig::Adagrad(_) => {}
        }
        let (wd, extra) = match self {
            OptimizerConfig::Sgd(c) => (c.weight_decay, None),
            OptimizerConfig::Adam(c) => (c.weight_decay, None),
            OptimizerConfig::AdamW(c) => (c.weight_decay, None),
            OptimizerConfig::RmsProp(c) => (c.weight_decay, None),
            OptimizerConfig::Adagrad(c) => (
                c.weight_decay,
                Some([("lr_decay", c.lr_decay), ("initial_accumulator_value", c.initial_accumulator_value)]),
            ),
        };
        for (name, v) in std::iter::once(("weight_decay", wd)).chain(extra.into_iter().flatten()) {
            if !(v.is_finite() && v >= 0.0) {
                issues.push(Issue::new(format!("{k}.{name}"), format!("must be zero or positive, got {v}")));
            }
        }
        if let OptimizerConfig::Sgd(c) = self
            && c.nesterov
            && (c.momentum <= 0.0 || c.dampening != 0.0)
        {
            issues.push(Issue::new(format!("{k}.nesterov"), "needs momentum > 0 and dampening 0"));
        }
    }

    /// The names of the per-parameter state tensors.
    fn slots(&self) -> &'static [&'static str] {
        match self {
            OptimizerConfig::Sgd(c) if c.momentum > 0.0 => &["momentum_buffer"],
            OptimizerConfig::Sgd(_) => &[],
            OptimizerConfig::Adam(AdamConfig { amsgrad: true, .. })
            | OptimizerConfig::AdamW(AdamWConfig { amsgrad: true, .. }) => &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"],
            OptimizerConfig::Adam(_) | OptimizerConfig::AdamW(_) => &["exp_avg", "exp_avg_sq"],
            OptimizerConfig::RmsProp(c) => match (c.momentum > 0.0, c.centered) {
                (true, true) => &["square_avg", "momentum_buffer", "grad_avg"],
                (true, false) => &["square_avg", "momentum_buffer"],
                (false, true) => &["square_avg", "grad_avg"],
                (false, false) => &["square_avg"],
            },
            OptimizerConfig::Adagrad(_) => &["sum"],
        }
    }
}

/// An optimizer over named variables, with its state.
pub struct Optimizer {
    config: OptimizerConfig,
    vars: Vec<(String, Var)>,
    /// `state[i][j]`: slot `j` of variable `i`.
    state: Vec<Vec<Tensor>>,
    steps: u64,
    /// Per-variable learning-rate multipliers.
    scales: Vec<f64>,
}

impl Optimizer {
    /// A fresh optimizer over `vars` (state zero, or Adagrad's initial accumulator).
    pub fn new(config: OptimizerConfig, vars: Vec<(String, Var)>) -> Result<Self> {
        let init = match &config {
            OptimizerConfig::Adagrad(c) => c.initial_accumulator_value,
            _ => 0.0,
        };
        let state = vars
            .iter()
            .map(|(_, v)| {
                config
                    .slots()
                    .iter()
                    .map(|&slot| {
                        let z = v.as_tensor().zeros_like()?;
                        if slot == "sum" && init != 0.0 { z.affine(1.0, init) } else { Ok(z) }
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<_>>()?;
        let scales = vec![1.0; vars.len()];
        Ok(Self { config, vars, state, steps: 0, scales })
    }

    /// Multiplies the learning rate of every variable whose name starts with a key of
    /// `scales` by its value (the longest matching prefix wins) — e.g. a fresh head learning
    /// faster than a pre-trained encoder.
    pub fn with_lr_scales(mut self, scales: &std::collections::BTreeMap<String, f64>) -> Self {
        for (i, (name, _)) in self.vars.iter().enumerate() {
            let best = scales.iter().filter(|(p, _)| name.starts_with(p.as_str())).max_by_key(|(p, _)| p.len());
            self.scales[i] = best.map_or(1.0, |(_, &f)| f);
        }
        self
    }

    /// The variables, in order.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// Optimizer steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Updates every variable that has a gradient (`grads[i]` for `vars()[i]`) with learning
    /// rate `lr`.
    pub fn step(&mut self, grads: &[Option<Tensor>], lr: f64) -> Result<()> {
        self.steps += 1;
        let t = self.steps as i32;
        let base_lr = lr;
        for (i, g) in grads.iter().enumerate() {
            let Some(g) = g else { continue };
            let lr = base_lr * self.scales[i];
            if self.fused_step(i, g, lr)? {
                continue;
            }
            let p = self.vars[i].1.as_tensor().clone();
            let s = &mut self.state[i];
            let new_p = match &self.config {
                OptimizerConfig::Sgd(c) => {
                    let mut g = if c.weight_decay != 0.0 { (g + (&p * c.weight_decay)?)? } else { g.clone() };
                    if c.momentum > 0.0 {
                        s[0] = if t == 1 { g.clone() } else { ((&s[0] * c.momentum)? + (&g * (1.0 - c.dampening))?)? };
                        g = if c.nesterov { (g + (&s[0] * c.momentum)?)? } else { s[0].clone() };
                    }
                    (p - (g * lr)?)?
                }
                OptimizerConfig::Adam(c) => {
                    let g = if c.weight_decay != 0.0 { (g + (&p * c.weight_decay)?)? } else { g.clone() };
                    adam(&p, &g, s, t, lr, c.beta1, c.beta2, c.eps, c.amsgrad)?
                }
                OptimizerConfig::AdamW(c) => {
                    let p = if c.weight_decay != 0.0 { (&p * (1.0 - lr * c.weight_decay))? } else { p };
                    adam(&p, g, s, t, lr, c.beta1, c.beta2, c.eps, c.amsgrad)?
                }
                OptimizerConfig::RmsProp(c) => {
                    let g = if c.weight_decay != 0.0 { (g + (&p * c.weight_decay)?)? } else { g.clone() };
                    s[0] = ((&s[0] * c.alpha)? + (g.sqr()? * (1.0 - c.alpha))?)?;
                    let avg = if c.centered {
                        let ga = s.len() - 1;
                        s[ga] = ((&s[ga] * c.alpha)? + (&g * (1.0 - c.alpha))?)?;
                        (&s[0] - s[ga].sqr()?)?.sqrt()?.affine(1.0, c.eps)?
                    } else {
                        s[0].sqrt()?.affine(1.0, c.eps)?
                    };
                    if c.momentum > 0.0 {
                        s[1] = ((&s[1] * c.momentum)? + (&g / &avg)?)?;
                        (p - (&s[1] * lr)?)?
                    } else {
                        (p - ((&g / &avg)? * lr)?)?
                    }
                }
                OptimizerConfig::Adagrad(c) => {
                    let g = if c.weight_decay != 0.0 { (g + (&p * c.weight_decay)?)? } else { g.clone() };
                    let clr = lr / (1.0 + f64::from(t - 1) * c.lr_decay);
                    s[0] = (&s[0] + g.sqr()?)?;
                    let std = s[0].sqrt()?.affine(1.0, c.eps)?;
                    (p - ((g / std)? * clr)?)?
                }
            };
            self.vars[i].1.set(&new_p)?;
        }
        Ok(())
    }

    /// Updates variable `i` in place by the fused CPU kernel when its optimizer has one and it
    /// and its gradient are CPU f32 tensors; returns whether it did.
    fn fused_step(&self, i: usize, g: &Tensor, lr: f64) -> Result<bool> {
        let var = &self.vars[i].1;
        let s = &self.state[i];
        let cpu_f32 = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous();
        if !(cpu_f32(var.as_tensor()) && g.device().is_cpu() && g.dtype() == DType::F32 && s.iter().all(cpu_f32)) {
            return Ok(false);
        }
        let step = self.steps;
        match &self.config {
            OptimizerConfig::Sgd(c) => {
                let h = kernels::SgdStep {
                    step,
                    lr,
                    momentum: c.momentum,
                    dampening: c.dampening,
                    nesterov: c.nesterov,
                    weight_decay: c.weight_decay,
                };
                kernels::sgd_step(var, g, s.first(), &h)?;
            }
            OptimizerConfig::Adam(c) => {
                let h = kernels::AdamStep {
                    step,
                    lr,
                    beta1: c.beta1,
                    beta2: c.beta2,
                    eps: c.eps,
                    weight_decay: c.weight_decay,
                    decoupled: false,
                };
                kernels::adam_step(var, g, &s[0], &s[1], s.get(2), &h)?;
            }
            OptimizerConfig::AdamW(c) => {
                let h = kernels::AdamStep {
                    step,
                    lr,
                    beta1: c.beta1,
                    beta2: c.beta2,
                    eps: c.eps,
                    weight_decay: c.weight_decay,
                    decoupled: true,
                };
                kernels::adam_step(var, g, &s[0], &s[1], s.get(2), &h)?;
            }
            OptimizerConfig::RmsProp(_) | OptimizerConfig::Adagrad(_) => return Ok(false),
        }
        Ok(true)
    }

    /// The state as named tensors, `<variable>/<slot>`, for a checkpoint. They share storage
    /// with the live state, which the fused steps update in place: write them out (or copy
    /// them) before the next step.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let slots = self.config.slots();
        self.vars
            .iter()
            .zip(&self.state)
            .flat_map(|((name, _), s)| slots.iter().zip(s).map(move |(slot, t)| (format!("{name}/{slot}"), t.clone())))
            .collect()
    }

    /// Restores the state written by [`state_tensors`](Self::state_tensors) after `steps` steps.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, steps: u64) -> Result<()> {
        let slots = self.config.slots();
        for ((name, var), s) in self.vars.iter().zip(self.state.iter_mut()) {
            for (slot, t) in slots.iter().zip(s.iter_mut()) {
                let key = format!("{name}/{slot}");
                let saved =
                    tensors.get(&key).ok_or_else(|| candle_core::Error::CannotFindTensor { path: key.clone() })?;
                if saved.shape() != var.shape() {
                    return Err(candle_core::Error::UnexpectedShape {
                        msg: format!("optimizer state {key}"),
                        expected: var.shape().clone(),
                        got: saved.shape().clone(),
                    });
                }
                // A copy of its own: the fused steps update the state in place.
                *t = saved.to_device(var.device())?.copy()?;
            }
        }
        self.steps = steps;
        Ok(())
    }
}

/// One Adam step (moments in `s`: `exp_avg`, `exp_avg_sq`, and `max_exp_avg_sq` for AMSGrad),
/// in the order of operations of PyTorch's single-tensor implementation.
#[allow(clippy::too_many_arguments, reason = "the hyperparameters of one update rule")]
fn adam(
    p: &Tensor,
    g: &Tensor,
    s: &mut [Tensor],
    t: i32,
    lr: f64,
    b1: f64,
    b2: f64,
    eps: f64,
    amsgrad: bool,
) -> Result<Tensor> {
    s[0] = ((&s[0] * b1)? + (g * (1.0 - b1))?)?;
    s[1] = ((&s[1] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
    let bc1 = 1.0 - b1.powi(t);
    let bc2 = 1.0 - b2.powi(t);
    let second = if amsgrad {
        s[2] = s[2].maximum(&s[1])?;
        &s[2]
    } else {
        &s[1]
    };
    let denom = (second.sqrt()? / bc2.sqrt())?.affine(1.0, eps)?;
    p - ((&s[0] / denom)? * (lr / bc1))?
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    /// The fixed problem of the PyTorch reference below.
    fn run(config: OptimizerConfig) -> Vec<Vec<f32>> {
        let dev = Device::Cpu;
        let p = Var::from_tensor(&Tensor::new(&[[0.5f32, -1.2, 2.0], [0.3, 0.8, -0.4]], &dev).unwrap()).unwrap();
        let target = Tensor::new(&[[1.0f32, 0.0, -1.0], [0.5, -0.5, 0.2]], &dev).unwrap();
        let w = Tensor::new(&[[1f32, 2., 3.], [0.5, 1.5, 2.5]], &dev).unwrap();
        let mut opt = Optimizer::new(config, vec![("p".into(), p.clone())]).unwrap();
        for _ in 0..10 {
            let x = p.as_tensor();
            let loss = (((x - &target).unwrap().sqr().unwrap() * &w).unwrap().sum_all().unwrap()
                + ((x * x).unwrap() * x).unwrap().sum_all().unwrap().affine(0.1, 0.0).unwrap())
            .unwrap();
            let grads = loss.backward().unwrap();
            opt.step(&[grads.get(x).cloned()], config_lr(&opt.config)).unwrap();
        }
        p.as_tensor().to_vec2::<f32>().unwrap()
    }

    fn config_lr(c: &OptimizerConfig) -> f64 {
        c.lr()
    }

    /// PyTorch 2.15:
    /// ```python
    /// p0 = torch.tensor([[0.5, -1.2, 2.0], [0.3, 0.8, -0.4]])
    /// target = torch.tensor([[1.0, 0.0, -1.0], [0.5, -0.5, 0.2]])
    /// w = torch.tensor([[1., 2., 3.], [0.5, 1.5, 2.5]])
    /// def loss_fn(p): return ((p - target) ** 2 * w).sum() + 0.1 * (p * p * p).sum()
    /// p = torch.nn.Parameter(p0.clone()); opt = <optimizer>([p])
    /// for _ in range(10): opt.zero_grad(); loss_fn(p).backward(); opt.step()
    /// ```
    #[test]
    fn ten_steps_match_pytorch() {
        let sgd = |lr, momentum, dampening, nesterov, weight_decay| {
            OptimizerConfig::Sgd(SgdConfig { lr, momentum, dampening, nesterov, weight_decay })
        };
        let adam = |lr, beta1, beta2, eps, weight_decay, amsgrad| {
            OptimizerConfig::Adam(AdamConfig { lr, beta1, beta2, eps, weight_decay, amsgrad })
        };
        let rms = |lr, alpha, eps, weight_decay, momentum, centered| {
            OptimizerConfig::RmsProp(RmsPropConfig { lr, alpha, eps, weight_decay, momentum, centered })
        };
        let adagrad = |lr, lr_decay, weight_decay, initial_accumulator_value, eps| {
            OptimizerConfig::Adagrad(AdagradConfig { lr, lr_decay, weight_decay, initial_accumulator_value, eps })
        };
        #[rustfmt::skip]
        let cases: Vec<(&str, OptimizerConfig, [[f32; 3]; 2])> = vec![
            // SGD(lr=0.01)
            ("sgd", sgd(0.01, 0.0, 0.0, false, 0.0),
             [[0.58342957, -0.82359487, 0.57844532], [0.31640738, 0.44819355, -0.16114597]]),
            // SGD(lr=0.01, momentum=0.9, dampening=0.1, weight_decay=0.05)
            ("sgd_momentum", sgd(0.01, 0.9, 0.1, false, 0.05),
             [[0.78069961, 0.05573335, -2.23192], [0.35418379, -0.38981092, 0.34711385]]),
            // SGD(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.05)
            ("sgd_nesterov", sgd(0.01, 0.9, 0.0, true, 0.05),
             [[0.81522393, 0.13808249, -2.09723687], [0.36400577, -0.49316859, 0.35380492]]),
            // Adam(lr=0.05)
            ("adam", adam(0.05, 0.9, 0.999, 1e-8, 0.0, false),
             [[0.93722743, -0.7086336, 1.50346661], [0.47033679, 0.30940381, 0.07311157]]),
            // Adam(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)
            ("adam_l2", adam(0.05, 0.8, 0.99, 1e-6, 0.1, false),
             [[0.89567637, -0.71535945, 1.50649548], [0.38704148, 0.31676099, 0.05690204]]),
            // Adam(lr=0.05, amsgrad=True)
            ("adam_amsgrad", adam(0.05, 0.9, 0.999, 1e-8, 0.0, true),
             [[0.93721062, -0.7086336, 1.50346661], [0.47034144, 0.30940381, 0.07311157]]),
            // AdamW(lr=0.05, weight_decay=0.1)
            ("adamw", OptimizerConfig::AdamW(AdamWConfig { lr: 0.05, weight_decay: 0.1, ..Default::default() }),
             [[0.91036087, -0.66225374, 1.4174844], [0.46602666, 0.28210959, 0.08058739]]),
            // RMSprop(lr=0.01)
            ("rmsprop", rms(0.01, 0.99, 1e-8, 0.0, 0.0, false),
             [[0.83732426, -0.73604918, 1.51251674], [0.44151792, 0.33874366, 0.0060344]]),
            // RMSprop(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.05, momentum=0.5, centered=True)
            ("rmsprop_centered", rms(0.01, 0.9, 1e-6, 0.05, 0.5, true),
             [[0.80439252, -0.81592709, 1.60304165], [0.4241893, 0.41802514, -0.04905263]]),
            // Adagrad(lr=0.1)
            ("adagrad", adagrad(0.1, 0.0, 0.0, 0.0, 1e-10),
             [[0.83550894, -0.74004704, 1.51677132], [0.44151753, 0.34274164, 0.00290343]]),
            // Adagrad(lr=0.1, lr_decay=0.01, weight_decay=0.05, initial_accumulator_value=0.1, eps=1e-8)
            ("adagrad_decay", adagrad(0.1, 0.01, 0.05, 0.1, 1e-8),
             [[0.81730175, -0.75386232, 1.53193116], [0.42243245, 0.35670406, -0.00741214]]),
        ];
        for (name, config, want) in cases {
            let got = run(config);
            for (row, w) in got.iter().zip(want) {
                for (a, b) in row.iter().zip(w) {
                    assert!((a - b).abs() < 1e-5, "{name}: {got:?} vs {want:?}");
                }
            }
        }
    }

    #[test]
    fn lr_scales_multiply_by_longest_prefix() {
        let dev = Device::Cpu;
        let vars: Vec<(String, Var)> = ["head.0.weight", "encoder.w", "head.0.bias"]
            .iter()
            .map(|n| (n.to_string(), Var::from_tensor(&Tensor::new(&[1f32], &dev).unwrap()).unwrap()))
            .collect();
        let scales = std::collections::BTreeMap::from([("head.".to_string(), 10.0), ("head.0.b".to_string(), 2.0)]);
        let cfg = OptimizerConfig::Sgd(SgdConfig {
            lr: 0.1,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        });
        let mut opt = Optimizer::new(cfg, vars.clone()).unwrap().with_lr_scales(&scales);
        let g = Some(Tensor::new(&[1f32], &dev).unwrap());
        opt.step(&[g.clone(), g.clone(), g], 0.1).unwrap();
        let after: Vec<f32> = vars.iter().map(|(_, v)| v.as_tensor().to_vec1::<f32>().unwrap()[0]).collect();
        // 1 - lr * scale * g: head weight x10, encoder x1, head bias x2 (the longer prefix).
        for (a, b) in after.iter().zip([0.0f32, 0.9, 0.8]) {
            assert!((a - b).abs() < 1e-6, "{after:?}");
        }
    }

    #[test]
    fn state_round_trips_for_a_checkpoint() {
        let dev = Device::Cpu;
        let mk = || Var::from_tensor(&Tensor::new(&[1f32, -2.0, 3.0], &dev).unwrap()).unwrap();
        let config = OptimizerConfig::Adam(AdamConfig {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: true,
        });
        let (a, b) = (mk(), mk());
        let mut opt_a = Optimizer::new(config.clone(), vec![("w".into(), a.clone())]).unwrap();
        let g = Tensor::new(&[0.5f32, -0.1, 0.2], &dev).unwrap();
        opt_a.step(&[Some(g.clone())], 0.1).unwrap();
        let saved: HashMap<String, Tensor> = opt_a.state_tensors().into_iter().collect();
        assert_eq!(saved.len(), 3);
        let mut opt_b = Optimizer::new(config, vec![("w".into(), b.clone())]).unwrap();
        b.set(a.as_tensor()).unwrap();
        opt_b.load_state(&saved, opt_a.steps()).unwrap();
        opt_a.step(&[Some(g.clone())], 0.1).unwrap();
        opt_b.step(&[Some(g)], 0.1).unwrap();
        assert_eq!(a.as_tensor().to_vec1::<f32>().unwrap(), b.as_tensor().to_vec1::<f32>().unwrap());
    }
}
