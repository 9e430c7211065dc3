//! The MCP resources: what an assistant reads after a sync, addressed by URI
//! (`cross-domain-sync://…`), listed page by page and described by resource
//! templates.
//!
//! - `cross-domain-sync://sync/{syncId}`: a sync record (the file under
//!   `data/sync-records/`, or a dry run or failed sync this server ran, which
//!   has no file);
//! - `cross-domain-sync://conflicts/{domain}{?cursor}`: the open conflicts
//!   involving a domain, a page at a time;
//! - `cross-domain-sync://audit/tail{?limit}`: the audit trail's last entries;
//! - `cross-domain-sync://audit/verify`: the trail's verification result.
//!
//! Every read is made as one user (the server's, or `?user=` as the tools'
//! `user` argument) and the permissions apply exactly as on the command line:
//! a conflict's value from a domain the user may not read is hidden
//! ([`crate::review::visible_conflicts`]), and so are a dry run's planned
//! ids in such a domain. Nothing here writes.

use crate::error::{Code, Error, Result};
use crate::install::Host;
use crate::record::{SyncRecord, is_sync_id};
use rmcp::model::{Resource, ResourceTemplate};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::Mutex;

/// Every resource's URI starts with this.
pub const SCHEME: &str = "cross-domain-sync://";

/// Conflicts per page of a conflicts resource (and the conflicts tool's
/// default), and resources per page of `resources/list`.
pub const PAGE: usize = 100;

/// Audit entries an `audit/tail` read gives by default, and at most.
const TAIL_DEFAULT: usize = 50;
const TAIL_MAX: usize = 1000;

/// How many records of syncs that left no file (dry runs, failures) a
/// server keeps for reading.
const RECENT: usize = 16;

const JSON: &str = "application/json";

pub fn record_uri(sync_id: &str) -> String {
    format!("{SCHEME}sync/{sync_id}")
}

pub fn conflicts_uri(domain: &str) -> String {
    format!("{SCHEME}conflicts/{domain}")
}

/// The resource templates, for `resources/templates/list`.
pub fn templates() -> Vec<ResourceTemplate> {
    let t = |uri: &str, name: &str, title: &str, what: &str| {
        ResourceTemplate::new(uri, name)
            .with_title(title)
            .with_description(what)
            .with_mime_type(JSON)
    };
    vec![
        t(
            &format!("{SCHEME}sync/{{syncId}}{{?user}}"),
            "sync-record",
            "Sync record",
            "What one sync did (CONTRACT §6): counts per entity type, errors, and for a dry run \
             the planned ids. Planned ids of a domain the user may not read are left out.",
        ),
        t(
            &format!("{SCHEME}conflicts/{{domain}}{{?cursor,user}}"),
            "domain-conflicts",
            "Open conflicts of a domain",
            "The unresolved conflicts syncs logged for items of this domain, oldest first, a \
             page at a time (`nextCursor`); values of a domain the user may not read are hidden.",
        ),
        t(
            &format!("{SCHEME}audit/tail{{?limit}}"),
            "audit-tail",
            "Audit trail, last entries",
            "The audit trail's last entries (default 50, at most 1000), oldest first: counts, \
             ids and codes, never values.",
        ),
        t(
            &format!("{SCHEME}audit/verify"),
            "audit-verify",
            "Audit trail verification",
            "Whether the audit trail's hash chain is intact, and the first bad entry if not.",
        ),
    ]
}

/// Records of syncs this server ran that have no file (dry runs and failed
/// syncs), the newest last, so that the links in their results resolve.
#[derive(Default)]
pub struct Recent(Mutex<VecDeque<SyncRecord>>);

impl Recent {
    pub fn keep(&self, rec: &SyncRecord) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        q.retain(|r| r.sync_id != rec.sync_id);
        if q.len() == RECENT {
            q.pop_front();
        }
        q.push_back(rec.clone());
    }

    fn get(&self, sync_id: &str) -> Option<SyncRecord> {
        let q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        q.iter().find(|r| r.sync_id == sync_id).cloned()
    }
}

