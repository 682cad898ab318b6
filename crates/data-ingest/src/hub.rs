//! Files on the Hugging Face model hub, named `hf://datasets/<owner>/<name>[@<revision>]/<file>`
//! (or `hf://models/…`, or `hf://<owner>/<name>/…` for a model), as the Python `huggingface_hub`
//! file system names them.
//!
//! A file is taken from the local hub cache when it is there — the cache named by
//! `HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`, in the layout the
//! Python library writes (`datasets--owner--name/refs/<revision>` and `…/snapshots/<commit>/`).
//! Otherwise it is downloaded into that cache, unless `HF_HUB_OFFLINE=1`.

use std::path::{Path, PathBuf};

use hf_hub::{Cache, Repo, RepoType};

use crate::{Error, Result};

/// The kind of a hub repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubKind {
    /// `hf://datasets/…`.
    Dataset,
    /// `hf://models/…` or `hf://<owner>/<name>/…`.
    Model,
    /// `hf://spaces/…`.
    Space,
}

impl From<HubKind> for RepoType {
    fn from(k: HubKind) -> Self {
        match k {
            HubKind::Dataset => RepoType::Dataset,
            HubKind::Model => RepoType::Model,
            HubKind::Space => RepoType::Space,
        }
    }
}

/// A parsed `hf://` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubPath {
    /// `owner/name`.
    pub repo: String,
    /// Dataset, model or space.
    pub kind: HubKind,
    /// Branch, tag or commit; `main` by default.
    pub revision: String,
    /// The file inside the repository.
    pub file: String,
}

/// An `hf://` path that does not name a file of a hub repository.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected hf://datasets/<owner>/<name>[@<revision>]/<file>, got {}", .0.display())]
pub struct BadHubPath(pub PathBuf);

/// Parses `hf://…`; `None` for an ordinary path.
pub fn parse(path: &Path) -> Option<std::result::Result<HubPath, BadHubPath>> {
    let s = path.to_str()?.strip_prefix("hf://")?;
    let (kind, rest) = match s.split_once('/') {
        Some(("datasets", rest)) => (HubKind::Dataset, rest),
        Some(("models", rest)) => (HubKind::Model, rest),
        Some(("spaces", rest)) => (HubKind::Space, rest),
        _ => (HubKind::Model, s),
    };
    let mut parts = rest.splitn(3, '/');
    let (Some(owner), Some(name), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
        return Some(Err(BadHubPath(path.into())));
    };
    let (name, revision) = name.split_once('@').unwrap_or((name, "main"));
    if owner.is_empty() || name.is_empty() || file.is_empty() || revision.is_empty() {
        return Some(Err(BadHubPath(path.into())));
    }
    Some(Ok(HubPath { repo: format!("{owner}/{name}"), kind, revision: revision.into(), file: file.into() }))
}

/// The hub cache directory, as the Python library finds it.
pub fn cache_dir() -> PathBuf {
    if let Ok(p) = std::env::var("HF_HUB_CACHE") {
        return PathBuf::from(p);
    }
    Cache::from_env().path().clone()
}

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "yes"))
}

/// The snapshot folder of `hub`'s repository at its revision in the local cache (`cache`), if
/// the cache holds it: `<kind>s--owner--name/snapshots/<commit>`, the commit read from
/// `refs/<revision>` (or the revision itself when it is a commit).
pub fn snapshot_dir(hub: &HubPath, cache: &Path) -> Option<PathBuf> {
    let prefix = match hub.kind {
        HubKind::Dataset => "datasets",
        HubKind::Model => "models",
        HubKind::Space => "spaces",
    };
    let repo = cache.join(format!("{prefix}--{}", hub.repo.replace('/', "--")));
    let commit = std::fs::read_to_string(repo.join("refs").join(&hub.revision))
        .map(|c| c.trim().to_string())
        .unwrap_or_else(|_| hub.revision.clone());
    let dir = repo.join("snapshots").join(commit);
    dir.is_dir().then_some(dir)
}

/// The local path of `path`: itself, or the cached (or downloaded) file of an `hf://` path.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    resolve_with(path, &cache_dir(), offline())
}

fn resolve_with(path: &Path, cache_path: &Path, offline: bool) -> Result<PathBuf> {
    let hub = match parse(path) {
        None => return Ok(path.to_path_buf()),
        Some(Err(bad)) => return Err(Error::format(path, bad.to_string())),
        Some(Ok(h)) => h,
    };
    let cache_path = cache_path.to_path_buf();
    let repo = Repo::with_revision(hub.repo.clone(), hub.kind.into(), hub.revision.clone());
    if let Some(p) = Cache::new(cache_path.clone()).repo(repo.clone()).get(&hub.file) {
        return Ok(p);
    }
    if offline {
        return Err(Error::format(
            path,
            format!("not in the hub cache {} and HF_HUB_OFFLINE is set", cache_path.display()),
        ));
    }
    let api = hf_hub::api::sync::ApiBuilder::new()
        .with_cache_dir(cache_path.clone())
        .with_progress(false)
        .build()
        .map_err(|e| Error::format(path, format!("cannot reach the hub: {e}")))?;
    api.repo(repo).get(&hub.file).map_err(|e| {
        Error::format(
            path,
            format!(
                "not in the hub cache {} and the download failed ({e}); put the file in the cache, \
                 or set HF_HUB_OFFLINE=1 to work from the cache only",
                cache_path.display()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hub_paths() {
        let p = parse(Path::new("hf://datasets/ucirvine/sms_spam@v1.0/plain_text/train.tsv")).unwrap().unwrap();
        assert_eq!(
            p,
            HubPath {
                repo: "ucirvine/sms_spam".into(),
                kind: HubKind::Dataset,
                revision: "v1.0".into(),
                file: "plain_text/train.tsv".into()
            }
        );
        let m = parse(Path::new("hf://sentence-transformers/all-MiniLM-L6-v2/vocab.txt")).unwrap().unwrap();
        assert_eq!((m.kind, m.revision.as_str(), m.file.as_str()), (HubKind::Model, "main", "vocab.txt"));
        assert!(parse(Path::new("data/x.csv")).is_none());
        assert_eq!(
            parse(Path::new("hf://datasets/only-owner")).unwrap().unwrap_err().to_string(),
            "expected hf://datasets/<owner>/<name>[@<revision>]/<file>, got hf://datasets/only-owner"
        );
    }

    /// The layout `huggingface_hub` writes: `refs/<revision>` holds the commit, the file is under
    /// `snapshots/<commit>/`.
    #[test]
    fn resolves_from_the_cache_offline() {
        let cache = tempfile::tempdir().unwrap();
        let repo = cache.path().join("datasets--acme--toy");
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "abc123").unwrap();
        std::fs::create_dir_all(repo.join("snapshots/abc123/data")).unwrap();
        std::fs::write(repo.join("snapshots/abc123/data/t.csv"), "a,b\n").unwrap();
        let got = resolve_with(Path::new("hf://datasets/acme/toy/data/t.csv"), cache.path(), true).unwrap();
        assert_eq!(got, repo.join("snapshots/abc123/data/t.csv"));
        let err = resolve_with(Path::new("hf://datasets/acme/toy/other.csv"), cache.path(), true).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "hf://datasets/acme/toy/other.csv: not in the hub cache {} and HF_HUB_OFFLINE is set",
                cache.path().display()
            )
        );
        assert_eq!(resolve_with(Path::new("plain.csv"), cache.path(), true).unwrap(), PathBuf::from("plain.csv"));
    }
}
