//! Recurrent layers: multi-layer, optionally bidirectional Elman RNN (tanh or ReLU), LSTM and GRU
//! over batch-first sequences `[batch, time, features]`.
//!
//! The parameters follow PyTorch's `nn.RNN` / `nn.LSTM` / `nn.GRU` exactly, so state dicts map 1:1:
//! per layer `k` and direction, `weight_ih_l{k}` `[gates·hidden, input]`, `weight_hh_l{k}`
//! `[gates·hidden, hidden]`, `bias_ih_l{k}` and `bias_hh_l{k}` `[gates·hidden]`, with the suffix
//! `_reverse` for the backward direction; the gates are stacked in PyTorch's order (LSTM `i, f, g,
//! o`; GRU `r, z, n` with `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`). Weights and biases are
//! initialised as PyTorch does, uniform in `±1/sqrt(hidden)`, or, with `orthogonal`, the recurrent
//! weights are orthogonal (see [`Rnn::new`]).
//!
//! Variable-length batches: given each example's length, steps past it are ignored as
//! `pack_padded_sequence` would: the forward direction's final state is the state at the last real
//! step, the backward direction starts at the last real step, and outputs at padded steps are 0
//! (as `pad_packed_sequence` pads them).
//!
//! The input projections of all time steps are one matrix product per layer and direction; only
//! the recurrent product and the gate arithmetic run step by step.

use candle_core::{D, DType, Result, Shape, Tensor};
use candle_nn::{Init, VarBuilder};
use pipeline_core::Ctx;
use pipeline_core::config::Issue;
use serde::{Deserialize, Serialize};

use crate::layers::dropout;

/// The recurrent cell (`cell`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellKind {
    /// Elman RNN, `h' = act(W_ih x + b_ih + W_hh h + b_hh)` (PyTorch's `nn.RNN`).
    Rnn,
    /// Long short-term memory (PyTorch's `nn.LSTM`), gates `i, f, g, o`.
    #[default]
    Lstm,
    /// Gated recurrent unit (PyTorch's `nn.GRU`), gates `r, z, n`.
    Gru,
}

impl CellKind {
    /// The number of gate blocks stacked in the weights: 1, 4 or 3.
    pub fn gates(self) -> usize {
        match self {
            CellKind::Rnn => 1,
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
        }
    }
}

/// The non-linearity of an Elman RNN (`nonlinearity`, PyTorch's argument of the same name).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Nonlinearity {
    /// Hyperbolic tangent.
    #[default]
    Tanh,
    /// `max(0, x)`.
    Relu,
}

/// The options of a recurrent block: cell, width, depth, direction, dropout, initialisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RnnLayerConfig {
    /// The cell type.
    pub cell: CellKind,
    /// Hidden units per direction (PyTorch's `hidden_size`).
    pub hidden: usize,
    /// Stacked recurrent layers (PyTorch's `num_layers`).
    pub layers: usize,
    /// Run a second, backward direction and concatenate both (PyTorch's `bidirectional`).
    pub bidirectional: bool,
    /// Dropout on the outputs of every layer but the last, in `[0, 1)`, during training only
    /// (PyTorch's `dropout`).
    pub dropout: f32,
    /// Orthogonal initialisation of the recurrent (`weight_hh`) weights, one orthogonal
    /// `hidden × hidden` block per gate, instead of PyTorch's uniform default.
    pub orthogonal: bool,
    /// The non-linearity of `cell: rnn`; only `tanh` is valid for the other cells.
    pub nonlinearity: Nonlinearity,
}

impl Default for RnnLayerConfig {
    /// One unidirectional LSTM layer of 64 units, no dropout, PyTorch's initialisation.
    fn default() -> Self {
        Self {
            cell: CellKind::Lstm,
            hidden: 64,
            layers: 1,
            bidirectional: false,
            dropout: 0.0,
            orthogonal: false,
            nonlinearity: Nonlinearity::Tanh,
        }
    }
}

