//! A study's trials as tables (Markdown and CSV) and as the points of its optimization history.

use std::fmt::Write as _;

use pipeline_core::Direction;

use crate::space::Value;
use crate::storage::{TrialRecord, TrialState};
use crate::study::best;

/// A parameter value as a table cell: numbers with up to 6 significant digits, strings bare,
/// anything else as JSON.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => format_float(f),
            _ => n.to_string(),
        },
        Some(other) => other.to_string(),
    }
}

fn format_float(f: f64) -> String {
    if f == 0.0 || (1e-3..1e6).contains(&f.abs()) {
        let s = format!("{f:.6}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        format!("{f:.4e}")
    }
}

fn value_cell(t: &TrialRecord) -> String {
    match (t.state, t.value) {
        (TrialState::Complete, Some(v)) => format!("{v:.4}"),
        (TrialState::Pruned, _) => t.intermediate.last().map(|(_, v)| format!("({v:.4})")).unwrap_or_default(),
        _ => String::new(),
    }
}

/// The trials as a Markdown table: number, state, objective (a pruned trial's last
/// intermediate value in parentheses), epochs, seconds, then one column per parameter; the
/// best trial is marked.
pub fn markdown(trials: &[TrialRecord], keys: &[&str], metric: &str, direction: Direction) -> String {
    let best_number = best(trials, direction).map(|t| t.number);
    let mut s = String::new();
    let _ = write!(s, "| trial | state | {metric} | epochs | seconds |");
    for k in keys {
        let _ = write!(s, " {k} |");
    }
    let _ = writeln!(s, "\n|---:|---|---:|---:|---:|{}", "---|".repeat(keys.len()));
    for t in trials {
        let mark = if Some(t.number) == best_number { " **best**" } else { "" };
        let mut state = t.state.name().to_string();
        if let Some(r) = t.retry_of {
            let _ = write!(state, " (re-runs {r})");
        }
        let _ = write!(
            s,
            "| {}{mark} | {state} | {} | {} | {} |",
            t.number,
            value_cell(t),
            t.intermediate.len(),
            t.duration().map(|d| format!("{d:.1}")).unwrap_or_default()
        );
        for k in keys {
            let _ = write!(s, " {} |", cell(t.params.get(*k)).replace('|', "\\|"));
        }
        let _ = writeln!(s);
    }
    s
}

/// The trials as CSV: `number,state,value,epochs,seconds,retry_of,error,<parameters…>`
/// (values exact, parameters as JSON when not a plain number or string).
pub fn csv(trials: &[TrialRecord], keys: &[&str]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["number", "state", "value", "epochs", "seconds", "retry_of", "error"];
    header.extend(keys);
    w.write_record(&header)?;
    for t in trials {
        let mut row = vec![
            t.number.to_string(),
            t.state.name().to_string(),
            t.value.map(|v| v.to_string()).unwrap_or_default(),
            t.intermediate.len().to_string(),
            t.duration().map(|d| format!("{d:.3}")).unwrap_or_default(),
            t.retry_of.map(|r| r.to_string()).unwrap_or_default(),
            t.error.clone().unwrap_or_default(),
        ];
        for k in keys {
            row.push(match t.params.get(*k) {
                Some(Value::Number(n)) => n.to_string(),
                v => cell(v),
            });
        }
        w.write_record(&row)?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

/// The optimization history, as (trial number, value) points.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Each complete trial's objective value.
    pub values: Vec<(f64, f64)>,
    /// The best value so far, after each complete trial.
    pub best: Vec<(f64, f64)>,
}

/// The optimization history of `trials`.
pub fn history(trials: &[TrialRecord], direction: Direction) -> History {
    let mut values = Vec::new();
    let mut best_so_far = Vec::new();
    let mut b: Option<f64> = None;
    for t in trials.iter().filter(|t| t.state == TrialState::Complete) {
        let Some(v) = t.value.filter(|v| v.is_finite()) else { continue };
        values.push((t.number as f64, v));
        if b.is_none_or(|x| direction.better(v, x)) {
            b = Some(v);
        }
        best_so_far.push((t.number as f64, b.unwrap_or(v)));
    }
    History { values, best: best_so_far }
}

/// Totals of a study: trials by state and epochs trained.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// Complete trials.
    pub complete: usize,
    /// Pruned trials.
    pub pruned: usize,
    /// Failed trials.
    pub failed: usize,
    /// Interrupted trials (re-run under a new number).
    pub interrupted: usize,
    /// Running trials.
    pub running: usize,
    /// Epochs trained over all trials (reported intermediate values).
    pub epochs: usize,
}

/// Counts `trials`.
pub fn totals(trials: &[TrialRecord]) -> Totals {
    let mut t = Totals::default();
    for r in trials {
        match r.state {
            TrialState::Complete => t.complete += 1,
            TrialState::Pruned => t.pruned += 1,
            TrialState::Failed => t.failed += 1,
            TrialState::Interrupted => t.interrupted += 1,
            TrialState::Running => t.running += 1,
        }
        t.epochs += r.intermediate.len();
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Params;

    fn t(number: usize, state: TrialState, value: Option<f64>, lr: f64) -> TrialRecord {
        TrialRecord {
            state,
            value,
            intermediate: vec![(1, 0.5), (2, value.unwrap_or(0.25))],
            finished_at: Some(10.0),
            started_at: 7.5,
            ..TrialRecord::new(
                number,
                Params::from([
                    ("lr".to_string(), serde_json::json!(lr)),
                    ("h".to_string(), serde_json::json!([256, 128])),
                ]),
            )
        }
    }

    #[test]
    fn tables_and_history() {
        let trials = vec![
            t(0, TrialState::Complete, Some(0.9), 0.001),
            t(1, TrialState::Pruned, None, 0.1),
            t(2, TrialState::Complete, Some(0.95), 0.00001234),
            t(3, TrialState::Complete, Some(0.93), 0.01),
        ];
        let md = markdown(&trials, &["lr", "h"], "val_accuracy", Direction::Maximize);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines[0], "| trial | state | val_accuracy | epochs | seconds | lr | h |");
        assert_eq!(lines[2], "| 0 | complete | 0.9000 | 2 | 2.5 | 0.001 | [256,128] |");
        assert_eq!(lines[3], "| 1 | pruned | (0.2500) | 2 | 2.5 | 0.1 | [256,128] |");
        assert_eq!(lines[4], "| 2 **best** | complete | 0.9500 | 2 | 2.5 | 1.2340e-5 | [256,128] |");
        let csv = String::from_utf8(csv(&trials, &["lr", "h"]).unwrap()).unwrap();
        assert_eq!(csv.lines().next(), Some("number,state,value,epochs,seconds,retry_of,error,lr,h"));
        assert_eq!(csv.lines().nth(3), Some("2,complete,0.95,2,2.500,,,0.00001234,\"[256,128]\""));
        let History { values, best } = history(&trials, Direction::Maximize);
        assert_eq!(values, vec![(0.0, 0.9), (2.0, 0.95), (3.0, 0.93)]);
        assert_eq!(best, vec![(0.0, 0.9), (2.0, 0.95), (3.0, 0.95)]);
        assert_eq!(totals(&trials), Totals { complete: 3, pruned: 1, epochs: 8, ..Default::default() });
    }
}
