//! Study storage: the trials of a study, their parameters, intermediate values and outcomes.
//!
//! [`Storage`] is the interface a study writes through; [`SqliteStorage`] keeps a study in one
//! SQLite file (`study.db` in the study directory) and [`MemoryStorage`] keeps it in memory (for
//! tests and throw-away studies). A server database (for a study shared by several machines)
//! would implement the same trait.
//!
//! Every method is one transaction: a process killed at any instant (SIGKILL included) leaves
//! each trial either absent, `running` with the intermediate values reported so far, or
//! finished — never half-written. SQLite runs in WAL mode with `synchronous = FULL`, so a
//! committed transaction survives a power cut too.

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use crate::space::Params;
use crate::{Error, Result};

/// Where a trial is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialState {
    /// Started and not finished (or its process died: see [`TrialState::Interrupted`]).
    Running,
    /// Finished with an objective value.
    Complete,
    /// Stopped early by the pruner.
    Pruned,
    /// The objective returned an error.
    Failed,
    /// Was running when its study's process stopped; a resumed study re-runs its parameters
    /// as a new trial (whose `retry_of` names it).
    Interrupted,
}

impl TrialState {
    /// The state's name in storage and tables.
    pub fn name(self) -> &'static str {
        match self {
            TrialState::Running => "running",
            TrialState::Complete => "complete",
            TrialState::Pruned => "pruned",
            TrialState::Failed => "failed",
            TrialState::Interrupted => "interrupted",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "running" => TrialState::Running,
            "complete" => TrialState::Complete,
            "pruned" => TrialState::Pruned,
            "failed" => TrialState::Failed,
            "interrupted" => TrialState::Interrupted,
            other => return Err(Error::Storage(format!("unknown trial state {other:?}"))),
        })
    }

    /// Whether the trial has ended (complete, pruned or failed).
    pub fn is_finished(self) -> bool {
        matches!(self, TrialState::Complete | TrialState::Pruned | TrialState::Failed)
    }
}

/// One trial as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    /// 0-based trial number, unique in the study, in order of creation.
    pub number: usize,
    /// Its state.
    pub state: TrialState,
    /// Its parameters.
    pub params: Params,
    /// The objective value (complete trials only).
    pub value: Option<f64>,
    /// Intermediate values reported during the trial, by step (epoch), in step order.
    pub intermediate: Vec<(usize, f64)>,
    /// The interrupted trial whose parameters this one re-runs.
    pub retry_of: Option<usize>,
    /// Why it failed.
    pub error: Option<String>,
    /// Start, seconds since the Unix epoch.
    pub started_at: f64,
    /// End, seconds since the Unix epoch.
    pub finished_at: Option<f64>,
}

impl TrialRecord {
    /// A fresh running trial.
    pub fn new(number: usize, params: Params) -> Self {
        Self {
            number,
            state: TrialState::Running,
            params,
            value: None,
            intermediate: Vec::new(),
            retry_of: None,
            error: None,
            started_at: now(),
            finished_at: None,
        }
    }

    /// The intermediate value at `step`, if reported.
    pub fn at(&self, step: usize) -> Option<f64> {
        self.intermediate.iter().find(|(s, _)| *s == step).map(|(_, v)| *v)
    }

    /// The last reported step.
    pub fn last_step(&self) -> Option<usize> {
        self.intermediate.last().map(|(s, _)| *s)
    }

    /// Wall time, when finished.
    pub fn duration(&self) -> Option<f64> {
        self.finished_at.map(|f| f - self.started_at)
    }
}

/// How a trial ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// With this objective value.
    Complete(f64),
    /// Stopped by the pruner.
    Pruned,
    /// With this error.
    Failed(String),
}

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Where a study's trials are kept. Implementations are shared by the study's worker threads.
pub trait Storage: Send + Sync {
    /// A study-level attribute (the config, the direction…), if set.
    fn attr(&self, key: &str) -> Result<Option<String>>;
    /// Sets a study-level attribute.
    fn set_attr(&self, key: &str, value: &str) -> Result<()>;
    /// Adds a running trial with `params` and returns its number (one more than the largest).
    fn create_trial(&self, params: &Params, retry_of: Option<usize>) -> Result<usize>;
    /// Records the intermediate `value` of trial `number` at `step`.
    fn report(&self, number: usize, step: usize, value: f64) -> Result<()>;
    /// Ends trial `number`.
    fn finish(&self, number: usize, outcome: &Outcome) -> Result<()>;
    /// Marks every running trial interrupted (their process is gone); returns their numbers.
    fn mark_interrupted(&self) -> Result<Vec<usize>>;
    /// Every trial, by number.
    fn trials(&self) -> Result<Vec<TrialRecord>>;
}

