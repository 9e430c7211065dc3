//! The sync: one validated invocation in, one [`SyncRecord`] out.
//!
//! [`Host::sync`] admits the request (resolution, permissions), takes the
//! data folder's lock, finishes an interrupted commit, and allocates the
//! sync's id; then the [`schedule`] plans the entity types on up to as many
//! threads as the machine has cores (at most four; one for a small sync).
//! Each type's plan is a chain of stages, each taking and returning a named
//! value:
//!
//! 1. [`read`]: both domain files and the base, read at once
//!    ([`read::ReadSides`]), then the items both sides hold exactly as the
//!    base knows them written marked settled ([`read::Settlement`]), then the
//!    others parsed and validated ([`read::Parsed`]);
//! 2. [`views`]: each sending side's items mapped and filtered by the
//!    sandboxed plugin, and the pure merge ([`cds_merge::merge`]) run on
//!    them ([`views::Merged`]);
//! 3. [`stage`]: the new files encoded and written ahead of the commit.
//!
//! [`commit`] then checks that no other program wrote a file since it was
//! read, and writes every type's files, the conflict log and the sync record
//! in one transaction; the audit entry follows the commit point.
//!
//! Architecture invariant: the command line and the MCP server both call
//! [`Host::sync`]; neither has its own sync logic. Every attempt, refused or
//! failed ones too, leaves exactly one audit entry.

mod commit;
mod read;
mod schedule;
mod stage;
mod views;

pub use schedule::MAX_WORKERS;
use views::Merged;

use crate::audit::Entry;
use crate::config::Right;
use crate::error::{Code, Error, Result};
use crate::install::{Host, rfc3339};
use crate::merge::{Conflict, Direction, IdSet, Item, Side, id_of};
use crate::record::{DomainPlan, EntityResult, ErrorObject, Status, SyncRecord};
use crate::request::{self, SyncRequest};
use crate::store::{DataDir, FileVersion, Write};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

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

/// When a sync must stop: its time limit, or the caller's cancellation.
struct Deadline<'a> {
    at: Instant,
    seconds: u64,
    cancel: &'a Cancel,
}

impl Deadline<'_> {
    fn passed(&self) -> bool {
        Instant::now() > self.at
    }

    /// `TIMEOUT` when cancelled or past the limit; `stage` says when.
    fn check(&self, stage: &str) -> Result<()> {
        if self.cancel.is_cancelled() {
            return Err(Error::new(
                Code::Timeout,
                format!("the sync was cancelled by the caller {stage}; nothing was changed"),
            )
            .with("cancelled", true));
        }
        if self.passed() {
            return Err(Error::new(
                Code::Timeout,
                format!(
                    "the sync ran past its limit of {} s {stage} and was rolled back; nothing \
                     was changed. Sync fewer entity types at once, or raise \
                     limits.timeoutSeconds in the configuration",
                    self.seconds
                ),
            ));
        }
        Ok(())
    }
}

/// The bytes every entity type's files have read so far, against
/// `limits.maxBytesPerSync`.
struct ByteBudget {
    read: AtomicU64,
    limit: u64,
}

impl ByteBudget {
    /// Counts `bytes` read from `path`; `LIMIT_EXCEEDED` once over.
    fn take(&self, bytes: u64, path: &Path) -> Result<()> {
        let total = self.read.fetch_add(bytes, Ordering::SeqCst) + bytes;
        if total <= self.limit {
            return Ok(());
        }
        Err(Error::new(
            Code::LimitExceeded,
            format!(
                "the sync reads more than {} bytes (limits.maxBytesPerSync); reached at `{}`. \
                 Sync fewer entity types at once or raise the limit",
                self.limit,
                path.display()
            ),
        )
        .with("file", path.display().to_string()))
    }
}

/// One entity type's part of a sync, as its stages left it.
struct EntityPlan {
    entity: String,
    result: EntityResult,
    writes: Vec<Write>,
    /// Each domain file this plan rewrites, as it was read.
    read_versions: Vec<FileVersion>,
    conflicts: Vec<Conflict>,
    /// Dry run only: the ids each domain would gain, change or lose.
    plan: BTreeMap<String, DomainPlan>,
}

/// What is known of an attempt so far, for its failure record.
struct Attempt {
    now: chrono::DateTime<chrono::Utc>,
    started: Instant,
    sync_id: Option<String>,
    req: Option<SyncRequest>,
}