impl RnnLayerConfig {
    /// Checks the values serde cannot, reporting them under the dotted `key` of this section.
    pub fn validate(&self, key: &str) -> Vec<Issue> {
        let mut issues = Vec::new();
        if self.hidden == 0 {
            issues.push(Issue::new(format!("{key}.hidden"), "a recurrent layer needs at least 1 unit, got 0"));
        }
        if self.layers == 0 {
            issues.push(Issue::new(format!("{key}.layers"), "needs at least 1 layer, got 0"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            issues.push(Issue::new(format!("{key}.dropout"), format!("must be in [0, 1), got {}", self.dropout)));
        }
        if self.nonlinearity != Nonlinearity::Tanh && self.cell != CellKind::Rnn {
            issues.push(Issue::new(
                format!("{key}.nonlinearity"),
                "only applies to `cell: rnn` (LSTM and GRU cells have fixed non-linearities)",
            ));
        }
        issues
    }

    /// The number of directions: 2 when bidirectional, else 1.
    pub fn directions(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }
}

/// The weights of one layer in one direction.
struct DirectionWeights {
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
}

/// Everything [`Rnn::forward_with_state`] returns.
#[derive(Debug, Clone)]
pub struct RnnOutput {
    /// The top layer's outputs at every step, `[batch, time, directions·hidden]`, forward and
    /// backward halves concatenated; 0 at padded steps.
    pub outputs: Tensor,
    /// The final hidden state of every layer and direction, `[layers·directions, batch, hidden]`
    /// in PyTorch's order (`l0`, `l0_reverse`, `l1`, …); a padded example's forward state is the
    /// one at its last real step.
    pub h_n: Tensor,
    /// LSTM only: the final cell states, laid out as `h_n`.
    pub c_n: Option<Tensor>,
}

/// A multi-layer, optionally bidirectional RNN, LSTM or GRU over batch-first inputs, with
/// PyTorch's parameter names (see the module documentation).
pub struct Rnn {
    cell: CellKind,
    nonlinearity: Nonlinearity,
    input_size: usize,
    hidden: usize,
    dropout: f32,
    /// `layers[k][direction]`.
    layers: Vec<Vec<DirectionWeights>>,
}

/// How a batch's lengths shape the recurrence, shared by every layer and direction.
struct Plan {
    batch: usize,
    /// Steps actually run: the longest length (the input's time, without lengths).
    steps: usize,
    /// Per step, the `[batch, hidden]` 0/1 mask of the examples whose length covers it, `None`
    /// when all do.
    masks: Vec<Option<Tensor>>,
    /// `[batch, hidden]` zeros: the initial state and the output at padded steps.
    zeros: Tensor,
}

impl Rnn {
    /// Builds the recurrent block for inputs of `input_size` features under `vb`.
    ///
    /// Fresh weights are drawn in PyTorch's order (per layer and direction: `weight_ih`,
    /// `weight_hh`, `bias_ih`, `bias_hh`), uniform in `±1/sqrt(hidden)`. With
    /// `config.orthogonal`, each fresh `weight_hh` is drawn standard normal from `vb` and every
    /// `hidden × hidden` gate block is replaced by the `Q` of its QR decomposition with the signs
    /// of `torch.nn.init.orthogonal_` (`R`'s diagonal made positive), so `W_g·W_gᵀ = I` per gate.
    /// Weights that `vb` already holds (a loaded file, an existing variable) are used as they are.
    pub fn new(input_size: usize, config: &RnnLayerConfig, vb: VarBuilder) -> Result<Self> {
        if input_size == 0 || config.hidden == 0 || config.layers == 0 {
            candle_core::bail!(
                "a recurrent layer needs input_size, hidden and layers of at least 1, got {input_size}, {}, {}",
                config.hidden,
                config.layers
            );
        }
        if !(0.0..1.0).contains(&config.dropout) {
            candle_core::bail!("recurrent dropout must be in [0, 1), got {}", config.dropout);
        }
        let hidden = config.hidden;
        let rows = config.cell.gates() * hidden;
        let bound = 1.0 / (hidden as f64).sqrt();
        let init = Init::Uniform { lo: -bound, up: bound };
        let mut layers = Vec::with_capacity(config.layers);
        for k in 0..config.layers {
            let in_k = if k == 0 { input_size } else { hidden * config.directions() };
            let mut dirs = Vec::with_capacity(config.directions());
            for d in 0..config.directions() {
                let suffix = if d == 1 { "_reverse" } else { "" };
                let w_ih = vb.get_with_hints((rows, in_k), &format!("weight_ih_l{k}{suffix}"), init)?;
                let hh_name = format!("weight_hh_l{k}{suffix}");
                let w_hh = if config.orthogonal {
                    orthogonal_recurrent(&vb, &hh_name, config.cell.gates(), hidden)?
                } else {
                    vb.get_with_hints((rows, hidden), &hh_name, init)?
                };
                let b_ih = vb.get_with_hints(rows, &format!("bias_ih_l{k}{suffix}"), init)?;
                let b_hh = vb.get_with_hints(rows, &format!("bias_hh_l{k}{suffix}"), init)?;
                dirs.push(DirectionWeights { w_ih, w_hh, b_ih, b_hh });
            }
            layers.push(dirs);
        }
        Ok(Self {
            cell: config.cell,
            nonlinearity: config.nonlinearity,
            input_size,
            hidden,
            dropout: config.dropout,
            layers,
        })
    }

    /// Features per step of the outputs: `directions·hidden`.
    pub fn output_size(&self) -> usize {
        self.directions() * self.hidden
    }

    /// 2 when bidirectional, else 1.
    pub fn directions(&self) -> usize {
        self.layers.first().map_or(1, Vec::len)
    }

    /// Runs the block on `xs` `[batch, time, input_size]` (initial states 0) and returns the top
    /// layer's outputs `[batch, time, directions·hidden]` and its final hidden state,
    /// `[batch, directions·hidden]` (forward then backward; PyTorch's `cat(h_n[-2], h_n[-1])`).
    ///
    /// `lengths`, one per example in `0..=time`, marks the steps past each example's length as
    /// padding (see the module documentation); `None` means every step is real.
    pub fn forward(&self, xs: &Tensor, lengths: Option<&[usize]>, ctx: &mut Ctx<'_>) -> Result<(Tensor, Tensor)> {
        let out = self.forward_with_state(xs, lengths, ctx)?;
        let dirs = self.directions();
        let top = out.h_n.narrow(0, out.h_n.dim(0)? - dirs, dirs)?;
        let last = top.transpose(0, 1)?.flatten_from(1)?;
        Ok((out.outputs, last))
    }

    /// As [`forward`](Self::forward), but returns the final states of every layer (and the LSTM
    /// cell states) in PyTorch's `h_n` / `c_n` layout.
    pub fn forward_with_state(&self, xs: &Tensor, lengths: Option<&[usize]>, ctx: &mut Ctx<'_>) -> Result<RnnOutput> {
        let (batch, time, features) = xs.dims3()?;
        if features != self.input_size {
            candle_core::bail!("recurrent layer expects {} input features per step, got {features}", self.input_size);
        }
        let plan = self.plan(batch, time, lengths, xs)?;
        let dirs = self.directions();
        if plan.steps == 0 {
            // Nothing to run (no steps, or every example empty): outputs and states are 0.
            let states = Tensor::zeros((self.layers.len() * dirs, batch, self.hidden), xs.dtype(), xs.device())?;
            return Ok(RnnOutput {
                outputs: Tensor::zeros((batch, time, self.output_size()), xs.dtype(), xs.device())?,
                c_n: (self.cell == CellKind::Lstm).then(|| states.clone()),
                h_n: states,
            });
        }
        let mut h_n = Vec::with_capacity(self.layers.len() * dirs);
        let mut c_n = Vec::new();
        // Time-major `[steps·batch, features]`: every step is a contiguous block of rows.
        let mut input =
            xs.narrow(1, 0, plan.steps)?.transpose(0, 1)?.contiguous()?.reshape((plan.steps * batch, features))?;
        for (k, layer) in self.layers.iter().enumerate() {
            let mut outs = Vec::with_capacity(dirs);
            for (d, w) in layer.iter().enumerate() {
                let (out, h, c) = self.run_direction(&input, w, d == 1, &plan)?;
                outs.push(out);
                h_n.push(h);
                c_n.extend(c);
            }
            input = if outs.len() == 1 { outs.swap_remove(0) } else { Tensor::cat(&outs, 1)? };
            if k + 1 < self.layers.len() {
                input = dropout(&input, self.dropout, ctx)?;
            }
        }
        let outputs = input.reshape((plan.steps, batch, self.output_size()))?.transpose(0, 1)?;
        let outputs =
            if plan.steps < time { outputs.pad_with_zeros(1, 0, time - plan.steps)? } else { outputs.contiguous()? };
        let c_n = if c_n.is_empty() { None } else { Some(Tensor::stack(&c_n, 0)?) };
        Ok(RnnOutput { outputs, h_n: Tensor::stack(&h_n, 0)?, c_n })
    }

    fn plan(&self, batch: usize, time: usize, lengths: Option<&[usize]>, xs: &Tensor) -> Result<Plan> {
        let zeros = Tensor::zeros((batch, self.hidden), xs.dtype(), xs.device())?;
        let Some(lengths) = lengths else {
            return Ok(Plan { batch, steps: time, masks: vec![None; time], zeros });
        };
        if lengths.len() != batch {
            candle_core::bail!("got {} sequence lengths for a batch of {batch}", lengths.len());
        }
        if let Some(&bad) = lengths.iter().find(|&&l| l > time) {
            candle_core::bail!("sequence length {bad} exceeds the {time} steps of the input");
        }
        let steps = lengths.iter().copied().max().unwrap_or(0);
        let shortest = lengths.iter().copied().min().unwrap_or(0);
        if shortest == steps {
            // All the same length: no masking, only the steps past it are dropped.
            return Ok(Plan { batch, steps, masks: vec![None; steps], zeros });
        }
        let masks = (0..steps)
            .map(|s| {
                if s < shortest {
                    return Ok(None);
                }
                let m: Vec<u8> =
                    lengths.iter().flat_map(|&l| std::iter::repeat_n(u8::from(s < l), self.hidden)).collect();
                Tensor::from_vec(m, (batch, self.hidden), xs.device()).map(Some)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Plan { batch, steps, masks, zeros })
    }

    /// Runs one direction of one layer over time-major `input` `[steps·batch, in]`; returns its
    /// outputs `[steps·batch, hidden]` (in input order), final hidden state and LSTM cell state.
    fn run_direction(
        &self,
        input: &Tensor,
        w: &DirectionWeights,
        backward: bool,
        plan: &Plan,
    ) -> Result<(Tensor, Tensor, Option<Tensor>)> {
        let gates = self.cell.gates() * self.hidden;
        // RNN and LSTM add both biases to the input projection; GRU keeps `b_hh` on the recurrent
        // side, where `b_hn` must stay inside `r ⊙ (…)`. (Summed here, not once at construction:
        // the optimizer updates the variables in place.)
        let (b_in, b_hh) = match self.cell {
            CellKind::Gru => (w.b_ih.clone(), Some(&w.b_hh)),
            _ => ((&w.b_ih + &w.b_hh)?, None),
        };
        let gi = input.matmul(&w.w_ih.t()?)?.broadcast_add(&b_in)?.reshape((plan.steps, plan.batch, gates))?;
        let gi = split_steps(&gi)?;
        let w_hh_t = w.w_hh.t()?;
        let mut h: Option<Tensor> = None;
        let mut c: Option<Tensor> = None;
        let mut outs = Vec::with_capacity(plan.steps);
        // Backward, an example's padded steps come first and are masked: its state stays 0 until
        // its last real step, where it starts, as with a packed sequence.
        let order: Box<dyn Iterator<Item = usize>> =
            if backward { Box::new((0..plan.steps).rev()) } else { Box::new(0..plan.steps) };
        for s in order {
            let (h_new, c_new) = self.step(&gi[s], h.as_ref(), c.as_ref(), &w_hh_t, b_hh)?;
            match &plan.masks[s] {
                None => {
                    outs.push(h_new.clone());
                    h = Some(h_new);
                    c = c_new;
                }
                Some(m) => {
                    outs.push(m.where_cond(&h_new, &plan.zeros)?);
                    h = Some(m.where_cond(&h_new, h.as_ref().unwrap_or(&plan.zeros))?);
                    c = match c_new {
                        Some(c_new) => Some(m.where_cond(&c_new, c.as_ref().unwrap_or(&plan.zeros))?),
                        None => None,
                    };
                }
            }
        }
        if backward {
            outs.reverse();
        }
        let out = Tensor::cat(&outs, 0)?;
        let h = h.unwrap_or_else(|| plan.zeros.clone());
        let c = match self.cell {
            CellKind::Lstm => Some(c.unwrap_or_else(|| plan.zeros.clone())),
            _ => None,
        };
        Ok((out, h, c))
    }

    /// One step of the cell from the input projection `x` `[batch, gates·hidden]` (with
    /// `b_ih`, and `b_hh` but for GRU, whose `b_hh` is given) and the previous state (`None`:
    /// zeros).
    fn step(
        &self,
        x: &Tensor,
        h: Option<&Tensor>,
        c: Option<&Tensor>,
        w_hh_t: &Tensor,
        b_hh: Option<&Tensor>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let hd = self.hidden;
        let hh = match h {
            Some(h) => Some(h.matmul(w_hh_t)?),
            None => None,
        };
        match self.cell {
            CellKind::Rnn => {
                let pre = match &hh {
                    Some(hh) => (x + hh)?,
                    None => x.clone(),
                };
                let h = match self.nonlinearity {
                    Nonlinearity::Tanh => tanh(&pre)?,
                    Nonlinearity::Relu => pre.relu()?,
                };
                Ok((h, None))
            }
            CellKind::Lstm => {
                let pre = match &hh {
                    Some(hh) => (x + hh)?,
                    None => x.clone(),
                };
                let sig = candle_nn::ops::sigmoid(&pre)?;
                let i = sig.narrow(D::Minus1, 0, hd)?;
                let g = tanh(&pre.narrow(D::Minus1, 2 * hd, hd)?)?;
                let o = sig.narrow(D::Minus1, 3 * hd, hd)?;
                let c = match c {
                    Some(c) => (sig.narrow(D::Minus1, hd, hd)?.mul(c)? + i.mul(&g)?)?,
                    None => i.mul(&g)?,
                };
                let h = o.mul(&tanh(&c)?)?;
                Ok((h, Some(c)))
            }
            CellKind::Gru => {
                let b_hh = b_hh.ok_or_else(|| candle_core::Error::Msg("GRU without bias_hh".into()))?;
                let hh = match &hh {
                    Some(hh) => hh.broadcast_add(b_hh)?,
                    None => b_hh.unsqueeze(0)?.broadcast_as(x.shape())?,
                };
                let rz =
                    candle_nn::ops::sigmoid(&(x.narrow(D::Minus1, 0, 2 * hd)? + hh.narrow(D::Minus1, 0, 2 * hd)?)?)?;
                let r = rz.narrow(D::Minus1, 0, hd)?;
                let z = rz.narrow(D::Minus1, hd, hd)?;
                let n = tanh(&(x.narrow(D::Minus1, 2 * hd, hd)? + r.mul(&hh.narrow(D::Minus1, 2 * hd, hd)?)?)?)?;
                // (1 - z) ⊙ n + z ⊙ h, written as PyTorch does: n + z ⊙ (h - n).
                let h = match h {
                    Some(h) => (&n + z.mul(&(h - &n)?)?)?,
                    None => (&n - z.mul(&n)?)?,
                };
                Ok((h, None))
            }
        }
    }
}

/// The `steps` slices `[batch, gates]` of the time-major `xs` `[steps, batch, gates]` (views).
///
/// They are cut by repeated halving rather than one by one: candle's backward pass of a slice
/// materialises a gradient as large as the sliced tensor, so cutting every step off the whole
/// tensor would cost `O(steps²)` memory traffic in training; halving costs `O(steps·log steps)`.
fn split_steps(xs: &Tensor) -> Result<Vec<Tensor>> {
    fn halve(xs: &Tensor, out: &mut Vec<Tensor>) -> Result<()> {
        let n = xs.dim(0)?;
        if n == 1 {
            out.push(xs.squeeze(0)?);
            return Ok(());
        }
        halve(&xs.narrow(0, 0, n / 2)?, out)?;
        halve(&xs.narrow(0, n / 2, n - n / 2)?, out)
    }
    let mut out = Vec::with_capacity(xs.dim(0)?);
    if xs.dim(0)? > 0 {
        halve(xs, &mut out)?;
    }
    Ok(out)
}

/// `tanh`, computed on the CPU as `2·sigmoid(2x) − 1`: candle's CPU `tanh` (libm `tanhf`) costs
/// several times its sigmoid, and was a fifth of an LSTM's inference time. The two agree to a
/// few units of 1e-7.
fn tanh(xs: &Tensor) -> Result<Tensor> {
    if xs.device().is_cpu() { candle_nn::ops::sigmoid(&xs.affine(2.0, 0.0)?)?.affine(2.0, -1.0) } else { xs.tanh() }
}

/// Per-example lengths from a `[batch, time]` mask whose nonzero entries mark the real steps.
/// Each row must be real steps followed by padding (`1…1 0…0`), as [`Rnn::forward`] expects.
pub fn lengths_from_mask(mask: &Tensor) -> Result<Vec<usize>> {
    mask.dims2()?;
    let rows = mask.ne(&mask.zeros_like()?)?.to_dtype(DType::U32)?.to_vec2::<u32>()?;
    rows.iter()
        .enumerate()
        .map(|(b, row)| {
            let len = row.iter().take_while(|&&v| v != 0).count();
            if row[len..].iter().any(|&v| v != 0) {
                candle_core::bail!("mask row {b} has a real step after padding: padding must be at the end");
            }
            Ok(len)
        })
        .collect()
}

/// Draws `name` `[gates·hidden, hidden]` standard normal from `vb` and, when it was freshly
/// created there, overwrites each `hidden × hidden` gate block with an orthogonal matrix.
fn orthogonal_recurrent(vb: &VarBuilder, name: &str, gates: usize, hidden: usize) -> Result<Tensor> {
    let fresh = !vb.contains_tensor(name);
    let shape = Shape::from((gates * hidden, hidden));
    let w = vb.get_with_hints(shape.clone(), name, Init::Randn { mean: 0.0, stdev: 1.0 })?;
    if fresh {
        let a = w.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        let q: Vec<f64> = a.chunks(hidden * hidden).flat_map(|block| orthogonal(block, hidden)).collect();
        let q = Tensor::from_vec(q, shape, w.device())?.to_dtype(w.dtype())?;
        // The variable's own storage: the orthogonal values are what gets trained and saved.
        w.slice_set(&q, 0, 0)?;
    }
    Ok(w)
}

/// The orthogonal factor of the row-major `n × n` matrix `a` with the sign convention of
/// `torch.nn.init.orthogonal_`: `Q` of `a = Q·R` with `R`'s diagonal positive (Householder QR
/// in f64, then each column of `Q` multiplied by the sign of `R`'s diagonal entry).
fn orthogonal(a: &[f64], n: usize) -> Vec<f64> {
    let mut r = a.to_vec();
    let mut q: Vec<f64> = (0..n * n).map(|i| if i / n == i % n { 1.0 } else { 0.0 }).collect();
    let mut v = vec![0.0; n];
    for k in 0..n.saturating_sub(1) {
        let norm = (k..n).map(|i| r[i * n + k] * r[i * n + k]).sum::<f64>().sqrt();
        if norm == 0.0 {
            continue;
        }
        let alpha = if r[k * n + k] > 0.0 { -norm } else { norm };
        for i in k..n {
            v[i] = r[i * n + k];
        }
        v[k] -= alpha;
        let vnorm = (k..n).map(|i| v[i] * v[i]).sum::<f64>().sqrt();
        if vnorm == 0.0 {
            continue;
        }
        for x in &mut v[k..] {
            *x /= vnorm;
        }
        // R ← (I − 2vvᵀ) R on rows k.., Q ← Q (I − 2vvᵀ) on columns k...
        for j in 0..n {
            let dot: f64 = (k..n).map(|i| v[i] * r[i * n + j]).sum();
            for i in k..n {
                r[i * n + j] -= 2.0 * v[i] * dot;
            }
        }
        for i in 0..n {
            let dot: f64 = (k..n).map(|j| q[i * n + j] * v[j]).sum();
            for j in k..n {
                q[i * n + j] -= 2.0 * dot * v[j];
            }
        }
    }
    for j in 0..n {
        if r[j * n + j] < 0.0 {
            for i in 0..n {
                q[i * n + j] = -q[i * n + j];
            }
        }
    }
    q
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::{Device, Var};
    use pipeline_core::rng;

    use super::*;
    use crate::Params;

    // Reference values: PyTorch 2.15, produced by this script (its output pasted below):
    // import math, torch, torch.nn as nn
    // from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    //
    // def fill(shape, seed):
    //     n = math.prod(shape)
    //     v = [0.5 * math.sin((i + 1) ** 2 * 0.7548776662 + seed * 0.5698402910) for i in range(n)]
    //     return torch.tensor(v, dtype=torch.float64).float().reshape(shape)
    //
    // def build(cell, bi):
    //     kw = dict(input_size=2, hidden_size=3, num_layers=2, batch_first=True, bidirectional=bi)
    //     m = {"tanh": lambda: nn.RNN(nonlinearity="tanh", **kw),
    //          "relu": lambda: nn.RNN(nonlinearity="relu", **kw),
    //          "lstm": lambda: nn.LSTM(**kw), "gru": lambda: nn.GRU(**kw)}[cell]()
    //     with torch.no_grad():
    //         for i, (name, p) in enumerate(sorted(m.named_parameters())):
    //             p.copy_(fill(p.shape, i))
    //     return m.eval()
    //
    // def lit(v):
    //     s = "%.8g" % v
    //     return s if any(c in s for c in ".en") else s + ".0"
    //
    // def flat(t):
    //     return ", ".join(lit(v) for v in t.detach().flatten().tolist())
    //
    // print("// names:", [n for n, _ in sorted(build("lstm", True).named_parameters())])
    // x = 2 * fill((3, 4, 2), 100)
    // lengths = [3, 1, 2]
    // for cell in ["tanh", "relu", "lstm", "gru"]:
    //     for bi in [False, True]:
    //         m = build(cell, bi)
    //         tag = f"{cell.upper()}_{'BI' if bi else 'UNI'}"
    //         with torch.no_grad():
    //             out, h = m(x)
    //             out_p, h_p = m(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    //             out_p, _ = pad_packed_sequence(out_p, batch_first=True)
    //         hs, hps = (h, h_p) if cell != "lstm" else (h[0], h_p[0])
    //         print(f"const {tag}_OUT: &[f32] = &[{flat(out)}];")
    //         print(f"const {tag}_H: &[f32] = &[{flat(hs)}];")
    //         print(f"const {tag}_PACKED_OUT: &[f32] = &[{flat(out_p)}];")
    //         print(f"const {tag}_PACKED_H: &[f32] = &[{flat(hps)}];")
    //         if cell == "lstm":
    //             print(f"const {tag}_C: &[f32] = &[{flat(h[1])}];")
    //             print(f"const {tag}_PACKED_C: &[f32] = &[{flat(h_p[1])}];")
    //
    // Output of the script (`%.8g`; `_OUT` / `_H` / `_C` without lengths, `_PACKED_*` with
    // lengths [3, 1, 2] through pack_padded_sequence, whose padded outputs stop at 3 steps):
    #[rustfmt::skip]
    const TANH_UNI_OUT: &[f32] = &[
        0.10359989, -0.55238307, 0.64432609, -0.12969975, -0.75808752, 0.68803227, -0.055167038, -0.83183259,
        0.62383717, -0.13274312, -0.84363133, 0.6895681, 0.08519005, -0.74003363, 0.76857942, 0.040476341, -0.8947888,
        0.84000409, -0.024883796, -0.84354866, 0.73906863, -0.15684921, -0.81536651, 0.64955646, 0.019930972,
        -0.7370351, 0.77657527, 0.0097222244, -0.85766602, 0.76516002, -0.0041156178, -0.84778506, 0.6928466,
        0.025533013, -0.88097161, 0.75739712,
    ];
    #[rustfmt::skip]
    const TANH_UNI_H: &[f32] = &[
        0.85684597, -0.48721108, 0.9294036, 0.72086698, -0.77400339, 0.88968873, 0.91456133, -0.12273657, 0.76021308,
        -0.13274312, -0.84363133, 0.6895681, -0.15684921, -0.81536651, 0.64955646, 0.025533013, -0.88097161, 0.75739712,
    ];
    #[rustfmt::skip]
    const TANH_UNI_PACKED_OUT: &[f32] = &[
        0.10359989, -0.55238307, 0.64432609, -0.12969975, -0.75808752, 0.68803227, -0.055167038, -0.83183259,
        0.62383717, 0.08519005, -0.74003363, 0.76857942, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.019930972, -0.7370351,
        0.77657527, 0.0097222244, -0.85766602, 0.76516002, 0.0, 0.0, 0.0,
    ];
    #[rustfmt::skip]
    const TANH_UNI_PACKED_H: &[f32] = &[
        0.81794953, -0.62531102, 0.70464772, 0.85187095, 0.024507621, 0.60411978, 0.71331453, -0.33394957, 0.77987695,
        -0.055167038, -0.83183259, 0.62383717, 0.08519005, -0.74003363, 0.76857942, 0.0097222244, -0.85766602,
        0.76516002,
    ];
    #[rustfmt::skip]
    const TANH_BI_OUT: &[f32] = &[
        0.49071556, 0.20381245, 0.40466961, 0.10574567, 0.60926479, -0.23200066, 0.59420055, -0.18540652, 0.29408821,
        -0.033347175, 0.026062932, 0.60363239, 0.15888312, -0.55790383, 0.16894849, -0.25656503, -0.17961435,
        0.049851395, -0.0027249388, 0.42613348, 0.4803358, -0.10573986, 0.17663628, 0.089083493, 0.010423611,
        -0.41052607, 0.58071566, -0.48074979, -0.36667031, 0.48859295, -0.41483486, -0.10791864, 0.2504862, -0.46191192,
        -0.38843763, -0.19247824, 0.25598454, 0.44977158, 0.39659852, -0.068611212, 0.52658862, -0.33123142, 0.56756198,
        0.25419199, 0.26951617, 0.019644266, 0.19035786, 0.31999436, -0.0096590193, -0.057658605, 0.37978721,
        -0.20081937, 0.061159328, -0.33314106, 0.14454025, -0.16839264, 0.35614926, -0.19580778, 0.22213286, 0.14520922,
        0.39874721, -0.44374719, 0.56401515, -0.23053305, -0.20569913, 0.60220867, -0.29517812, -0.30966526, 0.35659596,
        -0.33262375, -0.40868196, 0.14936967,
    ];
    #[rustfmt::skip]
    const TANH_BI_H: &[f32] = &[
        0.1614051, -0.38941145, 0.12016873, 0.4352214, -0.40151677, 0.25540161, -0.57426935, -0.44637331, 0.43118697,
        0.52817214, -0.15957166, 0.35210001, -0.43506145, -0.32001022, 0.1826417, -0.30464509, -0.70090228, -0.25323617,
        -0.0027249388, 0.42613348, 0.4803358, 0.56756198, 0.25419199, 0.26951617, -0.29517812, -0.30966526, 0.35659596,
        0.10574567, 0.60926479, -0.23200066, -0.48074979, -0.36667031, 0.48859295, -0.20081937, 0.061159328,
        -0.33314106,
    ];
    #[rustfmt::skip]
    const TANH_BI_PACKED_OUT: &[f32] = &[
        0.50234962, 0.17530361, 0.4400807, 0.067060642, 0.47921172, -0.12564135, 0.539042, -0.1686697, 0.19638756,
        0.035812702, 0.18535395, 0.32206592, 0.2502405, -0.3812699, 0.36181304, -0.17910857, -0.12661965, 0.3589519,
        -0.037155356, -0.20008464, 0.49356204, -0.24883866, -0.17190026, -0.091924511, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.01305646, -0.10192282, 0.38346031, -0.24929084, 0.096577764, -0.1990483,
        0.051299263, -0.13867117, 0.37887299, -0.31354779, -0.09989766, 0.24359342, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    ];
    #[rustfmt::skip]
    const TANH_BI_PACKED_H: &[f32] = &[
        0.057032824, -0.068429083, 0.54491079, -0.16600288, -0.63770896, 0.27949658, 0.06772802, 0.19696176, 0.5182429,
        0.55817866, -0.10592194, 0.44160292, -0.38132343, -0.63073373, -0.10604183, -0.34620252, -0.65777194,
        -0.23427744, 0.2502405, -0.3812699, 0.36181304, -0.037155356, -0.20008464, 0.49356204, 0.051299263, -0.13867117,
        0.37887299, 0.067060642, 0.47921172, -0.12564135, -0.24883866, -0.17190026, -0.091924511, -0.24929084,
        0.096577764, -0.1990483,
    ];
    #[rustfmt::skip]
    const RELU_UNI_OUT: &[f32] = &[
        0.25007245, 0.0, 1.0797505, 0.0, 0.0, 1.7856305, 0.0, 0.0, 1.9878461, 0.0, 0.0, 2.3785391, 0.0, 0.0, 1.0242788,
        0.0, 0.0, 1.8440083, 0.0, 0.0, 2.3725805, 0.0, 0.0, 2.5632987, 0.0, 0.0, 1.0887364, 0.0, 0.0, 1.7562668, 0.0,
        0.0, 2.008796, 0.0, 0.0, 2.1543527,
    ];
    #[rustfmt::skip]
    const RELU_UNI_H: &[f32] = &[
        1.0835893, 0.0, 1.883975, 0.86771274, 0.0, 1.8663721, 1.4519103, 0.0, 1.3233997, 0.0, 0.0, 2.3785391, 0.0, 0.0,
        2.5632987, 0.0, 0.0, 2.1543527,
    ];
    #[rustfmt::skip]
    const RELU_UNI_PACKED_OUT: &[f32] = &[
        0.25007245, 0.0, 1.0797505, 0.0, 0.0, 1.7856305, 0.0, 0.0, 1.9878461, 0.0, 0.0, 1.0242788, 0.0, 0.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 0.0, 1.0887364, 0.0, 0.0, 1.7562668, 0.0, 0.0, 0.0,
    ];
    #[rustfmt::skip]
    const RELU_UNI_PACKED_H: &[f32] = &[
        0.8862834, 0.0, 1.0472326, 1.2629339, 0.024512529, 0.6996094, 0.93578398, 0.0, 1.2933762, 0.0, 0.0, 1.9878461,
        0.0, 0.0, 1.0242788, 0.0, 0.0, 1.7562668,
    ];
    #[rustfmt::skip]
    const RELU_BI_OUT: &[f32] = &[
        0.69949973, 0.21199736, 0.42463973, 0.14525026, 0.66647005, 0.0, 0.49381137, 0.0, 0.099878073, 0.0, 0.0,
        0.40354815, 0.38660398, 0.0, 0.26136664, 0.0, 0.14055985, 0.052647278, 0.3258453, 0.0, 0.045629546,
        0.0051480532, 0.0, 0.2113688, 0.16040078, 0.0, 0.27992803, 0.0, 0.0, 0.0, 0.23898374, 0.0, 0.18444911,
        0.026307702, 0.0, 0.0, 0.67146122, 0.14006287, 0.15094468, 0.25594589, 0.60764152, 0.0, 0.59762812, 0.0,
        0.10310736, 0.039816082, 0.13607934, 0.42311051, 0.1032013, 0.0, 0.2126292, 0.0, 0.0, 0.0, 0.40525529, 0.0,
        0.46891645, 0.0, 0.13851097, 0.059559211, 0.24596569, 0.0, 0.33887398, 0.0, 0.0, 0.33187586, 0.28611478, 0.0,
        0.17025483, 0.0, 0.0, 0.090482086,
    ];
    #[rustfmt::skip]
    const RELU_BI_H: &[f32] = &[
        0.058623105, 0.0, 0.10700877, 0.36735711, 0.0, 0.20353295, 0.0, 0.0, 0.57876426, 0.54235995, 0.0, 0.3785778,
        0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.3258453, 0.0, 0.045629546, 0.59762812, 0.0, 0.10310736, 0.28611478, 0.0,
        0.17025483, 0.14525026, 0.66647005, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    ];
    #[rustfmt::skip]
    const RELU_BI_PACKED_OUT: &[f32] = &[
        0.71325171, 0.23257348, 0.46732637, 0.11108682, 0.57770455, 0.0, 0.49236917, 0.0, 0.00011107326, 0.00097209215,
        0.11637676, 0.21837303, 0.3880938, 0.0, 0.45480165, 0.0, 0.0, 0.36250761, 0.16040078, 0.0, 0.27992803, 0.0, 0.0,
        0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1032013, 0.0, 0.2126292, 0.0, 0.0, 0.0,
        0.37413028, 0.0, 0.5163551, 0.0, 0.045781642, 0.26566428, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    ];
    #[rustfmt::skip]
    const RELU_BI_PACKED_H: &[f32] = &[
        0.21587107, 0.0, 0.69782424, 0.0, 0.0, 0.2871359, 0.35445812, 0.0, 0.71958208, 0.61827391, 0.0, 0.45594946, 0.0,
        0.0, 0.0, 0.0, 0.0, 0.0, 0.3880938, 0.0, 0.45480165, 0.16040078, 0.0, 0.27992803, 0.37413028, 0.0, 0.5163551,
        0.11108682, 0.57770455, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    ];
    #[rustfmt::skip]
    const LSTM_UNI_OUT: &[f32] = &[
        0.21125825, -0.048244875, -0.12728629, 0.30990216, -0.075451031, -0.18870777, 0.3409836, -0.093718693,
        -0.22821638, 0.43147737, -0.10458929, -0.24456532, 0.20517506, -0.057417966, -0.17937735, 0.28868109,
        -0.086305887, -0.26338106, 0.39459604, -0.090917677, -0.27441725, 0.44820589, -0.095022984, -0.27331963,
        0.22472319, -0.05657427, -0.17408526, 0.30569732, -0.080204189, -0.2451013, 0.32970569, -0.096453451,
        -0.27421513, 0.32829633, -0.11316491, -0.30204323,
    ];
    #[rustfmt::skip]
    const LSTM_UNI_H: &[f32] = &[
        -0.23653391, -0.25586393, -0.46045306, -0.30895215, -0.22166966, -0.47247618, 0.11279499, -0.057367403,
        -0.25293645, 0.43147737, -0.10458929, -0.24456532, 0.44820589, -0.095022984, -0.27331963, 0.32829633,
        -0.11316491, -0.30204323,
    ];
    #[rustfmt::skip]
    const LSTM_UNI_PACKED_OUT: &[f32] = &[
        0.21125825, -0.048244882, -0.12728629, 0.30990213, -0.075451046, -0.18870775, 0.34098363, -0.093718708,
        -0.22821635, 0.20517504, -0.05741797, -0.17937735, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.22472322, -0.056574274,
        -0.17408526, 0.30569726, -0.080204189, -0.24510127, 0.0, 0.0, 0.0,
    ];
    #[rustfmt::skip]
    const LSTM_UNI_PACKED_H: &[f32] = &[
        -0.1922079, -0.12201389, -0.21253669, 0.18883353, -0.056524795, -0.2519525, -0.028096393, -0.079830885,
        -0.28714493, 0.34098363, -0.093718708, -0.22821635, 0.20517504, -0.05741797, -0.17937735, 0.30569726,
        -0.080204189, -0.24510127,
    ];
    #[rustfmt::skip]
    const LSTM_UNI_C: &[f32] = &[
        -0.34892502, -0.63090581, -0.7964831, -0.52172828, -0.64370424, -0.7715193, 0.19223812, -0.23821123,
        -0.65325952, 0.64255673, -0.42167357, -0.49987072, 0.67274523, -0.40216503, -0.57605886, 0.51195717,
        -0.45681673, -0.66871852,
    ];
    #[rustfmt::skip]
    const LSTM_UNI_PACKED_C: &[f32] = &[
        -0.3622641, -0.47689015, -0.40650651, 0.30045342, -0.17939147, -0.55341196, -0.05227533, -0.36227784,
        -0.54926908, 0.51189184, -0.37119666, -0.4523668, 0.30071467, -0.18394981, -0.37470138, 0.45433503, -0.30155167,
        -0.51892483,
    ];
    #[rustfmt::skip]
    const LSTM_BI_OUT: &[f32] = &[
        0.098815247, 0.031340528, 0.049245533, 0.076407917, 0.14445935, 0.11481213, 0.14235325, 0.074870616,
        0.061403833, 0.057340205, 0.15405209, 0.10076763, 0.18376558, 0.11380626, 0.083334744, 0.05240744, 0.13126969,
        0.10046467, 0.19672379, 0.14055312, 0.077612348, 0.028227333, 0.07939636, 0.068100706, 0.13985847, 0.034484245,
        0.0834319, 0.21025842, 0.14699502, 0.16155705, 0.26210728, 0.057044189, 0.12510298, 0.15876624, 0.10614534,
        0.17440327, 0.28973264, 0.086887494, 0.089216441, 0.070686884, 0.087565958, 0.11153031, 0.2645486, 0.11560185,
        0.065603107, 0.027672511, 0.065531537, 0.061305206, 0.12613609, 0.037294939, 0.0610855, 0.23523021, 0.19941814,
        0.13241611, 0.20837998, 0.071593009, 0.092743106, 0.20800342, 0.18179412, 0.12566762, 0.25914925, 0.1032963,
        0.11080941, 0.1681539, 0.14525786, 0.12064653, 0.30738968, 0.11962941, 0.12471595, 0.10694595, 0.08530473,
        0.10484004,
    ];
    #[rustfmt::skip]
    const LSTM_BI_H: &[f32] = &[
        0.28949577, -0.037692744, -0.17531079, 0.29089129, 0.018444955, -0.12360156, -0.070412092, -0.29029688,
        -0.073171407, 0.33464912, 0.11228225, -0.096974358, 0.18828593, -0.068883613, 0.067568377, 0.044691239,
        -0.083872154, 0.14764489, 0.19672379, 0.14055312, 0.077612348, 0.2645486, 0.11560185, 0.065603107, 0.30738968,
        0.11962941, 0.12471595, 0.076407917, 0.14445935, 0.11481213, 0.21025842, 0.14699502, 0.16155705, 0.23523021,
        0.19941814, 0.13241611,
    ];
    #[rustfmt::skip]
    const LSTM_BI_PACKED_OUT: &[f32] = &[
        0.099046178, 0.029517135, 0.044562735, 0.083856277, 0.13445236, 0.10180262, 0.14221455, 0.069272354,
        0.051862657, 0.061882894, 0.1329, 0.079262666, 0.18051326, 0.10254932, 0.068182625, 0.046011142, 0.091166645,
        0.06309747, 0.13540483, 0.032267042, 0.066351466, 0.098653235, 0.076952912, 0.084807701, 0.0, 0.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.12953314, 0.03373646, 0.063075885, 0.15563312, 0.1278491, 0.11858884,
        0.22048655, 0.063258633, 0.091116145, 0.091651201, 0.077031493, 0.089066274, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    ];
    #[rustfmt::skip]
    const LSTM_BI_PACKED_H: &[f32] = &[
        0.25140107, -0.091591828, -0.29381227, -0.084856912, -0.088256739, 0.090797253, -0.016511317, -0.15812218,
        -0.073757418, 0.27282014, 0.12065808, -0.090469182, 0.014729876, -0.066533744, 0.11890136, 0.087178484,
        -0.051791824, 0.098822124, 0.18051326, 0.10254932, 0.068182625, 0.13540483, 0.032267042, 0.066351466,
        0.22048655, 0.063258633, 0.091116145, 0.083856277, 0.13445236, 0.10180262, 0.098653235, 0.076952912,
        0.084807701, 0.15563312, 0.1278491, 0.11858884,
    ];
    #[rustfmt::skip]
    const LSTM_BI_C: &[f32] = &[
        0.63412988, -0.11812135, -0.48335117, 0.61504048, 0.053168476, -0.38150024, -0.099777818, -0.62873143,
        -0.1050904, 0.75137675, 0.22748233, -0.34303814, 0.27838469, -0.17528, 0.11688429, 0.070245266, -0.28590223,
        0.26157513, 0.35418195, 0.3036153, 0.22616059, 0.48293352, 0.23793961, 0.20160456, 0.59718305, 0.30632472,
        0.30309337, 0.14474846, 0.29336956, 0.3268356, 0.40731347, 0.31863755, 0.41096649, 0.46453875, 0.44554722,
        0.32829207,
    ];
    #[rustfmt::skip]
    const LSTM_BI_PACKED_C: &[f32] = &[
        0.39656389, -0.17086831, -0.66195726, -0.13859911, -0.21885628, 0.13848013, -0.024473527, -0.32300058,
        -0.12950751, 0.5776962, 0.25410715, -0.30606043, 0.021321122, -0.18653584, 0.19655867, 0.13863984, -0.17072873,
        0.17505866, 0.32695132, 0.2370501, 0.19393338, 0.24742988, 0.075448669, 0.14851236, 0.39926147, 0.15111621,
        0.22786595, 0.1597285, 0.2723529, 0.28929484, 0.19768815, 0.16269073, 0.19749297, 0.30598685, 0.27244586,
        0.29263523,
    ];
    #[rustfmt::skip]
    const GRU_UNI_OUT: &[f32] = &[
        0.16496137, -0.083406687, -0.076768696, 0.26704699, -0.15525156, -0.080268733, 0.32988748, -0.2117011,
        -0.1160868, 0.39852798, -0.24527504, -0.12744302, 0.18969443, -0.074386284, -0.23990542, 0.28211313,
        -0.11405774, -0.38671595, 0.3411316, -0.13973619, -0.33217195, 0.38932574, -0.16137363, -0.21173699, 0.20668894,
        -0.092094779, -0.21737106, 0.29315704, -0.16266362, -0.29170653, 0.3274239, -0.20719831, -0.31703129,
        0.34757742, -0.20280859, -0.41113442,
    ];
    #[rustfmt::skip]
    const GRU_UNI_H: &[f32] = &[
        -0.19968216, -0.44620955, -0.33992952, -0.34259093, -0.43287414, -0.37387016, 0.157875, -0.042712562,
        -0.48025304, 0.39852798, -0.24527504, -0.12744302, 0.38932574, -0.16137363, -0.21173699, 0.34757742,
        -0.20280859, -0.41113442,
    ];
    #[rustfmt::skip]
    const GRU_UNI_PACKED_OUT: &[f32] = &[
        0.16496137, -0.083406687, -0.076768696, 0.26704699, -0.15525156, -0.080268733, 0.32988748, -0.2117011,
        -0.1160868, 0.18969443, -0.074386284, -0.23990542, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.20668894, -0.092094779,
        -0.21737106, 0.29315704, -0.16266362, -0.29170653, 0.0, 0.0, 0.0,
    ];
    #[rustfmt::skip]
    const GRU_UNI_PACKED_H: &[f32] = &[
        -0.16168451, -0.29792669, -0.15727443, 0.20924792, -0.073347256, -0.38740757, 0.072126076, -0.21377695,
        -0.2957665, 0.32988748, -0.2117011, -0.1160868, 0.18969443, -0.074386284, -0.23990542, 0.29315704, -0.16266362,
        -0.29170653,
    ];
    #[rustfmt::skip]
    const GRU_BI_OUT: &[f32] = &[
        0.12211303, 0.050165281, 0.14953804, -0.10611674, 0.18913329, 0.30803657, 0.14641361, 0.12669517, 0.21751578,
        -0.13674265, 0.27517274, 0.25403032, 0.18117897, 0.21974111, 0.29134974, -0.10819921, 0.2703585, 0.23584652,
        0.12787476, 0.27725855, 0.27097172, -0.10526378, 0.13890737, 0.14615202, 0.22996983, 0.14178939, 0.10818607,
        0.282121, 0.25606984, 0.26263776, 0.40041435, 0.20440683, 0.20178382, 0.15469715, 0.11616018, 0.29189122,
        0.38249674, 0.20051232, 0.26686871, -0.058857419, 0.033986956, 0.27045101, 0.26381928, 0.22136836, 0.25433314,
        -0.1035467, 0.07369823, 0.1453, 0.18389297, 0.18455821, 0.10207193, 0.38524911, 0.50613147, 0.27328253,
        0.32414335, 0.29623482, 0.18129495, 0.34247854, 0.47040609, 0.26166993, 0.41325837, 0.39117157, 0.29063901,
        0.27282643, 0.40208212, 0.28252324, 0.47832656, 0.45885143, 0.39765516, 0.18007459, 0.24478054, 0.2330943,
    ];
    #[rustfmt::skip]
    const GRU_BI_H: &[f32] = &[
        0.44470164, 0.20004694, -0.24399985, 0.35607392, 0.29957736, -0.26611352, -0.054143198, -0.35532519,
        0.086284786, 0.34535909, 0.46478376, -0.16042081, 0.13131332, 0.16730052, 0.3479518, 0.050172955, -0.049542025,
        0.44286007, 0.12787476, 0.27725855, 0.27097172, 0.26381928, 0.22136836, 0.25433314, 0.47832656, 0.45885143,
        0.39765516, -0.10611674, 0.18913329, 0.30803657, 0.282121, 0.25606984, 0.26263776, 0.38524911, 0.50613147,
        0.27328253,
    ];
    #[rustfmt::skip]
    const GRU_BI_PACKED_OUT: &[f32] = &[
        0.1175148, 0.055953905, 0.14226449, -0.08536756, 0.20428059, 0.2794219, 0.13227083, 0.13962586, 0.20768641,
        -0.11008523, 0.27177846, 0.2121685, 0.14925565, 0.24380121, 0.28784499, -0.060323201, 0.2214627, 0.16623053,
        0.17004818, 0.18460618, 0.18286747, 0.12808642, 0.21926859, 0.18817939, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 0.0, 0.17107648, 0.17314839, 0.13707265, 0.20794249, 0.31645426, 0.25520274, 0.28722566,
        0.2772567, 0.25120875, 0.12026855, 0.18862024, 0.18720657, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    ];
    #[rustfmt::skip]
    const GRU_BI_PACKED_H: &[f32] = &[
        0.3452943, 0.121696, -0.42720214, -0.064719349, -0.13221681, 0.16438472, 0.083489552, -0.16585118, 0.026968822,
        0.27012527, 0.43550828, -0.14633572, 0.04701459, -0.091375396, 0.25760254, 0.1430587, -0.031378657, 0.32265842,
        0.14925565, 0.24380121, 0.28784499, 0.17004818, 0.18460618, 0.18286747, 0.28722566, 0.2772567, 0.25120875,
        -0.08536756, 0.20428059, 0.2794219, 0.12808642, 0.21926859, 0.18817939, 0.20794249, 0.31645426, 0.25520274,
    ];

    /// The script's `fill`: deterministic values in ±0.5, computed in f64 and rounded to f32.
    fn fill(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (0.5 * (((i + 1) * (i + 1)) as f64 * 0.7548776662 + seed as f64 * 0.5698402910).sin()) as f32)
            .collect()
    }

    fn input() -> Tensor {
        (Tensor::from_vec(fill(24, 100), (3, 4, 2), &Device::Cpu).unwrap() * 2.0).unwrap()
    }

    fn config(tag: &str, bidirectional: bool) -> RnnLayerConfig {
        let (cell, nonlinearity) = match tag {
            "tanh" => (CellKind::Rnn, Nonlinearity::Tanh),
            "relu" => (CellKind::Rnn, Nonlinearity::Relu),
            "lstm" => (CellKind::Lstm, Nonlinearity::Tanh),
            _ => (CellKind::Gru, Nonlinearity::Tanh),
        };
        RnnLayerConfig { cell, nonlinearity, hidden: 3, layers: 2, bidirectional, ..RnnLayerConfig::default() }
    }

    /// The block of `config` with the script's weights: the i-th parameter in name order gets
    /// `fill(.., i)`, as the script does to `sorted(m.named_parameters())`.
    fn torch_block(config: &RnnLayerConfig) -> Rnn {
        let params = Params::new(rng(0, "init"));
        Rnn::new(2, config, params.var_builder(&Device::Cpu)).unwrap();
        let ts: HashMap<String, Tensor> = params
            .named_vars()
            .into_iter()
            .enumerate()
            .map(|(i, (name, v))| {
                let t = Tensor::from_vec(fill(v.elem_count(), i), v.shape(), &Device::Cpu).unwrap();
                (name, t)
            })
            .collect();
        Rnn::new(2, config, VarBuilder::from_tensors(ts, DType::F32, &Device::Cpu)).unwrap()
    }

    fn assert_close(got: &Tensor, want: &[f32], what: &str) {
        let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() < 1e-5, "{what}[{i}]: {g} vs {w}\n{got:?}");
        }
    }

