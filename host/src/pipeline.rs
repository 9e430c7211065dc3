//! The sync pipeline: one validated invocation in, one [`SyncRecord`] out.
//!
//! For each entity type (two at a time, as the machine has two cores, and
//! within a type the two files and the base on threads of their own): read
//! both domains' files, validate every item against the plugin's schema, map
//! and filter each sending side's items (and the base versions of the items
//! it changed) through the sandboxed plugin, merge (pure), then plan the file
//! writes. All writes of all types are committed in one transaction together
//! with the sync record; the audit entry follows the commit point.
//!
//! Architecture invariant: the command line and the MCP server both call
//! [`Host::sync`]; neither has its own sync logic. Every attempt, refused or
//! failed ones too, leaves exactly one audit entry.

use crate::audit;
use crate::base;
use crate::config::{Config, EntityMappings, Right};
use crate::error::{Code, Error, Result};
use crate::merge::{self, Base, Conflict, Direction, IdMap, IdSet, Item, Side, View, id_of};
use crate::plugin::{Plugin, Registry, Shapes};
use crate::raw;
use crate::record::{DomainPlan, EntityResult, ErrorObject, Status, SyncRecord};
use crate::request::{self, SyncRequest};
use crate::store::{self, DataDir, Recovery, Write};
use cds_policy::rename_fields;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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

/// Told about each entity type as the sync works (CLI progress, MCP
/// notifications).
pub trait Progress: Sync {
    fn entity_started(&self, _entity: &str, _index: usize, _total: usize) {}
    fn entity_done(&self, _entity: &str, _result: &EntityResult) {}
}

/// No progress reporting.
pub struct Quiet;
impl Progress for Quiet {}

