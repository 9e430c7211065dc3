//! vdir folders as domains (issue 20): two domains whose contacts and
//! calendars are folders of `.vcf` and `.ics` files, synced both ways by
//! the real binary. Edits on both sides, a conflict, a deletion, undo, and
//! a SIGKILL at every kill point of the commit, which must leave every
//! file exactly as before the sync or exactly as after it.

mod common;

use common::{Scratch, bidi};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The folders, relative to the data folder: personal's contacts and
/// calendar, business's contacts and calendar.
const FOLDERS: [&str; 4] = [
    "vdir/personal/contacts",
    "vdir/personal/calendar",
    "vdir/business/contacts",
    "vdir/business/calendar",
];

fn card(lines: &[&str]) -> String {
    let mut s = String::from("BEGIN:VCARD\r\n");
    for l in lines {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s.push_str("END:VCARD\r\n");
    s
}

/// A scratch folder with both domains' contacts and calendars as vdir
/// folders, and the personal side's files.
fn seeded() -> Scratch {
    let s = Scratch::new();
    s.config(json!({"domains": {
        "personal": {"vdir": {"contacts": FOLDERS[0], "calendar": FOLDERS[1]}},
        "business": {"vdir": {"contacts": FOLDERS[2], "calendar": FOLDERS[3]}}
    }}));
    for f in FOLDERS {
        std::fs::create_dir_all(s.data().join(f)).unwrap();
    }
    write(
        &s,
        "vdir/personal/contacts/alice-1.vcf",
        &card(&[
            "VERSION:3.0",
            "UID:alice-1",
            "FN:Alice Example",
            "N:Example;Alice;;;",
            "EMAIL;TYPE=WORK:alice@example.com",
            "TEL;TYPE=CELL:+1-555-0100",
            "item1.URL:https://alice.example",
            "item1.X-ABLABEL:blog",
            "BDAY:1980-03-22",
            "NOTE:met at the school gate",
            "X-CUSTOM;FOO=bar:kept",
            "REV:20260110T100000Z",
        ]),
    );
    write(
        &s,
        "vdir/personal/contacts/bob.vcf",
        &card(&[
            "VERSION:4.0",
            "UID:bob-2",
            "FN:Bob Builder",
            "EMAIL:bob@example.com",
            "ORG:Builders Inc.",
            "X-SOCIALPROFILE;TYPE=x:bob",
            "REV:20260110T100000Z",
        ]),
    );
    // No UID: its id is its file's name, which an edit keeps.
    write(
        &s,
        "vdir/personal/contacts/no-uid.vcf",
        &card(&[
            "VERSION:4.0",
            "FN:Nobody Known",
            "EMAIL:nobody@example.com",
            "REV:20260110T100000Z",
        ]),
    );
    write(
        &s,
        "vdir/personal/calendar/standup.ics",
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n\
         UID:standup-1\r\nDTSTAMP:20260110T100000Z\r\nLAST-MODIFIED:20260110T100000Z\r\n\
         DTSTART;TZID=Europe/Berlin:20260112T090000\r\nDTEND;TZID=Europe/Berlin:20260112T093000\r\n\
         RRULE:FREQ=WEEKLY;BYDAY=MO\r\nSUMMARY:Standup\r\nLOCATION:Room 4\r\n\
         BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT5M\r\nDESCRIPTION:Standup\r\nEND:VALARM\r\n\
         END:VEVENT\r\nEND:VCALENDAR\r\n",
    );
    // Made on the business side, with a property of its own.
    write(
        &s,
        "vdir/business/contacts/carol.vcf",
        &card(&[
            "VERSION:4.0",
            "UID:carol-3",
            "FN:Carol Client",
            "EMAIL:carol@client.example",
            "X-CRM-ID:4711",
            "REV:20260110T100000Z",
        ]),
    );
    s
}

fn write(s: &Scratch, rel: &str, text: &str) {
    std::fs::write(s.data().join(rel), text).unwrap();
}

fn read(s: &Scratch, rel: &str) -> String {
    std::fs::read_to_string(s.data().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every file of the four folders, by path relative to the data folder.
fn files(s: &Scratch) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for f in FOLDERS {
        for e in std::fs::read_dir(s.data().join(f)).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            out.insert(format!("{f}/{name}"), std::fs::read(e.path()).unwrap());
        }
    }
    out
}

/// Each file's modification time, to see which ones a sync wrote.
fn times(s: &Scratch) -> BTreeMap<String, std::time::SystemTime> {
    files(s)
        .into_keys()
        .map(|rel| {
            let t = std::fs::metadata(s.data().join(&rel))
                .unwrap()
                .modified()
                .unwrap();
            (rel, t)
        })
        .collect()
}

/// A card's property lines (unfolded), without the frame.
fn props(text: &str) -> Vec<String> {
    text.replace("\r\n ", "")
        .lines()
        .map(str::to_string)
        .filter(|l| !l.starts_with("BEGIN:") && !l.starts_with("END:"))
        .collect()
}

fn sync(s: &Scratch, entities: &str) -> Value {
    let (code, rec) = s.run_json(&bidi(entities));
    assert_eq!(code, 0, "{rec:#}");
    rec
}

/// Sets every file's time an hour back, so that a rewrite shows.
fn age(s: &Scratch) {
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for rel in files(s).into_keys() {
        std::fs::File::options()
            .write(true)
            .open(s.data().join(rel))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
}

/// Long: one story told in order (first sync, a quiet re-sync, edits on
/// both sides, a conflict, a deletion, its undo), each step's state being
/// the next one's start.
#[test]
fn two_vdir_domains_sync_edits_conflicts_deletions_and_undo() {
    let s = seeded();
    let personal_before = files(&s);
    let rec = sync(&s, "contacts,calendar");
    assert_eq!(rec["results"]["contacts"]["added"], 4, "{rec:#}");
    assert_eq!(rec["results"]["calendar"]["added"], 1, "{rec:#}");

    // Business got a file per item, named by its UID (the card without one
    // by its file's name), holding what the default policy lets cross.
    let after = files(&s);
    for name in ["alice-1.vcf", "bob-2.vcf", "no-uid.vcf"] {
        assert!(
            after.contains_key(&format!("vdir/business/contacts/{name}")),
            "{name}: {:?}",
            after.keys()
        );
    }
    let alice_b = read(&s, "vdir/business/contacts/alice-1.vcf");
    assert!(alice_b.contains("FN:Alice Example"), "{alice_b}");
    for private in ["BDAY", "NOTE", "X-CUSTOM", "school gate"] {
        assert!(!alice_b.contains(private), "{private} leaked:\n{alice_b}");
    }
    // A personal event becomes a busy block at its own zone and recurrence.
    let busy = read(&s, "vdir/business/calendar/standup-1.ics");
    for want in [
        "DTSTART;TZID=Europe/Berlin:20260112T090000",
        "RRULE:FREQ=WEEKLY",
    ] {
        assert!(busy.contains(want), "{want} missing:\n{busy}");
    }
    // Carol crossed to personal; the personal files read were not rewritten.
    assert!(read(&s, "vdir/personal/contacts/carol-3.vcf").contains("FN:Carol Client"));
    for (rel, bytes) in &personal_before {
        assert_eq!(&after[rel], bytes, "{rel} was rewritten");
    }

    // A second sync changes nothing and writes no file.
    age(&s);
    let (files_then, times_then) = (files(&s), times(&s));
    let rec = sync(&s, "contacts,calendar");
    for entity in ["contacts", "calendar"] {
        let r = &rec["results"][entity];
        assert_eq!(
            (&r["added"], &r["updated"], &r["deleted"]),
            (&json!(0), &json!(0), &json!(0)),
            "{entity}: {rec:#}"
        );
    }
    assert_eq!(files(&s), files_then);
    assert_eq!(times(&s), times_then, "a quiet sync rewrote a file");

    // Edits on both sides: a title in personal, an email in business.
    let alice_p = read(&s, "vdir/personal/contacts/alice-1.vcf").replace(
        "REV:20260110T100000Z",
        "TITLE:Head of Research\r\nREV:20260201T100000Z",
    );
    write(&s, "vdir/personal/contacts/alice-1.vcf", &alice_p);
    let bob_b = read(&s, "vdir/business/contacts/bob-2.vcf")
        .replace("EMAIL:bob@example.com", "EMAIL:bob@builders.example")
        .replace("REV:20260110T100000Z", "REV:20260202T100000Z");
    write(&s, "vdir/business/contacts/bob-2.vcf", &bob_b);
    let bob_p_before = read(&s, "vdir/personal/contacts/bob.vcf");
    let (files_then, times_then) = (files(&s), times(&s));
    let rec = sync(&s, "contacts,calendar");
    assert_eq!(rec["results"]["contacts"]["updated"], 2, "{rec:#}");
    assert!(read(&s, "vdir/business/contacts/alice-1.vcf").contains("TITLE:Head of Research"));
    // Personal's Bob changed in its EMAIL line only; every other line of
    // his card is as it was, his X- property too.
    let bob_p = read(&s, "vdir/personal/contacts/bob.vcf");
    let (was, now) = (props(&bob_p_before), props(&bob_p));
    let gone: Vec<_> = was.iter().filter(|l| !now.contains(l)).collect();
    let new: Vec<_> = now.iter().filter(|l| !was.contains(l)).collect();
    assert!(
        gone.iter()
            .all(|l| l.starts_with("EMAIL") || l.starts_with("REV")),
        "{gone:?}"
    );
    assert!(
        new.contains(&&"EMAIL:bob@builders.example".to_string()),
        "{new:?}"
    );
    assert!(bob_p.contains("X-SOCIALPROFILE;TYPE=x:bob"), "{bob_p}");
    // Only the files of the two items that changed on the other side were
    // written; the two edited by hand were not rewritten.
    let times_now = times(&s);
    let written: Vec<&str> = times_now
        .iter()
        .filter(|(rel, t)| times_then.get(*rel) != Some(t))
        .map(|(rel, _)| rel.as_str())
        .collect();
    assert_eq!(
        written,
        [
            "vdir/business/contacts/alice-1.vcf",
            "vdir/personal/contacts/bob.vcf"
        ]
    );
    assert_eq!(files(&s).len(), files_then.len());

    // A conflict: both sides rename Alice; the source (personal) wins, as
    // in any bidirectional sync, the loser is logged, and both cards keep
    // every line they had.
    let alice_p = read(&s, "vdir/personal/contacts/alice-1.vcf")
        .replace("FN:Alice Example", "FN:Alice P. Example")
        .replace("REV:20260201T100000Z", "REV:20260301T100000Z");
    write(&s, "vdir/personal/contacts/alice-1.vcf", &alice_p);
    let alice_b = read(&s, "vdir/business/contacts/alice-1.vcf")
        .replace("FN:Alice Example", "FN:Alice B. Example")
        .replace("REV:20260201T100000Z", "REV:20260302T100000Z");
    write(&s, "vdir/business/contacts/alice-1.vcf", &alice_b);
    let rec = sync(&s, "contacts");
    assert_eq!(rec["results"]["contacts"]["conflicts"], 1, "{rec:#}");
    let (_, listed) = s.run_json(&["conflicts", "list"]);
    let c = &listed["conflicts"][0];
    assert_eq!(
        (&c["itemId"], &c["field"]),
        (&json!("alice-1"), &json!("name"))
    );
    assert_eq!(c["targetValue"], "Alice B. Example");
    assert_eq!(c["winner"], "source");
    let alice_p = read(&s, "vdir/personal/contacts/alice-1.vcf");
    assert!(alice_p.contains("FN:Alice P. Example"), "{alice_p}");
    assert!(read(&s, "vdir/business/contacts/alice-1.vcf").contains("FN:Alice P. Example"));
    for kept in [
        "N:Example;Alice;;;",
        "TEL;TYPE=CELL:+1-555-0100",
        "item1.URL:https://alice.example",
        "item1.X-ABLABEL:blog",
        "BDAY:1980-03-22",
        "X-CUSTOM;FOO=bar:kept",
        "TITLE:Head of Research",
    ] {
        assert!(alice_p.contains(kept), "{kept} lost:\n{alice_p}");
    }
    // Resolving it for the losing side writes that name into both files.
    let id = c["id"].as_str().unwrap().to_string();
    let (code, v) = s.run_json(&["conflicts", "resolve", &id, "--keep", "target"]);
    assert_eq!(code, 0, "{v}");
    for rel in [
        "vdir/personal/contacts/alice-1.vcf",
        "vdir/business/contacts/alice-1.vcf",
    ] {
        let text = read(&s, rel);
        assert!(text.contains("FN:Alice B. Example"), "{rel}:\n{text}");
    }
    assert!(read(&s, "vdir/personal/contacts/alice-1.vcf").contains("X-CUSTOM;FOO=bar:kept"));

    // A deletion in business removes personal's file, into the backups.
    let sync_ok = sync(&s, "contacts");
    assert_eq!(sync_ok["status"], "success");
    let bob_p_kept = std::fs::read(s.data().join("vdir/personal/contacts/bob.vcf")).unwrap();
    std::fs::remove_file(s.data().join("vdir/business/contacts/bob-2.vcf")).unwrap();
    let rec = sync(&s, "contacts");
    assert_eq!(rec["results"]["contacts"]["deleted"], 1, "{rec:#}");
    assert!(!s.data().join("vdir/personal/contacts/bob.vcf").exists());

    // Undo puts the file back, byte for byte.
    let sync_id = rec["syncId"].as_str().unwrap();
    let (code, v) = s.run_json(&["undo", sync_id]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        std::fs::read(s.data().join("vdir/personal/contacts/bob.vcf")).unwrap(),
        bob_p_kept
    );
    let verify = s.run(&["audit", "verify"]);
    assert!(verify.status.success(), "{}", common::stderr(&verify));
}

/// The state every crash run starts from: synced once, then edited on both
/// sides so that the next sync writes, creates and removes files in both
/// domains' folders.
fn edited() -> Scratch {
    let s = seeded();
    sync(&s, "contacts,calendar");
    let alice = read(&s, "vdir/personal/contacts/alice-1.vcf")
        .replace("FN:Alice Example", "FN:Alice Edited")
        .replace("REV:20260110T100000Z", "REV:20260201T100000Z");
    write(&s, "vdir/personal/contacts/alice-1.vcf", &alice);
    let carol = read(&s, "vdir/business/contacts/carol.vcf")
        .replace("EMAIL:carol@client.example", "EMAIL:carol@new.example")
        .replace("REV:20260110T100000Z", "REV:20260201T100000Z");
    write(&s, "vdir/business/contacts/carol.vcf", &carol);
    std::fs::remove_file(s.data().join("vdir/business/contacts/no-uid.vcf")).unwrap();
    write(
        &s,
        "vdir/personal/contacts/dave.vcf",
        &card(&[
            "VERSION:4.0",
            "UID:dave-4",
            "FN:Dave New",
            "REV:20260201T100000Z",
        ]),
    );
    s
}

#[test]
fn a_sync_killed_during_its_commit_leaves_every_vdir_file_before_or_after() {
    let reference = edited();
    let before = files(&reference);
    sync(&reference, "contacts,calendar");
    let after = files(&reference);
    assert_ne!(before, after);
    // Files in both folders are written, created and removed.
    for rel in [
        "vdir/business/contacts/alice-1.vcf",
        "vdir/personal/contacts/carol-3.vcf",
    ] {
        assert_ne!(before.get(rel), after.get(rel), "{rel}");
    }
    assert!(!after.contains_key("vdir/personal/contacts/no-uid.vcf"));
    assert!(after.contains_key("vdir/business/contacts/dave-4.vcf"));

    let (saw_before, saw_after) = kill_at(1..=60, edited, "contacts,calendar", [&before, &after]);
    assert!(
        saw_before > 0 && saw_after > 0,
        "{saw_before} / {saw_after}"
    );
}

#[test]
fn vdir_folders_outside_the_data_folder_and_their_errors() {
    let s = Scratch::new();
    let outside = tempfile::tempdir().unwrap();
    let folder: PathBuf = outside.path().join("contacts");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("x.vcf"),
        card(&[
            "VERSION:4.0",
            "UID:x",
            "FN:X Person",
            "REV:20260110T100000Z",
        ]),
    )
    .unwrap();
    let abs = folder.display().to_string();
    s.config(json!({"domains": {
        "personal": {"vdir": {"contacts": abs}},
        "business": {}
    }}));
    // Into business's JSON file, and an edit there back into the card.
    let rec = sync(&s, "contacts");
    assert_eq!(rec["results"]["contacts"]["added"], 1, "{rec:#}");
    let mut items = s.items("business", "contacts");
    items[0]["title"] = json!("Chief");
    items[0]["lastModified"] = json!("2026-02-01T10:00:00Z");
    s.write("business", "contacts", Value::Array(items));
    let rec = sync(&s, "contacts");
    assert_eq!(rec["results"]["contacts"]["updated"], 1, "{rec:#}");
    let text = std::fs::read_to_string(folder.join("x.vcf")).unwrap();
    assert!(text.contains("TITLE:Chief"), "{text}");
    // Its backup is kept inside the data folder, and undo restores it.
    let (code, v) = s.run_json(&["undo", rec["syncId"].as_str().unwrap()]);
    assert_eq!(code, 0, "{v}");
    assert!(
        !std::fs::read_to_string(folder.join("x.vcf"))
            .unwrap()
            .contains("TITLE")
    );
    assert!(
        common::files_under(&s.data().join(".sync/backups"))
            .iter()
            .any(|p| p.to_string_lossy().contains("/external/"))
    );

    // A broken card is named by its file and line; nothing is written.
    std::fs::write(
        folder.join("broken.vcf"),
        "BEGIN:VCARD\r\nFN X\r\nEND:VCARD\r\n",
    )
    .unwrap();
    let msg = refused(&s, "DATA_FORMAT_INVALID");
    assert!(
        msg.contains("broken.vcf") && msg.contains("line 2"),
        "{msg}"
    );
    std::fs::remove_file(folder.join("broken.vcf")).unwrap();

    // A file of two cards: rewriting one would drop the other.
    std::fs::write(
        folder.join("two.vcf"),
        card(&["VERSION:4.0", "UID:t1", "FN:T One"])
            + &card(&["VERSION:4.0", "UID:t2", "FN:T Two"]),
    )
    .unwrap();
    let msg = refused(&s, "DATA_FORMAT_INVALID");
    assert!(
        msg.contains("two.vcf") && msg.contains("holds 2 items"),
        "{msg}"
    );
    std::fs::remove_file(folder.join("two.vcf")).unwrap();

    // Two files with one UID: which is real cannot be told.
    std::fs::write(
        folder.join("y.vcf"),
        card(&["VERSION:4.0", "UID:x", "FN:Other X", "REV:20260110T100000Z"]),
    )
    .unwrap();
    refused(&s, "SYNC_CONFLICT");
    std::fs::remove_file(folder.join("y.vcf")).unwrap();

    // A configured folder that does not exist, and two domains on one.
    std::fs::remove_dir_all(&folder).unwrap();
    refused(&s, "DOMAIN_NOT_FOUND");
    std::fs::create_dir_all(&folder).unwrap();
    s.config(json!({"domains": {
        "personal": {"vdir": {"contacts": abs}},
        "business": {"vdir": {"contacts": abs}}
    }}));
    refused(&s, "INVALID_ARGUMENT");
    // Only contacts, calendar and tasks have a vdir form.
    s.config(json!({"domains": {
        "personal": {"vdir": {"notes": abs}},
        "business": {}
    }}));
    let msg = refused(&s, "INVALID_ARGUMENT");
    assert!(msg.contains("vdir.notes"), "{msg}");
}

/// Runs a bidirectional sync of contacts that must be refused with `code`;
/// its message.
fn refused(s: &Scratch, code: &str) -> String {
    let (exit, rec) = s.run_json(&bidi("contacts"));
    assert_ne!(exit, 0, "{rec:#}");
    assert_eq!(rec["errors"][0]["code"], code, "{rec:#}");
    rec["errors"][0]["message"].as_str().unwrap().to_string()
}

/// A calendar collection holds events and to-dos: `calendar` and `tasks`
/// may name one folder, each type taking its own files and leaving the
/// other's alone.
#[test]
fn calendar_and_tasks_may_share_one_folder() {
    let s = Scratch::new();
    s.config(json!({"domains": {
        "personal": {"vdir": {"calendar": "cal", "tasks": "cal"}},
        "business": {}
    }}));
    let cal = s.data().join("cal");
    std::fs::create_dir_all(&cal).unwrap();
    let event = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:e1\r\n\
                 DTSTAMP:20260110T100000Z\r\nDTSTART:20260112T090000Z\r\nDTEND:20260112T100000Z\r\n\
                 SUMMARY:Review\r\nCATEGORIES:work\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let todo = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTODO\r\nUID:t1\r\n\
                DTSTAMP:20260110T100000Z\r\nSUMMARY:File taxes\r\nSTATUS:NEEDS-ACTION\r\n\
                END:VTODO\r\nEND:VCALENDAR\r\n";
    std::fs::write(cal.join("e1.ics"), event).unwrap();
    std::fs::write(cal.join("t1.ics"), todo).unwrap();
    let rec = sync(&s, "calendar,tasks");
    assert_eq!(rec["results"]["calendar"]["sourceCount"], 1, "{rec:#}");
    assert_eq!(rec["results"]["tasks"]["sourceCount"], 1, "{rec:#}");
    // A task made in business lands in the shared folder as a file of its
    // own; the event's and the to-do's files are untouched.
    s.write(
        "business",
        "tasks",
        json!(
            s.items("business", "tasks")
                .into_iter()
                .chain([json!({
                    "id": "t2", "title": "Book flights", "status": "todo",
                    "lastModified": "2026-02-01T10:00:00Z"
                })])
                .collect::<Vec<_>>()
        ),
    );
    sync(&s, "calendar,tasks");
    assert_eq!(std::fs::read_to_string(cal.join("e1.ics")).unwrap(), event);
    assert_eq!(std::fs::read_to_string(cal.join("t1.ics")).unwrap(), todo);
    let t2 = std::fs::read_to_string(cal.join("t2.ics")).unwrap();
    assert!(
        t2.contains("BEGIN:VTODO") && t2.contains("SUMMARY:Book flights"),
        "{t2}"
    );
    let rec = sync(&s, "calendar,tasks");
    assert_eq!(rec["results"]["tasks"]["sourceCount"], 2, "{rec:#}");
    assert_eq!(rec["results"]["tasks"]["updated"], 0, "{rec:#}");
}

/// A commit of many files makes them durable together (one `syncfs` per
/// file system, not an fsync each): killed at points spread over its
/// whole commit, it leaves every file before or after all the same.
#[test]
fn a_commit_of_many_files_killed_anywhere_leaves_before_or_after() {
    let edited_many = || {
        let s = seeded();
        sync(&s, "contacts");
        for i in 0..80 {
            write(
                &s,
                &format!("vdir/personal/contacts/new-{i}.vcf"),
                &card(&[
                    "VERSION:4.0",
                    &format!("UID:new-{i}"),
                    &format!("FN:New Person {i}"),
                    "REV:20260201T100000Z",
                ]),
            );
        }
        std::fs::remove_file(s.data().join("vdir/business/contacts/no-uid.vcf")).unwrap();
        s
    };
    let reference = edited_many();
    let before = files(&reference);
    sync(&reference, "contacts");
    let after = files(&reference);
    assert_eq!(after.len(), before.len() + 80 - 1);

    let (saw_before, saw_after) = kill_at(
        (1..=400).step_by(7),
        edited_many,
        "contacts",
        [&before, &after],
    );
    assert!(
        saw_before > 2 && saw_after > 2,
        "{saw_before} / {saw_after}"
    );

    // A write that fails mid-staging rolls all of it back, leaving nothing
    // behind; a transient one is retried.
    for (fault, ok) in [("enospc:60", false), ("transient:60", true)] {
        let s = edited_many();
        let out = s
            .cmd()
            .args(bidi("contacts"))
            .env("CDS_FAULT_WRITE", fault)
            .output()
            .unwrap();
        assert_eq!(
            out.status.success(),
            ok,
            "{fault}: {}",
            common::stderr(&out)
        );
        assert_eq!(&files(&s), if ok { &after } else { &before }, "{fault}");
    }
}

/// Runs a bidirectional sync of `entities` on a fresh `make()` killed at
/// each kill point of `points` in turn (until one is past the last),
/// checking after the next invocation that the vdir folders hold exactly
/// `before` or exactly `after`. How many runs ended in each.
fn kill_at(
    points: impl Iterator<Item = usize>,
    make: impl Fn() -> Scratch,
    entities: &str,
    [before, after]: [&BTreeMap<String, Vec<u8>>; 2],
) -> (usize, usize) {
    use std::os::unix::process::ExitStatusExt;
    let (mut saw_before, mut saw_after) = (0, 0);
    for point in points {
        let s = make();
        assert_eq!(&files(&s), before);
        let out = s
            .cmd()
            .args(bidi(entities))
            .env("CDS_FAULT_KILL_AT", point.to_string())
            .output()
            .unwrap();
        if out.status.signal() != Some(9) {
            // Past the last kill point: the sync simply completed.
            assert!(
                out.status.success(),
                "point {point}: {}",
                common::stderr(&out)
            );
            assert_eq!(&files(&s), after);
            break;
        }
        // The next invocation finishes the roll-back or roll-forward first.
        let verify = s.run(&["audit", "verify"]);
        assert!(
            verify.status.success(),
            "point {point}: {}",
            common::stderr(&verify)
        );
        let now = files(&s);
        if &now == before {
            saw_before += 1;
        } else if &now == after {
            saw_after += 1;
        } else {
            let differ: Vec<_> = now
                .keys()
                .chain(after.keys())
                .filter(|k| now.get(*k) != after.get(*k) && now.get(*k) != before.get(*k))
                .collect();
            panic!("point {point}: a mix of before and after: {differ:?}");
        }
    }
    (saw_before, saw_after)
}
