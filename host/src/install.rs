//! The installation: one data folder with its configuration, mappings and
//! plugins, opened once and shared by every command that works on it (a
//! sync, `conflicts`, `undo`, `backups`, `plugins`, the MCP server).
//!
//! It owns what those commands have in common: the audit trail (each entry
//! appended under a lock of its own), the journalled commit that writes a
//! transaction's files and then its audit entry, crash recovery, and the
//! allocation of sync ids. The sync itself is [`crate::sync`].

use crate::audit::{self, Action, Entry};
use crate::config::{Config, EntityMappings};
use crate::error::Result;
use crate::plugin::Registry;
use crate::record::Status;
use crate::request;
use crate::store::{self, DataDir, Recovery, Write};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Where a host finds its files.
#[derive(Debug, Clone)]
pub struct Paths {
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub mappings: PathBuf,
    pub plugins_dir: PathBuf,
    /// The compiled-plugin cache; `None`: the user's cache folder
    /// (`$XDG_CACHE_HOME/cross-domain-sync`).
    pub cache_dir: Option<PathBuf>,
}

/// Everything a command runs against.
pub struct Host {
    pub paths: Paths,
    pub data: DataDir,
    pub config: Config,
    pub mappings: EntityMappings,
    pub registry: Registry,
    /// How long to wait for another sync's lock.
    pub wait: Duration,
}

