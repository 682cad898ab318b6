//! Architecture checks that keep ARCHITECTURE.md true (`cargo xtask test` runs them as unit
//! tests): no import loop between the modules of a crate; `unsafe` only in the two places the
//! document names; no public function with a `String` for an error.
//!
//! A module's imports are the `crate::<module>` paths in its file, up to its `#[cfg(test)]`
//! section (tests may reach anywhere), comments excluded. The crates' modules are flat files,
//! so a module is a file of `src/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// For each crate under `crates/`, its modules and the modules each imports.
pub fn module_graph(root: &Path) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut graphs = BTreeMap::new();
    let Ok(crates) = std::fs::read_dir(root.join("crates")) else { return graphs };
    for krate in crates.flatten() {
        let src = krate.path().join("src");
        let Ok(files) = std::fs::read_dir(&src) else { continue };
        let mut texts = BTreeMap::new();
        for f in files.flatten() {
            let p = f.path();
            let Some(stem) = p.file_stem().and_then(|s| s.to_str()).map(str::to_string) else { continue };
            if p.extension().and_then(|e| e.to_str()) != Some("rs") || stem == "lib" || stem == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let body = text.split("\n#[cfg(test)]").next().unwrap_or_default();
            // Comments (doc links name other modules without importing them) do not count.
            let body: String =
                body.lines().filter(|l| !l.trim_start().starts_with("//")).map(|l| format!("{l}\n")).collect();
            texts.insert(stem, body);
        }
        let modules: BTreeSet<String> = texts.keys().cloned().collect();
        let graph = texts
            .iter()
            .map(|(m, body)| {
                let deps = crate_paths(body).into_iter().filter(|d| d != m && modules.contains(d)).collect();
                (m.clone(), deps)
            })
            .collect();
        graphs.insert(krate.file_name().to_string_lossy().into_owned(), graph);
    }
    graphs
}

/// Every library source file under `crates/*/src` (relative to `root`) with its code before
/// the `#[cfg(test)]` section, comment lines removed.
pub fn code_files(root: &Path) -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().and_then(|e| e.to_str()) == Some("rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    for krate in std::fs::read_dir(root.join("crates")).into_iter().flatten().flatten() {
        walk(&krate.path().join("src"), &mut files);
    }
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let body = text.split("\n#[cfg(test)]").next().unwrap_or_default();
            let body = body.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
            let rel = p.strip_prefix(root).unwrap_or(&p).to_string_lossy().into_owned();
            (rel, body)
        })
        .collect()
}

/// The first segment of every `crate::…` path in `text`, including each entry of
/// `crate::{a, b::c}`.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    for (i, _) in text.match_indices("crate::") {
        // Not `some_crate::`: the character before must not continue an identifier.
        if text[..i].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut start = 0;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.insert(ident(group[start..j].trim()));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(group[start..j].trim()));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.remove("");
    out
}

/// The import loops of one crate's graph: each strongly connected set of two or more modules,
/// sorted.
pub fn loops(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Tarjan's algorithm.
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                scc.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                s.out.push(scc);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_groups_are_read() {
        let text = "use crate::config::{A, B};\nuse crate::{metrics::M, observe::{O, P}, Bundle};\nlet x = crate::drift::f();\nuse other_crate::zzz;";
        let got: Vec<String> = crate_paths(text).into_iter().collect();
        assert_eq!(got, ["Bundle", "config", "drift", "metrics", "observe"]);
    }

    #[test]
    fn loops_are_found() {
        let g: BTreeMap<String, BTreeSet<String>> =
            [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec!["a"]), ("e", vec![])]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
                .collect();
        assert_eq!(loops(&g), vec![vec!["a".to_string(), "b".into(), "c".into()]]);
    }

    /// No crate has an import loop. A new loop fails this test: break it by moving the shared
    /// piece below both modules (as `dlp`'s tune-space checks moved from `tuning` into
    /// `config`, which validates trial configs), never by allowing an edge here.
    #[test]
    fn no_import_loop_inside_any_crate() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new(".")).to_path_buf();
        let graphs = module_graph(&root);
        assert!(graphs.len() >= 10, "found the crates: {:?}", graphs.keys());
        let found: BTreeMap<&String, Vec<Vec<String>>> =
            graphs.iter().map(|(k, g)| (k, loops(g))).filter(|(_, l)| !l.is_empty()).collect();
        assert!(found.is_empty(), "import loops inside crates: {found:?}");
    }

    fn root() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new(".")).to_path_buf()
    }

    /// ARCHITECTURE.md: the only `unsafe` is the bounds-checked call into `gemm` in the kernels,
    /// the `set_var` calls of `dlp::device` and the `madvise` call of `data_ingest::hugepages`. A new one is a decision to write down there
    /// (and here), not to slip in.
    #[test]
    fn unsafe_only_where_the_architecture_says() {
        let files = code_files(&root());
        assert!(files.len() > 50, "read the sources: {}", files.len());
        let with_unsafe: Vec<&str> = files
            .iter()
            .filter(|(_, body)| body.contains("unsafe {") || body.contains("unsafe fn") || body.contains("unsafe impl"))
            .map(|(f, _)| f.as_str())
            .collect();
        assert_eq!(
            with_unsafe,
            ["crates/data-ingest/src/hugepages.rs", "crates/dlp/src/device.rs", "crates/kernels/src/gemm.rs"]
        );
    }

    /// Public functions return typed errors (a crate's `Error` or a `thiserror` type), never a
    /// bare `String`, so that callers can match on what went wrong.
    #[test]
    fn no_public_function_returns_a_string_error() {
        let found: Vec<String> = code_files(&root())
            .iter()
            .flat_map(|(f, body)| {
                // A signature may span lines: join each `pub fn` up to its body's `{`.
                body.match_indices("pub fn ")
                    .map(|(i, _)| {
                        body[i..].split('{').next().unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" ")
                    })
                    .filter(|sig| sig.split("->").nth(1).is_some_and(|ret| ret.contains(", String>")))
                    .map(|sig| format!("{f}: {sig}"))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(found.is_empty(), "public functions with a String error: {found:#?}");
    }
}
