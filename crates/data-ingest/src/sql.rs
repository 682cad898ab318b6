//! `format: sql`: a query against SQLite (`rusqlite`, SQLite compiled in) or PostgreSQL (the
//! `postgres` client), its rows streamed into typed columns.
//!
//! The connection is a URL in the config (`url`) or in an environment variable (`url_env`); a
//! password never is in the config: a URL holding one is refused, and PostgreSQL's password is
//! read from `PGPASSWORD`. PostgreSQL rows are fetched through a cursor (a portal of the query,
//! `fetch_size` rows at a time, inside a read-only transaction), so a large result is never held
//! by the client twice. Column kinds follow the SQL types — integers and floating point numbers
//! are numeric, `boolean` is boolean, text (`text`, `varchar`, `char`, dates and times as their
//! ISO text) is categorical or text as inferred from the values, as for CSV — unless `kinds` says
//! otherwise. A type the pipeline cannot read (`bytea`, `jsonb`, `numeric`, …) is an error that
//! names the column and says how to cast it in the query.
//!
//! The manifest records the result, not a file: its role is `data.query`, its path the URL
//! (without any password) and its sha256 a hash of the column names and every value, so that a
//! resumed run refuses a table whose rows changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pipeline_core::FeatureKind;
use pipeline_core::config::Issue;
use pipeline_core::raw::{Column, RawDataset, RawInputs, Table, TaskHint, Values};
use pipeline_core::run::InputFile;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::table::{ColumnRef, ReadReport, infer_kind, parse_bool, parse_number};
use crate::{Error, Ingested, Result};

fn thousand() -> usize {
    1000
}

/// `format: sql`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlConfig {
    /// `sqlite:<path>` (relative to the config's folder) or `postgresql://user@host:port/db`
    /// (no password: it comes from `PGPASSWORD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// An environment variable that holds the URL instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    /// The query; its result's columns are the data's columns.
    pub query: String,
    /// The target column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ColumnRef>,
    /// The feature columns to use; all but the target by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<ColumnRef>>,
    /// Column kinds that override the SQL types, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kinds: BTreeMap<String, FeatureKind>,
    /// Rows fetched per round trip (PostgreSQL's cursor).
    #[serde(default = "thousand")]
    pub fetch_size: usize,
    /// The task the target defines.
    #[serde(default)]
    pub task: TaskHint,
    /// Class names for integer class labels `0..n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_names: Option<Vec<String>>,
}

/// Where the rows come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Database {
    Sqlite(PathBuf),
    Postgres(String),
}

/// The URL's scheme and whether it holds a password (`user:password@`).
fn parse_url(url: &str) -> std::result::Result<Database, String> {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() {
            return Err("a sqlite URL names the database file: sqlite:path/to/file.db".into());
        }
        return Ok(Database::Sqlite(PathBuf::from(path)));
    }
    let Some(rest) = url.strip_prefix("postgresql://").or_else(|| url.strip_prefix("postgres://")) else {
        return Err(format!(
            "{:?} is neither sqlite:<file> nor postgresql://user@host:port/database",
            url.chars().take(40).collect::<String>()
        ));
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if let Some((user_info, _)) = authority.rsplit_once('@')
        && user_info.contains(':')
    {
        return Err("holds a password: give it in the PGPASSWORD environment variable, never in the config".into());
    }
    if url.contains("password=") {
        return Err("holds a password: give it in the PGPASSWORD environment variable, never in the config".into());
    }
    Ok(Database::Postgres(url.to_string()))
}

impl SqlConfig {
    /// The URL the config means: `url`, or the value of `url_env`.
    fn resolved_url(&self) -> std::result::Result<String, Issue> {
        match (&self.url, &self.url_env) {
            (Some(u), None) => Ok(u.clone()),
            (None, Some(var)) => std::env::var(var)
                .map_err(|_| Issue::new("data.url_env", format!("the environment variable {var} is not set"))),
            (Some(_), Some(_)) => Err(Issue::new("data.url_env", "give either data.url or data.url_env, not both")),
            (None, None) => Err(Issue::new("data.url", "name the database: data.url, or data.url_env")),
        }
    }

