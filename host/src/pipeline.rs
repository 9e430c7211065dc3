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
use crate::config::{Config, EntityMappings, Right};
use crate::error::{Code, Error, Result};
use crate::merge::{self, Base, BaseEntry, Conflict, Direction, Item, Side, View};
use crate::plugin::{Plugin, Registry, Shapes};
use crate::record::{DomainPlan, EntityResult, ErrorObject, Status, SyncRecord};
use crate::request::{self, SyncRequest};
use crate::store::{self, DataDir, EntityFile, Recovery, Write};
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
    /// The compiled-plugin cache; `None`: `<data-dir>/.sync/cache`.
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
        let cache = Some(paths.cache_dir.clone().unwrap_or_else(|| data.cache_dir()));
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
    pub fn commit(&self, txn: &str, writes: &[Write], entry: Value) -> Result<()> {
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

    /// `sync-YYYYMMDD-HHMMSS`, with `-2`, `-3`, ... when taken.
    fn allocate_id(&self, now: chrono::DateTime<chrono::Utc>) -> String {
        let base = format!("sync-{}", now.format("%Y%m%d-%H%M%S"));
        static LAST: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let mut issued = LAST.lock().unwrap_or_else(|e| e.into_inner());
        let taken = |id: &str| {
            issued.iter().any(|i| i == id)
                || self.data.record_path(id).exists()
                || self.data.backups_dir(id).exists()
                || self.data.conflicts_path(id).exists()
        };
        let mut id = base.clone();
        let mut n = 1;
        while taken(&id) {
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
        // committing would lose that change.
        for p in &plans {
            for (path, digest, stamp) in &p.read_digests {
                if !store::unchanged_since_read(path, digest, stamp)? {
                    return Err(Error::new(
                        Code::StorageError,
                        format!(
                            "`{}` changed while the sync ran (another program wrote or removed \
                             it); nothing was written. Run the sync again",
                            path.display()
                        ),
                    )
                    .with("file", path.display().to_string()));
                }
            }
        }
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
        let limits = &self.config.limits;
        let file_of = |d: &request::Domain| d.dir.join(format!("{entity}.json"));
        let (src_path, tgt_path) = (file_of(&req.source), file_of(&req.target));
        // Both domain files are read, parsed and validated, and the base
        // loaded, at the same time: while two entity types are planned the
        // cores are busy anyway, but the last type runs alone. Results are
        // then checked in the order a sequential read would meet them, so
        // the error reported does not depend on timing.
        let read_side = |domain: &request::Domain, path: &Path| -> Result<_> {
            let mut file = self.data.read_entity(path, entity)?;
            let fields = self.mappings.fields(&domain.name, entity);
            let checked = validate_items(&plugin, entity, path, &mut file.items, &fields);
            Ok((file, fields, checked))
        };
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let (src_read, tgt_read, base) = if size(&src_path) + size(&tgt_path) < PARALLEL_MIN_BYTES {
            let src = read_side(&req.source, &src_path);
            (
                src,
                read_side(&req.target, &tgt_path),
                self.load_base(req, entity),
            )
        } else {
            std::thread::scope(|s| {
                let tgt = s.spawn(|| read_side(&req.target, &tgt_path));
                let base = s.spawn(|| self.load_base(req, entity));
                let src = read_side(&req.source, &src_path);
                (src, join(tgt), join(base))
            })
        };
        let mut sides = Vec::with_capacity(2);
        for (read, path) in [(src_read, &src_path), (tgt_read, &tgt_path)] {
            let (file, fields, checked) = read?;
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
            if file.items.len() > limits.max_items_per_type {
                return Err(Error::new(
                    Code::LimitExceeded,
                    format!(
                        "`{}` holds {} items, more than the limit of {} per entity type \
                         (limits.maxItemsPerType)",
                        path.display(),
                        file.items.len(),
                        limits.max_items_per_type
                    ),
                )
                .with("file", path.display().to_string()));
            }
            checked?;
            sides.push((file, fields));
        }
        store::faults::delay();
        let (mut tgt, tgt_fields) = sides.pop().unwrap_or_else(|| unreachable!());
        let (mut src, src_fields) = sides.pop().unwrap_or_else(|| unreachable!());
        let base = base?;
        // Reading, validating and loading the base ran side by side.
        let t_read = t0.elapsed();
        let idf = plugin.id_field().to_string();

        let fields = [&src_fields, &tgt_fields];
        let counts = (src.items.len(), tgt.items.len());
        // The items move through the merge and come back in its output; a
        // dry run keeps the originals to describe the plan.
        let (src_items, tgt_items) = (
            std::mem::take(&mut src.items),
            std::mem::take(&mut tgt.items),
        );
        let before = req.dry_run.then(|| (src_items.clone(), tgt_items.clone()));
        let (mut out, withheld, redacted) = self.merge_round(
            req,
            &plugin,
            entity,
            [src_items, tgt_items],
            fields,
            base,
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
            let (second, _, _) =
                self.merge_round(req, &plugin, entity, items, fields, base, stamp, deadline)?;
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
        let mut new_files = Vec::new();
        for (changed, path, file, items) in [
            (out.source_changed, &src_path, &src, out.source_items),
            (out.target_changed, &tgt_path, &tgt, out.target_items),
        ] {
            if changed {
                let new = EntityFile {
                    items,
                    rest: file.rest.clone(),
                    existed: file.existed,
                    // The size of the version read: a capacity hint.
                    bytes: file.bytes,
                    digest: None,
                    stamp: None,
                };
                new_files.push((path, new));
                read_digests.push((path.clone(), file.digest.clone(), file.stamp.clone()));
            }
        }
        let mut writes = Vec::new();
        if !req.dry_run {
            // Each new file is encoded and written ahead on its own thread
            // (up to three: both domain files and the base).
            let base_path = self.base_path(req, entity);
            let base = &out.base;
            let mut jobs: Vec<Box<dyn FnOnce() -> Result<store::Write> + Send + '_>> = Vec::new();
            for (path, new) in &new_files {
                jobs.push(Box::new(move || {
                    store::prestage(path, &|w| store::write_entity_file(entity, new, w))
                }));
            }
            if out.base_changed {
                let path = &base_path;
                jobs.push(Box::new(move || {
                    store::prestage(path, &|w| write_base(req, entity, base, w))
                }));
            }
            // In parallel even when small: each file's fsync waits for the
            // disk, and the waits overlap.
            // This thread writes the first file itself.
            let staged: Vec<Result<store::Write>> = std::thread::scope(|s| {
                let mut jobs = jobs.into_iter();
                let first = jobs.next();
                let handles: Vec<_> = jobs.map(|job| s.spawn(job)).collect();
                first
                    .map(|job| job())
                    .into_iter()
                    .chain(handles.into_iter().map(join))
                    .collect()
            });
            for w in staged {
                writes.push(w?);
            }
        }
        tracing::info!(
            entity,
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
        [src_owned, tgt_owned]: [Vec<Item>; 2],
        [src_fields, tgt_fields]: [&Vec<(String, String)>; 2],
        base_owned: Base,
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
                .filter(|&i| !settled.contains(id_str(&items[i], &idf)))
                .collect();
            let refs: Vec<&Item> = open.iter().map(|&i| &items[i]).collect();
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
            let differ = merge::items_needing_normalization(own, items, &views[k], &idf);
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
        };
        let out = merge::merge(input).map_err(|e| e.with("entity", entity))?;
        timings.lap("merge");
        tracing::debug!(entity, "merge round: {}", timings.summary());
        Ok((out, withheld, redacted))
    }

    /// The stored base of this pair of domains and entity type, oriented as
    /// (source, target) of this request.
    fn load_base(&self, req: &SyncRequest, entity: &str) -> Result<Base> {
        let path = self.base_path(req, entity);
        let Some(bytes) = store::read_optional(&path)? else {
            return Ok(Base::new());
        };
        let damaged = |why: String| {
            Error::new(
                Code::StorageError,
                format!(
                    "the sync state `{}` is damaged ({why}); move it away to start afresh (the \
                     next sync then deletes nothing and treats differences as conflicts)",
                    path.display()
                ),
            )
            .with("file", path.display().to_string())
        };
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| damaged(e.to_string()))?;
        drop(bytes);
        let Value::Object(mut top) = v else {
            return Err(damaged("not a JSON object".into()));
        };
        let Some(Value::Array(items)) = top.shift_remove("items") else {
            return Err(damaged("no `items` array".into()));
        };
        let mut base = Base::new();
        // Each entry's items move into the base (no copies).
        for it in items {
            let Value::Object(mut it) = it else {
                return Err(damaged("an entry is not an object".into()));
            };
            let mut take = |d: &str| match it.shift_remove(d) {
                Some(Value::Object(m)) => Stored::Item(m),
                Some(Value::String(s)) if s == SAME => Stored::Same,
                _ => Stored::Missing,
            };
            let (s, t) = (take(&req.source.name), take(&req.target.name));
            let entry = match (s, t) {
                (Stored::Item(one), Stored::Same) | (Stored::Same, Stored::Item(one)) => {
                    Some(BaseEntry::same(one))
                }
                (Stored::Item(s), Stored::Item(t)) => Some(BaseEntry {
                    source: Arc::new(s),
                    target: Arc::new(t),
                }),
                _ => None,
            };
            let (Some(Value::String(id)), Some(entry)) = (it.shift_remove("id"), entry) else {
                return Err(damaged("an entry lacks its id or a domain's item".into()));
            };
            base.insert(id, entry);
        }
        Ok(base)
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

/// In a base file: this domain's item equals the other's in content.
const SAME: &str = "=";

/// One domain's part of a base entry as stored.
enum Stored {
    Item(Item),
    Same,
    Missing,
}

/// An item's id as the merge sees it, borrowed.
fn id_str<'a>(item: &'a Item, id_field: &str) -> &'a str {
    item.get(id_field).and_then(Value::as_str).unwrap_or("")
}

fn merge_id(item: &Item, id_field: &str) -> String {
    id_str(item, id_field).to_string()
}

/// Writes the base compactly (it is the host's own state, not for reading):
/// `{"version":1,"entity":..,"items":[{"id":..,"<source>":item,"<target>":
/// item or "="},..]}`, by `cds_json`, straight from the borrowed entries.
fn write_base(
    req: &SyncRequest,
    entity: &str,
    base: &Base,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    const PIECE: usize = 1 << 16;
    let mut buf = Vec::with_capacity(PIECE + (PIECE >> 2));
    let key = |buf: &mut Vec<u8>, k: &str| {
        cds_json::write_str(buf, k);
        buf.push(b':');
    };
    buf.extend_from_slice(b"{\"version\":1,");
    key(&mut buf, "entity");
    cds_json::write_str(&mut buf, entity);
    buf.push(b',');
    key(&mut buf, "items");
    buf.push(b'[');
    for (i, (id, e)) in base.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.push(b'{');
        key(&mut buf, "id");
        cds_json::write_str(&mut buf, id);
        buf.push(b',');
        key(&mut buf, &req.source.name);
        cds_json::write_map_compact(&mut buf, &e.source);
        buf.push(b',');
        key(&mut buf, &req.target.name);
        // When both sides agree in content (the usual case), one copy is
        // kept: every use of the base ignores the bookkeeping fields.
        if Arc::ptr_eq(&e.source, &e.target) || merge::content_eq(&e.source, &e.target) {
            cds_json::write_str(&mut buf, SAME);
        } else {
            cds_json::write_map_compact(&mut buf, &e.target);
        }
        buf.push(b'}');
        if buf.len() >= PIECE {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    buf.extend_from_slice(b"]}\n");
    out.write_all(&buf)
}

fn domain_plan(before: &[Item], after: &[Item], idf: &str) -> DomainPlan {
    let b: HashMap<String, &Item> = before.iter().map(|i| (merge_id(i, idf), i)).collect();
    let a: HashMap<String, &Item> = after.iter().map(|i| (merge_id(i, idf), i)).collect();
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

/// Validates every item of one file (in canonical names); the first fault is
/// a `DATA_FORMAT_INVALID` naming the file, index, id and JSON path. The same
/// id twice is a `SYNC_CONFLICT`.
fn validate_items(
    plugin: &Plugin,
    entity: &str,
    path: &Path,
    items: &mut [Item],
    fields: &[(String, String)],
) -> Result<()> {
    let to_canonical: Vec<(&str, &str)> = fields
        .iter()
        .map(|(c, l)| (l.as_str(), c.as_str()))
        .collect();
    // The first schema fault, reported unless a repeated id comes before it.
    let mut schema_fault: Option<(usize, Error)> = None;
    for (i, item) in items.iter_mut().enumerate() {
        let faults = if to_canonical.is_empty() {
            // The schema takes a `Value`: the item moves into one and back
            // out rather than being copied.
            let v = Value::Object(std::mem::take(item));
            let faults = plugin.validate(&v);
            if let Value::Object(m) = v {
                *item = m;
            }
            faults
        } else {
            plugin.validate(&Value::Object(rename_fields(item.clone(), &to_canonical)))
        };
        let id = item.get(plugin.id_field()).and_then(Value::as_str);
        if let Some(f) = faults.first() {
            let at = format!("$.{entity}[{i}]{}", &f.path[1..]);
            let who = match id {
                Some(id) => format!("item {i} (id `{id}`)"),
                None => format!("item {i} (no id)"),
            };
            let mut err = Error::new(
                Code::DataFormatInvalid,
                format!(
                    "`{}`: {who} breaks the `{entity}` schema at {at}: {}",
                    path.display(),
                    f.message
                ),
            )
            .with("file", path.display().to_string())
            .with("index", i)
            .with("path", at)
            .with("entity", entity);
            if let Some(id) = id {
                err = err.with("id", id);
            }
            if faults.len() > 1 {
                err = err.with_help(format!("{} more faults in this item", faults.len() - 1));
            }
            err = err.with_help("Fix the item and run the sync again; nothing was written.");
            schema_fault = Some((i, err));
            break;
        }
    }
    let checked = schema_fault.as_ref().map_or(items.len(), |(i, _)| *i + 1);
    let mut seen: merge::IdMap<&str, usize> =
        merge::IdMap::with_capacity_and_hasher(items.len(), Default::default());
    for (i, item) in items[..checked].iter().enumerate() {
        if schema_fault.as_ref().is_some_and(|(f, _)| *f == i) {
            break;
        }
        let id = item.get(plugin.id_field()).and_then(Value::as_str);
        if let Some(id) = id
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
    match schema_fault {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
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
