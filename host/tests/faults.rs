//! Storage faults injected at the commit (issue 4): each ends in
//! STORAGE_ERROR with everything rolled back, or in success after retries,
//! never in a half-written domain.

mod common;

use common::{Scratch, bidi, contact};

/// The sync every fault here hits: two types, both ways, as JSON.
fn args() -> Vec<&'static str> {
    let mut a = bidi("contacts,tasks");
    a.push("--json");
    a
}
use serde_json::{Value, json};

fn seeded() -> Scratch {
    let s = Scratch::new();
    s.write(
        "personal",
        "contacts",
        json!([contact("c1", "A", json!({"category": "business"}))]),
    );
    s.write(
        "business",
        "contacts",
        json!([contact("c2", "B", json!({}))]),
    );
    s.write("business", "tasks", json!([{"id": "t", "title": "x", "status": "todo", "lastModified": "2026-01-12T10:00:00Z"}]));
    s
}

fn run_with(s: &Scratch, fault: &str) -> (i32, Value) {
    let out = s
        .cmd()
        .args(args())
        .env("CDS_FAULT_WRITE", fault)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), v)
}

fn assert_rolled_back(s: &Scratch, before: &[(String, Vec<u8>)], fault: &str) {
    assert_eq!(s.snapshot(), before, "{fault}: a domain changed");
    assert!(
        !s.data().join(".sync/journal.json").exists(),
        "{fault}: journal left"
    );
    let base_files: Vec<_> = common::files_under(&s.data().join(".sync/base"));
    assert!(
        base_files.is_empty(),
        "{fault}: base written: {base_files:?}"
    );
    let last = s.audit().pop().unwrap();
    assert_eq!(last["outcome"], "failed", "{fault}");
    assert_eq!(last["errors"][0]["code"], "STORAGE_ERROR");
}

#[test]
fn a_write_failing_at_every_step_of_the_commit_rolls_back() {
    // The commit writes: journal, manifest, then per file a backup and a
    // staged copy, then the journal again. Fail each of them in turn.
    for n in 1..=14 {
        let s = seeded();
        let before = s.snapshot();
        let fault = format!("eio:{n}");
        let (code, v) = run_with(&s, &fault);
        if code == 0 {
            assert!(n > 8, "{fault}: the commit has more writes than that");
            break;
        }
        assert_eq!(code, 8, "{fault}: {v}");
        assert_eq!(v["errors"][0]["code"], "STORAGE_ERROR");
        assert!(
            v["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("Input/output error"),
            "{v}"
        );
        assert_rolled_back(&s, &before, &fault);
    }
}

#[test]
fn no_space_left_rolls_back() {
    let s = seeded();
    let before = s.snapshot();
    let (code, v) = run_with(&s, "enospc:3");
    assert_eq!(code, 8);
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("No space left"),
        "{v}"
    );
    assert_rolled_back(&s, &before, "enospc");
}

#[test]
fn a_read_only_folder_rolls_back() {
    let s = seeded();
    let before = s.snapshot();
    let (code, v) = run_with(&s, "erofs:2");
    assert_eq!(code, 8);
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Read-only file system"),
        "{v}"
    );
    assert_rolled_back(&s, &before, "erofs");
}

#[test]
fn a_transient_fault_succeeds_after_retry() {
    for n in [1, 3, 6] {
        let s = seeded();
        let (code, v) = run_with(&s, &format!("transient:{n}"));
        assert_eq!(code, 0, "transient:{n}: {v}");
        assert_eq!(s.items("business", "contacts").len(), 2);
        assert_eq!(s.items("personal", "tasks").len(), 1);
        assert!(s.run(&["audit", "verify"]).status.success());
    }
}

#[test]
fn a_vanishing_domain_file_is_caught() {
    let s = seeded();
    let child = s
        .cmd()
        .args(args())
        .env("CDS_FAULT_DELAY_MS", "1500")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(600));
    std::fs::remove_file(s.data().join("business/contacts.json")).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(8),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !s.data().join("business/contacts.json").exists(),
        "not silently re-created"
    );
    assert!(
        s.items("personal", "tasks").is_empty(),
        "no other file was written either"
    );
}