/// A cancellation flag a front end can raise (MCP `notifications/cancelled`).
#[derive(Debug, Clone, Default)]
pub struct Cancel(pub Arc<AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Everything a sync runs against.
pub struct Host {
    pub paths: Paths,
    pub data: DataDir,
    pub config: Config,
    pub mappings: EntityMappings,
    pub registry: Registry,
    /// How long to wait for another sync's lock.
    pub wait: Duration,
}

/// Removes sync-id reservations (see `Host::allocate_id`) more than a day
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

fn now_utc() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
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
        let cache = paths
            .cache_dir
            .clone()
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
        crate::schema::invocation_schema(&self.config.domain_names(), &self.entity_types())
    }

    /// Appends an audit entry; the data folder must exist.
    pub fn audit(&self, entry: Value) -> Result<()> {
        self.append_audit(&self.data, &entry)
    }

    /// Appends `entry` to `dir`'s audit trail under the audit lock (the form
    /// the journalled commit and crash recovery call back into).
    fn append_audit(&self, dir: &DataDir, entry: &Value) -> Result<()> {
        let _guard = self.audit_lock()?;
        audit::append(dir, entry)
    }

    /// Commits `writes` as one transaction `txn`, auditing `entry` once the
    /// commit point has passed.
    pub fn commit(&self, txn: &str, writes: &[Write], mut entry: Value) -> Result<()> {
        // The journal holds the entry with its id, so that a roll-forward
        // after a crash appends it at most once.
        if let Value::Object(m) = &mut entry
            && !m.contains_key("entryId")
        {
            m.insert("entryId".into(), audit::new_entry_id().into());
        }
        self.data
            .commit(txn, writes, Some(entry), &|d, e| self.append_audit(d, e))
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
        let (action, id) = match &r {
            Recovery::Nothing => return Ok(r),
            Recovery::RolledBack { id, .. } => ("ROLLBACK", id),
            Recovery::RolledForward { id, .. } => ("ROLLFORWARD", id),
        };
        tracing::warn!("an interrupted sync {id} was found: {action}");
        self.audit(json!({
            "timestamp": rfc3339(now_utc()),
            "category": "CROSS_DOMAIN",
            "action": action,
            "syncId": id,
            "user": request::default_user(),
            "outcome": "success",
            "reason": "the previous invocation was interrupted during its commit",
        }))?;
        Ok(r)
    }

    /// Runs one sync from the JSON form of an invocation. Never fails: a
    /// failure is a record with `status: failed`, audited like a success.
    pub fn sync(
        &self,
        raw: &Value,
        fallback_user: &str,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> SyncRecord {
        let started = Instant::now();
        let now = now_utc();
        let mut ctx = Attempt {
            now,
            started,
            sync_id: None,
            req: None,
        };
        let result = self.try_sync(raw, fallback_user, progress, cancel, &mut ctx);
        match result {
            Ok(rec) => rec,
            Err(e) => self.failed(raw, fallback_user, &ctx, e),
        }
    }

    fn failed(&self, raw: &Value, fallback_user: &str, ctx: &Attempt, e: Error) -> SyncRecord {
        let s = |k: &str| raw.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let req = ctx.req.as_ref();
        let sync_id = ctx
            .sync_id
            .clone()
            .unwrap_or_else(|| self.allocate_id(ctx.now));
        let record = SyncRecord {
            sync_id,
            timestamp: rfc3339(ctx.now),
            source_domain: req
                .map(|r| r.source.name.clone())
                .unwrap_or_else(|| s("source")),
            target_domain: req
                .map(|r| r.target.name.clone())
                .unwrap_or_else(|| s("target")),
            entities: req.map(|r| r.entities.clone()).unwrap_or_else(|| {
                raw.get("entities")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default()
            }),
            sync_direction: req
                .map(|r| r.direction.as_str().to_string())
                .unwrap_or_else(|| {
                    raw.get("direction")
                        .and_then(Value::as_str)
                        .unwrap_or(Direction::SourceToTarget.as_str())
                        .to_string()
                }),
            user: req.map(|r| r.user.clone()).unwrap_or_else(|| {
                raw.get("user")
                    .and_then(Value::as_str)
                    .unwrap_or(fallback_user)
                    .to_string()
            }),
            session: req
                .map(|r| r.session.clone())
                .unwrap_or_else(|| s("session")),
            dry_run: raw.get("dryRun").and_then(Value::as_bool).unwrap_or(false),
            duration_ms: ctx.started.elapsed().as_millis() as u64,
            results: BTreeMap::new(),
            plan: BTreeMap::new(),
            errors: vec![ErrorObject::from(&e)],
            status: Status::Failed,
        };
        if self.data.root.is_dir() {
            let entry = self.audit_entry(&record, &BTreeMap::new());
            if let Err(ae) = self.audit(entry) {
                tracing::error!("cannot audit the failed sync {}: {ae}", record.sync_id);
            }
        }
        record
    }

    /// `sync-YYYYMMDD-HHMMSS`, with `-2`, `-3`, ... when taken. Every attempt
    /// gets an id of its own, refused and failed ones too (they write no
    /// record): an id is taken by creating its reservation file with
    /// `create_new`, which only one process can do, so two attempts in the
    /// same second, in one process or several, never share one.
    fn allocate_id(&self, now: chrono::DateTime<chrono::Utc>) -> String {
        let base = format!("sync-{}", now.format("%Y%m%d-%H%M%S"));
        let ids = self.data.state_dir().join("ids");
        // Never creates a data folder that is not there (an attempt against
        // a wrong --data-dir fails and is not audited there).
        let reservable = self.data.root.is_dir() && std::fs::create_dir_all(&ids).is_ok();
        if reservable {
            prune_reservations(&ids, now);
        }
        // Within this process too, for a data folder whose state cannot be
        // written (the attempt then fails, and is not audited there either).
        static ISSUED: Mutex<Vec<String>> = Mutex::new(Vec::new());
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
        let mut reservable = reservable;
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

    fn audit_entry(&self, rec: &SyncRecord, plugins: &BTreeMap<String, String>) -> Value {
        // Counts and ids only: error messages may quote data, so only their
        // codes and locations go into the trail.
        let errors: Vec<Value> = rec
            .errors
            .iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("code".into(), json!(e.code));
                for k in [
                    "file", "index", "id", "path", "paths", "plugin", "domain", "entity",
                ] {
                    if let Some(v) = e.details.get(k) {
                        m.insert(k.into(), v.clone());
                    }
                }
                Value::Object(m)
            })
            .collect();
        json!({
            "timestamp": rec.timestamp,
            "category": "CROSS_DOMAIN",
            "action": "DATA_SYNC",
            "syncId": rec.sync_id,
            "user": rec.user,
            "session": rec.session,
            "sourceDomain": rec.source_domain,
            "targetDomain": rec.target_domain,
            "entityTypes": rec.entities,
            "syncDirection": rec.sync_direction,
            "dryRun": rec.dry_run,
            "outcome": rec.status,
            "results": rec.results,
            "errors": errors,
            "plugins": plugins,
            "durationMs": rec.duration_ms,
        })
    }

    fn check_permissions(&self, req: &SyncRequest) -> Result<()> {
        for side in [Side::Source, Side::Target] {
            let domain = match side {
                Side::Source => &req.source.name,
                Side::Target => &req.target.name,
            };
            let mut needed = Vec::new();
            if req.direction.sends(side) {
                needed.push(Right::Read);
            }
            if req.direction.sends(side.other()) {
                needed.push(Right::Write);
            }
            for right in needed {
                if !self.config.allows(&req.user, domain, right) {
                    let word = match right {
                        Right::Read => "read",
                        Right::Write => "write",
                    };
                    return Err(Error::new(
                        Code::PermissionDenied,
                        format!(
                            "user `{}` may not {word} domain `{domain}`, which a {} sync from \
                             `{}` to `{}` needs; an administrator can grant it in `{}` at \
                             $.users.{}.{domain}",
                            req.user,
                            req.direction.as_str(),
                            req.source.name,
                            req.target.name,
                            self.paths.config.display(),
                            req.user
                        ),
                    )
                    .with("domain", domain.as_str())
                    .with("user", req.user.as_str())
                    .with("right", word));
                }
            }
        }
        Ok(())
    }

    fn try_sync(
        &self,
        raw: &Value,
        fallback_user: &str,
        progress: &dyn Progress,
        cancel: &Cancel,
        ctx: &mut Attempt,
    ) -> Result<SyncRecord> {
        let req = request::resolve(
            raw,
            &self.config,
            &self.entity_types(),
            &self.paths.data_dir,
            fallback_user,
        )?;
        ctx.req = Some(req.clone());
        self.check_permissions(&req)?;
        let installed = self.entity_types();
        for (crossing, by_type) in &self.config.policies {
            for entity in by_type.keys().filter(|e| !installed.contains(e)) {
                tracing::warn!(
                    "`{}` has a policy for `{entity}` at $.policies[\"{crossing}\"], but no \
                     installed plugin handles `{entity}`; it applies to nothing",
                    self.paths.config.display()
                );
            }
        }
        let limits = &self.config.limits;
        let deadline = ctx.started + Duration::from_secs(limits.timeout_seconds);
        let _lock = self.data.lock(self.wait)?;
        self.recover()?;
        // Files prestaged by a sync that died before its commit.
        let mut dirs = vec![req.source.dir.clone(), req.target.dir.clone()];
        dirs.extend(
            req.entities
                .iter()
                .filter_map(|e| self.base_path(&req, e).parent().map(Path::to_path_buf)),
        );
        DataDir::remove_temporaries(dirs);
        let sync_id = self.allocate_id(ctx.now);
        ctx.sync_id = Some(sync_id.clone());
        let stamp = rfc3339(ctx.now);
        let check_time = |stage: &str| -> Result<()> {
            if cancel.is_cancelled() {
                return Err(Error::new(
                    Code::Timeout,
                    format!("the sync was cancelled by the caller {stage}; nothing was changed"),
                )
                .with("cancelled", true));
            }
            if Instant::now() > deadline {
                return Err(Error::new(
                    Code::Timeout,
                    format!(
                        "the sync ran past its limit of {} s {stage} and was rolled back; \
                         nothing was changed. Sync fewer entity types at once, or raise \
                         limits.timeoutSeconds in the configuration",
                        limits.timeout_seconds
                    ),
                ));
            }
            Ok(())
        };
        check_time("before it started")?;

        // Plan every entity type, two at a time.
        let bytes_read = AtomicU64::new(0);
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Result<EntityPlan>>>> =
            Mutex::new((0..req.entities.len()).map(|_| None).collect());
        let failed = AtomicBool::new(false);
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, 4)
            .min(req.entities.len().max(1));
        // Largest first (by the bytes of both files), so that the last type
        // to finish is a small one and no core idles at the end.
        let mut order: Vec<usize> = (0..req.entities.len()).collect();
        let size = |e: &str| -> u64 {
            [&req.source, &req.target]
                .iter()
                .filter_map(|d| std::fs::metadata(d.dir.join(format!("{e}.json"))).ok())
                .map(|m| m.len())
                .sum()
        };
        let sizes: Vec<u64> = req.entities.iter().map(|e| size(e)).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));
        let work = || {
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= order.len() || failed.load(Ordering::SeqCst) {
                    break;
                }
                let i = order[n];
                let entity = &req.entities[i];
                progress.entity_started(entity, i, req.entities.len());
                let r = check_time(&format!("while syncing {entity}"))
                    .and_then(|()| self.plan_entity(&req, entity, &stamp, &bytes_read, deadline));
                match &r {
                    Ok(p) => progress.entity_done(entity, &p.result),
                    Err(_) => failed.store(true, Ordering::SeqCst),
                }
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            }
        };
        // Small inputs are planned on this thread alone (see
        // `PARALLEL_MIN_BYTES`); otherwise this thread is one of the workers.
        let workers = if sizes.iter().sum::<u64>() < PARALLEL_MIN_BYTES {
            1
        } else {
            workers
        };
        std::thread::scope(|scope| {
            for _ in 1..workers {
                scope.spawn(work);
            }
            work();
        });
        let mut plans = Vec::with_capacity(req.entities.len());
        for r in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
            match r {
                Some(Ok(p)) => plans.push(p),
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        check_time("before its commit")?;

        let plugins = self.registry.digests(&req.entities);
        let mut record = SyncRecord {
            sync_id: sync_id.clone(),
            timestamp: stamp.clone(),
            source_domain: req.source.name.clone(),
            target_domain: req.target.name.clone(),
            entities: req.entities.clone(),
            sync_direction: req.direction.as_str().into(),
            user: req.user.clone(),
            session: req.session.clone(),
            dry_run: req.dry_run,
            duration_ms: 0,
            results: plans.iter().map(|p| (p.entity.clone(), p.result)).collect(),
            plan: BTreeMap::new(),
            errors: Vec::new(),
            status: if req.dry_run {
                Status::DryRun
            } else {
                Status::Success
            },
        };
        if req.dry_run {
            record.plan = plans
                .iter_mut()
                .map(|p| (p.entity.clone(), std::mem::take(&mut p.plan)))
                .collect();
            record.duration_ms = ctx.started.elapsed().as_millis() as u64;
            self.audit(self.audit_entry(&record, &plugins))?;
            return Ok(record);
        }

        // Another program may have written a domain file since it was read;
        // committing would lose that change. Large files are checked on two
        // threads (a file whose stamp is racy is read and hashed again); the
        // first changed one in plan order is reported.
        let t_check = Instant::now();
        let read: Vec<_> = plans.iter().flat_map(|p| &p.read_digests).collect();
        let unchanged = |part: &[&(PathBuf, Option<String>, Option<store::FileStamp>)]| {
            part.iter()
                .map(|(path, digest, stamp)| store::unchanged_since_read(path, digest, stamp))
                .collect::<Vec<_>>()
        };
        let bytes: u64 = read
            .iter()
            .filter_map(|(_, _, stamp)| stamp.as_ref().map(store::FileStamp::size))
            .sum();
        let checked = if bytes < PARALLEL_MIN_BYTES {
            unchanged(&read)
        } else {
            let (first, second) = read.split_at(read.len() / 2);
            std::thread::scope(|s| {
                let second = s.spawn(|| unchanged(second));
                let mut checked = unchanged(first);
                checked.extend(join(second));
                checked
            })
        };
        for ((path, _, _), unchanged) in read.iter().zip(checked) {
            if !unchanged? {
                return Err(Error::new(
                    Code::StorageError,
                    format!(
                        "`{}` changed while the sync ran (another program wrote or removed it); \
                         nothing was written. Run the sync again",
                        path.display()
                    ),
                )
                .with("file", path.display().to_string()));
            }
        }
        let check_ms = t_check.elapsed().as_millis() as u64;
        let mut writes: Vec<Write> = Vec::new();
        let mut conflicts = Vec::new();
        for p in &mut plans {
            writes.append(&mut p.writes);
            for c in p.conflicts.drain(..) {
                conflicts.push((p.entity.clone(), c));
            }
        }
        if !conflicts.is_empty() {
            let entries: Vec<Value> = conflicts
                .iter()
                .enumerate()
                .map(|(n, (entity, c))| {
                    let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
                    v["id"] = json!(format!("{sync_id}:{}", n + 1));
                    v["entity"] = json!(entity);
                    v["sourceDomain"] = json!(req.source.name);
                    v["targetDomain"] = json!(req.target.name);
                    if let Some(field) = &c.field {
                        // The values are in the losing (receiving) domain's
                        // shape; name the field as each domain's files do.
                        let loser = match c.winner {
                            Side::Source => &req.target.name,
                            Side::Target => &req.source.name,
                        };
                        let canonical = self.mappings.canonical(loser, entity, field);
                        v["fields"] = json!({
                            req.source.name.clone(): self.mappings.local(&req.source.name, entity, &canonical),
                            req.target.name.clone(): self.mappings.local(&req.target.name, entity, &canonical),
                        });
                    }
                    v["resolved"] = Value::Null;
                    v
                })
                .collect();
            writes.push(Write {
                prestaged: None,
                path: self.data.conflicts_path(&sync_id),
                content: Some(store::to_pretty(&json!({
                    "syncId": sync_id,
                    "conflicts": entries,
                }))),
            });
        }
        record.duration_ms = ctx.started.elapsed().as_millis() as u64;
        writes.push(Write {
            prestaged: None,
            path: self.data.record_path(&sync_id),
            content: Some(store::to_pretty(&record)),
        });
        let entry = self.audit_entry(&record, &plugins);
        let t_commit = Instant::now();
        self.commit(&sync_id, &writes, entry)?;
        tracing::info!(
            files = writes.len(),
            // Prestaged files were written while planning (see `planned`).
            unstaged_bytes = writes
                .iter()
                .map(|w| w.content.as_ref().map_or(0, Vec::len))
                .sum::<usize>(),
            commit_ms = t_commit.elapsed().as_millis() as u64,
            // The check that no other program wrote a file the sync read.
            check_ms,
            "committed"
        );
        Ok(record)
    }

    fn base_path(&self, req: &SyncRequest, entity: &str) -> PathBuf {
        let mut pair = [req.source.name.as_str(), req.target.name.as_str()];
        pair.sort();
        self.data.base_path(&pair.join("+"), entity)
    }

    fn plan_entity(
        &self,
        req: &SyncRequest,
        entity: &str,
        stamp: &str,
        bytes_read: &AtomicU64,
        deadline: Instant,
    ) -> Result<EntityPlan> {
        let t0 = Instant::now();
        let plugin = self.registry.get(entity)?;
        let idf = plugin.id_field().to_string();
        let extra = self
            .config
            .extra_fields
            .get(entity)
            .map_or(&[][..], Vec::as_slice);
        if let Some(known) = crate::fields::known(&plugin.schema, &idf, extra) {
            crate::fields::check(
                &self.config,
                &self.mappings,
                [&self.paths.config, &self.paths.mappings],
                [&req.source.name, &req.target.name],
                entity,
                &known,
            )?;
        }
        let limits = &self.config.limits;
        let file_of = |d: &request::Domain| d.dir.join(format!("{entity}.json"));
        let (src_path, tgt_path) = (file_of(&req.source), file_of(&req.target));
        let src_fields = self.mappings.fields(&req.source.name, entity);
        let tgt_fields = self.mappings.fields(&req.target.name, entity);
        let base_path = self.base_path(req, entity);
        let key = base::key(
            &plugin.info.sha256,
            [
                (&req.source.name, &src_fields),
                (&req.target.name, &tgt_fields),
            ],
        );
        // Both domain files are read and scanned, and the base loaded, at the
        // same time, and then both files' unsettled items parsed and
        // validated at the same time: while two entity types are planned the
        // cores are busy anyway, but the last type runs alone. Results are
        // checked in the order a sequential run would meet them (each file's
        // reading, then the items of each, then the base), so the error
        // reported does not depend on timing.
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let large = size(&src_path) + size(&tgt_path) >= PARALLEL_MIN_BYTES;
        // Files are scanned, their items left as text, only when the base
        // has digests that may settle some; otherwise parsed whole at once.
        let scan = base::trusted_header(&base_path, entity, &key);
        let read_side = |path: &Path| {
            if scan {
                self.data.read_entity_raw(path, entity, &idf)
            } else {
                self.data.read_entity_parsed(path, entity, &idf)
            }
        };
        let load_base =
            || base::RawBase::load(&base_path, &req.source.name, &req.target.name, &key);
        let (src_read, tgt_read, raw_base) = if large {
            std::thread::scope(|s| {
                let tgt = s.spawn(|| read_side(&tgt_path));
                let base = s.spawn(load_base);
                let src = read_side(&src_path);
                (src, join(tgt), join(base))
            })
        } else {
            (read_side(&src_path), read_side(&tgt_path), load_base())
        };
        let mut sides = Vec::with_capacity(2);
        for (read, path) in [(src_read, &src_path), (tgt_read, &tgt_path)] {
            let file = read?;
            let total =
                bytes_read.fetch_add(file.bytes as u64, Ordering::SeqCst) + file.bytes as u64;
            if total > limits.max_bytes_per_sync {
                return Err(Error::new(
                    Code::LimitExceeded,
                    format!(
                        "the sync reads more than {} bytes (limits.maxBytesPerSync); reached at \
                         `{}`. Sync fewer entity types at once or raise the limit",
                        limits.max_bytes_per_sync,
                        path.display()
                    ),
                )
                .with("file", path.display().to_string()));
            }
            if file.raw.items.len() > limits.max_items_per_type {
                return Err(Error::new(
                    Code::LimitExceeded,
                    format!(
                        "`{}` holds {} items, more than the limit of {} per entity type \
                         (limits.maxItemsPerType)",
                        path.display(),
                        file.raw.items.len(),
                        limits.max_items_per_type
                    ),
                )
                .with("file", path.display().to_string()));
            }
            sides.push(file);
        }
        let mut tgt = sides.pop().unwrap_or_else(|| unreachable!());
        let mut src = sides.pop().unwrap_or_else(|| unreachable!());
        // Digests are worked out only when the base has some to compare
        // them with (never in a first sync).
        if scan && raw_base.as_ref().is_ok_and(base::RawBase::has_digests) {
            src.raw.digest_items();
            tgt.raw.digest_items();
        }
        // Items both sides hold exactly as the base knows them written are
        // settled: they are not parsed, validated or merged, and a rewritten
        // file copies their text (what makes a re-sync cheap). A base that
        // cannot be read settles nothing; its error follows the files' own.
        let no_base = base::RawBase::default();
        let [src_settled, tgt_settled, base_settled] = base::settled(
            &src.raw.items,
            &tgt.raw.items,
            raw_base.as_ref().unwrap_or(&no_base),
        );
        let settled = base_settled.iter().filter(|s| **s).count();
        let parse_side = |file: &mut store::ReadFile, path: &Path, settled: &[bool], fields| {
            read_items(&plugin, entity, path, file, settled, fields)
        };
        let (src_parsed, tgt_parsed) = if large {
            std::thread::scope(|s| {
                let tgt = s.spawn(|| parse_side(&mut tgt, &tgt_path, &tgt_settled, &tgt_fields));
                let src = parse_side(&mut src, &src_path, &src_settled, &src_fields);
                (src, join(tgt))
            })
        } else {
            (
                parse_side(&mut src, &src_path, &src_settled, &src_fields),
                parse_side(&mut tgt, &tgt_path, &tgt_settled, &tgt_fields),
            )
        };
        let (src_items, tgt_items) = (src_parsed?, tgt_parsed?);
        let raw_base = raw_base?;
        // The base entries that are not settled, for the merge.
        let mut base = Base::new();
        for (i, e) in raw_base.entries.iter().enumerate() {
            if !base_settled[i] {
                base.insert(e.id.clone(), raw_base.entry(i)?);
            }
        }
        // A file's text is kept only to copy its settled items.
        for (file, marks) in [(&mut src, &src_settled), (&mut tgt, &tgt_settled)] {
            if !marks.contains(&true) {
                file.raw.text = Vec::new();
            }
        }
        store::faults::delay();
        let t_read = t0.elapsed();

        let fields = [&src_fields, &tgt_fields];
        let counts = (src.raw.items.len(), tgt.raw.items.len());
        // The items move through the merge and come back in its output; a
        // dry run keeps the originals to describe the plan.
        let before = req.dry_run.then(|| (src_items.clone(), tgt_items.clone()));
        let (mut out, withheld, redacted) = self.merge_round(
            req,
            &plugin,
            entity,
            [src_items, tgt_items],
            fields,
            base,
            settled,
            stamp,
            deadline,
        )?;
        if out.again {
            // The merge changed an item its sender withheld when the views
            // were made; it may cross now, so views and merge run once more.
            let items = [
                std::mem::take(&mut out.source_items),
                std::mem::take(&mut out.target_items),
            ];
            let base = std::mem::take(&mut out.base);
            let (second, _, _) = self.merge_round(
                req, &plugin, entity, items, fields, base, settled, stamp, deadline,
            )?;
            out = merge::combine(out, second, &idf);
        }
        let t_merge = t0.elapsed();
        let result = EntityResult {
            source_count: counts.0,
            target_count: counts.1,
            merged_count: out.stats.merged,
            conflicts: out.stats.conflicts,
            added: out.stats.added,
            updated: out.stats.updated,
            deleted: out.stats.deleted,
            unchanged: out.stats.unchanged,
            withheld,
            redacted_fields: redacted,
        };
        let mut plan = BTreeMap::new();
        if let Some((src_before, tgt_before)) = &before {
            plan.insert(
                req.source.name.clone(),
                domain_plan(src_before, &out.source_items, &idf),
            );
            plan.insert(
                req.target.name.clone(),
                domain_plan(tgt_before, &out.target_items, &idf),
            );
        }
        let mut read_digests = Vec::new();
        for (changed, path, file) in [
            (out.source_changed, &src_path, &src),
            (out.target_changed, &tgt_path, &tgt),
        ] {
            if changed {
                read_digests.push((path.clone(), file.digest.clone(), file.stamp.clone()));
            }
        }
        let mut writes = Vec::new();
        if !req.dry_run {
            // The ids whose version in a file the merge replaced: with the
            // new items, what the merge made.
            let mut replaced: [IdSet<&str>; 2] = [IdSet::default(), IdSet::default()];
            for d in out.displaced.iter().filter(|d| !d.deleted) {
                replaced[d.side as usize].insert(id_of(&d.item, &idf));
            }
            let [src_replaced, tgt_replaced] = replaced;
            let sides = [
                NewSide {
                    side: Side::Source,
                    changed: out.source_changed,
                    path: &src_path,
                    file: &src,
                    settled: &src_settled,
                    items: &out.source_items,
                    replaced: src_replaced,
                    fields: &src_fields,
                },
                NewSide {
                    side: Side::Target,
                    changed: out.target_changed,
                    path: &tgt_path,
                    file: &tgt,
                    settled: &tgt_settled,
                    items: &out.target_items,
                    replaced: tgt_replaced,
                    fields: &tgt_fields,
                },
            ];
            writes = self.write_entity(
                req,
                &plugin,
                entity,
                sides,
                (&out.base, out.base_changed),
                (&base_path, &key, &raw_base, &base_settled),
            )?;
        }
        tracing::info!(
            entity,
            settled,
            read_validate_base_ms = t_read.as_millis() as u64,
            plugins_merge_ms = (t_merge - t_read).as_millis() as u64,
            encode_ms = (t0.elapsed() - t_merge).as_millis() as u64,
            "planned"
        );
        Ok(EntityPlan {
            entity: entity.to_string(),
            result,
            writes,
            read_digests,
            conflicts: out.conflicts,
            plan,
        })
    }

    /// Encodes and writes ahead (see [`store::prestage`]) the new files of
    /// one entity type: each domain file the merge changed, both at once,
    /// and the base, when the merge changed it or the digests it holds are
    /// not the ones it should (a base of format 1, or one recorded under
    /// another plugin or other field renames, is rewritten once even when
    /// nothing else changed).
    ///
    /// The base records the digest of a side's item, as written (or, in a
    /// file not rewritten, as it would be written), when that item is in
    /// content the base's item for that side, and valid. Items the merge made
    /// are validated for that; an invalid one is still written, as before,
    /// only without a digest, so that the next sync reads and validates it
    /// again. Each side's thread works out its digests and hands them over;
    /// this thread then writes the base while the domain files' fsyncs run.
    fn write_entity(
        &self,
        req: &SyncRequest,
        plugin: &Plugin,
        entity: &str,
        sides: [NewSide<'_>; 2],
        (new_base, base_changed): (&Base, bool),
        (base_path, key, old_base, base_settled): (&Path, &str, &base::RawBase, &[bool]),
    ) -> Result<Vec<Write>> {
        let (tx, rx) = std::sync::mpsc::channel::<(Side, Recorded<'_>)>();
        std::thread::scope(|s| {
            // A thread per rewritten file, this one for the base (and for
            // the digests of a side not rewritten, which is quick).
            let mut handles = Vec::with_capacity(2);
            let mut inline = Vec::new();
            for side in sides {
                if side.changed {
                    let tx = tx.clone();
                    handles.push(s.spawn(move || side.write(plugin, entity, new_base, &tx)));
                } else {
                    inline.push(side.write(plugin, entity, new_base, &tx));
                }
            }
            drop(tx);
            let mut recorded = [Recorded::default(), Recorded::default()];
            let mut heard = [false, false];
            while heard != [true, true] {
                // Closed early: a side failed before it could report.
                let Ok((side, r)) = rx.recv() else { break };
                recorded[side as usize] = r;
                heard[side as usize] = true;
            }
            let sides_done = || -> Result<Vec<Write>> {
                let mut writes = Vec::with_capacity(3);
                for r in inline.into_iter().chain(handles.into_iter().map(join)) {
                    writes.extend(r?);
                }
                Ok(writes)
            };
            if heard != [true, true] {
                // The failed side's error.
                return sides_done();
            }
            let stale = !base_changed && {
                let held: IdMap<&str, [Option<raw::ItemDigest>; 2]> = old_base
                    .entries
                    .iter()
                    .map(|e| (e.id.as_str(), e.digests))
                    .collect();
                new_base.keys().any(|id| {
                    let now = recorded.each_ref().map(|r| r.get(id.as_str()).copied());
                    held.get(id.as_str()).copied().unwrap_or_default() != now
                })
            };
            let base_write = (base_changed || stale).then(|| {
                let digest_of = |side: Side, id: &str| recorded[side as usize].get(id).copied();
                store::prestage(base_path, &|w| {
                    base::write(
                        w,
                        entity,
                        key,
                        [&req.source.name, &req.target.name],
                        new_base,
                        old_base,
                        base_settled,
                        &digest_of,
                    )
                })
            });
            let mut writes = sides_done()?;
            writes.extend(base_write.transpose()?);
            Ok(writes)
        })
    }

    /// One round of views (plugins) and merge (pure) for one entity type: the
    /// items and the base move in and come back in the merge's output, which
    /// also says whether another round is needed. Returns it with the
    /// policy's withheld-item and redacted-field counts.
    #[allow(clippy::too_many_arguments)]
    fn merge_round(
        &self,
        req: &SyncRequest,
        plugin: &Plugin,
        entity: &str,
        [src_owned, tgt_owned]: [Vec<Arc<Item>>; 2],
        [src_fields, tgt_fields]: [&Vec<(String, String)>; 2],
        base_owned: Base,
        settled_out: usize,
        stamp: &str,
        deadline: Instant,
    ) -> Result<(merge::MergeOutput, usize, u64)> {
        let (src_items, tgt_items, base) = (&src_owned, &tgt_owned, &base_owned);
        let idf = plugin.id_field().to_string();
        let mut withheld = 0;
        let mut redacted = 0;
        let mut timings = StageTimer::new();
        let mut views: [Vec<View>; 2] = [Vec::new(), Vec::new()];
        let mut normalized: [HashMap<String, Item>; 2] = [HashMap::new(), HashMap::new()];
        let mut base_views: [HashMap<String, Option<Item>>; 2] = [HashMap::new(), HashMap::new()];
        // Items unchanged on both sides since the base need no view.
        let settled = merge::settled_ids(src_items, tgt_items, base, &idf);
        for (side, from, to, items, own, from_fields, to_fields) in [
            (
                Side::Source,
                &req.source,
                &req.target,
                src_items,
                tgt_items,
                src_fields,
                tgt_fields,
            ),
            (
                Side::Target,
                &req.target,
                &req.source,
                tgt_items,
                src_items,
                tgt_fields,
                src_fields,
            ),
        ] {
            if !req.direction.sends(side) {
                continue;
            }
            if Instant::now() > deadline {
                break;
            }
            let policy = self
                .config
                .policy(&from.name, &to.name, entity)
                .renamed(|f| {
                    to_fields
                        .iter()
                        .find(|(c, _)| c == f)
                        .map(|(_, l)| l.clone())
                        .unwrap_or_else(|| f.to_string())
                });
            let shapes = Shapes {
                from_domain: &from.name,
                to_domain: &to.name,
                from_fields,
                to_fields,
            };
            let open: Vec<usize> = (0..items.len())
                .filter(|&i| !settled.contains(id_of(&items[i], &idf)))
                .collect();
            let refs: Vec<&Item> = open.iter().map(|&i| &*items[i]).collect();
            timings.lap("prepare");
            let crossed =
                plugin.map_filter(&self.registry.runtime, &shapes, Some(&policy), &refs)?;
            timings.lap("views");
            withheld += crossed.withheld;
            redacted += crossed.redacted_fields;
            let k = side as usize;
            // Settled items get no view (the merge does not look at it).
            let mut aligned: Vec<View> = vec![View::Withheld; items.len()];
            for (i, v) in open.into_iter().zip(crossed.items) {
                aligned[i] = v;
            }
            views[k] = aligned;
            // The receiving side's items that differ from what arrives,
            // normalised in their own shape (a map from the domain to itself,
            // no policy), so that a difference in writing alone is no change.
            let differ = merge::items_needing_normalization(own, items, &views[k], &idf, base);
            timings.lap("align");
            if !differ.is_empty() {
                let same = Shapes {
                    from_domain: &to.name,
                    to_domain: &to.name,
                    from_fields: to_fields,
                    to_fields,
                };
                // Nothing crosses: mapping alone normalises.
                let n = plugin.map_filter(&self.registry.runtime, &same, None, &differ)?;
                // An item whose normalised form is itself (`Same`) compares
                // as written; only the others need keeping.
                normalized[side.other() as usize] = n
                    .items
                    .into_iter()
                    .filter_map(|v| match v {
                        View::Item(i) => Some((merge_id(&i, &idf), i)),
                        View::Same | View::Withheld => None,
                    })
                    .collect();
                timings.lap("normalize");
            }
            let needing = merge::base_items_needing_views(items, base, side, &idf, &settled);
            if !needing.is_empty() {
                let crossed =
                    plugin.map_filter(&self.registry.runtime, &shapes, Some(&policy), &needing)?;
                base_views[k] = needing
                    .iter()
                    .zip(crossed.items)
                    .map(|(b, v)| (merge_id(b, &idf), v.into_item(b)))
                    .collect();
                timings.lap("base views");
            }
        }
        let [src_views, tgt_views] = views;
        let input = merge::MergeInput {
            source: merge::SideInput {
                domain: &req.source.name,
                items: src_owned,
                views: src_views,
                base_views: &base_views[0],
                normalized: &normalized[0],
            },
            target: merge::SideInput {
                domain: &req.target.name,
                items: tgt_owned,
                views: tgt_views,
                base_views: &base_views[1],
                normalized: &normalized[1],
            },
            base: base_owned,
            direction: req.direction,
            options: merge::Options {
                no_delete: req.no_delete,
                allow_mass_delete: req.allow_mass_delete,
            },
            id_field: &idf,
            stamp,
            settled: settled_out,
        };
        let out = merge::merge(input).map_err(|e| e.with("entity", entity))?;
        timings.lap("merge");
        tracing::debug!(entity, "merge round: {}", timings.summary());
        Ok((out, withheld, redacted))
    }
}

/// Below this many bytes of data files, an entity type's work stays on one
/// thread: a new thread costs more than it saves there (with mimalloc, each
/// new thread first touches fresh allocator pages, and in a small sync those
/// page faults were a quarter of the time).
const PARALLEL_MIN_BYTES: u64 = 1 << 20;

/// The result of a scoped thread; its panic, if any, continues here.
fn join<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

fn merge_id(item: &Item, id_field: &str) -> String {
    id_of(item, id_field).to_string()
}

fn domain_plan(before: &[Arc<Item>], after: &[Arc<Item>], idf: &str) -> DomainPlan {
    let b: HashMap<String, &Arc<Item>> = before.iter().map(|i| (merge_id(i, idf), i)).collect();
    let a: HashMap<String, &Arc<Item>> = after.iter().map(|i| (merge_id(i, idf), i)).collect();
    let mut plan = DomainPlan::default();
    for i in after {
        let id = merge_id(i, idf);
        match b.get(&id) {
            None => plan.added.push(id),
            Some(old) if *old != i => plan.updated.push(id),
            _ => {}
        }
    }
    for i in before {
        let id = merge_id(i, idf);
        if !a.contains_key(&id) {
            plan.deleted.push(id);
        }
    }
    plan
}

/// Parses and validates the items of one file that are not settled (in
/// canonical names), returning them in file order; the first fault is a
/// `DATA_FORMAT_INVALID` naming the file, index, id and JSON path. The same
/// id twice, settled or not, is a `SYNC_CONFLICT`, reported unless a schema
/// fault comes before it. Settled items need no validation: each is the text
/// of an item the host validated and wrote (see [`crate::base`]).
fn read_items(
    plugin: &Plugin,
    entity: &str,
    path: &Path,
    read: &mut store::ReadFile,
    settled: &[bool],
    fields: &[(String, String)],
) -> Result<Vec<Arc<Item>>> {
    // Read whole, nothing is settled and every item is parsed already.
    let mut parsed = read.parsed.take().map(Vec::into_iter);
    let file = &read.raw;
    let mut items = Vec::with_capacity(settled.iter().filter(|s| !**s).count());
    let mut seen: IdMap<&str, usize> =
        IdMap::with_capacity_and_hasher(file.items.len(), Default::default());
    for (i, raw_item) in file.items.iter().enumerate() {
        if !settled[i] {
            let mut item = match parsed.as_mut().and_then(Iterator::next) {
                Some(item) => item,
                None => file.parse(path, entity, i)?,
            };
            if let Some(f) = schema_fault(plugin, &mut item, fields) {
                let id = cds_policy::item_id(&item, plugin.id_field());
                let at = format!("$.{entity}[{i}]{}", &f.0.path[1..]);
                let who = match id {
                    Some(id) => format!("item {i} (id `{id}`)"),
                    None => format!("item {i} (no id)"),
                };
                let mut err = Error::new(
                    Code::DataFormatInvalid,
                    format!(
                        "`{}`: {who} breaks the `{entity}` schema at {at}: {}",
                        path.display(),
                        f.0.message
                    ),
                )
                .with("file", path.display().to_string())
                .with("index", i)
                .with("path", at)
                .with("entity", entity);
                if let Some(id) = id {
                    err = err.with("id", id);
                }
                if f.1 > 1 {
                    err = err.with_help(format!("{} more faults in this item", f.1 - 1));
                }
                return Err(
                    err.with_help("Fix the item and run the sync again; nothing was written.")
                );
            }
            items.push(Arc::new(item));
        }
        if let Some(id) = raw_item.id.as_deref()
            && let Some(first) = seen.insert(id, i)
        {
            return Err(Error::new(
                Code::SyncConflict,
                format!(
                    "`{}`: items {first} and {i} both have the id `{id}`; the host cannot tell \
                     which is real. Give one of them a new id",
                    path.display()
                ),
            )
            .with("file", path.display().to_string())
            .with("index", i)
            .with("id", id)
            .with("entity", entity));
        }
    }
    Ok(items)
}

/// The first way `item` (in `fields`' local names) breaks the item schema,
/// with how many there are; `None` when it is valid.
fn schema_fault(
    plugin: &Plugin,
    item: &mut Item,
    fields: &[(String, String)],
) -> Option<(crate::plugin::SchemaFault, usize)> {
    let faults = if fields.is_empty() {
        // The schema takes a `Value`: the item moves into one and back out
        // rather than being copied.
        let v = Value::Object(std::mem::take(item));
        let faults = plugin.validate(&v);
        if let Value::Object(m) = v {
            *item = m;
        }
        faults
    } else {
        let to_canonical: Vec<(&str, &str)> = fields
            .iter()
            .map(|(c, l)| (l.as_str(), c.as_str()))
            .collect();
        plugin.validate(&Value::Object(rename_fields(item.clone(), &to_canonical)))
    };
    let n = faults.len();
    faults.into_iter().next().map(|f| (f, n))
}

/// The digest the base is to record of a side's item, by id (see
/// [`NewSide::write`]).
type Recorded<'b> = IdMap<&'b str, raw::ItemDigest>;

/// One domain's side of an entity type's new files (see
/// [`Host::write_entity`]).
struct NewSide<'a> {
    side: Side,
    /// Whether the merge changed the domain's file.
    changed: bool,
    path: &'a Path,
    file: &'a store::ReadFile,
    /// Which of the file's items are settled.
    settled: &'a [bool],
    /// The merge's items: the unsettled ones, in order, then new ones.
    items: &'a [Arc<Item>],
    /// The ids whose version in the file the merge replaced.
    replaced: IdSet<&'a str>,
    fields: &'a [(String, String)],
}