    /// Checks that need no connection: one URL, no password in it, a query and a target, and
    /// (SQLite) that the file exists.
    pub fn validate(&self) -> Vec<Issue> {
        let mut issues = Vec::new();
        match self.resolved_url() {
            Err(i) => issues.push(i),
            Ok(u) => {
                let key = if self.url.is_some() { "data.url" } else { "data.url_env" };
                match parse_url(&u) {
                    Err(m) => issues.push(Issue::new(key, m)),
                    Ok(Database::Sqlite(p)) if !p.is_file() => {
                        issues.push(Issue::new(key, format!("SQLite database not found: {}", p.display())));
                    }
                    Ok(_) => {}
                }
            }
        }
        if self.query.trim().is_empty() {
            issues.push(Issue::new("data.query", "must not be empty"));
        }
        if self.target.is_none() {
            issues.push(Issue::new("data.target", "name the target column of the query's result"));
        }
        if self.fetch_size == 0 {
            issues.push(Issue::new("data.fetch_size", "must be at least 1, got 0"));
        }
        issues
    }

    /// Makes a relative `sqlite:` path relative to `base` (the config's folder).
    pub(crate) fn resolve_paths(&mut self, base: &Path) {
        if let Some(u) = &self.url
            && let Ok(Database::Sqlite(p)) = parse_url(u)
            && p.is_relative()
        {
            self.url = Some(format!("sqlite:{}", crate::normalize(&base.join(p)).display()));
        }
    }
}

/// One value of a result.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Number(f64),
    Bool(bool),
    Text(String),
}

/// A result's columns as they arrive: names, what SQL says they are, and the cells.
struct Rows {
    names: Vec<String>,
    cells: Vec<Vec<Cell>>,
    hasher: Sha256,
    bytes: u64,
}

impl Rows {
    fn new(names: Vec<String>) -> Self {
        let mut hasher = Sha256::new();
        for n in &names {
            hasher.update(n.as_bytes());
            hasher.update([0]);
        }
        let cells = names.iter().map(|_| Vec::new()).collect();
        Self { names, cells, hasher, bytes: 0 }
    }

    fn push(&mut self, row: Vec<Cell>) {
        for (j, c) in row.into_iter().enumerate() {
            let (tag, text): (u8, String) = match &c {
                Cell::Null => (0, String::new()),
                Cell::Number(v) => (1, format!("{v:?}")),
                Cell::Bool(b) => (2, b.to_string()),
                Cell::Text(s) => (3, s.clone()),
            };
            self.hasher.update([tag]);
            self.hasher.update(text.as_bytes());
            self.hasher.update([0]);
            self.bytes += text.len() as u64 + 2;
            self.cells[j].push(c);
        }
    }
}

fn source_err(url: &str, message: impl Into<String>) -> Error {
    Error::Invalid { path: PathBuf::from(url), message: message.into() }
}

fn read_sqlite(path: &Path, query: &str) -> Result<Rows> {
    let shown = format!("sqlite:{}", path.display());
    let err = |e: rusqlite::Error| source_err(&shown, e.to_string());
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(err)?;
    let mut stmt = conn.prepare(query).map_err(|e| source_err(&shown, format!("the query: {e}")))?;
    let names: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let n = names.len();
    let mut out = Rows::new(names);
    let mut rows = stmt.query([]).map_err(|e| source_err(&shown, format!("the query: {e}")))?;
    let mut i = 0usize;
    while let Some(row) = rows.next().map_err(err)? {
        i += 1;
        let mut cells = Vec::with_capacity(n);
        for j in 0..n {
            use rusqlite::types::ValueRef;
            cells.push(match row.get_ref(j).map_err(err)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(v) => Cell::Number(v as f64),
                ValueRef::Real(v) => Cell::Number(v),
                ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(_) => {
                    return Err(source_err(
                        &shown,
                        format!(
                            "row {i}, column `{}`: a BLOB, which the pipeline cannot read as a value",
                            out.names[j]
                        ),
                    ));
                }
            });
        }
        out.push(cells);
    }
    Ok(out)
}

/// The URL without anything after `?` (options may hold secrets).
fn shown_url(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}

