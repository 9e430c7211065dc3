//! vCard and iCalendar import and export on real files this project did
//! not write: the round-trip corpus that calcard (crates.io, Apache-2.0 OR
//! MIT) ships in its package, collected from the test suites of biweekly,
//! CalDAVTester, Apple's Calendar and Contacts Server, Cyrus IMAP, Evolution,
//! FolkerKinzel.VCards, golang-ical and others (its `resources/SOURCES.txt`
//! names each file's origin). The test reads them where cargo unpacked the
//! crate; nothing of them is copied into this repository.
//!
//! For every file: import, then export, and compare the two files property
//! by property (names, parameters and values, unfolded; parameter order and
//! the case of names aside), with a comparer of its own rather than the
//! importer's parser. A file that cannot be read must fail with
//! DATA_FORMAT_INVALID naming the file and a line.

use cds::cards::{self, Format};
use cds::error::Code;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// calcard's `resources/` folder, as cargo unpacked the crate.
fn corpus() -> PathBuf {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifest = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "calcard")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("calcard among the packages");
    Path::new(manifest).parent().unwrap().join("resources")
}

/// The files of `dir` ending in `.ext` (not calcard's `.out` outputs).
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

// --- an independent reading of content lines, for the comparison ----------

/// Unfolded logical lines (a line starting with a space or tab continues the
/// one before; a quoted-printable value's soft break `=` too).
fn logical_lines(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut soft = false;
    for l in text.lines() {
        if soft && !out.is_empty() {
            let last = out.last_mut().unwrap();
            last.pop();
            last.push_str(l);
        } else if (l.starts_with(' ') || l.starts_with('\t')) && !out.is_empty() {
            out.last_mut().unwrap().push_str(&l[1..]);
        } else if !l.is_empty() {
            out.push(l.to_string());
        }
        soft = !l.is_empty()
            && out
                .last()
                .is_some_and(|x| x.ends_with('=') && x.to_uppercase().contains("QUOTED-PRINTABLE"));
    }
    out
}