/// One page of `resources/list`: the fixed resources (the audit trail, each
/// configured domain's conflicts) on the first page, then the sync records,
/// newest first.
pub fn list(host: &Host, cursor: Option<&str>) -> Result<(Vec<Resource>, Option<String>)> {
    let start = parse_cursor(cursor)?;
    let mut all: Vec<Resource> = vec![
        Resource::new(format!("{SCHEME}audit/tail"), "audit-tail")
            .with_title("Audit trail, last entries")
            .with_mime_type(JSON),
        Resource::new(format!("{SCHEME}audit/verify"), "audit-verify")
            .with_title("Audit trail verification")
            .with_mime_type(JSON),
    ];
    for d in host.config.domain_names() {
        all.push(
            Resource::new(conflicts_uri(&d), format!("conflicts-{d}"))
                .with_title(format!("Open conflicts of `{d}`"))
                .with_mime_type(JSON),
        );
    }
    for id in record_ids(host)? {
        all.push(
            Resource::new(record_uri(&id), id.clone())
                .with_title(format!("Sync record {id}"))
                .with_mime_type(JSON),
        );
    }
    Ok(page(all, start))
}

/// The ids of the sync records on disk, newest first.
fn record_ids(host: &Host) -> Result<Vec<String>> {
    let dir = host.data.root.join("sync-records");
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::new(
                Code::StorageError,
                format!("cannot list {}: {e}", dir.display()),
            ));
        }
    };
    let mut ids: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".json")
                .filter(|id| is_sync_id(id))
                .map(str::to_string)
        })
        .collect();
    // `sync-YYYYMMDD-HHMMSS[-N]`: by time, then by N.
    ids.sort_by_key(|id| {
        let (stamp, n) = match id.get(20..) {
            Some(rest) => (&id[..20], rest.trim_start_matches('-').parse().unwrap_or(0)),
            None => (id.as_str(), 0u64),
        };
        std::cmp::Reverse((stamp.to_string(), n))
    });
    Ok(ids)
}

fn page<T>(all: Vec<T>, start: usize) -> (Vec<T>, Option<String>) {
    let total = all.len();
    let items: Vec<T> = all.into_iter().skip(start).take(PAGE).collect();
    let next = (start + items.len() < total).then(|| (start + items.len()).to_string());
    (items, next)
}

/// A cursor is the offset this server handed out, as text.
pub fn parse_cursor(cursor: Option<&str>) -> Result<usize> {
    match cursor {
        None => Ok(0),
        Some(c) => c.parse::<usize>().map_err(|_| {
            Error::invalid(format!(
                "the cursor `{c}` is not one this server gave; start again without a cursor"
            ))
            .with("cursor", c)
        }),
    }
}

/// A resource read: its JSON, or an error (`DOMAIN_NOT_FOUND` and
/// `INVALID_ARGUMENT` for a URI naming nothing this server has).
pub fn read(host: &Host, default_user: &str, uri: &str, recent: &Recent) -> Result<Value> {
    let not_found = || {
        Error::invalid(format!(
            "no resource `{uri}`; this server's resources are sync/{{syncId}}, \
             conflicts/{{domain}}, audit/tail and audit/verify under `{SCHEME}`"
        ))
        .with("uri", uri)
        .with("missing", true)
    };
    let rest = uri.strip_prefix(SCHEME).ok_or_else(not_found)?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let params = Query::parse(query, uri)?;
    let user = params.get("user").unwrap_or(default_user).to_string();
    match path.split_once('/') {
        Some(("sync", id)) if is_sync_id(id) => {
            params.only(&["user"], uri)?;
            let rec = SyncRecord::read(&host.data, id)?
                .or_else(|| recent.get(id))
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "there is no sync record `{id}` (no file in {} and no recent dry run \
                         of this server)",
                        host.data.root.join("sync-records").display()
                    ))
                    .with("uri", uri)
                    .with("missing", true)
                })?;
            Ok(visible_record(host, &user, rec))
        }
        Some(("conflicts", domain)) if !domain.is_empty() => {
            params.only(&["cursor", "user"], uri)?;
            if host.config.domain_path(domain).is_none() {
                return Err(Error::new(
                    Code::DomainNotFound,
                    format!("domain `{domain}` is not configured"),
                )
                .with("domain", domain)
                .with("uri", uri));
            }
            let rows: Vec<_> = crate::review::visible_conflicts(host, &user, false)?
                .into_iter()
                .filter(|c| c.source_domain == domain || c.target_domain == domain)
                .collect();
            let total = rows.len();
            let start = parse_cursor(params.get("cursor"))?;
            let (rows, next) = page(rows, start);
            let mut body =
                json!({"domain": domain, "user": user, "total": total, "conflicts": rows});
            if let Some(n) = next {
                body["next"] = json!(format!("{}?cursor={n}", conflicts_uri(domain)));
                body["nextCursor"] = json!(n);
            }
            Ok(body)
        }
        Some(("audit", "tail")) => {
            params.only(&["limit"], uri)?;
            let limit = match params.get("limit") {
                None => TAIL_DEFAULT,
                Some(l) => l
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=TAIL_MAX).contains(n))
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "`limit` must be a whole number from 1 to {TAIL_MAX}, not `{l}`"
                        ))
                        .with("uri", uri)
                    })?,
            };
            audit_tail(host, limit)
        }
        Some(("audit", "verify")) => {
            params.only(&[], uri)?;
            let v = crate::audit::verify(&host.data)?;
            Ok(serde_json::to_value(v).unwrap_or(Value::Null))
        }
        _ => Err(not_found()),
    }
}

