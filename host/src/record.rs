//! The sync record (CONTRACT §6): what one sync did, written to
//! `data/sync-records/<syncId>.json`, printed by `--json`, and returned as MCP
//! `structuredContent`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Counts for one entity type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntityResult {
    /// Items in the source domain before the sync.
    pub source_count: usize,
    /// Items in the target domain before the sync.
    pub target_count: usize,
    /// Distinct items across both domains after the sync.
    pub merged_count: usize,
    /// Items with at least one conflict (a value that lost is in the conflict log).
    pub conflicts: usize,
    pub added: usize,
    pub updated: usize,
    pub deleted: usize,
    pub unchanged: usize,
    /// Of `unchanged`: items both domains hold exactly as the last sync wrote
    /// them, which were copied without being parsed, validated or merged
    /// again (what makes a re-sync cheap).
    #[serde(default)]
    pub settled: usize,
    /// Items a policy kept from crossing.
    pub withheld: usize,
    /// Field values a policy removed or replaced.
    pub redacted_fields: u64,
}

/// The planned changes of one entity type in one domain (dry run only): ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DomainPlan {
    pub added: Vec<String>,
    pub updated: Vec<String>,
    pub deleted: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Success,
    Failed,
    DryRun,
}

/// One error of a failed sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(title = "cross-domain-sync error")]
pub struct ErrorObject {
    pub code: crate::error::Code,
    /// What went wrong, naming the file, item, path or plugin at fault.
    pub message: String,
    /// Further help lines (e.g. the valid values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub help: Vec<String>,
    /// Details: `file`, `index`, `id`, `path`, `plugin`, `paths`, ...
    #[serde(flatten)]
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl From<&crate::error::Error> for ErrorObject {
    fn from(e: &crate::error::Error) -> Self {
        ErrorObject {
            code: e.code,
            message: e.message.clone(),
            help: e.help.clone(),
            details: e.details.clone(),
        }
    }
}

/// The sync record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(title = "cross-domain-sync sync record")]
pub struct SyncRecord {
    /// `sync-YYYYMMDD-HHMMSS` (UTC), with `-2`, `-3`, ... when two syncs start
    /// in the same second.
    pub sync_id: String,
    /// When the sync started (RFC 3339, UTC).
    pub timestamp: String,
    pub source_domain: String,
    pub target_domain: String,
    pub entities: Vec<String>,
    pub sync_direction: String,
    pub user: String,
    pub session: String,
    pub dry_run: bool,
    pub duration_ms: u64,
    /// Per entity type.
    pub results: BTreeMap<String, EntityResult>,
    /// Dry run only: the ids each domain would gain, change or lose.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub plan: BTreeMap<String, BTreeMap<String, DomainPlan>>,
    pub errors: Vec<ErrorObject>,
    pub status: Status,
    /// In an MCP tool result only: how many planned ids were left out, each
    /// list there holding at most [`PLAN_IDS_IN_RESULT`]; the record's
    /// resource (`cross-domain-sync://sync/<syncId>`) has them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_ids_omitted: Option<usize>,
}

/// `sync-` and then digits and dashes only: a record's name, from which no
/// path can be made.
pub fn is_sync_id(s: &str) -> bool {
    s.strip_prefix("sync-").is_some_and(|rest| {
        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit() || b == b'-')
    })
}

/// The most ids of one planned list an MCP tool result carries.
pub const PLAN_IDS_IN_RESULT: usize = 100;

impl SyncRecord {
    /// The record of `sync_id` in `data/sync-records/`; `None` when there is
    /// no such file, or `sync_id` is not a sync id.
    pub fn read(
        data: &crate::store::DataDir,
        sync_id: &str,
    ) -> crate::error::Result<Option<SyncRecord>> {
        if !is_sync_id(sync_id) {
            return Ok(None);
        }
        let path = data.record_path(sync_id);
        let Some(bytes) = crate::store::read_optional(&path)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            crate::error::Error::new(
                crate::error::Code::DataFormatInvalid,
                format!("the sync record {} is not valid: {e}", path.display()),
            )
            .with("file", path.display().to_string())
        })
    }

    /// The record with each planned list cut to `cap` ids, saying how many
    /// were left out (when any were).
    pub fn capped(mut self, cap: usize) -> SyncRecord {
        let mut omitted = 0;
        for plans in self.plan.values_mut() {
            for p in plans.values_mut() {
                for list in [&mut p.added, &mut p.updated, &mut p.deleted] {
                    omitted += list.len().saturating_sub(cap);
                    list.truncate(cap);
                }
            }
        }
        self.plan_ids_omitted = (omitted > 0).then_some(omitted);
        self
    }

    pub fn total(&self) -> EntityResult {
        self.results
            .values()
            .fold(EntityResult::default(), |a, r| EntityResult {
                source_count: a.source_count + r.source_count,
                target_count: a.target_count + r.target_count,
                merged_count: a.merged_count + r.merged_count,
                conflicts: a.conflicts + r.conflicts,
                added: a.added + r.added,
                updated: a.updated + r.updated,
                deleted: a.deleted + r.deleted,
                unchanged: a.unchanged + r.unchanged,
                settled: a.settled + r.settled,
                withheld: a.withheld + r.withheld,
                redacted_fields: a.redacted_fields + r.redacted_fields,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sync_ids_name_records() {
        assert!(is_sync_id("sync-20260112-100530"));
        assert!(is_sync_id("sync-20260112-100530-2"));
        for bad in ["sync-", "sync-../x", "sync-2026/..", "other", "sync-1a"] {
            assert!(!is_sync_id(bad), "{bad}");
        }
    }
}