/// A study kept in memory.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    inner: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    trials: Vec<TrialRecord>,
    attrs: Vec<(String, String)>,
}

impl MemoryStorage {
    /// An empty study.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Memory) -> Result<T>) -> Result<T> {
        let mut g = self.inner.lock().map_err(|_| Error::Storage("a study thread panicked".into()))?;
        f(&mut g)
    }
}

fn missing(number: usize) -> Error {
    Error::Storage(format!("no trial {number}"))
}

impl Storage for MemoryStorage {
    fn attr(&self, key: &str) -> Result<Option<String>> {
        self.with(|s| Ok(s.attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())))
    }

    fn set_attr(&self, key: &str, value: &str) -> Result<()> {
        self.with(|s| {
            s.attrs.retain(|(k, _)| k != key);
            s.attrs.push((key.into(), value.into()));
            Ok(())
        })
    }

    fn create_trial(&self, params: &Params, retry_of: Option<usize>) -> Result<usize> {
        self.with(|s| {
            let n = s.trials.len();
            s.trials.push(TrialRecord { retry_of, ..TrialRecord::new(n, params.clone()) });
            Ok(n)
        })
    }

    fn report(&self, number: usize, step: usize, value: f64) -> Result<()> {
        self.with(|s| {
            let t = s.trials.get_mut(number).ok_or_else(|| missing(number))?;
            t.intermediate.retain(|(st, _)| *st != step);
            t.intermediate.push((step, value));
            t.intermediate.sort_by_key(|(st, _)| *st);
            Ok(())
        })
    }

    fn finish(&self, number: usize, outcome: &Outcome) -> Result<()> {
        self.with(|s| {
            let t = s.trials.get_mut(number).ok_or_else(|| missing(number))?;
            let (state, value, error) = split(outcome);
            t.state = state;
            t.value = value;
            t.error = error;
            t.finished_at = Some(now());
            Ok(())
        })
    }

    fn mark_interrupted(&self) -> Result<Vec<usize>> {
        self.with(|s| {
            let mut out = Vec::new();
            for t in s.trials.iter_mut().filter(|t| t.state == TrialState::Running) {
                t.state = TrialState::Interrupted;
                out.push(t.number);
            }
            Ok(out)
        })
    }

    fn trials(&self) -> Result<Vec<TrialRecord>> {
        self.with(|s| Ok(s.trials.clone()))
    }
}

fn split(outcome: &Outcome) -> (TrialState, Option<f64>, Option<String>) {
    match outcome {
        Outcome::Complete(v) => (TrialState::Complete, Some(*v), None),
        Outcome::Pruned => (TrialState::Pruned, None, None),
        Outcome::Failed(e) => (TrialState::Failed, None, Some(e.clone())),
    }
}

/// A study in one SQLite file.
///
/// Tables: `study(key, value)` for attributes; `trials(number, state, params, value,
/// retry_of, error, started_at, finished_at)` with the parameters as a JSON object;
/// `intermediate(number, step, value)`.
pub struct SqliteStorage {
    conn: Mutex<Connection>,
    /// The held lock of [`SqliteStorage::open_exclusive`] (released when the process ends,
    /// however it ends).
    _lock: Option<std::fs::File>,
}

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStorage").finish_non_exhaustive()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS study (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    number INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    params TEXT NOT NULL,
    value REAL,
    retry_of INTEGER REFERENCES trials(number),
    error TEXT,
    started_at REAL NOT NULL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS intermediate (
    number INTEGER NOT NULL REFERENCES trials(number),
    step INTEGER NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (number, step)
);
";

fn db(e: rusqlite::Error) -> Error {
    Error::Storage(e.to_string())
}