/// `name;p=v:value` as a comparable key: name upper-cased, parameters
/// (names upper-cased) sorted, the value as written.
fn key(line: &str) -> String {
    let mut quoted = false;
    let colon = line
        .char_indices()
        .find(|&(_, c)| {
            if c == '"' {
                quoted = !quoted;
            }
            c == ':' && !quoted
        })
        .map(|(i, _)| i)
        .unwrap_or(line.len());
    let (head, value) = (&line[..colon], line.get(colon + 1..).unwrap_or(""));
    let mut parts: Vec<String> = Vec::new();
    let mut cur = String::new();
    quoted = false;
    for c in head.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if c == ';' && !quoted {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    let name = parts.remove(0).to_uppercase();
    let mut params: Vec<String> = parts
        .into_iter()
        .map(|p| match p.split_once('=') {
            Some((n, v)) => format!("{}={}", n.trim().to_uppercase(), v.replace('"', "")),
            None => format!("TYPE={p}"),
        })
        .collect();
    params.sort();
    format!("{name};{}:{value}", params.join(";"))
}

/// The components of a file, each as one comparable string (its properties
/// and children, sorted), and the properties of the calendars themselves.
#[derive(Debug, Default, PartialEq)]
struct Shape {
    header: BTreeSet<String>,
    components: BTreeSet<String>,
}

fn shape(text: &str) -> Shape {
    let mut stack: Vec<(String, Vec<String>)> = Vec::new();
    let mut out = Shape::default();
    for l in logical_lines(text.trim_start_matches('\u{feff}')) {
        let k = key(&l);
        if let Some(name) = k.strip_prefix("BEGIN;:") {
            stack.push((name.trim().to_uppercase(), Vec::new()));
        } else if k.starts_with("END;:") {
            let Some((name, mut parts)) = stack.pop() else {
                panic!("unbalanced END in:\n{text}");
            };
            parts.sort();
            let canon = format!("{name}{{{}}}", parts.join("|"));
            match stack.last_mut() {
                // A calendar's children stand alone (export regroups them);
                // a calendar's own properties are its header.
                Some((parent, _)) if parent == "VCALENDAR" => {
                    out.components.insert(canon);
                }
                Some((_, siblings)) => siblings.push(canon),
                None if name == "VCALENDAR" => {
                    out.header
                        .extend(parts.into_iter().filter(|p| !p.contains('{')));
                }
                None => {
                    out.components.insert(canon);
                }
            }
        } else if let Some((_, props)) = stack.last_mut() {
            props.push(k);
        }
    }
    out
}

/// Imports `path` and exports every entity type it gave; the union of what
/// was exported.
fn round_trip(path: &Path) -> Result<Option<Shape>, cds::Error> {
    let text = cards::decode(path, std::fs::read(path).unwrap())?;
    let format = Format::of(path, &text).unwrap();
    let imported = cards::import(path, &text, format, "2026-01-12T10:00:00Z")?;
    if imported.items.is_empty() {
        return Ok(None);
    }
    let mut all = Shape::default();
    for (entity, items) in &imported.items {
        let out = cards::export(entity, items)?;
        let s = shape(&out);
        all.header.extend(s.header);
        all.components.extend(s.components);
    }
    Ok(Some(all))
}

/// Runs the round trip on every file of one kind; returns (kept, refused,
/// nothing to import).
fn corpus_round_trip(dir: &str, ext: &str) -> (usize, usize, usize) {
    let (mut kept, mut refused, mut empty) = (0, 0, 0);
    let mut lost = Vec::new();
    for path in files(&corpus().join(dir), ext) {
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        match round_trip(&path) {
            Ok(Some(got)) => {
                let want = shape(&text);
                // Every property of the file is in the export (the export
                // may add only X-CDS-FIELDS, which these files do not need).
                let missing: Vec<&String> = want.components.difference(&got.components).collect();
                let extra: Vec<&String> = got.components.difference(&want.components).collect();
                let header_missing: Vec<&String> = want.header.difference(&got.header).collect();
                if missing.is_empty() && extra.is_empty() && header_missing.is_empty() {
                    kept += 1;
                } else {
                    // The properties of the first differing component that
                    // are not in its counterpart.
                    let props = |c: Option<&&String>| -> BTreeSet<String> {
                        c.map(|c| c.split('|').map(String::from).collect())
                            .unwrap_or_default()
                    };
                    let (a, b) = (props(missing.first()), props(extra.first()));
                    lost.push(format!(
                        "{}: lost {:?}\n  gained {:?}\n  header {:?}",
                        path.display(),
                        a.difference(&b).collect::<Vec<_>>(),
                        b.difference(&a).collect::<Vec<_>>(),
                        header_missing
                    ));
                }
            }
            Ok(None) => empty += 1,
            Err(e) => {
                assert!(
                    matches!(e.code, Code::DataFormatInvalid | Code::SyncConflict),
                    "{}: {e:?}",
                    path.display()
                );
                let file = path.display().to_string();
                assert!(e.message.contains(&file), "{}", e.message);
                if e.code == Code::DataFormatInvalid {
                    assert!(e.details.get("line").is_some(), "{}", e.message);
                }
                if std::env::var_os("CDS_CARDS_VERBOSE").is_some() {
                    eprintln!("refused: {}", e.message);
                }
                refused += 1;
            }
        }
    }
    assert!(
        lost.is_empty(),
        "{} files lost properties:\n{}",
        lost.len(),
        lost.join("\n")
    );
    (kept, refused, empty)
}

#[test]
fn every_vcard_of_the_corpus_keeps_every_property() {
    let (kept, refused, empty) = corpus_round_trip("vcard", "vcf");
    eprintln!("vCard: {kept} files kept every property, {refused} refused, {empty} empty");
    // 208 of 244 on calcard 0.3.14; the others are malformed on purpose, or
    // not UTF-8 (vCard 2.1 in Windows-1252), which the import refuses.
    assert!(kept >= 208, "{kept} kept, {refused} refused");
}

#[test]
fn every_icalendar_file_of_the_corpus_keeps_every_property() {
    let (kept, refused, empty) = corpus_round_trip("ical", "ics");
    eprintln!(
        "iCalendar: {kept} files kept every property, {refused} refused, {empty} without events or to-dos"
    );
    // 705 of 998 on calcard 0.3.14; 142 hold no event or to-do (time
    // zones, free/busy, journals), the others are malformed on purpose.
    assert!(kept >= 705, "{kept} kept, {refused} refused, {empty} empty");
}

// --- through the command line: import is a sync, export gives it back ------

mod common;

use common::Scratch;
use serde_json::Value;

/// Runs `import FILE --domain personal` (and `extra`) with --json.
fn import(s: &Scratch, file: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["import", file.to_str().unwrap(), "--domain", "personal"];
    args.extend(extra);
    s.run_json(&args)
}

fn export(s: &Scratch, domain: &str, entity: &str) -> String {
    let out = s.path().join(format!("{domain}-{entity}.out"));
    let (code, v) = s.run_json(&[
        "export",
        "--domain",
        domain,
        "--entities",
        entity,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{v}");
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn imported_files_sync_in_and_export_back_with_every_property() {
    // Through the real binary and the sync (which normalises emails, phones
    // and times as items cross): every 12th file of the corpus that holds
    // items of one type, imported, exported, and imported again.
    let mut tried = 0;
    for (dir, ext) in [("vcard", "vcf"), ("ical", "ics")] {
        for path in files(&corpus().join(dir), ext).into_iter().step_by(12) {
            let Ok(Some(_)) = round_trip(&path) else {
                continue;
            };
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            let imported = cards::import(
                &path,
                &text,
                Format::of(&path, &text).unwrap(),
                "2026-01-12T10:00:00Z",
            )
            .unwrap();
            if imported.items.len() != 1 {
                continue;
            }
            let entity = imported.items[0].0.clone();
            let s = Scratch::new();
            let (code, rec) = import(&s, &path, &[]);
            assert_eq!(code, 0, "{}: {rec}", path.display());
            assert!(
                rec["sourceDomain"].as_str().unwrap().starts_with("import-"),
                "{rec}"
            );
            let back = export(&s, "personal", &entity);
            assert_eq!(
                shape(&back),
                shape(&text),
                "{} through a sync",
                path.display()
            );
            let (code, again) = import(&s, &path, &[]);
            assert_eq!(code, 0, "{again}");
            let r = &again["results"][entity.as_str()];
            assert_eq!(
                (r["added"].as_u64(), r["updated"].as_u64()),
                (Some(0), Some(0)),
                "{again}"
            );
            tried += 1;
        }
    }
    assert!(tried >= 60, "{tried} files tried");
}

#[test]
fn an_import_is_audited_undoable_and_keeps_edits_made_since() {
    let s = Scratch::new();
    let card = "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:c1\r\nFN:Ann Lee\r\nEMAIL;TYPE=work:ann@example.org\r\nX-CUSTOM;X-P=1:kept\r\nREV:20260101T000000Z\r\nEND:VCARD\r\n";
    s.write_raw("people.vcf", card);
    let file = s.path().join("people.vcf");
    // A dry run plans and leaves everything as it was.
    let before = s.snapshot();
    let (code, rec) = import(&s, &file, &["--dry-run"]);
    assert_eq!(code, 0, "{rec}");
    assert_eq!(rec["status"], "dry_run");
    assert_eq!(rec["results"]["contacts"]["added"], 1);
    assert_eq!(s.snapshot(), before);
    for staged in ["people", "people.dry-run"] {
        assert!(!s.data().join(".import").join(staged).exists(), "{staged}");
    }
    let (code, rec) = import(&s, &file, &["--category", "family"]);
    assert_eq!(code, 0, "{rec}");
    let c = s.item("personal", "contacts", "c1").unwrap();
    assert_eq!(c["name"], "Ann Lee");
    assert_eq!(c["category"], "family");
    let audit = s.audit();
    let entry = audit
        .iter()
        .rev()
        .find(|e| e["action"] == "DATA_SYNC")
        .unwrap();
    assert_eq!(entry["sourceDomain"], "import-people");
    assert_eq!(entry["targetDomain"], "personal");

    // An edit in the domain, then the file changes elsewhere: both kept.
    let mut items = s.items("personal", "contacts");
    items[0]["title"] = Value::String("Dr".into());
    items[0]["lastModified"] = Value::String("2026-02-01T00:00:00Z".into());
    s.write("personal", "contacts", Value::Array(items));
    s.write_raw(
        "people.vcf",
        &card
            .replace("FN:Ann Lee", "FN:Ann Lee-Smith")
            .replace("REV:20260101", "REV:20260301"),
    );
    let (code, rec) = import(&s, &file, &[]);
    assert_eq!(code, 0, "{rec}");
    let c = s.item("personal", "contacts", "c1").unwrap();
    assert_eq!(c["name"], "Ann Lee-Smith", "the file's change came in");
    assert_eq!(c["title"], "Dr", "the domain's own edit stayed");
    let back = export(&s, "personal", "contacts");
    assert!(back.contains("X-CUSTOM;X-P=1:kept"), "{back}");
    assert!(
        back.contains("TITLE:Dr") && back.contains("FN:Ann Lee-Smith"),
        "{back}"
    );
    assert!(back.contains("EMAIL;TYPE=work:ann@example.org"), "{back}");

    // Undo puts the domain back as it was before the second import.
    let id = rec["syncId"].as_str().unwrap();
    let out = s.run(&["undo", id]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(
        s.item("personal", "contacts", "c1").unwrap()["name"],
        "Ann Lee"
    );
}

#[test]
fn a_file_that_cannot_be_read_is_refused_naming_file_and_line() {
    let s = Scratch::new();
    s.write_raw("broken.ics", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:e1\r\nthis line is no property\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n");
    let file = s.path().join("broken.ics");
    let (code, v) = import(&s, &file, &[]);
    assert_eq!(code, 6, "{v}");
    let msg = v["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("broken.ics") && msg.contains("line 5"),
        "{msg}"
    );
    assert_eq!(v["errors"][0]["line"], 5);
    assert!(s.items("personal", "calendar").is_empty());
    // Audited, with the file and the code, not the text.
    let audit = s.audit();
    let entry = audit.last().unwrap();
    assert_eq!(entry["action"], "DATA_IMPORT");
    assert_eq!(entry["outcome"], "failed");
    assert_eq!(entry["errors"][0]["code"], "DATA_FORMAT_INVALID");
    assert!(!entry.to_string().contains("no property"), "{entry}");
    // So is one into a domain that does not exist.
    let (code, v) = s.run_json(&["import", file.to_str().unwrap(), "--domain", "nowhere"]);
    assert_eq!(code, 3, "{v}");
    assert_eq!(
        s.audit().last().unwrap()["errors"][0]["code"],
        "DOMAIN_NOT_FOUND"
    );
}

#[test]
fn a_private_event_becomes_a_busy_block_in_its_own_time_zone() {
    let s = Scratch::new();
    s.write_raw(
        "mine.ics",
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:ev1\r\n\
         DTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20260112T090000\r\n\
         DTEND;TZID=Europe/Berlin:20260112T100000\r\nRRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=4\r\n\
         SUMMARY:Therapy\r\nDESCRIPTION:private notes\r\nLOCATION:Clinic\r\n\
         ATTENDEE;CN=Dr A:mailto:dr@clinic.example\r\nCLASS:PRIVATE\r\n\
         BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Therapy\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\n\
         END:VEVENT\r\nEND:VCALENDAR\r\n",
    );
    let (code, rec) = import(&s, &s.path().join("mine.ics"), &["--category", "personal"]);
    assert_eq!(code, 0, "{rec}");
    let p = s.item("personal", "calendar", "ev1").unwrap();
    assert_eq!(p["start"], "2026-01-12T08:00:00Z");
    assert_eq!(p["timeZone"], "Europe/Berlin");
    let (code, rec) = s.run_json(&common::one_way("calendar"));
    assert_eq!(code, 0, "{rec}");
    let b = s.item("business", "calendar", "ev1").unwrap();
    assert_eq!(b["title"], "Busy");
    for gone in [
        "description",
        "location",
        "attendees",
        "x-ical",
        "visibility",
    ] {
        assert!(b.get(gone).is_none(), "{gone} crossed: {b}");
    }
    let busy = export(&s, "business", "calendar");
    let unfolded = busy.replace("\r\n ", "");
    assert!(
        unfolded.contains("DTSTART;TZID=Europe/Berlin:20260112T090000"),
        "{busy}"
    );
    assert!(
        unfolded.contains("DTEND;TZID=Europe/Berlin:20260112T100000"),
        "{busy}"
    );
    assert!(
        unfolded.contains("RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=4"),
        "{busy}"
    );
    assert!(
        unfolded.contains("BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin"),
        "{busy}"
    );
    assert!(unfolded.contains("SUMMARY:Busy"), "{busy}");
    for gone in [
        "Therapy",
        "Clinic",
        "private notes",
        "ATTENDEE",
        "VALARM",
        "CLASS",
    ] {
        assert!(
            !unfolded.contains(gone),
            "`{gone}` leaked into business:\n{busy}"
        );
    }
}

#[test]
fn a_stripped_field_does_not_cross_in_the_cards_own_lines() {
    // personal->business strips a contact's birthday, notes and address:
    // the card's lines, which hold BDAY, NOTE and ADR too, stay behind.
    let s = Scratch::new();
    s.write_raw(
        "c.vcf",
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c9\r\nFN:Bo\r\nBDAY:1980-02-03\r\nNOTE:secret\r\nADR:;;1 Home St;Town;;;\r\nEMAIL:Bo@Work.example\r\nEND:VCARD\r\n",
    );
    let (code, rec) = import(&s, &s.path().join("c.vcf"), &["--category", "business"]);
    assert_eq!(code, 0, "{rec}");
    let (code, rec) = s.run_json(&common::one_way("contacts"));
    assert_eq!(code, 0, "{rec}");
    let b = s.item("business", "contacts", "c9").unwrap();
    assert_eq!(b["email"], "bo@work.example");
    for gone in ["birthday", "notes", "address", "x-vcard"] {
        assert!(b.get(gone).is_none(), "{gone} crossed: {b}");
    }
    let card = export(&s, "business", "contacts");
    for gone in ["1980", "secret", "Home St"] {
        assert!(!card.contains(gone), "`{gone}` leaked:\n{card}");
    }
    // Back in personal, the card keeps everything.
    let (code, _) = s.run_json(&common::bidi("contacts"));
    assert_eq!(code, 0);
    let mine = export(&s, "personal", "contacts");
    assert!(
        mine.contains("BDAY:1980-02-03") && mine.contains("NOTE:secret"),
        "{mine}"
    );
}