    struct Reference {
        out: &'static [f32],
        h: &'static [f32],
        c: Option<&'static [f32]>,
        packed_out: &'static [f32],
        packed_h: &'static [f32],
        packed_c: Option<&'static [f32]>,
    }

    fn reference(tag: &str, bidirectional: bool) -> Reference {
        let r = |out, h, packed_out, packed_h| Reference { out, h, c: None, packed_out, packed_h, packed_c: None };
        match (tag, bidirectional) {
            ("tanh", false) => r(TANH_UNI_OUT, TANH_UNI_H, TANH_UNI_PACKED_OUT, TANH_UNI_PACKED_H),
            ("tanh", true) => r(TANH_BI_OUT, TANH_BI_H, TANH_BI_PACKED_OUT, TANH_BI_PACKED_H),
            ("relu", false) => r(RELU_UNI_OUT, RELU_UNI_H, RELU_UNI_PACKED_OUT, RELU_UNI_PACKED_H),
            ("relu", true) => r(RELU_BI_OUT, RELU_BI_H, RELU_BI_PACKED_OUT, RELU_BI_PACKED_H),
            ("gru", false) => r(GRU_UNI_OUT, GRU_UNI_H, GRU_UNI_PACKED_OUT, GRU_UNI_PACKED_H),
            ("gru", true) => r(GRU_BI_OUT, GRU_BI_H, GRU_BI_PACKED_OUT, GRU_BI_PACKED_H),
            ("lstm", false) => Reference {
                c: Some(LSTM_UNI_C),
                packed_c: Some(LSTM_UNI_PACKED_C),
                ..r(LSTM_UNI_OUT, LSTM_UNI_H, LSTM_UNI_PACKED_OUT, LSTM_UNI_PACKED_H)
            },
            _ => Reference {
                c: Some(LSTM_BI_C),
                packed_c: Some(LSTM_BI_PACKED_C),
                ..r(LSTM_BI_OUT, LSTM_BI_H, LSTM_BI_PACKED_OUT, LSTM_BI_PACKED_H)
            },
        }
    }

