//! `format: http`: records from a JSON API, page by page.
//!
//! Each response is a JSON document; `records` is the dotted path of the array of records in it
//! (absent: the document is the array). Pages follow one of the usual schemes ([`Pagination`]):
//! a page number, an offset, a cursor taken from the response, or a next link. A bearer token
//! comes from an environment variable (`token_env`), never from the config. A 429 or a 5xx, or
//! a connection that fails, is retried with exponential backoff (and the server's
//! `Retry-After`), `retries` times. The records are then read as JSON Lines are: nested keys
//! flattened to dotted columns, kinds inferred ([`crate::table`]).
//!
//! Every response body is kept in the `cache` folder (`dlp run` points it at the run directory's
//! `data-cache/`) and hashed into the manifest under its URL; when the folder already holds the
//! pages (a resumed run), they are read from it and the API is not called, so a run is
//! reproducible after the API changes.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pipeline_core::FeatureKind;
use pipeline_core::config::Issue;
use pipeline_core::raw::{RawDataset, RawInputs, TaskHint};
use pipeline_core::run::InputFile;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::table::{self, ColumnRef, Delimiter, OnBadRecord};
use crate::{Error, Ingested, Result};

fn five() -> u32 {
    5
}
fn thirty() -> f64 {
    30.0
}
fn many_pages() -> usize {
    10_000
}

/// How the API pages its records, tagged by `kind`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pagination {
    /// One response holds every record.
    #[default]
    None,
    /// `?<param>=<n>` from `start`, until a page has no records.
    Page {
        /// The page-number parameter.
        #[serde(default = "page_param")]
        param: String,
        /// The first page's number.
        #[serde(default = "one")]
        start: u64,
        /// A page-size parameter and its value, if the API takes one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size_param: Option<String>,
        /// Records per page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
    },
    /// `?<param>=<offset>&<size_param>=<size>`, until a page has no records.
    Offset {
        /// The offset parameter.
        #[serde(default = "offset_param")]
        param: String,
        /// The page-size parameter.
        #[serde(default = "limit_param")]
        size_param: String,
        /// Records per page.
        #[serde(default = "hundred")]
        size: u64,
    },
    /// `?<param>=<cursor>`, the cursor read from each response at `cursor_path`, until it is
    /// absent, null or empty.
    Cursor {
        /// The cursor parameter.
        #[serde(default = "cursor_param")]
        param: String,
        /// Where the next cursor is in a response (dotted).
        cursor_path: String,
    },
    /// The next page's URL read from each response at `next_path`, until it is absent or null.
    NextLink {
        /// Where the next URL is in a response (dotted).
        next_path: String,
    },
}

fn page_param() -> String {
    "page".into()
}
fn offset_param() -> String {
    "offset".into()
}
fn limit_param() -> String {
    "limit".into()
}
fn cursor_param() -> String {
    "cursor".into()
}
fn one() -> u64 {
    1
}
fn hundred() -> u64 {
    100
}

/// `format: http`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The first page's URL (`http://` or `https://`).
    pub url: String,
    /// The dotted path of the records array in a response; absent: the response is the array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<String>,
    /// How pages follow one another.
    #[serde(default)]
    pub pagination: Pagination,
    /// An environment variable holding a bearer token (`Authorization: Bearer …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// Extra request headers (no credentials: `Authorization` is refused here).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Retries of a 429, a 5xx or a failed connection, with backoff.
    #[serde(default = "five")]
    pub retries: u32,
    /// Seconds a request may take.
    #[serde(default = "thirty")]
    pub timeout_s: f64,
    /// At most this many pages (a runaway pagination is an error).
    #[serde(default = "many_pages")]
    pub max_pages: usize,
    /// Where responses are kept and replayed from (`dlp run`: the run's `data-cache/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<PathBuf>,
    /// The target column (dotted for a nested key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ColumnRef>,
    /// The feature columns; all but the target by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<ColumnRef>>,
    /// Column kinds that override inference, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kinds: BTreeMap<String, FeatureKind>,
    /// Stop at a malformed record (`fail`) or drop and report it (`skip`).
    #[serde(default)]
    pub on_bad_record: OnBadRecord,
    /// The task the target defines.
    #[serde(default)]
    pub task: TaskHint,
    /// Class names for integer class labels `0..n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_names: Option<Vec<String>>,
}

