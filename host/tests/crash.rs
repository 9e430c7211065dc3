//! Crash safety (CONTRACT §2): the binary is killed with SIGKILL at every kill
//! point of a multi-entity bidirectional sync's commit; after the next
//! invocation every domain is exactly as before the sync or exactly as after
//! it, never a mix, and the audit trail verifies.

mod common;

use common::{Scratch, bidi, contact};

/// The sync every test here interrupts: three types, both ways.
fn args() -> Vec<&'static str> {
    bidi("contacts,tasks,calendar")
}
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn seed(s: &Scratch) {
    s.write(
        "personal",
        "contacts",
        json!([
            contact("c1", "A", json!({"category": "business", "title": "CTO"})),
            contact("c2", "B", json!({"category": "family"}))
        ]),
    );
    s.write(
        "business",
        "contacts",
        json!([
            contact("c1", "A", json!({"title": "VP"})),
            contact("c3", "C", json!({}))
        ]),
    );
    s.write(
        "personal",
        "tasks",
        json!([{"id": "t1", "title": "x", "status": "todo", "category": "business",
        "lastModified": "2026-01-12T10:00:00Z"}]),
    );
    s.write(
        "business",
        "calendar",
        json!([{"id": "e1", "title": "Board", "start": "2026-01-12T10:00:00Z",
        "end": "2026-01-12T11:00:00Z", "lastModified": "2026-01-12T10:00:00Z"}]),
    );
}

/// The domains' contents, parsed, without the `syncedAt` stamps (which differ
/// between runs made in different seconds).
fn domains(s: &Scratch) -> BTreeMap<String, Value> {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("syncedAt");
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    s.snapshot()
        .into_iter()
        .map(|(name, bytes)| {
            let mut v: Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{name} is not valid JSON after a crash: {e}"));
            strip(&mut v);
            (name, v)
        })
        .collect()
}

#[test]
fn killed_at_every_point_leaves_before_or_after() {
    // The states to compare with.
    let reference = Scratch::new();
    seed(&reference);
    let before = domains(&reference);
    let out = reference.run(&args());
    assert!(out.status.success(), "{}", common::stderr(&out));
    let after = domains(&reference);
    assert_ne!(before, after);

    let (mut saw_before, mut saw_after, mut killed) = (0, 0, 0);
    for point in 1..=40 {
        let s = Scratch::new();
        seed(&s);
        let out = s
            .cmd()
            .args(args())
            .env("CDS_FAULT_KILL_AT", point.to_string())
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        let was_killed = out.status.signal() == Some(9);
        if !was_killed {
            // Past the last kill point: the sync simply completed.
            assert!(
                out.status.success(),
                "point {point}: {}",
                common::stderr(&out)
            );
            assert_eq!(domains(&s), after);
            break;
        }
        killed += 1;
        // The next invocation finishes the roll-back or roll-forward first.
        let verify = s.run(&["audit", "verify"]);
        assert!(
            verify.status.success(),
            "point {point}: audit does not verify: {}{}",
            common::stdout(&verify),
            common::stderr(&verify)
        );
        let now = domains(&s);
        if now == before {
            saw_before += 1;
        } else if now == after {
            saw_after += 1;
        } else {
            panic!("point {point}: a mix of before and after:\n{now:#?}");
        }
        assert!(
            !s.data().join(".sync/journal.json").exists(),
            "point {point}: journal left"
        );
        let staged: Vec<_> = common::files_under(&s.data())
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(".cds-staged"))
            .collect();
        assert!(
            staged.is_empty(),
            "point {point}: staged files left: {staged:?}"
        );
        let trail = s.audit();
        let recovery = trail
            .iter()
            .find(|e| e["action"] == "ROLLBACK" || e["action"] == "ROLLFORWARD");
        assert!(recovery.is_some(), "point {point}: the recovery is audited");
        if now == after {
            assert!(
                trail
                    .iter()
                    .any(|e| e["action"] == "DATA_SYNC" && e["outcome"] == "success"),
                "point {point}: a rolled-forward sync has its own audit entry"
            );
        }
        // And a sync afterwards works and converges to the same state.
        let out = s.run(&args());
        assert!(
            out.status.success(),
            "point {point}: {}",
            common::stderr(&out)
        );
        assert_eq!(domains(&s), after, "point {point}");
    }
    assert!(killed >= 10, "only {killed} kill points were reached");
    assert!(
        saw_before > 0 && saw_after > 0,
        "before {saw_before}, after {saw_after}"
    );
}

/// A sync killed while planning leaves its prestaged files (`.cds-tmp-*`)
/// beside the domain files and the sync base, with no journal to say so. The
/// next sync, under the data folder's lock, removes them; a dry run writes
/// none at all.
#[test]
fn files_prestaged_by_a_dead_sync_are_removed_and_dry_runs_write_none() {
    let s = Scratch::new();
    seed(&s);
    let mut dry = args();
    dry.push("--dry-run");
    let out = s.run(&dry);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let temporaries = |s: &Scratch| -> Vec<PathBuf> {
        common::files_under(&s.data())
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".cds-tmp-"))
            })
            .collect()
    };
    assert!(temporaries(&s).is_empty(), "{:?}", temporaries(&s));
    // Converge first, so that the next sync changes no domain file and only
    // the sweep at its start can remove anything there.
    let out = s.run(&args());
    assert!(out.status.success(), "{}", common::stderr(&out));
    let settled = domains(&s);
    // What a sync killed after prestaging leaves behind.
    s.write_raw("data/personal/.cds-tmp-dead1", "{\"contacts\": [");
    s.write_raw("data/business/.cds-tmp-dead2", "half a file");
    let out = s.run(&args());
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(temporaries(&s).is_empty(), "{:?}", temporaries(&s));
    assert_eq!(domains(&s), settled);
}