impl SqliteStorage {
    /// Opens (creating if needed) the study database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(|e| Error::Storage(format!("{}: {e}", path.display())))?;
        conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(db)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(|e| Error::Storage(format!("{}: {e}", path.display())))?;
        Ok(Self { conn: Mutex::new(conn), _lock: None })
    }

    /// Opens the study database at `path` (creating it with `create`, else it must exist) for
    /// running trials: takes an exclusive lock on `<path>.lock` first, so a second process
    /// running the same study — a second `dlp tune --resume` — is refused instead of marking
    /// the first one's running trials interrupted and duplicating them. The operating system
    /// releases the lock when the holder exits, killed or not, so a dead run never blocks a
    /// resume. Readers ([`SqliteStorage::open_existing`], `dlp tune status`) take no lock.
    pub fn open_exclusive(path: &Path, create: bool) -> Result<Self> {
        if !create && !path.is_file() {
            return Err(Error::Storage(format!("{}: no study database here", path.display())));
        }
        let mut name = path.as_os_str().to_owned();
        name.push(".lock");
        let lock_path = std::path::PathBuf::from(name);
        let io = |e: std::io::Error| Error::Storage(format!("{}: {e}", lock_path.display()));
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Storage(format!(
                    "{}: the study is being run by another process (it holds {}); wait for it to end, \
                     or watch it with `dlp tune status`",
                    path.display(),
                    lock_path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let mut storage = Self::open(path)?;
        storage._lock = Some(file);
        Ok(storage)
    }

    /// Opens an existing study database read-only in effect (fails when `path` is absent).
    pub fn open_existing(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::Storage(format!("{}: no study database here", path.display())));
        }
        Self::open(path)
    }

    fn with<T>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>) -> Result<T> {
        let mut conn = self.conn.lock().map_err(|_| Error::Storage("a study thread panicked".into()))?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
        let out = f(&tx).map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(out)
    }
}

fn ensure_one(changed: usize, number: usize) -> rusqlite::Result<()> {
    if changed == 1 { Ok(()) } else { Err(not_found(number)) }
}

fn not_found(number: usize) -> rusqlite::Error {
    rusqlite::Error::InvalidParameterName(format!("no trial {number}"))
}

impl Storage for SqliteStorage {
    fn attr(&self, key: &str) -> Result<Option<String>> {
        self.with(|tx| tx.query_row("SELECT value FROM study WHERE key = ?1", [key], |r| r.get(0)).optional())
    }

    fn set_attr(&self, key: &str, value: &str) -> Result<()> {
        self.with(|tx| {
            tx.execute(
                "INSERT INTO study (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
                params![key, value],
            )
            .map(|_| ())
        })
    }

    fn create_trial(&self, p: &Params, retry_of: Option<usize>) -> Result<usize> {
        let json = serde_json::to_string(p).map_err(|e| Error::Storage(e.to_string()))?;
        self.with(|tx| {
            let n: i64 = tx.query_row("SELECT COALESCE(MAX(number) + 1, 0) FROM trials", [], |r| r.get(0))?;
            tx.execute(
                "INSERT INTO trials (number, state, params, retry_of, started_at) VALUES (?1, 'running', ?2, ?3, ?4)",
                params![n, json, retry_of.map(|r| r as i64), now()],
            )?;
            Ok(n as usize)
        })
    }

    fn report(&self, number: usize, step: usize, value: f64) -> Result<()> {
        self.with(|tx| {
            tx.execute(
                "INSERT INTO intermediate (number, step, value) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(number, step) DO UPDATE SET value = ?3",
                params![number as i64, step as i64, value],
            )
            .map(|_| ())
        })
    }

    fn finish(&self, number: usize, outcome: &Outcome) -> Result<()> {
        let (state, value, error) = split(outcome);
        self.with(|tx| {
            let n = tx.execute(
                "UPDATE trials SET state = ?2, value = ?3, error = ?4, finished_at = ?5 WHERE number = ?1",
                params![number as i64, state.name(), value, error, now()],
            )?;
            ensure_one(n, number)
        })
    }

    fn mark_interrupted(&self) -> Result<Vec<usize>> {
        self.with(|tx| {
            let mut st = tx.prepare("SELECT number FROM trials WHERE state = 'running' ORDER BY number")?;
            let numbers: Vec<i64> = st.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
            drop(st);
            tx.execute("UPDATE trials SET state = 'interrupted', finished_at = ?1 WHERE state = 'running'", [now()])?;
            Ok(numbers.into_iter().map(|n| n as usize).collect())
        })
    }