    #[test]
    fn matches_pytorch_full_and_packed() {
        for tag in ["tanh", "relu", "lstm", "gru"] {
            for bidirectional in [false, true] {
                let what = format!("{tag} bidirectional={bidirectional}");
                let cfg = config(tag, bidirectional);
                let block = torch_block(&cfg);
                let want = reference(tag, bidirectional);
                let x = input();

                let out = block.forward_with_state(&x, None, &mut Ctx::infer()).unwrap();
                assert_eq!(out.outputs.dims(), &[3, 4, 3 * cfg.directions()], "{what}");
                assert_close(&out.outputs, want.out, &format!("{what} outputs"));
                assert_close(&out.h_n, want.h, &format!("{what} h_n"));
                match (&out.c_n, want.c) {
                    (Some(c), Some(w)) => assert_close(c, w, &format!("{what} c_n")),
                    (None, None) => {}
                    _ => panic!("{what}: c_n presence"),
                }

                let lengths = [3, 1, 2];
                let out = block.forward_with_state(&x, Some(&lengths), &mut Ctx::infer()).unwrap();
                assert_eq!(out.outputs.dims(), &[3, 4, 3 * cfg.directions()], "{what}");
                assert_close(&out.outputs.narrow(1, 0, 3).unwrap(), want.packed_out, &format!("{what} packed outputs"));
                let tail = out.outputs.narrow(1, 3, 1).unwrap().abs().unwrap().sum_all().unwrap();
                assert_eq!(tail.to_scalar::<f32>().unwrap(), 0.0, "{what}: padding past the longest length");
                assert_close(&out.h_n, want.packed_h, &format!("{what} packed h_n"));
                match (&out.c_n, want.packed_c) {
                    (Some(c), Some(w)) => assert_close(c, w, &format!("{what} packed c_n")),
                    (None, None) => {}
                    _ => panic!("{what}: c_n presence"),
                }

                // `forward`'s last hidden state is the top layer's h_n, directions concatenated.
                let (outputs, last) = block.forward(&x, Some(&lengths), &mut Ctx::infer()).unwrap();
                assert_eq!(outputs.dims(), out.outputs.dims());
                let dirs = cfg.directions();
                let top: Vec<Tensor> = (0..dirs).map(|d| out.h_n.get(2 * dirs - dirs + d).unwrap()).collect();
                let want_last = Tensor::cat(&top, 1).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert_eq!(last.dims(), &[3, 3 * dirs]);
                assert_close(&last, &want_last, &format!("{what} last hidden"));
            }
        }
    }

