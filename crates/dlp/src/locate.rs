//! Where each key of a YAML document is: dotted key path → line and column.
//!
//! serde reports *what* is wrong and (through `serde_path_to_error`) *which key*; values that
//! parse but are impossible are found after deserialization, when serde's positions are gone.
//! This index of the document's keys gives every problem a line to point at.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// 1-based line and column (yaml-rust2's columns are 0-based).
pub type Position = (usize, usize);

/// The positions of the keys (and sequence items) of a YAML document.
#[derive(Debug, Default)]
pub struct KeyIndex {
    positions: HashMap<String, Position>,
}

impl KeyIndex {
    /// Indexes `text`; a document that does not parse gives an empty index (serde reports the
    /// syntax error itself).
    pub fn new(text: &str) -> Self {
        let mut b = Builder::default();
        let _ = Parser::new_from_str(text).load(&mut b, false);
        Self { positions: b.positions }
    }

    /// The position of `key` (`train.epochs`, `model.hidden[1]`), or of its closest indexed
    /// ancestor when the key itself is absent from the file.
    pub fn find(&self, key: &str) -> Option<Position> {
        let mut k = key;
        loop {
            if let Some(&p) = self.positions.get(k) {
                return Some(p);
            }
            let cut = k.rfind(['.', '['])?;
            k = &k[..cut];
        }
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    positions: HashMap<String, Position>,
}

impl Builder {
    /// The path of the value starting now (a map value or a sequence item), recording where
    /// sequence items start.
    fn child(&mut self, mark: Marker) -> String {
        match self.stack.last() {
            Some(Frame::Map { path, key: Some(k) }) => join(path, k),
            Some(Frame::Seq { path, index }) => {
                let p = format!("{path}[{index}]");
                self.positions.entry(p.clone()).or_insert((mark.line(), mark.col() + 1));
                p
            }
            _ => String::new(),
        }
    }

    /// A value is complete: the map expects a key again, the sequence moves to the next item.
    fn done(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, .. }) => *key = None,
            Some(Frame::Seq { index, .. }) => *index += 1,
            None => {}
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::MappingStart(..) => {
                let path = self.child(mark);
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.child(mark);
                self.stack.push(Frame::Seq { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.done();
            }
            Event::Scalar(value, ..) => {
                if let Some(Frame::Map { path, key: key @ None }) = self.stack.last_mut() {
                    let full = join(path, &value);
                    self.positions.entry(full).or_insert((mark.line(), mark.col() + 1));
                    *key = Some(value);
                } else {
                    self.child(mark);
                    self.done();
                }
            }
            Event::Alias(_) => {
                self.child(mark);
                self.done();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "name: x\nmodel:\n  arch: mlp\n  hidden: [512, 256]\ntrain:\n  optimizer:\n    lr: 0.1\n  list:\n    - a: 1\n    - b: 2\n";

    #[test]
    fn finds_keys_items_and_ancestors() {
        let idx = KeyIndex::new(DOC);
        assert_eq!(idx.find("name"), Some((1, 1)));
        assert_eq!(idx.find("model.hidden"), Some((4, 3)));
        assert_eq!(idx.find("model.hidden[1]").map(|p| p.0), Some(4));
        assert_eq!(idx.find("train.optimizer.lr"), Some((7, 5)));
        assert_eq!(idx.find("train.list[1].b").map(|p| p.0), Some(10));
        // Absent keys point at their closest ancestor.
        assert_eq!(idx.find("train.epochs"), Some((5, 1)));
        assert_eq!(idx.find("nothing"), None);
    }
}