fn read_postgres(url: &str, query: &str, fetch: usize) -> Result<Rows> {
    use postgres::types::Type;
    let shown = shown_url(url);
    let mut config: postgres::Config =
        url.parse().map_err(|e: postgres::Error| source_err(&shown, format!("not a PostgreSQL URL: {e}")))?;
    if let Ok(pw) = std::env::var("PGPASSWORD") {
        config.password(pw);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    let one_line = |e: &postgres::Error| match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string().replace('\n', " "),
    };
    let mut client =
        config.connect(postgres::NoTls).map_err(|e| source_err(&shown, format!("cannot connect: {}", one_line(&e))))?;
    let mut tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .map_err(|e| source_err(&shown, format!("cannot start a transaction: {}", one_line(&e))))?;
    let statement = tx.prepare(query).map_err(|e| source_err(&shown, format!("the query: {}", one_line(&e))))?;
    let names: Vec<String> = statement.columns().iter().map(|c| c.name().to_string()).collect();
    let types: Vec<Type> = statement.columns().iter().map(|c| c.type_().clone()).collect();
    for (name, t) in names.iter().zip(&types) {
        let readable = [
            Type::BOOL,
            Type::INT2,
            Type::INT4,
            Type::INT8,
            Type::OID,
            Type::FLOAT4,
            Type::FLOAT8,
            Type::TEXT,
            Type::VARCHAR,
            Type::BPCHAR,
            Type::NAME,
            Type::DATE,
            Type::TIMESTAMP,
            Type::TIMESTAMPTZ,
        ];
        if !readable.contains(t) {
            return Err(source_err(
                &shown,
                format!(
                    "column `{name}` has type {t}, which the pipeline does not read: cast it in the query \
                     (`{name}::float8` for numbers, `{name}::text` otherwise)"
                ),
            ));
        }
    }
    let mut out = Rows::new(names);
    let portal = tx.bind(&statement, &[]).map_err(|e| source_err(&shown, format!("the query: {}", one_line(&e))))?;
    let mut i = 0usize;
    loop {
        let rows = tx
            .query_portal(&portal, fetch.max(1) as i32)
            .map_err(|e| source_err(&shown, format!("fetching rows: {}", one_line(&e))))?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            i += 1;
            let mut cells = Vec::with_capacity(types.len());
            for (j, t) in types.iter().enumerate() {
                let bad = |e: postgres::Error| {
                    source_err(&shown, format!("row {i}, column `{}`: {}", out.names[j], one_line(&e)))
                };
                let cell = match *t {
                    Type::BOOL => row.try_get::<_, Option<bool>>(j).map_err(bad)?.map(Cell::Bool),
                    Type::INT2 => row.try_get::<_, Option<i16>>(j).map_err(bad)?.map(|v| Cell::Number(f64::from(v))),
                    Type::INT4 => row.try_get::<_, Option<i32>>(j).map_err(bad)?.map(|v| Cell::Number(f64::from(v))),
                    Type::INT8 => row.try_get::<_, Option<i64>>(j).map_err(bad)?.map(|v| Cell::Number(v as f64)),
                    Type::OID => row.try_get::<_, Option<u32>>(j).map_err(bad)?.map(|v| Cell::Number(f64::from(v))),
                    Type::FLOAT4 => row.try_get::<_, Option<f32>>(j).map_err(bad)?.map(|v| Cell::Number(f64::from(v))),
                    Type::FLOAT8 => row.try_get::<_, Option<f64>>(j).map_err(bad)?.map(Cell::Number),
                    Type::DATE => row
                        .try_get::<_, Option<chrono::NaiveDate>>(j)
                        .map_err(bad)?
                        .map(|d| Cell::Text(d.format("%Y-%m-%d").to_string())),
                    Type::TIMESTAMP => row
                        .try_get::<_, Option<chrono::NaiveDateTime>>(j)
                        .map_err(bad)?
                        .map(|d| Cell::Text(d.format("%Y-%m-%dT%H:%M:%S").to_string())),
                    Type::TIMESTAMPTZ => row
                        .try_get::<_, Option<chrono::DateTime<chrono::Utc>>>(j)
                        .map_err(bad)?
                        .map(|d| Cell::Text(d.format("%Y-%m-%dT%H:%M:%SZ").to_string())),
                    _ => row.try_get::<_, Option<String>>(j).map_err(bad)?.map(Cell::Text),
                };
                cells.push(cell.unwrap_or(Cell::Null));
            }
            out.push(cells);
        }
    }
    drop(portal);
    tx.commit().map_err(|e| source_err(&shown, format!("closing the transaction: {}", one_line(&e))))?;
    Ok(out)
}

