//! `format: sql` end to end, through the real command line, against real databases: the shipped
//! SQLite file, and a PostgreSQL server this test starts on the loopback (initdb / pg_ctl from the
//! Debian `postgresql` package that `.ci/run` installs; run as the `postgres` user when the tests
//! run as root) and stops. The same iris rows read from CSV, SQLite and PostgreSQL give the same
//! test metrics; a wrong password, an unreachable server, a bad query and a missing column are
//! each one line and exit 1.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod common;
use common::{dlp, ok, repo};

/// A PostgreSQL server of its own, on a free loopback port, with the user `dlp` (password
/// `secret`, SCRAM) and the database `iris`; stopped and removed on drop.
struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Postgres {
    fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|b| b.join("initdb").is_file()).max())
            .expect("PostgreSQL's server programs (initdb, pg_ctl) are not installed: apt-get install postgresql (.ci/run does)");
        let root = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap().trim() == "0";
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "secret\n").unwrap();
        if root {
            assert!(Command::new("chown").args(["-R", "postgres"]).arg(dir.path()).status().unwrap().success());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let pg = Postgres { dir, bin, port, as_postgres: root };
        let data = pg.dir.path().join("data");
        let pwfile = pg.dir.path().join("pw");
        pg.server(&[
            "initdb",
            "-D",
            data.to_str().unwrap(),
            "-U",
            "dlp",
            "--auth=scram-sha-256",
            &format!("--pwfile={}", pwfile.display()),
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        let options = format!("-p {} -c listen_addresses=127.0.0.1 -k {}", pg.port, pg.dir.path().display());
        let log = pg.dir.path().join("log");
        pg.server(&[
            "pg_ctl",
            "-D",
            data.to_str().unwrap(),
            "-o",
            &options,
            "-w",
            "-l",
            log.to_str().unwrap(),
            "start",
        ]);
        pg.psql("postgres", "CREATE DATABASE iris");
        pg
    }

    /// Runs one of the server programs (as `postgres` when root).
    fn server(&self, args: &[&str]) {
        let program = self.bin.join(args[0]);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = cmd.args(&args[1..]).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn psql(&self, db: &str, sql: &str) {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "dlp",
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .env("PGPASSWORD", "secret")
            .output()
            .unwrap();
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn url(&self, db: &str) -> String {
        format!("postgresql://dlp@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        self.server(&["pg_ctl", "-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"]);
    }
}

fn run(config: &Path, runs: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = common::dlp_command();
    cmd.args(["run", config.to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn metrics(stdout: &str) -> Value {
    let run = PathBuf::from(stdout.lines().find_map(|l| l.strip_prefix("run directory: ")).unwrap());
    let eval: Value = serde_json::from_str(&std::fs::read_to_string(run.join("eval.json")).unwrap()).unwrap();
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    serde_json::json!({"accuracy": eval["accuracy"], "macro_f1": eval["macro_avg"]["f1"], "inputs": manifest["inputs"]})
}

fn one_error_line(out: &std::process::Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

#[test]
fn the_same_rows_from_csv_sqlite_and_postgresql_give_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let csv = metrics(&ok(dlp(&[
        "run",
        repo().join("configs/iris.yaml").to_str().unwrap(),
        "--runs-dir",
        runs.to_str().unwrap(),
    ])));
    let sqlite = metrics(&ok(run(&repo().join("configs/iris-sqlite.yaml"), &runs, &[])));
    assert_eq!(csv["accuracy"], sqlite["accuracy"]);
    assert_eq!(csv["macro_f1"], sqlite["macro_f1"]);
    assert_eq!(sqlite["inputs"][0]["role"], "data.query");
    assert!(sqlite["inputs"][0]["path"].as_str().unwrap().ends_with("data/sklearn/iris.sqlite"));

    // The same table in PostgreSQL: the shipped config, its URL from the environment.
    let pg = Postgres::start();
    pg.psql(
        "iris",
        "CREATE TABLE iris (id integer PRIMARY KEY, sepal_length double precision, sepal_width double precision, \
         petal_length double precision, petal_width double precision, species integer)",
    );
    let lines: Vec<String> = std::fs::read_to_string(repo().join("data/sklearn/iris.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .enumerate()
        .map(|(i, l)| format!("({}, {l})", i + 1))
        .collect();
    pg.psql("iris", &format!("INSERT INTO iris VALUES {}", lines.join(", ")));
    let url = pg.url("iris");
    let env = [("DLP_DATABASE_URL", url.as_str()), ("PGPASSWORD", "secret")];
    let cfg = repo().join("configs/iris-postgres.yaml");
    let postgres = metrics(&ok(run(&cfg, &runs, &env)));
    assert_eq!(postgres["accuracy"], csv["accuracy"]);
    assert_eq!(postgres["macro_f1"], csv["macro_f1"]);
    assert_eq!(postgres["inputs"][0]["path"], url.as_str());
    // Row for row the same values: the same hash of the result as from SQLite.
    assert_eq!(postgres["inputs"][0]["sha256"], sqlite["inputs"][0]["sha256"]);

    // Wrong credentials, an unreachable server, a bad query, a missing column, a password in
    // the config: one line each, exit 1.
    let err = one_error_line(&run(&cfg, &runs, &[("DLP_DATABASE_URL", &url), ("PGPASSWORD", "wrong")]));
    assert!(err.contains("cannot connect") && err.contains("password authentication failed for user \"dlp\""), "{err}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let nowhere = format!("postgresql://dlp@127.0.0.1:{closed}/iris");
    let err = one_error_line(&run(&cfg, &runs, &[("DLP_DATABASE_URL", &nowhere), ("PGPASSWORD", "secret")]));
    assert!(err.contains(&nowhere) && err.contains("cannot connect"), "{err}");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let write = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let bad_query = write("q.yaml", text.replace("FROM iris ORDER BY id", "FROM irises ORDER BY id"));
    let err = one_error_line(&run(&bad_query, &runs, &env));
    assert!(err.contains("the query: ERROR: relation \"irises\" does not exist"), "{err}");
    let bad_column = write("c.yaml", text.replace("target: species", "target: kind"));
    let err = one_error_line(&run(&bad_column, &runs, &env));
    assert!(err.contains("data.target: the query's result has no column"), "{err}");
    let typed = write("t.yaml", text.replace("SELECT sepal_length,", "SELECT sepal_length::numeric AS sepal_length,"));
    let err = one_error_line(&run(&typed, &runs, &env));
    assert!(err.contains("column `sepal_length` has type numeric") && err.contains("::float8"), "{err}");
    let password = write(
        "p.yaml",
        text.replace(
            "  url_env: DLP_DATABASE_URL",
            &format!("  url: postgresql://dlp:secret@127.0.0.1:{}/iris", pg.port),
        ),
    );
    let check = dlp(&["check", password.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(2));
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(err.contains("data.url: holds a password: give it in the PGPASSWORD environment variable"), "{err}");
}
