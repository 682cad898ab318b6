use std::io::{IsTerminal, Write};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::{BatchEnd, Callback, Control, EpochMetrics, Result};

/// Shows training progress on standard error: a progress bar with the running loss,
/// throughput and ETA when it is a terminal, one plain line per epoch otherwise (logs, CI).
pub struct Progress {
    bar: Option<ProgressBar>,
    epochs: usize,
    epoch_start: Instant,
}

impl Progress {
    /// A bar if standard error is a terminal, plain lines otherwise.
    pub fn auto() -> Self {
        Self::new(std::io::stderr().is_terminal())
    }

    /// A bar (`interactive`) or plain lines.
    pub fn new(interactive: bool) -> Self {
        let bar = interactive.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} batches, {msg}, ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        });
        Self { bar, epochs: 0, epoch_start: Instant::now() }
    }
}

fn line(m: &EpochMetrics, epochs: usize) -> String {
    let mut s = format!("epoch {}/{epochs}: train loss {:.4}", m.epoch, m.train_loss);
    if let Some(a) = m.train_accuracy {
        s += &format!(" acc {:.4}", a);
    }
    if let Some(l) = m.val_loss {
        s += &format!(" | val loss {l:.4}");
    }
    if let Some(a) = m.val_accuracy {
        s += &format!(" acc {a:.4}");
    }
    if !m.extra.is_empty() {
        let extra: Vec<String> = m.extra.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
        s += &format!(" | {}", extra.join(" "));
    }
    s + &format!(" | {:.0} samples/s, {:.1}s", m.samples_per_sec, m.train_seconds)
}

impl Callback for Progress {
    fn on_fit_begin(&mut self, epochs: usize, batches_per_epoch: usize, _start_epoch: usize) {
        self.epochs = epochs;
        if let Some(bar) = &self.bar {
            bar.set_length(batches_per_epoch as u64);
        }
    }

    fn on_batch_end(&mut self, b: &BatchEnd) {
        let Some(bar) = &self.bar else { return };
        if b.batch == 1 {
            bar.reset();
            bar.set_prefix(format!("epoch {}/{}", b.epoch, self.epochs));
            self.epoch_start = Instant::now();
        }
        bar.set_position(b.batch as u64);
        let rate = b.samples as f64 / self.epoch_start.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!("loss {:.4}, {rate:.0} samples/s", b.loss));
    }

    fn on_epoch_end(&mut self, metrics: &EpochMetrics) -> Result<Control> {
        let text = line(metrics, self.epochs);
        match &self.bar {
            Some(bar) => bar.println(text),
            None => {
                let _ = writeln!(std::io::stderr(), "{text}");
            }
        }
        Ok(Control::Continue)
    }

    fn on_fit_end(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_line_has_the_figures() {
        let m = EpochMetrics {
            epoch: 3,
            train_loss: 0.12345,
            train_accuracy: Some(0.96),
            val_loss: Some(0.2),
            val_accuracy: Some(0.95),
            lr: 1e-3,
            train_seconds: 1.25,
            samples_per_sec: 6400.0,
            extra: Default::default(),
        };
        assert_eq!(
            line(&m, 10),
            "epoch 3/10: train loss 0.1235 acc 0.9600 | val loss 0.2000 acc 0.9500 | 6400 samples/s, 1.2s"
        );
        let gan = EpochMetrics {
            train_accuracy: None,
            val_loss: None,
            val_accuracy: None,
            extra: [("d_loss".to_string(), 1.25), ("d_real".to_string(), 0.5)].into(),
            ..m
        };
        assert_eq!(
            line(&gan, 10),
            "epoch 3/10: train loss 0.1235 | d_loss 1.2500 d_real 0.5000 | 6400 samples/s, 1.2s"
        );
    }
}