impl HttpConfig {
    /// Checks that need no request.
    pub fn validate(&self) -> Vec<Issue> {
        let mut issues = Vec::new();
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            issues.push(Issue::new("data.url", format!("must be an http:// or https:// URL, got {:?}", self.url)));
        }
        if self.url.contains('@') && self.url.split('/').nth(2).is_some_and(|a| a.contains('@')) {
            issues.push(Issue::new(
                "data.url",
                "holds credentials: give a token in the variable named by data.token_env",
            ));
        }
        if self.headers.keys().any(|k| k.eq_ignore_ascii_case("authorization")) {
            issues.push(Issue::new(
                "data.headers",
                "no credentials in the config: name the token's variable in data.token_env",
            ));
        }
        if let Some(var) = &self.token_env
            && std::env::var(var).is_err()
        {
            issues.push(Issue::new("data.token_env", format!("the environment variable {var} is not set")));
        }
        if !(self.timeout_s.is_finite() && self.timeout_s > 0.0) {
            issues.push(Issue::new(
                "data.timeout_s",
                format!("must be a positive number of seconds, got {}", self.timeout_s),
            ));
        }
        if self.target.is_none() {
            issues.push(Issue::new("data.target", "name the target column (a key, dotted for nested objects)"));
        }
        issues
    }
}

/// The value at a dotted `path` of `v`.
fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').filter(|s| !s.is_empty()).try_fold(v, |v, k| v.get(k))
}

/// `url` with `extra` query parameters.
fn with_query(url: &str, extra: &[(&str, String)]) -> String {
    let mut out = url.to_string();
    for (k, v) in extra {
        out.push(if out.contains('?') { '&' } else { '?' });
        out.push_str(&format!("{k}={}", encode(v)));
    }
    out
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn err(url: &str, message: impl Into<String>) -> Error {
    Error::Invalid { path: PathBuf::from(url), message: message.into() }
}

/// One GET with retries; the body.
fn get(agent: &ureq::Agent, config: &HttpConfig, token: Option<&str>, url: &str) -> Result<Vec<u8>> {
    let mut attempt = 0u32;
    loop {
        let mut req = agent.get(url).set("Accept", "application/json");
        for (k, v) in &config.headers {
            req = req.set(k, v);
        }
        if let Some(t) = token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let wait = |attempt: u32, retry_after: Option<&str>| {
            let backoff = 0.25 * 2f64.powi(attempt as i32);
            let server = retry_after.and_then(|s| s.trim().parse::<f64>().ok());
            Duration::from_secs_f64(server.unwrap_or(backoff).clamp(0.0, 30.0))
        };
        match req.call() {
            Ok(resp) => {
                let mut body = Vec::new();
                resp.into_reader()
                    .take(1 << 30)
                    .read_to_end(&mut body)
                    .map_err(|e| err(url, format!("reading the response: {e}")))?;
                return Ok(body);
            }
            Err(ureq::Error::Status(code, resp)) if (code == 429 || code >= 500) && attempt < config.retries => {
                std::thread::sleep(wait(attempt, resp.header("Retry-After")));
            }
            Err(ureq::Error::Status(code, resp)) => {
                let reason = resp.status_text().to_string();
                let hint = match (code, &config.token_env) {
                    (401 | 403, Some(var)) => format!(": the server refused the token in {var}"),
                    (401 | 403, None) => ": the API needs credentials (a bearer token: data.token_env)".into(),
                    (429, _) | (500.., _) => format!(" after {} retries", config.retries),
                    _ => {
                        let mut text = String::new();
                        let _ = resp.into_reader().take(200).read_to_string(&mut text);
                        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
                        if text.is_empty() { String::new() } else { format!(": {text}") }
                    }
                };
                return Err(err(url, format!("HTTP {code} {reason}{hint}")));
            }
            Err(ureq::Error::Transport(t)) if attempt < config.retries => {
                let _ = t;
                std::thread::sleep(wait(attempt, None));
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(err(url, format!("cannot reach the server after {} retries: {t}", config.retries)));
            }
        }
        attempt += 1;
    }
}

/// A fetched (or replayed) page: its URL and body.
struct Page {
    url: String,
    body: Vec<u8>,
}

/// The cache's index: the pages in order, by URL and file.
#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheIndex {
    pages: Vec<(String, String)>,
}