    #[test]
    fn parameter_names_and_shapes_are_pytorchs() {
        // sorted(nn.LSTM(2, 3, num_layers=2, bidirectional=True).named_parameters()) names:
        // ['bias_hh_l0', 'bias_hh_l0_reverse', 'bias_hh_l1', 'bias_hh_l1_reverse', 'bias_ih_l0',
        // 'bias_ih_l0_reverse', 'bias_ih_l1', 'bias_ih_l1_reverse', 'weight_hh_l0', 'weight_hh_l0_reverse',
        // 'weight_hh_l1', 'weight_hh_l1_reverse', 'weight_ih_l0', 'weight_ih_l0_reverse', 'weight_ih_l1',
        // 'weight_ih_l1_reverse']
        let params = Params::new(rng(0, "init"));
        let block = Rnn::new(2, &config("lstm", true), params.var_builder(&Device::Cpu)).unwrap();
        let names: Vec<String> = params.named_vars().into_iter().map(|(k, _)| k).collect();
        let mut want = Vec::new();
        for kind in ["bias_hh", "bias_ih", "weight_hh", "weight_ih"] {
            for l in 0..2 {
                want.push(format!("{kind}_l{l}"));
                want.push(format!("{kind}_l{l}_reverse"));
            }
        }
        assert_eq!(names, want);
        let shapes: HashMap<String, Vec<usize>> =
            params.named_vars().into_iter().map(|(k, v)| (k, v.dims().to_vec())).collect();
        assert_eq!(shapes["weight_ih_l0"], [12, 2]);
        assert_eq!(shapes["weight_ih_l1_reverse"], [12, 6]);
        assert_eq!(shapes["weight_hh_l1"], [12, 3]);
        assert_eq!(shapes["bias_hh_l0_reverse"], [12]);
        assert_eq!(block.output_size(), 6);
        // PyTorch's default: everything uniform in ±1/sqrt(hidden).
        let bound = 1.0 / 3f32.sqrt();
        for (name, v) in params.named_vars() {
            let vals = v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(vals.iter().all(|x| x.abs() <= bound), "{name}");
        }
        // GRU and RNN stack 3 and 1 gate blocks.
        let params = Params::new(rng(0, "init"));
        Rnn::new(2, &config("gru", false), params.var_builder(&Device::Cpu)).unwrap();
        assert_eq!(params.count(), (9 * 2 + 9 * 3 + 18) + (9 * 3 + 9 * 3 + 18));
        let params = Params::new(rng(0, "init"));
        Rnn::new(2, &config("tanh", false), params.var_builder(&Device::Cpu)).unwrap();
        assert_eq!(params.count(), (3 * 2 + 3 * 3 + 6) + (3 * 3 + 3 * 3 + 6));
    }