/// One result column as a typed [`Column`]: numbers and booleans as SQL gave them, text typed by
/// inference (or by `kind`).
fn column(name: String, cells: Vec<Cell>, kind: Option<FeatureKind>, url: &str) -> Result<(Column, usize)> {
    let all_numbers = cells.iter().all(|c| matches!(c, Cell::Null | Cell::Number(_)));
    let all_bools = cells.iter().all(|c| matches!(c, Cell::Null | Cell::Bool(_)));
    let text = |c: &Cell| match c {
        Cell::Null => None,
        Cell::Number(v) => {
            Some(if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", *v as i64) } else { v.to_string() })
        }
        Cell::Bool(b) => Some(b.to_string()),
        Cell::Text(s) => Some(s.clone()),
    };
    let kind = kind.unwrap_or_else(|| {
        if all_bools && cells.iter().any(|c| matches!(c, Cell::Bool(_))) {
            FeatureKind::Boolean
        } else if all_numbers {
            FeatureKind::Numeric
        } else {
            let sample: Vec<String> = cells.iter().take(1000).filter_map(text).collect();
            infer_kind(sample.iter().map(String::as_str))
        }
    });
    let mut unparsable = 0;
    let values = match kind {
        FeatureKind::Numeric | FeatureKind::Boolean => Values::Numbers(
            cells
                .iter()
                .map(|c| match c {
                    Cell::Null => f64::NAN,
                    Cell::Number(v) => *v,
                    Cell::Bool(b) => f64::from(u8::from(*b)),
                    Cell::Text(s) => {
                        let v = if kind == FeatureKind::Boolean { parse_bool(s, true) } else { parse_number(s) };
                        v.unwrap_or_else(|| {
                            unparsable += 1;
                            f64::NAN
                        })
                    }
                })
                .collect(),
        ),
        FeatureKind::Categorical | FeatureKind::Text => Values::from_strings(cells.iter().map(text)),
    };
    if name.is_empty() {
        return Err(source_err(url, "a result column has no name: alias it (AS …)"));
    }
    Ok((Column { name, kind, values }, unparsable))
}

/// Runs the query of `config` and reads its result.
pub fn load(config: &SqlConfig) -> Result<Ingested> {
    let url = config.resolved_url().map_err(|i| source_err("data.url", i.to_string()))?;
    let db = parse_url(&url).map_err(|m| source_err("data.url", m))?;
    let (result, shown) = match &db {
        Database::Sqlite(p) => (read_sqlite(p, &config.query)?, format!("sqlite:{}", p.display())),
        Database::Postgres(u) => (read_postgres(u, &config.query, config.fetch_size)?, shown_url(u)),
    };
    if result.cells.first().is_none_or(Vec::is_empty) {
        return Err(source_err(&shown, "the query returned no rows"));
    }
    let records = result.cells[0].len();
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = result.names.iter().find(|n| !seen.insert(n.as_str())) {
        return Err(source_err(&shown, format!("the query returns two columns named `{dup}`: alias one (AS …)")));
    }
    let index = |r: &ColumnRef, key: &str| -> Result<usize> {
        match r {
            ColumnRef::Name(n) => result.names.iter().position(|x| x == n),
            ColumnRef::Index(i) => (*i < result.names.len()).then_some(*i),
        }
        .ok_or_else(|| {
            source_err(
                &shown,
                format!(
                    "{key}: the query's result has no column {r:?} (it has {})",
                    result.names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                ),
            )
        })
    };
    let target = config.target.as_ref().map(|t| index(t, "data.target")).transpose()?;
    let features: Vec<usize> = match &config.columns {
        Some(cols) => {
            cols.iter().enumerate().map(|(i, c)| index(c, &format!("data.columns[{i}]"))).collect::<Result<_>>()?
        }
        None => (0..result.names.len()).filter(|&j| Some(j) != target).collect(),
    };
    let sha256 = format!("{:x}", result.hasher.clone().finalize());
    let bytes = result.bytes;
    let names = result.names.clone();
    let mut cells: Vec<Option<Vec<Cell>>> = result.cells.into_iter().map(Some).collect();
    let mut report = ReadReport { records, ..Default::default() };
    let mut take = |j: usize| -> Result<Column> {
        let c = cells[j].take().ok_or_else(|| source_err(&shown, format!("column `{}` is used twice", names[j])))?;
        let (col, unparsable) = column(names[j].clone(), c, config.kinds.get(&names[j]).copied(), &shown)?;
        if unparsable > 0 {
            report.unparsable.insert(names[j].clone(), unparsable);
        }
        Ok(col)
    };
    let target = target.map(&mut take).transpose()?;
    let columns = features.into_iter().map(&mut take).collect::<Result<Vec<_>>>()?;
    Ok(Ingested {
        data: RawDataset { inputs: RawInputs::Table(Table { columns }), target, parts: None },
        inputs: vec![InputFile { role: "data.query".into(), path: shown, sha256, bytes }],
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_passwords_are_refused() {
        assert_eq!(parse_url("sqlite:data/x.db"), Ok(Database::Sqlite("data/x.db".into())));
        assert!(matches!(parse_url("postgresql://dlp@127.0.0.1:5432/iris"), Ok(Database::Postgres(_))));
        for bad in ["postgresql://dlp:secret@127.0.0.1/iris", "postgres://h/db?user=a&password=b"] {
            assert!(parse_url(bad).unwrap_err().contains("PGPASSWORD"), "{bad}");
        }
        assert!(parse_url("mysql://x").unwrap_err().contains("neither sqlite"));
    }

    fn sqlite(dir: &Path) -> PathBuf {
        let path = dir.join("t.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (x REAL, n INTEGER, city TEXT, note TEXT, y TEXT);
             INSERT INTO t VALUES (1.5, 3, 'Paris', 'a rather long note here', 'yes');
             INSERT INTO t VALUES (NULL, 4, 'Lyon', 'another long note here', 'no');
             INSERT INTO t VALUES (2.5, NULL, NULL, 'and a third one', 'yes');",
        )
        .unwrap();
        path
    }

    fn config(url: String, query: &str) -> SqlConfig {
        SqlConfig {
            url: Some(url),
            url_env: None,
            query: query.into(),
            target: Some(ColumnRef::Name("y".into())),
            columns: None,
            kinds: BTreeMap::new(),
            fetch_size: 1000,
            task: TaskHint::Auto,
            label_names: None,
        }
    }

    #[test]
    fn a_sqlite_query_gives_typed_columns_and_a_hash_of_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(dir.path());
        let c = config(format!("sqlite:{}", db.display()), "SELECT * FROM t ORDER BY rowid");
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        let got = load(&c).unwrap();
        let RawInputs::Table(t) = &got.data.inputs else { panic!() };
        let kinds: Vec<(&str, FeatureKind)> = t.columns.iter().map(|c| (c.name.as_str(), c.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("x", FeatureKind::Numeric),
                ("n", FeatureKind::Numeric),
                ("city", FeatureKind::Categorical),
                ("note", FeatureKind::Text)
            ]
        );
        assert!(t.columns[0].values.is_missing(1) && t.columns[2].values.is_missing(2));
        assert_eq!(got.data.target.unwrap().kind, FeatureKind::Boolean);
        assert_eq!(got.inputs[0].role, "data.query");
        assert_eq!(got.report.records, 3);
        // The same rows give the same hash; another order does not.
        let again = load(&c).unwrap();
        assert_eq!(again.inputs[0].sha256, got.inputs[0].sha256);
        let reordered =
            load(&config(format!("sqlite:{}", db.display()), "SELECT * FROM t ORDER BY rowid DESC")).unwrap();
        assert_ne!(reordered.inputs[0].sha256, got.inputs[0].sha256);
    }

    #[test]
    fn bad_queries_and_columns_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(dir.path());
        let url = format!("sqlite:{}", db.display());
        let e = load(&config(url.clone(), "SELECT * FROM nope")).unwrap_err().to_string();
        assert!(e.contains("the query: no such table: nope"), "{e}");
        let e = load(&config(url.clone(), "SELECT x, n FROM t")).unwrap_err().to_string();
        assert!(e.contains("data.target: the query's result has no column Name(\"y\") (it has `x`, `n`)"), "{e}");
        let e = load(&config(url.clone(), "SELECT x, y FROM t WHERE 0")).unwrap_err().to_string();
        assert!(e.ends_with("the query returned no rows"), "{e}");
        let missing = SqlConfig { url: None, url_env: Some("DLP_TEST_NO_SUCH_VARIABLE".into()), ..config(url, "") };
        let keys: Vec<String> = missing.validate().into_iter().map(|i| i.to_string()).collect();
        assert_eq!(
            keys,
            [
                "data.url_env: the environment variable DLP_TEST_NO_SUCH_VARIABLE is not set",
                "data.query: must not be empty"
            ]
        );
    }
}