/// Reads the API's records.
pub fn load(config: &HttpConfig) -> Result<Ingested> {
    let pages = match config.cache.as_ref().map(|c| c.join("index.json")).filter(|p| p.is_file()) {
        Some(index) => replay(&index)?,
        None => {
            let pages = fetch(config)?;
            if let Some(dir) = &config.cache {
                store(dir, &pages)?;
            }
            pages
        }
    };
    // The records, as JSON Lines, read by the table reader.
    let mut lines = Vec::new();
    for (i, p) in pages.iter().enumerate() {
        let doc: Value = serde_json::from_slice(&p.body)
            .map_err(|e| err(&p.url, format!("page {}: the response is not JSON: {e}", i + 1)))?;
        let records = match &config.records {
            Some(path) => at(&doc, path),
            None => Some(&doc),
        };
        let Some(Value::Array(records)) = records else {
            let what = config.records.as_deref().map_or("the response".to_string(), |r| format!("`{r}`"));
            return Err(err(&p.url, format!("page {}: {what} is not an array of records", i + 1)));
        };
        for r in records {
            lines.extend_from_slice(r.to_string().as_bytes());
            lines.push(b'\n');
        }
    }
    let dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let file = dir.path().join("records.jsonl");
    std::fs::write(&file, &lines).map_err(|e| Error::io(&file, e))?;
    let fmt = table::TableFormat {
        delimiter: Delimiter::JsonLines,
        quote: None,
        header: true,
        skip_rows: 0,
        names: None,
        missing: vec![String::new()],
        on_bad_record: config.on_bad_record,
    };
    let sel = table::Selection {
        target: config.target.clone(),
        features: config.columns.clone(),
        kinds: config.kinds.clone(),
        require_kinds: false,
    };
    let read = table::read(&file, "data.url", &fmt, &sel).map_err(|e| err(&config.url, e.to_string()))?;
    let inputs = pages
        .iter()
        .map(|p| InputFile {
            role: "data.url".into(),
            path: p.url.clone(),
            sha256: format!("{:x}", Sha256::digest(&p.body)),
            bytes: p.body.len() as u64,
        })
        .collect();
    Ok(Ingested {
        data: RawDataset { inputs: RawInputs::Table(read.table), target: read.target, parts: None },
        inputs,
        report: read.report,
    })
}