/// The record as `user` may see it: the planned ids of a domain the user
/// may not read are left out, and the record says so.
pub fn visible_record(host: &Host, user: &str, mut rec: SyncRecord) -> Value {
    let mut hidden: Vec<String> = Vec::new();
    for plans in rec.plan.values_mut() {
        plans.retain(|domain, _| {
            let ok = host.config.allows(user, domain, crate::config::Right::Read);
            if !ok && !hidden.contains(domain) {
                hidden.push(domain.clone());
            }
            ok
        });
    }
    let mut v = serde_json::to_value(&rec).unwrap_or(Value::Null);
    if !hidden.is_empty() {
        v["hiddenPlans"] = json!(
            hidden
                .iter()
                .map(|d| format!("planned ids of domain `{d}`: user `{user}` may not read it"))
                .collect::<Vec<_>>()
        );
    }
    v
}

fn audit_tail(host: &Host, limit: usize) -> Result<Value> {
    let path = host.data.audit_path();
    let bytes = crate::store::read_optional(&path)?.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let total = lines.len();
    let entries: Vec<Value> = lines[total.saturating_sub(limit)..]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| json!({"unreadable": true})))
        .collect();
    Ok(json!({"total": total, "entries": entries}))
}

/// A URI's query: `k=v` pairs, percent-decoded. Written by hand: two keys
/// of plain words, where a URL crate would bring a dependency for nothing.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str, uri: &str) -> Result<Query> {
        let mut pairs = Vec::new();
        for part in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let v = percent_decode(v).ok_or_else(|| {
                Error::invalid(format!("`{part}` in `{uri}` is not valid percent-encoding"))
                    .with("uri", uri)
            })?;
            if pairs.iter().any(|(seen, _)| seen == k) {
                return Err(
                    Error::invalid(format!("`{k}` is given twice in `{uri}`")).with("uri", uri)
                );
            }
            pairs.push((k.to_string(), v));
        }
        Ok(Query(pairs))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Refuses a parameter the resource does not take.
    fn only(&self, allowed: &[&str], uri: &str) -> Result<()> {
        match self.0.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            None => Ok(()),
            Some((k, _)) => Err(Error::invalid(format!(
                "`{uri}` does not take `{k}`; it takes {}",
                if allowed.is_empty() {
                    "no parameters".to_string()
                } else {
                    allowed.join(", ")
                }
            ))
            .with("uri", uri)),
        }
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_hand_out_the_next_offset_until_the_end() {
        let (p, next) = page((0..250).collect::<Vec<_>>(), 0);
        assert_eq!((p.len(), next.as_deref()), (PAGE, Some("100")));
        let (p, next) = page((0..250).collect::<Vec<_>>(), 200);
        assert_eq!((p.len(), next), (50, None));
        assert!(parse_cursor(Some("x")).is_err());
    }

    #[test]
    fn queries_decode_and_refuse_repeats() {
        let q = Query::parse("user=al%20ice&cursor=5", "u").unwrap();
        assert_eq!(
            (q.get("user"), q.get("cursor")),
            (Some("al ice"), Some("5"))
        );
        assert!(Query::parse("a=1&a=2", "u").is_err());
        assert!(Query::parse("a=%zz", "u").is_err());
        assert!(q.only(&["user"], "u").is_err());
    }
}