impl NewSide<'_> {
    /// Writes this side's file ahead when the merge changed it, and sends
    /// the digest the base is to record for each id whose base entry holds,
    /// for this side, this side's item in content.
    fn write<'b>(
        self,
        plugin: &Plugin,
        entity: &str,
        new_base: &'b Base,
        tx: &std::sync::mpsc::Sender<(Side, Recorded<'b>)>,
    ) -> Result<Option<Write>> {
        let idf = plugin.id_field();
        // The entry of `item`'s id in the new base, when it holds `item`.
        let entry_of = |item: &Item| -> Option<&'b str> {
            let (id, e) = new_base.get_key_value(id_of(item, idf))?;
            merge::content_eq(e.get(self.side), item).then_some(id.as_str())
        };
        if !self.changed {
            // Not rewritten: its parsed items are the ones read, validated
            // then; the digest is that of their written form.
            let mut recorded =
                IdMap::with_capacity_and_hasher(self.items.len(), Default::default());
            for item in self.items.iter() {
                if let Some(id) = entry_of(item) {
                    recorded.insert(id, raw::written_digest(item));
                }
            }
            // The receiving end outlives every sender.
            let _ = tx.send((self.side, recorded));
            return Ok(None);
        }
        let placed = layout(&self.file.raw, self.settled, self.items, idf);
        // What the merge made (new, or in place of a replaced version) is
        // validated; what it gave back as read was validated when read.
        let mut valid = vec![true; self.items.len()];
        for p in &placed {
            if let Placed::Item { at, original } = *p {
                let made =
                    original.is_none() || self.replaced.contains(id_of(&self.items[at], idf));
                if made {
                    // A copy: the item is shared with the base, and
                    // validation takes it as a `Value`.
                    let mut copy = Item::clone(&self.items[at]);
                    valid[at] = schema_fault(plugin, &mut copy, self.fields).is_none();
                }
            }
        }
        let raw = &self.file.raw;
        let items = self.items;
        let write = store::prestage(self.path, &|w| {
            let outs = placed.iter().map(|p| match *p {
                // Settled items always have their digest (see `base::settled`).
                Placed::Settled(i) => {
                    raw::Out::Text(raw.text_of(i), raw.items[i].digest.unwrap_or_default())
                }
                Placed::Item { at, .. } => raw::Out::Item(&items[at]),
            });
            let digests = raw::write_items(entity, outs, &raw.rest, w)?;
            let mut recorded = IdMap::with_capacity_and_hasher(items.len(), Default::default());
            for (p, d) in placed.iter().zip(digests) {
                if let Placed::Item { at, .. } = *p
                    && valid[at]
                    && let Some(id) = entry_of(&items[at])
                {
                    recorded.insert(id, d);
                }
            }
            // Sent before the file's fsync, so that the base is encoded
            // meanwhile. A retried write sends the same digests again.
            let _ = tx.send((self.side, recorded));
            Ok(())
        });
        write.map(Some)
    }
}

