//! The commit stage: the check that no other program wrote a file the sync
//! read, then every type's files, the conflict log and the sync record
//! written in one journalled transaction, audited once its commit point has
//! passed.

use super::EntityPlan;
use super::schedule::PARALLEL_MIN_BYTES;
use crate::audit::Entry;
use crate::conflict_log::{ConflictLog, LoggedConflict};
use crate::error::{Code, Error, Result};
use crate::install::Host;
use crate::merge::Side;
use crate::record::SyncRecord;
use crate::request::SyncRequest;
use crate::store::{self, FileStamp, FileVersion, Write};
use std::collections::BTreeMap;
use std::time::Instant;

/// Another program may have written a domain file since it was read;
/// committing would lose that change. Large files are checked on two threads
/// (a file whose stamp is racy is read and hashed again); the first changed
/// one in plan order is reported.
pub fn check_unchanged(plans: &[EntityPlan]) -> Result<()> {
    let read: Vec<&FileVersion> = plans.iter().flat_map(|p| &p.read_versions).collect();
    let unchanged = |part: &[&FileVersion]| {
        part.iter()
            .map(|r| store::unchanged_since_read(&r.path, &r.digest, &r.stamp))
            .collect::<Vec<_>>()
    };
    let bytes: u64 = read
        .iter()
        .filter_map(|r| r.stamp.as_ref().map(FileStamp::size))
        .sum();
    let checked = if bytes < PARALLEL_MIN_BYTES {
        unchanged(&read)
    } else {
        let (first, second) = read.split_at(read.len() / 2);
        std::thread::scope(|s| {
            let second = s.spawn(|| unchanged(second));
            let mut checked = unchanged(first);
            checked.extend(super::schedule::join(second));
            checked
        })
    };
    for (r, unchanged) in read.iter().zip(checked) {
        if !unchanged? {
            return Err(Error::new(
                Code::StorageError,
                format!(
                    "`{}` changed while the sync ran (another program wrote or removed it); \
                     nothing was written. Run the sync again",
                    r.path.display()
                ),
            )
            .with("file", r.path.display().to_string()));
        }
    }
    Ok(())
}

impl Host {
    /// Commits the plans' files, the conflict log (when there are
    /// conflicts) and `record` in one transaction, with the record's audit
    /// entry.
    pub(super) fn commit_sync(
        &self,
        req: &SyncRequest,
        record: &mut SyncRecord,
        plans: Vec<EntityPlan>,
        plugins: &BTreeMap<String, String>,
        started: Instant,
    ) -> Result<()> {
        let sync_id = record.sync_id.clone();
        let mut writes: Vec<Write> = Vec::new();
        let mut log = ConflictLog {
            sync_id: sync_id.clone(),
            conflicts: Vec::new(),
        };
        for p in plans {
            writes.extend(p.writes);
            for c in p.conflicts {
                let n = log.conflicts.len() + 1;
                log.conflicts
                    .push(self.logged(req, &sync_id, n, &p.entity, c));
            }
        }
        if !log.conflicts.is_empty() {
            writes.push(Write {
                prestaged: None,
                path: self.data.conflicts_path(&sync_id),
                content: Some(log.encode()),
            });
        }
        record.duration_ms = started.elapsed().as_millis() as u64;
        writes.push(Write {
            prestaged: None,
            path: self.data.record_path(&sync_id),
            content: Some(store::to_pretty(&*record)),
        });
        let t_commit = Instant::now();
        self.commit(&sync_id, &writes, Entry::of_sync(record, plugins))?;
        tracing::info!(
            files = writes.len(),
            // Prestaged files were written while planning (see `stage`).
            unstaged_bytes = writes
                .iter()
                .map(|w| w.content.as_ref().map_or(0, Vec::len))
                .sum::<usize>(),
            commit_ms = t_commit.elapsed().as_millis() as u64,
            "committed"
        );
        Ok(())
    }

    /// The `n`th conflict of the sync, as the log keeps it: with its id and
    /// the field's name in each domain's files (the values are in the losing,
    /// receiving domain's shape).
    fn logged(
        &self,
        req: &SyncRequest,
        sync_id: &str,
        n: usize,
        entity: &str,
        c: crate::merge::Conflict,
    ) -> LoggedConflict {
        let fields = c.field.as_ref().map(|field| {
            let loser = match c.winner {
                Side::Source => &req.target.name,
                Side::Target => &req.source.name,
            };
            let canonical = self.mappings.canonical(loser, entity, field);
            [&req.source.name, &req.target.name]
                .into_iter()
                .map(|d| (d.clone(), self.mappings.local(d, entity, &canonical)))
                .collect()
        });
        LoggedConflict {
            id: format!("{sync_id}:{n}"),
            entity: entity.to_string(),
            source_domain: req.source.name.clone(),
            target_domain: req.target.name.clone(),
            item_id: c.item_id,
            field: c.field,
            source_value: c.source_value,
            target_value: c.target_value,
            base_value: c.base_value,
            winner: c.winner,
            fields,
            resolved: None,
        }
    }
}
