//! `dlp model summary`: each layer with its output shape and parameter count, like Keras'
//! `model.summary()`.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::Params;

/// One row of a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// The layer's weight-name prefix (`blocks.0.conv`).
    pub name: String,
    /// What it is (`Conv2d 1→6 5x5`).
    pub kind: String,
    /// Output shape of one example.
    pub output_shape: Vec<usize>,
    /// Trainable parameters under `name` (filled in by [`summarize`]).
    pub params: usize,
}

impl LayerInfo {
    /// A row; its parameters are counted later.
    pub fn new(name: String, kind: String, output_shape: Vec<usize>) -> Self {
        Self { name, kind, output_shape, params: 0 }
    }
}

/// An architecture that can list its layers for an input of one example's shape.
pub trait Summarize {
    /// The layers, in order, with output shapes.
    fn layers(&self, input: &[usize]) -> Vec<LayerInfo>;
}

/// A model summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The rows.
    pub layers: Vec<LayerInfo>,
    /// All parameters (buffers such as batch-norm running statistics excluded, as PyTorch's
    /// `parameters()` counts).
    pub total: usize,
    /// Parameters the optimizer updates.
    pub trainable: usize,
}

/// Whether a variable is a buffer (not a parameter) in PyTorch's sense.
pub fn is_buffer(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

/// Counts the parameters of each layer of `net` from `params`.
pub fn summarize(net: &dyn Summarize, params: &Params, input: &[usize]) -> Summary {
    let vars = params.named_vars();
    let mut layers = net.layers(input);
    for l in &mut layers {
        let prefix = format!("{}.", l.name);
        l.params = vars
            .iter()
            .filter(|(n, _)| !is_buffer(n) && (n.starts_with(&prefix) || *n == l.name))
            .map(|(_, v)| v.elem_count())
            .sum();
    }
    let total = vars.iter().filter(|(n, _)| !is_buffer(n)).map(|(_, v)| v.elem_count()).sum();
    let trainable = params.trainable_vars().iter().filter(|(n, _)| !is_buffer(n)).map(|(_, v)| v.elem_count()).sum();
    Summary { layers, total, trainable }
}

fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Summary {
    /// The Keras-style table.
    pub fn table(&self, input: &[usize]) -> String {
        let rows: Vec<[String; 4]> = std::iter::once(["input".into(), "".into(), format!("{input:?}"), "0".into()])
            .chain(
                self.layers
                    .iter()
                    .map(|l| [l.name.clone(), l.kind.clone(), format!("{:?}", l.output_shape), group(l.params)]),
            )
            .collect();
        let head = ["layer", "type", "output shape", "params"];
        let mut w = head.map(|h| h.chars().count());
        for r in &rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |r: &[String; 4]| {
            format!("{:<a$}  {:<b$}  {:<c$}  {:>d$}", r[0], r[1], r[2], r[3], a = w[0], b = w[1], c = w[2], d = w[3])
                .trim_end()
                .to_string()
        };
        let rule = "-".repeat(w.iter().sum::<usize>() + 6);
        let mut out = line(&head.map(String::from)) + "\n" + &rule + "\n";
        for r in &rows {
            out += &(line(r) + "\n");
        }
        let _ =
            writeln!(out, "{rule}\ntotal params: {}\ntrainable params: {}", group(self.total), group(self.trainable));
        out
    }
}
