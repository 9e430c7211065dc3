//! `plugins new` and `plugins test`, as a plugin author meets them: a new
//! project in each language, its own tests, `plugins test` building it and
//! printing what each sample item became, and the built plugin installed
//! and synced.

mod common;

use common::{Scratch, one_way};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

/// Runs `cmd` in `dir` and insists it succeeds.
fn ok(dir: &Path, cmd: &mut Command) {
    let out = cmd.current_dir(dir).output().expect("run a command");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        common::stdout(&out),
        common::stderr(&out)
    );
}

/// `plugins new recipes --lang LANG` in a scratch folder; the project's
/// folder.
fn new_project(s: &Scratch, lang: &str) -> std::path::PathBuf {
    let out = s.run(&["plugins", "new", "recipes", "--lang", lang]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    assert!(text.contains("plugins test ."), "{text}");
    let dir = s.path().join("recipes");
    for f in [
        "README.md",
        "build.sh",
        "sample-items.json",
        "wit/entity.wit",
    ] {
        assert!(dir.join(f).is_file(), "{lang}: {f} missing");
    }
    dir
}

/// `plugins test` on the project folder (which builds it), as JSON; checks
/// what the sample items became under the project's policy, and returns the
/// built component.
fn try_project(s: &Scratch, dir: &Path) -> std::path::PathBuf {
    let out = s
        .cmd()
        .current_dir(dir)
        // The Rust project's build shares the tests' target folder.
        .env(
            "CARGO_TARGET_DIR",
            common::workspace().join("target/scaffold-rust"),
        )
        .env_remove("RUSTFLAGS")
        .args(["plugins", "test", ".", "--json"])
        .output()
        .unwrap();
    let text = common::stdout(&out);
    assert!(out.status.success(), "{text}{}", common::stderr(&out));
    let t: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(t["entityType"], "recipes");
    assert_eq!(t["items"], 3);
    let p2b = t["crossings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["from"] == "personal" && c["to"] == "business")
        .unwrap();
    let r = &p2b["results"];
    assert_eq!(r[0]["outcome"], "changed");
    assert_eq!(r[0]["item"]["owner"], "ann@example.com");
    assert_eq!(r[0]["item"]["due"], "2026-03-31T15:00:00Z");
    assert_eq!(r[0]["removed"], json!(["notes"]));
    assert_eq!(r[1]["outcome"], "withheld");
    assert_eq!(r[2]["item"]["lastModified"], "2026-01-12T12:00:00.500Z");
    // The human form says the same.
    let out = s
        .cmd()
        .current_dir(dir)
        .args(["plugins", "test", ".", "--no-build"])
        .output()
        .unwrap();
    let text = common::stdout(&out);
    assert!(out.status.success(), "{text}{}", common::stderr(&out));
    assert!(text.contains("s2  withheld"), "{text}");
    assert!(text.contains("\"since\":12345678901234567890"), "{text}");
    dir.join("recipes.wasm")
}

/// Installs `wasm` in a new folder and syncs the project's sample items.
fn install_and_sync(wasm: &Path, dir: &Path) {
    let s = Scratch::new();
    let out = s.run(&["plugins", "add", wasm.to_str().unwrap()]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    std::fs::copy(
        dir.join("sample-items.json"),
        s.data().join("personal/recipes.json"),
    )
    .unwrap();
    std::fs::copy(
        dir.join("cross_domain_config.json"),
        s.path().join("cross_domain_config.json"),
    )
    .unwrap();
    let (code, rec) = s.run_json(&one_way("recipes"));
    assert_eq!(code, 0, "{rec}");
    assert_eq!(rec["results"]["recipes"]["added"], 2, "{rec}");
    assert_eq!(rec["results"]["recipes"]["withheld"], 1, "{rec}");
    let text = std::fs::read_to_string(s.data().join("business/recipes.json")).unwrap();
    assert!(text.contains("\"since\": 12345678901234567890"), "{text}");
}

#[test]
fn a_new_rust_plugin_tests_builds_and_syncs() {
    let s = Scratch::new();
    let dir = new_project(&s, "rust");
    // The vendored SDK builds outside this repository: the project's own
    // tests, then its wasm32-wasip2 build through `plugins test`.
    ok(
        &dir,
        Command::new(env!("CARGO"))
            .args(["test", "--quiet"])
            .env(
                "CARGO_TARGET_DIR",
                common::workspace().join("target/scaffold-rust"),
            )
            .env_remove("RUSTFLAGS"),
    );
    let wasm = try_project(&s, &dir);
    install_and_sync(&wasm, &dir);
}

#[test]
fn a_new_python_plugin_tests_builds_and_syncs() {
    let s = Scratch::new();
    let dir = new_project(&s, "python");
    ok(&dir, Command::new("python3").arg("test_app.py"));
    // The project's build.sh makes a venv of its own; the one the tests
    // already made for componentize-py (same pinned version) serves.
    let venv = common::componentize_py();
    let venv = venv.parent().unwrap().parent().unwrap();
    std::os::unix::fs::symlink(venv, dir.join(".venv")).unwrap();
    let wasm = try_project(&s, &dir);
    install_and_sync(&wasm, &dir);
}

#[test]
fn a_new_javascript_plugin_tests_builds_and_syncs() {
    let s = Scratch::new();
    let dir = new_project(&s, "js");
    ok(&dir, Command::new("node").args(["--test", "test_app.mjs"]));
    // The project's build.sh installs componentize-js into it; the tools the
    // tests installed (same pinned version) serve.
    let tool = common::componentize_js();
    let modules = tool.parent().unwrap().parent().unwrap();
    std::os::unix::fs::symlink(modules, dir.join("node_modules")).unwrap();
    let wasm = try_project(&s, &dir);
    install_and_sync(&wasm, &dir);
}

#[test]
fn plugins_test_names_what_is_wrong() {
    let s = Scratch::new();
    // No component in the folder.
    std::fs::create_dir_all(s.path().join("empty")).unwrap();
    let (code, v) = s.run_json(&["plugins", "test", "empty"]);
    assert_eq!(code, 2, "{v}");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no .wasm")
    );
    // A component with no sample items beside it.
    let notes = common::notes_plugin();
    let (code, v) = s.run_json(&["plugins", "test", notes.to_str().unwrap()]);
    assert_eq!(code, 2, "{v}");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("--items")
    );
    // A sample item that breaks the schema: the file, the item and the path.
    s.write_raw(
        "items.json",
        r#"{"notes": [{"id": "a", "title": "ok", "lastModified": "2026-01-12T10:00:00Z"},
                      {"id": "b", "title": 7, "lastModified": "2026-01-12T10:00:00Z"}]}"#,
    );
    let (code, v) = s.run_json(&[
        "plugins",
        "test",
        notes.to_str().unwrap(),
        "--items",
        "items.json",
    ]);
    assert_eq!(code, 6, "{v}");
    let msg = v["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("item 1 (id `b`)") && msg.contains("$.title"),
        "{msg}"
    );
    // Nothing was installed.
    assert!(!s.path().join("plugins/plugins.lock").exists());
}