fn fetch(config: &HttpConfig) -> Result<Vec<Page>> {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs_f64(config.timeout_s.max(0.001))).build();
    let token = match &config.token_env {
        Some(var) => Some(
            std::env::var(var).map_err(|_| err(&config.url, format!("the environment variable {var} is not set")))?,
        ),
        None => None,
    };
    let count = |body: &[u8], url: &str, n: usize| -> Result<(Value, usize)> {
        let doc: Value =
            serde_json::from_slice(body).map_err(|e| err(url, format!("page {n}: the response is not JSON: {e}")))?;
        let records = match &config.records {
            Some(path) => at(&doc, path),
            None => Some(&doc),
        };
        let len = records.and_then(Value::as_array).map(Vec::len).ok_or_else(|| {
            let what = config.records.as_deref().map_or("the response".to_string(), |r| format!("`{r}`"));
            err(url, format!("page {n}: {what} is not an array of records"))
        })?;
        Ok((doc, len))
    };
    let mut pages = Vec::new();
    let mut next = Some(match &config.pagination {
        Pagination::None | Pagination::NextLink { .. } | Pagination::Cursor { .. } => config.url.clone(),
        Pagination::Page { param, start, size_param, size } => {
            let mut q = vec![(param.as_str(), start.to_string())];
            if let (Some(p), Some(s)) = (size_param, size) {
                q.push((p.as_str(), s.to_string()));
            }
            with_query(&config.url, &q)
        }
        Pagination::Offset { param, size_param, size } => {
            with_query(&config.url, &[(param.as_str(), "0".into()), (size_param.as_str(), size.to_string())])
        }
    });
    let mut fetched = 0u64;
    while let Some(url) = next.take() {
        if pages.len() == config.max_pages {
            return Err(err(&config.url, format!("more than data.max_pages = {} pages", config.max_pages)));
        }
        let body = get(&agent, config, token.as_deref(), &url)?;
        let n = pages.len() + 1;
        let (doc, len) = count(&body, &url, n)?;
        fetched += len as u64;
        next = match &config.pagination {
            Pagination::None => None,
            Pagination::Page { param, start, size_param, size } if len > 0 => {
                let mut q = vec![(param.as_str(), (start + n as u64).to_string())];
                if let (Some(p), Some(s)) = (size_param, size) {
                    q.push((p.as_str(), s.to_string()));
                }
                Some(with_query(&config.url, &q))
            }
            Pagination::Offset { param, size_param, size } if len > 0 => Some(with_query(
                &config.url,
                &[(param.as_str(), fetched.to_string()), (size_param.as_str(), size.to_string())],
            )),
            Pagination::Cursor { param, cursor_path } => match at(&doc, cursor_path) {
                Some(Value::String(c)) if !c.is_empty() => {
                    Some(with_query(&config.url, &[(param.as_str(), c.clone())]))
                }
                Some(Value::Number(c)) => Some(with_query(&config.url, &[(param.as_str(), c.to_string())])),
                _ => None,
            },
            Pagination::NextLink { next_path } => match at(&doc, next_path) {
                Some(Value::String(u)) if !u.is_empty() => {
                    Some(if u.starts_with("http") { u.clone() } else { join(&url, u) })
                }
                _ => None,
            },
            _ => None,
        };
        // A page without records ends page / offset pagination and is not kept.
        if len > 0 || pages.is_empty() {
            pages.push(Page { url, body });
        }
    }
    Ok(pages)
}

/// A relative link resolved against the URL it came from (`/items?page=2` or `items?page=2`).
fn join(base: &str, link: &str) -> String {
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let origin_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    if link.starts_with('/') {
        format!("{}{link}", &base[..origin_end])
    } else {
        let dir_end = base.split('?').next().unwrap_or(base).rfind('/').map_or(base.len(), |i| i + 1);
        format!("{}{link}", &base[..dir_end.max(origin_end)])
    }
}

fn store(dir: &Path, pages: &[Page]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut index = CacheIndex::default();
    for (i, p) in pages.iter().enumerate() {
        let name = format!("page-{:05}.json", i + 1);
        pipeline_core::run::write_atomic(&dir.join(&name), &p.body).map_err(|e| err(&p.url, e.to_string()))?;
        index.pages.push((p.url.clone(), name));
    }
    let text = serde_json::to_vec_pretty(&index).map_err(|e| err("data.cache", e.to_string()))?;
    pipeline_core::run::write_atomic(&dir.join("index.json"), &text).map_err(|e| err("data.cache", e.to_string()))
}

fn replay(index: &Path) -> Result<Vec<Page>> {
    let text = std::fs::read(index).map_err(|e| Error::io(index, e))?;
    let idx: CacheIndex =
        serde_json::from_slice(&text).map_err(|e| Error::format(index, format!("not a response cache index: {e}")))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    idx.pages
        .into_iter()
        .map(|(url, name)| {
            let p = dir.join(name);
            let body = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
            Ok(Page { url, body })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths() {
        assert_eq!(with_query("http://h/a", &[("page", "2".into())]), "http://h/a?page=2");
        assert_eq!(with_query("http://h/a?x=1", &[("c", "a b/c".into())]), "http://h/a?x=1&c=a%20b%2Fc");
        assert_eq!(join("http://h:8/api/items?page=1", "/api/items?page=2"), "http://h:8/api/items?page=2");
        assert_eq!(join("http://h:8/api/items?page=1", "items?page=2"), "http://h:8/api/items?page=2");
        let doc: Value = serde_json::json!({"data": {"items": [1, 2]}, "next": null});
        assert_eq!(at(&doc, "data.items").and_then(Value::as_array).map(Vec::len), Some(2));
        assert!(at(&doc, "data.nope").is_none());
    }
}
