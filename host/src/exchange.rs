//! `import` and `export`: vCard and iCalendar files in and out of a domain.
//!
//! An import is a sync, not an overwrite: the file's items are staged as a
//! domain of their own (`import-<file name>`, its folder `.import/<file
//! name>` in the data folder), and the one sync pipeline carries them into
//! the domain one way, with no deletions, so they are validated, merged
//! three-way against what the last import of that file brought (a change
//! made in the domain since then is kept; a change on both sides is a
//! conflict, logged), written atomically, recorded, audited and undoable
//! like any sync. An export reads a domain's items (as its user may) and
//! writes them as one file, atomically, and audits it.

use crate::audit::{Action, Entry};
use crate::cards::{self, Format};
use crate::config::{DomainConfig, Right};
use crate::error::{Code, Error, Result};
use crate::install::Host;
use crate::record::SyncRecord;
use crate::sync::{Cancel, Progress};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// What to import, and where.
pub struct ImportRequest {
    pub file: PathBuf,
    pub domain: String,
    /// Set on every imported item that has no category of its own (the
    /// policies withhold by category: `personal`, `family`, ...).
    pub category: Option<String>,
    pub dry_run: bool,
}

/// What the file held, besides the sync's record.
#[derive(Debug)]
pub struct ImportSummary {
    pub format: Format,
    /// Items per entity type, as read from the file.
    pub counts: Vec<(String, usize)>,
    /// Components the file holds that no entity type carries (VJOURNAL...).
    pub unmapped: Vec<String>,
    /// The domain the file's items were staged as.
    pub staged_as: String,
    /// Its folder.
    pub staged_in: PathBuf,
}

/// The staging domain of a file: `import-` and its name in the characters a
/// domain's name may hold.
fn staging_name(file: &Path) -> String {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut slug: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    slug.truncate(48);
    let slug = slug.trim_matches('-');
    format!("import-{}", if slug.is_empty() { "file" } else { slug })
}

/// The file's items, read as its format, with `--category` set on those
/// that name none.
fn read(req: &ImportRequest) -> Result<(Format, cards::Imported)> {
    let bytes = std::fs::read(&req.file).map_err(|e| Error::storage("read", &req.file, e))?;
    let text = cards::decode(&req.file, bytes)?;
    let format = Format::of(&req.file, &text).ok_or_else(|| {
        cards::invalid(
            &req.file,
            1,
            "neither a vCard (.vcf, BEGIN:VCARD) nor an iCalendar file (.ics, BEGIN:VCALENDAR)",
        )
    })?;
    let modified = std::fs::metadata(&req.file)
        .and_then(|m| m.modified())
        .map(chrono::DateTime::<chrono::Utc>::from)
        .unwrap_or_else(|_| chrono::Utc::now());
    let mut imported = cards::import(&req.file, &text, format, &cards::rfc3339(modified))?;
    if imported.items.is_empty() {
        return Err(Error::invalid(format!(
            "`{}` holds no {} to import{}",
            req.file.display(),
            if format == Format::Vcard {
                "card"
            } else {
                "event or to-do"
            },
            if imported.unmapped.is_empty() {
                String::new()
            } else {
                format!(" (only {})", imported.unmapped.join(", "))
            }
        ))
        .with("file", req.file.display().to_string()));
    }
    if let Some(category) = &req.category {
        for (_, items) in &mut imported.items {
            for item in items {
                item.entry("category")
                    .or_insert_with(|| Value::String(category.clone()));
            }
        }
    }
    Ok((format, imported))
}

/// Reads the file and stages its items; `(summary, invocation)` of the sync
/// that carries them into the domain.
fn stage(host: &mut Host, req: &ImportRequest, user: &str) -> Result<(ImportSummary, Value)> {
    if !host.config.domains.contains_key(&req.domain) {
        let domains = host.config.domain_names();
        return Err(crate::request::unknown_domain(
            &domains,
            "Target",
            &req.domain,
        ));
    }
    let (format, imported) = read(req)?;
    let staged_as = staging_name(&req.file);
    // A dry run stages into a folder of its own, removed after it, so that
    // it leaves the last import's staging (and everything else) as it was.
    let suffix = if req.dry_run { ".dry-run" } else { "" };
    let rel = format!(".import/{}{suffix}", &staged_as["import-".len()..]);
    let dir = host.paths.data_dir.join(&rel);
    std::fs::create_dir_all(&dir).map_err(|e| Error::storage("create", &dir, e))?;
    for (entity, items) in &imported.items {
        let text = serde_json::to_string_pretty(&json!({ entity.as_str(): items }))
            .map_err(|e| Error::new(Code::StorageError, e.to_string()))?;
        crate::store::atomic_write(&dir.join(format!("{entity}.json")), text.as_bytes())?;
    }
    // The staging domain exists for this run only, readable by its user.
    host.config.domains.insert(
        staged_as.clone(),
        DomainConfig {
            path: Some(rel),
            description: Some(format!("the items of {}", req.file.display())),
            vdir: Default::default(),
        },
    );
    if let Some(users) = &mut host.config.users
        && let Some(rights) = users.get_mut(user)
    {
        rights.insert(staged_as.clone(), vec![Right::Read]);
    }
    let entities: Vec<&str> = imported.items.iter().map(|(e, _)| e.as_str()).collect();
    let invocation = json!({
        "source": staged_as,
        "target": req.domain,
        "entities": entities,
        "direction": "source_to_target",
        "dryRun": req.dry_run,
        "noDelete": true,
    });
    let summary = ImportSummary {
        format,
        counts: imported
            .items
            .iter()
            .map(|(e, i)| (e.clone(), i.len()))
            .collect(),
        unmapped: imported.unmapped,
        staged_as,
        staged_in: dir,
    };
    Ok((summary, invocation))
}