/// The time as the host writes it (RFC 3339, UTC, seconds).
pub fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Host {
    /// Loads the configuration and mappings and opens the plugin registry.
    pub fn open(paths: Paths, wait: Duration) -> Result<Host> {
        let config = Config::load(&paths.config)?;
        let mappings = EntityMappings::load(&paths.mappings)?;
        let data = DataDir::new(&paths.data_dir);
        // The user's own cache folder, shared by all data folders; never the
        // data folder, which others may be able to write (plugin/cache.rs).
        // The flag or environment first, then the configuration.
        let cache = paths
            .cache_dir
            .clone()
            .or_else(|| config.plugin_cache_dir.clone())
            .or_else(crate::plugin::cache::default_dir);
        let runtime = crate::plugin::runtime::Runtime::new(config.limits.plugin_limits(), cache)?;
        let registry = Registry::open(runtime, &paths.plugins_dir)?;
        Ok(Host {
            paths,
            data,
            config,
            mappings,
            registry,
            wait,
        })
    }

    pub fn entity_types(&self) -> Vec<String> {
        self.registry.entity_types()
    }

    /// The invocation schema of this installation.
    pub fn invocation_schema(&self) -> Value {
        request::invocation_schema(&self.config.domain_names(), &self.entity_types())
    }

    /// Appends an audit entry; the data folder must exist.
    pub fn audit(&self, entry: Entry) -> Result<()> {
        self.append_audit(&self.data, &entry.into_value())
    }

    /// Appends `entry` to `dir`'s audit trail under the audit lock (the form
    /// the journalled commit and crash recovery call back into).
    fn append_audit(&self, dir: &DataDir, entry: &Value) -> Result<()> {
        let _guard = self.audit_lock()?;
        audit::append(dir, entry)
    }

    /// Commits `writes` as one transaction `txn`, auditing `entry` once the
    /// commit point has passed.
    pub fn commit(&self, txn: &str, writes: &[Write], entry: Entry) -> Result<()> {
        // The journal holds the entry with its id, so that a roll-forward
        // after a crash appends it at most once.
        self.data
            .commit(txn, writes, Some(entry.into_value()), &|d, e| {
                self.append_audit(d, e)
            })
    }

    fn audit_lock(&self) -> Result<store::DirLock> {
        // A lock of its own, so that refused syncs (which never take the data
        // folder's lock) can still append safely.
        store::lock_file(
            &self.data.state_dir().join("audit.lock"),
            Duration::from_secs(30),
        )
    }

    /// Finishes a sync that a crash interrupted, auditing what was done.
    /// The caller holds the data folder's lock.
    pub fn recover(&self) -> Result<Recovery> {
        let r = self.data.recover(&|d, e| self.append_audit(d, e))?;
        let reason = "the previous invocation was interrupted during its commit".to_string();
        let (action, done) = match &r {
            Recovery::Nothing => return Ok(r),
            Recovery::RolledBack { id, .. } => (
                Action::Rollback {
                    sync_id: id.clone(),
                    reason,
                },
                format!("{id} was rolled back"),
            ),
            Recovery::RolledForward { id, .. } => (
                Action::Rollforward {
                    sync_id: id.clone(),
                    reason,
                },
                format!("{id} was rolled forward"),
            ),
        };
        tracing::warn!("an interrupted sync was found: {done}");
        self.audit(Entry::new(
            rfc3339(chrono::Utc::now()),
            request::default_user(),
            action,
            Status::Success,
        ))?;
        Ok(r)
    }

    /// Where the base of `entity` between two domains lives (the same for
    /// either order of the pair).
    pub fn base_path(&self, domains: [&str; 2], entity: &str) -> PathBuf {
        let mut pair = domains;
        pair.sort();
        self.data.base_path(&pair.join("+"), entity)
    }

    /// `sync-YYYYMMDD-HHMMSS`, with `-2`, `-3`, ... when taken. Every attempt
    /// gets an id of its own, refused and failed ones too (they write no
    /// record): an id is taken by creating its reservation file with
    /// `create_new`, which only one process can do, so two attempts in the
    /// same second, in one process or several, never share one.
    pub fn allocate_id(&self, now: chrono::DateTime<chrono::Utc>) -> String {
        let base = format!("sync-{}", now.format("%Y%m%d-%H%M%S"));
        let ids = self.data.state_dir().join("ids");
        // Never creates a data folder that is not there (an attempt against
        // a wrong --data-dir fails and is not audited there).
        let mut reservable = self.data.root.is_dir() && std::fs::create_dir_all(&ids).is_ok();
        if reservable {
            prune_reservations(&ids, now);
        }
        // Within this process too, for a data folder whose state cannot be
        // written (the attempt then fails, and is not audited there either).
        static ISSUED: Mutex<Vec<String>> = Mutex::new(Vec::new());
        // A panic elsewhere while holding it leaves the list intact.
        let mut issued = ISSUED.lock().unwrap_or_else(|e| e.into_inner());
        let taken = |id: &str| {
            issued.iter().any(|i| i == id)
                || self.data.record_path(id).exists()
                || self.data.backups_dir(id).exists()
                || self.data.conflicts_path(id).exists()
        };
        // Taken only when another attempt created it; any other failure
        // (a full disk, a read-only state folder) ends reserving, so that
        // the loop below cannot run for ever: the id is then unique within
        // this process only, and the attempt's own I/O will fail and say why.
        let mut reserve = |id: &str| {
            if !reservable {
                return true;
            }
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(ids.join(id))
            {
                Ok(_) => true,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
                Err(e) => {
                    tracing::warn!("cannot reserve sync id `{id}` in `{}`: {e}", ids.display());
                    reservable = false;
                    true
                }
            }
        };
        let mut id = base.clone();
        let mut n = 1;
        while taken(&id) || !reserve(&id) {
            n += 1;
            id = format!("{base}-{n}");
        }
        issued.push(id.clone());
        if issued.len() > 64 {
            issued.remove(0);
        }
        id
    }
}

/// Removes sync-id reservations (see [`Host::allocate_id`]) more than a day
/// old: an id names its second, so an old reservation can only matter again
/// if the clock went back that far.
fn prune_reservations(ids: &Path, now: chrono::DateTime<chrono::Utc>) {
    let cutoff = format!(
        "sync-{}",
        (now - chrono::Duration::days(1)).format("%Y%m%d-%H%M%S")
    );
    for e in std::fs::read_dir(ids).into_iter().flatten().flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("sync-") && name.get(..20).is_some_and(|stamp| stamp < cutoff.as_str())
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