/// Where an item of a rewritten file comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placed {
    /// The text of the file's item at this index, settled.
    Settled(usize),
    /// The merge's item at `at`; in place of the file's item `original`,
    /// or new.
    Item { at: usize, original: Option<usize> },
}

/// The items of a rewritten file, in order: each settled item where it was,
/// each unsettled one replaced by what the merge gave back for it (or gone,
/// when deleted), then the merge's new items. `items` is the merge's output
/// for this side, which keeps the unsettled items' order.
fn layout(file: &raw::RawFile, settled: &[bool], items: &[Arc<Item>], idf: &str) -> Vec<Placed> {
    let mut out = Vec::with_capacity(file.items.len() + items.len());
    let mut next = 0;
    for (i, it) in file.items.iter().enumerate() {
        if settled[i] {
            out.push(Placed::Settled(i));
        } else if items
            .get(next)
            .is_some_and(|m| it.id.as_deref() == Some(id_of(m, idf)))
        {
            out.push(Placed::Item {
                at: next,
                original: Some(i),
            });
            next += 1;
        }
    }
    out.extend((next..items.len()).map(|at| Placed::Item { at, original: None }));
    out
}

/// Milliseconds spent per named step, for the debug log (`-vv`).
struct StageTimer {
    last: Instant,
    laps: Vec<(&'static str, Duration)>,
}

impl StageTimer {
    fn new() -> StageTimer {
        StageTimer {
            last: Instant::now(),
            laps: Vec::new(),
        }
    }

    /// Adds the time since the previous lap to `name`.
    fn lap(&mut self, name: &'static str) {
        let now = Instant::now();
        let d = now - self.last;
        self.last = now;
        match self.laps.iter_mut().find(|(n, _)| *n == name) {
            Some((_, t)) => *t += d,
            None => self.laps.push((name, d)),
        }
    }

    fn summary(&self) -> String {
        self.laps
            .iter()
            .map(|(n, d)| format!("{n} {} ms", d.as_millis()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One entity type's part of a sync.
struct EntityPlan {
    entity: String,
    result: EntityResult,
    writes: Vec<Write>,
    /// Each domain file this plan rewrites, with the digest of what was read.
    read_digests: Vec<(PathBuf, Option<String>, Option<store::FileStamp>)>,
    conflicts: Vec<Conflict>,
    plan: BTreeMap<String, DomainPlan>,
}

/// What is known of an attempt so far, for its failure record.
struct Attempt {
    now: chrono::DateTime<chrono::Utc>,
    started: Instant,
    sync_id: Option<String>,
    req: Option<SyncRequest>,
}