/// Imports a file into a domain: stages it, then the sync. A file that
/// cannot be read changes nothing and is refused with its error (the sync,
/// once started, records and audits itself).
pub fn import(
    host: &mut Host,
    req: &ImportRequest,
    user: &str,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<(ImportSummary, SyncRecord)> {
    let (summary, invocation) = match stage(host, req, user) {
        Ok(staged) => staged,
        Err(e) => {
            // Refused before any sync: audited as the import it was.
            let entry = Entry::new(
                crate::install::rfc3339(chrono::Utc::now()),
                user.to_string(),
                Action::DataImport {
                    domain: req.domain.clone(),
                    file: req.file.display().to_string(),
                    errors: vec![crate::audit::ErrorRef::of(e.code, &e.details)],
                },
                crate::record::Status::Failed,
            );
            if host.data.root.is_dir() {
                host.audit(entry)?;
            }
            return Err(e);
        }
    };
    let record = host.sync(&invocation, user, progress, cancel);
    if req.dry_run {
        let _ = std::fs::remove_dir_all(&summary.staged_in);
    }
    Ok((summary, record))
}

/// What to export.
pub struct ExportRequest {
    pub domain: String,
    pub entity: String,
    pub format: Option<Format>,
    pub out: PathBuf,
}

/// Writes a domain's items of one type as a vCard or iCalendar file;
/// returns how many. Audited, refused or done.
pub fn export(host: &Host, req: &ExportRequest, user: &str) -> Result<usize> {
    let result = write_export(host, req, user);
    let now = crate::install::rfc3339(chrono::Utc::now());
    let (errors, status) = crate::audit::ErrorRef::outcome(&result);
    let entry = Entry::new(
        now,
        user.to_string(),
        Action::DataExport {
            domain: req.domain.clone(),
            entity_type: req.entity.clone(),
            file: req.out.display().to_string(),
            items: *result.as_ref().unwrap_or(&0),
            errors,
        },
        status,
    );
    if host.data.root.is_dir() {
        host.audit(entry)?;
    }
    result
}

fn write_export(host: &Host, req: &ExportRequest, user: &str) -> Result<usize> {
    let format = Format::for_entity(&req.entity).ok_or_else(|| {
        Error::new(
            Code::EntityTypeUnsupported,
            format!(
                "`{}` has no vCard or iCalendar form; export contacts (vcard), calendar or \
                 tasks (icalendar)",
                req.entity
            ),
        )
        .with("entity", req.entity.as_str())
    })?;
    if req.format.is_some_and(|f| f != format) {
        return Err(Error::invalid(format!(
            "`{}` is written as {}, not as the format asked for",
            req.entity,
            if format == Format::Vcard {
                "vcard"
            } else {
                "icalendar"
            }
        )));
    }
    let rel = host.config.domain_path(&req.domain).ok_or_else(|| {
        let domains = host.config.domain_names();
        crate::request::unknown_domain(&domains, "Source", &req.domain)
    })?;
    if !host.config.allows(user, &req.domain, Right::Read) {
        return Err(Error::new(
            Code::PermissionDenied,
            format!("user `{user}` may not read domain `{}`", req.domain),
        )
        .with("domain", req.domain.as_str())
        .with("user", user));
    }
    let items = match host
        .config
        .vdirs(&req.domain, &host.paths.data_dir)
        .get(&req.entity)
    {
        Some(dir) => {
            let fields = host.mappings.fields(&req.domain, &req.entity);
            crate::vdir::read(dir, &req.entity, &fields)?
                .parsed
                .unwrap_or_default()
        }
        None => {
            let path = host
                .paths
                .data_dir
                .join(rel)
                .join(format!("{}.json", req.entity));
            host.data.read_entity(&path, &req.entity)?.items
        }
    };
    // The domain's own field names back to the canonical ones.
    let fields = host.mappings.fields(&req.domain, &req.entity);
    let table = crate::config::to_canonical(&fields);
    let items: Vec<cards::Item> = items
        .into_iter()
        .map(|i| cds_policy::rename_fields(i, &table))
        .collect();
    let text = cards::export(&req.entity, &items)?;
    crate::store::atomic_write(&req.out, text.as_bytes())?;
    Ok(items.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_staged_under_a_domain_name_of_its_own() {
        assert_eq!(
            staging_name(Path::new("/x/My Contacts.vcf")),
            "import-my-contacts"
        );
        assert_eq!(staging_name(Path::new("日本.ics")), "import-file");
        assert!(crate::config::is_safe_name(&staging_name(Path::new(
            "a b/c.d.ics"
        ))));
    }
}