impl Host {
    /// Runs one sync from the JSON form of an invocation. Never fails: a
    /// failure is a record with `status: failed`, audited like a success.
    pub fn sync(
        &self,
        invocation: &Value,
        fallback_user: &str,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> SyncRecord {
        let mut attempt = Attempt {
            now: chrono::Utc::now(),
            started: Instant::now(),
            sync_id: None,
            req: None,
        };
        match self.try_sync(invocation, fallback_user, progress, cancel, &mut attempt) {
            Ok(rec) => rec,
            Err(e) => self.failed(invocation, fallback_user, attempt, e),
        }
    }

    fn try_sync(
        &self,
        invocation: &Value,
        fallback_user: &str,
        progress: &dyn Progress,
        cancel: &Cancel,
        attempt: &mut Attempt,
    ) -> Result<SyncRecord> {
        let req = self.admit(invocation, fallback_user)?;
        attempt.req = Some(req.clone());
        let limits = &self.config.limits;
        let deadline = Deadline {
            at: attempt.started + Duration::from_secs(limits.timeout_seconds),
            seconds: limits.timeout_seconds,
            cancel,
        };
        let _lock = self.data.lock(self.wait)?;
        self.recover()?;
        self.remove_prestaged(&req);
        let sync_id = self.allocate_id(attempt.now);
        attempt.sync_id = Some(sync_id.clone());
        let synced_at = rfc3339(attempt.now);
        deadline.check("before it started")?;

        let budget = ByteBudget {
            read: AtomicU64::new(0),
            limit: limits.max_bytes_per_sync,
        };
        let total = req.entities.len();
        let sizes: Vec<u64> = req.entities.iter().map(|e| file_bytes(&req, e)).collect();
        let mut plans = std::thread::scope(|s| {
            // An installed plugin not in the cache compiles beside the
            // workers, which meanwhile read and plan the other types.
            let preload = self.registry.unloaded_installed(&req.entities);
            if req.entities.len() > 1 && !preload.is_empty() {
                s.spawn(move || self.registry.preload(&preload));
            }
            schedule::run(&sizes, |i| {
                let entity = &req.entities[i];
                progress.entity_started(entity, i, total);
                deadline.check(&format!("while syncing {entity}"))?;
                let plan = self.plan_entity(&req, entity, &synced_at, &budget, &deadline)?;
                progress.entity_done(entity, &plan.result);
                Ok(plan)
            })
        })?;
        deadline.check("before its commit")?;

        let plugins = self.registry.digests(&req.entities);
        let mut record = new_record(&req, &sync_id, &synced_at, &plans);
        if req.dry_run {
            record.plan = plans
                .iter_mut()
                .map(|p| (p.entity.clone(), std::mem::take(&mut p.plan)))
                .collect();
            record.duration_ms = attempt.started.elapsed().as_millis() as u64;
            self.audit(Entry::of_sync(&record, &plugins))?;
            return Ok(record);
        }
        commit::check_unchanged(&plans)?;
        self.commit_sync(&req, &mut record, plans, &plugins, attempt.started)?;
        Ok(record)
    }

    /// The request an invocation asks for, when it may run: resolved and
    /// validated, and allowed for its user. Policies for types no installed
    /// plugin handles are warned of here (refusing would block every sync
    /// until the plugin is installed).
    fn admit(&self, invocation: &Value, fallback_user: &str) -> Result<SyncRequest> {
        let installed = self.entity_types();
        let req = request::resolve(
            invocation,
            &self.config,
            &installed,
            &self.paths.data_dir,
            fallback_user,
        )?;
        self.check_permissions(&req)?;
        for (crossing, by_type) in &self.config.policies {
            for entity in by_type.keys().filter(|e| !installed.contains(e)) {
                tracing::warn!(
                    "`{}` has a policy for `{entity}` at $.policies[\"{crossing}\"], but no \
                     installed plugin handles `{entity}`; it applies to nothing",
                    self.paths.config.display()
                );
            }
        }
        Ok(req)
    }

    fn check_permissions(&self, req: &SyncRequest) -> Result<()> {
        for (side, domain) in [
            (Side::Source, &req.source.name),
            (Side::Target, &req.target.name),
        ] {
            let sends = req.direction.sends(side).then_some((Right::Read, "read"));
            let receives = req
                .direction
                .sends(side.other())
                .then_some((Right::Write, "write"));
            for (right, word) in sends.into_iter().chain(receives) {
                if self.config.allows(&req.user, domain, right) {
                    continue;
                }
                return Err(Error::new(
                    Code::PermissionDenied,
                    format!(
                        "user `{}` may not {word} domain `{domain}`, which a {} sync from `{}` \
                         to `{}` needs; an administrator can grant it in `{}` at \
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
        Ok(())
    }

    /// Removes files prestaged by a sync that died before its commit.
    fn remove_prestaged(&self, req: &SyncRequest) {
        let mut dirs = vec![req.source.dir.clone(), req.target.dir.clone()];
        dirs.extend(req.entities.iter().filter_map(|e| {
            self.base_path([&req.source.name, &req.target.name], e)
                .parent()
                .map(Path::to_path_buf)
        }));
        DataDir::remove_temporaries(dirs);
    }

    /// The record of a failed attempt, audited when the data folder exists.
    /// What the attempt resolved is used; what it did not get that far with
    /// is taken from the invocation as given.
    fn failed(
        &self,
        invocation: &Value,
        fallback_user: &str,
        attempt: Attempt,
        e: Error,
    ) -> SyncRecord {
        let given = |k: &str| invocation.get(k).and_then(Value::as_str);
        let (source_domain, target_domain, entities, sync_direction, user, session) =
            match attempt.req {
                Some(r) => (
                    r.source.name,
                    r.target.name,
                    r.entities,
                    r.direction.as_str().to_string(),
                    r.user,
                    r.session,
                ),
                None => (
                    given("source").unwrap_or("").to_string(),
                    given("target").unwrap_or("").to_string(),
                    invocation
                        .get("entities")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default(),
                    given("direction")
                        .unwrap_or(Direction::SourceToTarget.as_str())
                        .to_string(),
                    given("user").unwrap_or(fallback_user).to_string(),
                    // As a validated request would get (CONTRACT §1).
                    given("session").map_or_else(|| uuid::Uuid::new_v4().to_string(), String::from),
                ),
            };
        let record = SyncRecord {
            sync_id: attempt
                .sync_id
                .unwrap_or_else(|| self.allocate_id(attempt.now)),
            timestamp: rfc3339(attempt.now),
            source_domain,
            target_domain,
            entities,
            sync_direction,
            user,
            session,
            dry_run: invocation
                .get("dryRun")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            duration_ms: attempt.started.elapsed().as_millis() as u64,
            results: BTreeMap::new(),
            plan: BTreeMap::new(),
            errors: vec![ErrorObject::from(&e)],
            status: Status::Failed,
            plan_ids_omitted: None,
        };
        if self.data.root.is_dir()
            && let Err(ae) = self.audit(Entry::of_sync(&record, &BTreeMap::new()))
        {
            tracing::error!("cannot audit the failed sync {}: {ae}", record.sync_id);
        }
        record
    }
}

/// The bytes of both domains' files of `entity` (for the schedule's order).
fn file_bytes(req: &SyncRequest, entity: &str) -> u64 {
    [&req.source, &req.target]
        .iter()
        .filter(|d| !d.vdirs.contains_key(entity))
        .filter_map(|d| std::fs::metadata(d.dir.join(format!("{entity}.json"))).ok())
        .map(|m| m.len())
        .sum()
}

/// The record of a sync whose types were all planned (its duration is set
/// when it is written).
fn new_record(
    req: &SyncRequest,
    sync_id: &str,
    synced_at: &str,
    plans: &[EntityPlan],
) -> SyncRecord {
    SyncRecord {
        sync_id: sync_id.to_string(),
        timestamp: synced_at.to_string(),
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
        plan_ids_omitted: None,
    }
}

impl Host {
    /// One entity type's plan: its stages in order (see the module doc).
    fn plan_entity(
        &self,
        req: &SyncRequest,
        entity: &str,
        synced_at: &str,
        budget: &ByteBudget,
        deadline: &Deadline<'_>,
    ) -> Result<EntityPlan> {
        let t0 = Instant::now();
        let plugin = self.registry.get(entity)?;
        self.check_field_names(req, entity, &plugin)?;
        let idf = plugin.id_field();
        let files = self.entity_files(req, entity, &plugin.info.sha256);

        let mut sides = read::read_sides(&self.data, &files, idf, budget, &self.config.limits)?;
        let settlement = read::settle(&mut sides);
        let (parsed, read_files) = read::parse(&plugin, &files, sides, &settlement)?;
        crate::faults::delay();
        let t_read = t0.elapsed();

        let counts = read_files.each_ref().map(|f| f.raw.items.len());
        // The items move through the merge and come back in its output; a
        // dry run keeps the originals to describe the plan.
        let before = (req.dry_run || files.vdir.contains(&true)).then(|| parsed.items.clone());
        let round = views::Round {
            config: &self.config,
            runtime: &self.registry.runtime,
            req,
            plugin: &plugin,
            entity,
            fields: files.fields.each_ref(),
            settled_count: settlement.count,
            synced_at,
            deadline,
        };
        let mut merged = views::views_and_merge(&round, parsed.items, parsed.base)?;
        let vdir = match (&before, req.dry_run) {
            (Some(before), false) => {
                plan_vdirs(&files, &read_files, before, &mut merged.out, idf, synced_at)?
            }
            _ => Vec::new(),
        };
        let out = &merged.out;
        let t_merge = t0.elapsed();

        let result = entity_result(counts, settlement.count, &merged);
        let plan = match &before {
            Some(before) if req.dry_run => dry_run_plan(req, before, out, idf),
            _ => BTreeMap::new(),
        };
        let mut read_versions = read_versions(&files, &read_files, out);
        let mut writes = if req.dry_run {
            Vec::new()
        } else {
            stage_entity(
                &plugin,
                &files,
                &read_files,
                &settlement,
                &parsed.raw_base,
                out,
            )?
        };
        for planned in vdir {
            writes.extend(planned.writes);
            read_versions.extend(planned.read);
        }
        tracing::info!(
            entity,
            settled = settlement.count,
            read_validate_base_ms = t_read.as_millis() as u64,
            plugins_merge_ms = (t_merge - t_read).as_millis() as u64,
            encode_ms = (t0.elapsed() - t_merge).as_millis() as u64,
            "planned"
        );
        let Merged { out, .. } = merged;
        Ok(EntityPlan {
            entity: entity.to_string(),
            result,
            writes,
            read_versions,
            conflicts: out.conflicts,
            plan,
        })
    }

    /// Every field a policy or mapping names for `entity` must be one the
    /// plugin's schema knows (or one declared at `extraFields`), checked
    /// before the type's files are read.
    fn check_field_names(
        &self,
        req: &SyncRequest,
        entity: &str,
        plugin: &crate::plugin::Plugin,
    ) -> Result<()> {
        let extra = self
            .config
            .extra_fields
            .get(entity)
            .map_or(&[][..], Vec::as_slice);
        let Some(known) = crate::fields::known(&plugin.schema, plugin.id_field(), extra) else {
            return Ok(());
        };
        crate::fields::check(
            &self.config,
            &self.mappings,
            [&self.paths.config, &self.paths.mappings],
            [&req.source.name, &req.target.name],
            entity,
            &known,
        )
    }

    /// The files of `entity` in this sync, and its field renames.
    fn entity_files(
        &self,
        req: &SyncRequest,
        entity: &str,
        plugin_sha256: &str,
    ) -> read::EntityFiles {
        let file_of = |d: &request::Domain| {
            d.vdirs
                .get(entity)
                .cloned()
                .unwrap_or_else(|| d.dir.join(format!("{entity}.json")))
        };
        let fields = [
            self.mappings.fields(&req.source.name, entity),
            self.mappings.fields(&req.target.name, entity),
        ];
        let key = crate::base::key(
            plugin_sha256,
            [
                (&req.source.name, &fields[0]),
                (&req.target.name, &fields[1]),
            ],
        );
        read::EntityFiles {
            entity: entity.to_string(),
            domains: [req.source.name.clone(), req.target.name.clone()],
            paths: [file_of(&req.source), file_of(&req.target)],
            vdir: [&req.source, &req.target].map(|d| d.vdirs.contains_key(entity)),
            base_path: self.base_path([&req.source.name, &req.target.name], entity),
            fields,
            key,
        }
    }
}

/// Stages the new files of one entity type: each domain file the merge
/// changed, and the base (see [`stage::write_entity`]).
fn stage_entity(
    plugin: &crate::plugin::Plugin,
    files: &read::EntityFiles,
    read_files: &[crate::store::ReadFile; 2],
    settlement: &read::Settlement,
    raw_base: &crate::base::RawBase,
    out: &crate::merge::MergeOutput,
) -> Result<Vec<Write>> {
    let idf = plugin.id_field();
    // The ids whose version in a file the merge replaced: with the new
    // items, what the merge made.
    let mut replaced: [IdSet<&str>; 2] = [IdSet::default(), IdSet::default()];
    for d in out.displaced.iter().filter(|d| !d.deleted) {
        replaced[d.side as usize].insert(id_of(&d.item, idf));
    }
    let [src_replaced, tgt_replaced] = replaced;
    let side = |side: Side, replaced| {
        let k = side as usize;
        stage::NewSide {
            side,
            // A vdir side's files are planned by `plan_vdirs`.
            changed: [out.source_changed, out.target_changed][k] && !files.vdir[k],
            path: &files.paths[k],
            file: &read_files[k],
            settled_marks: &settlement.files[k],
            items: if k == 0 {
                &out.source_items
            } else {
                &out.target_items
            },
            replaced,
            fields: &files.fields[k],
        }
    };
    stage::write_entity(
        plugin,
        files,
        [
            side(Side::Source, src_replaced),
            side(Side::Target, tgt_replaced),
        ],
        stage::NewBase {
            base: &out.base,
            changed: out.base_changed,
            old: raw_base,
            settled_marks: &settlement.base,
        },
    )
}

/// The files each vdir side of one entity type writes (see
/// [`crate::vdir::plan`]): `before` holds both sides' items as read. The
/// items written replace the merge's in `out`, read back as their files
/// will read.
fn plan_vdirs(
    files: &read::EntityFiles,
    read_files: &[crate::store::ReadFile; 2],
    before: &[Vec<Arc<Item>>; 2],
    out: &mut crate::merge::MergeOutput,
    idf: &str,
    synced_at: &str,
) -> Result<Vec<crate::vdir::Planned>> {
    let mut planned = Vec::new();
    for (k, side) in [(0, Side::Source), (1, Side::Target)] {
        let changed = [out.source_changed, out.target_changed][k];
        if !files.vdir[k] || !changed {
            continue;
        }
        let v = crate::vdir::VdirSide {
            dir: &files.paths[k],
            entity: &files.entity,
            id_field: idf,
            fields: &files.fields[k],
            side,
            before: &before[k],
            members: read_files[k].members.as_deref().unwrap_or_default(),
            synced_at,
        };
        let items = if k == 0 {
            &mut out.source_items
        } else {
            &mut out.target_items
        };
        let p = crate::vdir::plan(&v, items, &mut out.base)?;
        out.base_changed |= p.base_changed;
        planned.push(p);
    }
    Ok(planned)
}

/// The counts of one entity type's part of the sync.
fn entity_result(counts: [usize; 2], settled: usize, merged: &Merged) -> EntityResult {
    let stats = &merged.out.stats;
    EntityResult {
        source_count: counts[0],
        target_count: counts[1],
        merged_count: stats.merged,
        conflicts: stats.conflicts,
        added: stats.added,
        updated: stats.updated,
        deleted: stats.deleted,
        unchanged: stats.unchanged,
        settled,
        withheld: merged.withheld,
        redacted_fields: merged.redacted,
    }
}

/// Each domain file the merge changed, as it was read.
fn read_versions(
    files: &read::EntityFiles,
    read_files: &[crate::store::ReadFile; 2],
    out: &crate::merge::MergeOutput,
) -> Vec<FileVersion> {
    let changed = [out.source_changed, out.target_changed];
    (0..2)
        .filter(|&k| changed[k] && !files.vdir[k])
        .map(|k| FileVersion {
            path: files.paths[k].clone(),
            digest: read_files[k].digest.clone(),
            stamp: read_files[k].file_stamp.clone(),
        })
        .collect()
}

/// A dry run's plan of one entity type: per domain, from its items before
/// (`before`: source's, target's) and after the merge.
fn dry_run_plan(
    req: &SyncRequest,
    [src_before, tgt_before]: &[Vec<Arc<Item>>; 2],
    out: &crate::merge::MergeOutput,
    idf: &str,
) -> BTreeMap<String, DomainPlan> {
    BTreeMap::from([
        (
            req.source.name.clone(),
            domain_plan(src_before, &out.source_items, idf),
        ),
        (
            req.target.name.clone(),
            domain_plan(tgt_before, &out.target_items, idf),
        ),
    ])
}

/// What a dry run would do to one domain: the ids it would gain, change or
/// lose, from its items before and after.
fn domain_plan(before: &[Arc<Item>], after: &[Arc<Item>], idf: &str) -> DomainPlan {
    let b: HashMap<&str, &Arc<Item>> = before.iter().map(|i| (id_of(i, idf), i)).collect();
    let a: HashMap<&str, &Arc<Item>> = after.iter().map(|i| (id_of(i, idf), i)).collect();
    let mut plan = DomainPlan::default();
    for i in after {
        let id = id_of(i, idf);
        match b.get(id) {
            None => plan.added.push(id.to_string()),
            Some(old) if *old != i => plan.updated.push(id.to_string()),
            _ => {}
        }
    }
    for i in before {
        let id = id_of(i, idf);
        if !a.contains_key(id) {
            plan.deleted.push(id.to_string());
        }
    }
    plan
}