    fn trials(&self) -> Result<Vec<TrialRecord>> {
        type Row = (i64, String, String, Option<f64>, Option<i64>, Option<String>, f64, Option<f64>);
        let (rows, steps) = self.with(|tx| {
            let mut st = tx.prepare(
                "SELECT number, state, params, value, retry_of, error, started_at, finished_at FROM trials ORDER BY number",
            )?;
            let rows: Vec<Row> = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut st = tx.prepare("SELECT number, step, value FROM intermediate ORDER BY number, step")?;
            let steps: Vec<(i64, i64, f64)> =
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<_>>()?;
            Ok((rows, steps))
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for (number, state, params, value, retry_of, error, started_at, finished_at) in rows {
            let params: Params = serde_json::from_str(&params)
                .map_err(|e| Error::Storage(format!("trial {number}: unreadable parameters: {e}")))?;
            out.push(TrialRecord {
                number: number as usize,
                state: TrialState::parse(&state)?,
                params,
                value,
                intermediate: Vec::new(),
                retry_of: retry_of.map(|r| r as usize),
                error,
                started_at,
                finished_at,
            });
        }
        for (number, step, value) in steps {
            if let Some(t) = out.iter_mut().find(|t| t.number == number as usize) {
                t.intermediate.push((step as usize, value));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(s: &dyn Storage) {
        let p = Params::from([("lr".to_string(), serde_json::json!(0.01))]);
        assert_eq!(s.create_trial(&p, None).unwrap(), 0);
        assert_eq!(s.create_trial(&p, None).unwrap(), 1);
        s.report(0, 1, 0.5).unwrap();
        s.report(0, 2, 0.7).unwrap();
        s.report(0, 2, 0.75).unwrap();
        s.finish(0, &Outcome::Complete(0.75)).unwrap();
        assert!(s.finish(7, &Outcome::Pruned).is_err());
        assert_eq!(s.mark_interrupted().unwrap(), vec![1]);
        assert_eq!(s.create_trial(&p, Some(1)).unwrap(), 2);
        s.finish(2, &Outcome::Failed("diverged".into())).unwrap();
        s.set_attr("direction", "maximize").unwrap();
        s.set_attr("direction", "minimize").unwrap();
        assert_eq!(s.attr("direction").unwrap().as_deref(), Some("minimize"));
        assert_eq!(s.attr("nothing").unwrap(), None);
        let t = s.trials().unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].state, TrialState::Complete);
        assert_eq!(t[0].intermediate, vec![(1, 0.5), (2, 0.75)]);
        assert_eq!(t[0].value, Some(0.75));
        assert_eq!(t[0].params, p);
        assert_eq!(t[1].state, TrialState::Interrupted);
        assert_eq!((t[2].state, t[2].retry_of, t[2].error.as_deref()), (TrialState::Failed, Some(1), Some("diverged")));
    }

    #[test]
    fn memory_storage() {
        exercise(&MemoryStorage::new());
    }

    #[test]
    fn sqlite_storage_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("study.db");
        exercise(&SqliteStorage::open(&path).unwrap());
        let again = SqliteStorage::open_existing(&path).unwrap();
        assert_eq!(again.trials().unwrap().len(), 3);
        assert!(SqliteStorage::open_existing(&dir.path().join("none.db")).is_err());
    }

    #[test]
    fn a_second_runner_is_refused_until_the_first_ends_even_when_killed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("study.db");
        assert!(SqliteStorage::open_exclusive(&path, false).is_err(), "no study yet, and not asked to create one");
        let first = SqliteStorage::open_exclusive(&path, true).unwrap();
        let err = SqliteStorage::open_exclusive(&path, false).unwrap_err().to_string();
        assert!(err.contains("the study is being run by another process"), "{err}");
        // Readers (`dlp tune status`) are not locked out.
        assert!(SqliteStorage::open_existing(&path).unwrap().trials().unwrap().is_empty());
        drop(first);
        drop(SqliteStorage::open_exclusive(&path, false).unwrap());
        // Another process holds the lock (util-linux `flock`, as a running `dlp tune` would), then
        // is killed: the lock goes with it.
        let lock = dir.path().join("study.db.lock");
        let mut holder = std::process::Command::new("flock")
            .args(["-x", "-o"]) // -o: the lock stays with flock itself, not with its `sleep`
            .arg(&lock)
            .args(["sleep", "60"])
            .spawn()
            .expect("util-linux flock");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while SqliteStorage::open_exclusive(&path, false).is_ok() {
            assert!(std::time::Instant::now() < deadline, "the other process never took the lock");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        holder.kill().unwrap();
        holder.wait().unwrap();
        drop(SqliteStorage::open_exclusive(&path, false).unwrap());
    }
}