    #[test]
    fn orthogonal_factor_matches_torch_qr() {
        // PyTorch 2.15 (float64), the QR step of torch.nn.init.orthogonal_ on a fixed, full-rank
        // matrix (`fill` in float64):
        //   a = torch.tensor([0.5 * math.sin((i + 1) ** 2 * 0.7548776662 + 7 * 0.5698402910)
        //                     for i in range(16)], dtype=torch.float64).reshape(4, 4)
        //   q, r = torch.linalg.qr(a); q *= torch.diag(r, 0).sign(); print(q.flatten().tolist())
        let want = [
            -0.662377185112049,
            0.040546149711464,
            -0.593216674987721,
            -0.455748231925397,
            -0.506384411179906,
            -0.68810189106962,
            0.132267845695417,
            0.502589129026371,
            0.49324411735922,
            -0.32678037371243,
            -0.766052671899379,
            0.25117350959588,
            -0.248075660731846,
            0.646595997982011,
            -0.209194878970372,
            0.690369165417081,
        ];
        let a: Vec<f64> =
            (0..16).map(|i| 0.5 * (((i + 1) * (i + 1)) as f64 * 0.7548776662 + 7.0 * 0.5698402910).sin()).collect();
        let q = orthogonal(&a, 4);
        for (g, w) in q.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{q:?}");
        }
    }

    #[test]
    fn orthogonal_init_is_orthogonal_per_gate_seeded_and_stored() {
        let draw = |seed| {
            let params = Params::new(rng(seed, "init"));
            let cfg = RnnLayerConfig {
                cell: CellKind::Lstm,
                hidden: 16,
                layers: 2,
                bidirectional: true,
                orthogonal: true,
                ..RnnLayerConfig::default()
            };
            Rnn::new(5, &cfg, params.var_builder(&Device::Cpu)).unwrap();
            params
        };
        let params = draw(3);
        let vars: HashMap<String, Var> = params.named_vars().into_iter().collect();
        for name in ["weight_hh_l0", "weight_hh_l0_reverse", "weight_hh_l1", "weight_hh_l1_reverse"] {
            let w = vars[name].as_tensor();
            assert_eq!(w.dims(), &[64, 16]);
            for g in 0..4 {
                let block = w.narrow(0, 16 * g, 16).unwrap();
                let wwt = block.matmul(&block.t().unwrap()).unwrap();
                let eye = Tensor::eye(16, DType::F32, &Device::Cpu).unwrap();
                let err = (wwt - eye).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                assert!(err < 1e-5, "{name} gate {g}: |W·Wᵀ - I| = {err}");
            }
        }
        // Input weights keep PyTorch's uniform default.
        let w_ih = vars["weight_ih_l0"].as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(w_ih.iter().all(|x| x.abs() <= 0.25));
        // Seeded: same seed, same weights; another seed, others.
        let values = |p: &Params| -> Vec<f32> {
            p.named_vars()
                .into_iter()
                .flat_map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap())
                .collect()
        };
        assert_eq!(values(&params), values(&draw(3)));
        assert_ne!(values(&params), values(&draw(4)));
    }

    #[test]
    fn loaded_weights_are_not_reorthogonalised() {
        let cfg = RnnLayerConfig { orthogonal: true, ..config("gru", false) };
        let plain = torch_block(&config("gru", false));
        let ortho = torch_block(&cfg);
        let x = input();
        let a = plain.forward(&x, None, &mut Ctx::infer()).unwrap().0;
        let b = ortho.forward(&x, None, &mut Ctx::infer()).unwrap().0;
        assert_close(&a, &b.flatten_all().unwrap().to_vec1::<f32>().unwrap(), "orthogonal flag on loaded weights");
    }

    #[test]
    fn equal_and_empty_lengths() {
        let x = input();
        for tag in ["lstm", "gru"] {
            let block = torch_block(&config(tag, true));
            let full = block.forward_with_state(&x, None, &mut Ctx::infer()).unwrap();
            let same = block.forward_with_state(&x, Some(&[4, 4, 4]), &mut Ctx::infer()).unwrap();
            assert_close(&same.outputs, &full.outputs.flatten_all().unwrap().to_vec1::<f32>().unwrap(), tag);
            // All examples 2 long: the same as running the first 2 steps, zeros after.
            let short = block.forward_with_state(&x, Some(&[2, 2, 2]), &mut Ctx::infer()).unwrap();
            let cut = block.forward_with_state(&x.narrow(1, 0, 2).unwrap(), None, &mut Ctx::infer()).unwrap();
            let want = cut.outputs.pad_with_zeros(1, 0, 2).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_close(&short.outputs, &want, tag);
            assert_close(&short.h_n, &cut.h_n.flatten_all().unwrap().to_vec1::<f32>().unwrap(), tag);
            // An empty example gives zeros and leaves the others as they were.
            let packed = block.forward_with_state(&x, Some(&[3, 1, 2]), &mut Ctx::infer()).unwrap();
            let empty = block.forward_with_state(&x, Some(&[3, 0, 2]), &mut Ctx::infer()).unwrap();
            for b in [0, 2] {
                let want = packed.outputs.get(b).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert_close(&empty.outputs.get(b).unwrap(), &want, tag);
                let want = packed.h_n.narrow(1, b, 1).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert_close(&empty.h_n.narrow(1, b, 1).unwrap(), &want, tag);
            }
            assert_close(&empty.outputs.get(1).unwrap(), &[0.0; 24], tag);
            assert_close(&empty.h_n.narrow(1, 1, 1).unwrap(), &[0.0; 12], tag);
            let none = block.forward_with_state(&x, Some(&[0, 0, 0]), &mut Ctx::infer()).unwrap();
            assert_eq!(none.outputs.dims(), &[3, 4, 6]);
            assert_eq!(none.h_n.dims(), &[4, 3, 3]);
        }
    }

    #[test]
    fn lengths_from_a_mask() {
        let dev = Device::Cpu;
        let mask = Tensor::new(&[[1u8, 1, 1], [1, 0, 0], [0, 0, 0]], &dev).unwrap();
        assert_eq!(lengths_from_mask(&mask).unwrap(), vec![3, 1, 0]);
        let mask = Tensor::new(&[[1f32, 1.0, 0.0]], &dev).unwrap();
        assert_eq!(lengths_from_mask(&mask).unwrap(), vec![2]);
        let holes = Tensor::new(&[[1u8, 0, 1]], &dev).unwrap();
        assert!(lengths_from_mask(&holes).unwrap_err().to_string().contains("row 0"));
    }

    #[test]
    fn bad_inputs_are_errors() {
        let block = torch_block(&config("lstm", false));
        let x = input();
        let wide = Tensor::zeros((3, 4, 5), DType::F32, &Device::Cpu).unwrap();
        assert!(block.forward(&wide, None, &mut Ctx::infer()).unwrap_err().to_string().contains("got 5"));
        assert!(block.forward(&x, Some(&[1, 2]), &mut Ctx::infer()).unwrap_err().to_string().contains("batch of 3"));
        assert!(block.forward(&x, Some(&[1, 2, 5]), &mut Ctx::infer()).unwrap_err().to_string().contains("length 5"));
        let params = Params::new(rng(0, "init"));
        let zero = RnnLayerConfig { hidden: 0, ..RnnLayerConfig::default() };
        assert!(Rnn::new(2, &zero, params.var_builder(&Device::Cpu)).is_err());
        let issues: Vec<String> = RnnLayerConfig {
            hidden: 0,
            layers: 0,
            dropout: 1.5,
            nonlinearity: Nonlinearity::Relu,
            ..RnnLayerConfig::default()
        }
        .validate("model.rnn")
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(issues.len(), 4, "{issues:?}");
        assert!(issues[0].starts_with("model.rnn.hidden"));
        assert!(issues[3].starts_with("model.rnn.nonlinearity"));
        assert!(RnnLayerConfig::default().validate("m").is_empty());
    }

    #[test]
    fn config_reads_with_defaults_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let read = |text: &str| {
            let path = dir.path().join("rnn.json");
            std::fs::write(&path, text).unwrap();
            pipeline_core::run::read_json::<RnnLayerConfig>(&path)
        };
        let cfg = read(r#"{"cell": "gru", "hidden": 8, "bidirectional": true}"#).unwrap();
        assert_eq!(cfg, RnnLayerConfig { cell: CellKind::Gru, hidden: 8, bidirectional: true, ..Default::default() });
        assert!(read(r#"{"hiden": 8}"#).unwrap_err().to_string().contains("hiden"));
        let all = RnnLayerConfig { cell: CellKind::Rnn, nonlinearity: Nonlinearity::Relu, ..Default::default() };
        let path = dir.path().join("all.json");
        pipeline_core::run::write_json(&path, &all).unwrap();
        assert_eq!(pipeline_core::run::read_json::<RnnLayerConfig>(&path).unwrap(), all);
    }

    #[test]
    fn interlayer_dropout_is_seeded_and_training_only() {
        let cfg = RnnLayerConfig { dropout: 0.5, ..config("lstm", true) };
        let block = torch_block(&cfg);
        let x = input();
        let run = |seed| {
            let mut r = rng(seed, "dropout");
            let out = block.forward(&x, Some(&[3, 1, 2]), &mut Ctx::train(&mut r)).unwrap().0;
            out.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        let infer = block.forward(&x, Some(&[3, 1, 2]), &mut Ctx::infer()).unwrap().0;
        let plain = torch_block(&config("lstm", true)).forward(&x, Some(&[3, 1, 2]), &mut Ctx::infer()).unwrap().0;
        assert_close(&infer, &plain.flatten_all().unwrap().to_vec1::<f32>().unwrap(), "inference ignores dropout");
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        assert_ne!(run(1), infer.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    }

    #[test]
    fn in_place_weight_updates_are_seen() {
        // Optimizers update the variables in place: the block must read them at every pass.
        for tag in ["lstm", "gru"] {
            let params = Params::new(rng(0, "init"));
            let block = Rnn::new(2, &config(tag, true), params.var_builder(&Device::Cpu)).unwrap();
            let before = block.forward(&input(), None, &mut Ctx::infer()).unwrap().0;
            for (name, v) in params.named_vars() {
                if name.starts_with("bias") || name.starts_with("weight_ih") {
                    v.set(&v.as_tensor().affine(0.5, 0.1).unwrap()).unwrap();
                }
            }
            let after = block.forward(&input(), None, &mut Ctx::infer()).unwrap().0;
            let rebuilt = Rnn::new(2, &config(tag, true), params.var_builder(&Device::Cpu)).unwrap();
            let want = rebuilt.forward(&input(), None, &mut Ctx::infer()).unwrap().0;
            assert_close(&after, &want.flatten_all().unwrap().to_vec1::<f32>().unwrap(), tag);
            assert_ne!(
                before.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                want.flatten_all().unwrap().to_vec1::<f32>().unwrap()
            );
        }
    }

    #[test]
    fn gradients_flow_through_every_cell() {
        for tag in ["tanh", "lstm", "gru"] {
            let params = Params::new(rng(0, "init"));
            let block = Rnn::new(2, &config(tag, true), params.var_builder(&Device::Cpu)).unwrap();
            let mut r = rng(0, "dropout");
            let (out, last) = block.forward(&input(), Some(&[3, 1, 2]), &mut Ctx::train(&mut r)).unwrap();
            let loss = (out.sqr().unwrap().sum_all().unwrap() + last.sum_all().unwrap()).unwrap();
            let grads = loss.backward().unwrap();
            for (name, v) in params.named_vars() {
                let g = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("{tag}: no gradient for {name}"));
                let norm = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
                assert!(norm.is_finite() && norm > 0.0, "{tag} {name}: {norm}");
            }
        }
    }
}
