//! Helpers shared by the integration tests: scratch data folders, running the
//! real binary, and building the plugins the tests install.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// All tests share one compiled-plugin cache, so each plugin is compiled once
/// per test run (a debug host compiles slowly).
pub fn cache_dir() -> PathBuf {
    workspace().join("target").join("cds-test-cache")
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cross-domain-sync"))
}

/// A scratch working folder with `data/personal` and `data/business`.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        for d in ["personal", "business"] {
            std::fs::create_dir_all(dir.path().join("data").join(d)).unwrap();
        }
        Scratch { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data(&self) -> PathBuf {
        self.path().join("data")
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.current_dir(self.path())
            .env("CDS_CACHE_DIR", cache_dir())
            .env("CDS_USER", "tester")
            .env_remove("CDS_FAULT_KILL_AT")
            .env_remove("CDS_FAULT_WRITE")
            .env_remove("CDS_FAULT_DELAY_MS")
            .env_remove("CDS_LOG")
            .env_remove("RUST_LOG");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(args)
            .output()
            .expect("run cross-domain-sync")
    }

    /// Runs with `--json` and parses the one JSON object on stdout.
    pub fn run_json(&self, args: &[&str]) -> (i32, Value) {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.run(&a);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON object ({e}):\n{stdout}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), v)
    }

    pub fn write(&self, domain: &str, entity: &str, items: Value) {
        let path = self.data().join(domain).join(format!("{entity}.json"));
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&json!({ entity: items })).unwrap(),
        )
        .unwrap();
    }

    pub fn write_raw(&self, rel: &str, text: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn items(&self, domain: &str, entity: &str) -> Vec<Value> {
        let path = self.data().join(domain).join(format!("{entity}.json"));
        match std::fs::read(&path) {
            Ok(b) => {
                let v: Value = serde_json::from_slice(&b).unwrap();
                v[entity].as_array().cloned().unwrap_or_default()
            }
            Err(_) => Vec::new(),
        }
    }

    pub fn item(&self, domain: &str, entity: &str, id: &str) -> Option<Value> {
        self.items(domain, entity)
            .into_iter()
            .find(|i| i["id"] == json!(id))
    }

    pub fn config(&self, v: Value) {
        std::fs::write(
            self.path().join("cross_domain_config.json"),
            serde_json::to_string_pretty(&v).unwrap(),
        )
        .unwrap();
    }

    /// Every file under the two domain folders, with its bytes.
    pub fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for d in ["personal", "business"] {
            let dir = self.data().join(d);
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten().filter(|e| e.path().is_file()) {
                    out.push((
                        format!("{d}/{}", e.file_name().to_string_lossy()),
                        std::fs::read(e.path()).unwrap(),
                    ));
                }
            }
        }
        out.sort();
        out
    }

    pub fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.data().join("audit/audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Builds a plugin project (outside the workspace) for wasm32-unknown-unknown
/// and returns its .wasm file. Cargo's own locking makes this safe to call
/// from tests running at once.
pub fn build_plugin(project: &str, wasm: &str) -> PathBuf {
    build_plugin_with(project, wasm, None)
}

/// As [`build_plugin`], with one cargo feature, in its own target folder (the
/// same .wasm file name must not be overwritten by the other build).
pub fn build_plugin_with(project: &str, wasm: &str, feature: Option<&str>) -> PathBuf {
    build_plugin_for(project, wasm, feature, "wasm32-unknown-unknown")
}

/// As [`build_plugin_with`], for a target (`wasm32-wasip2`: the standard way,
/// importing WASI).
pub fn build_plugin_for(project: &str, wasm: &str, feature: Option<&str>, target: &str) -> PathBuf {
    let root = workspace();
    let mut folder = "test-plugins".to_string();
    if let Some(f) = feature {
        folder += &format!("-{f}");
    }
    if target != "wasm32-unknown-unknown" {
        folder += &format!("-{target}");
    }
    let target_dir = root.join("target").join(folder);
    let out = Command::new(env!("CARGO"))
        .current_dir(root.join(project))
        .args(["build", "--release", "--target", target])
        .args(feature.map(|f| format!("--features={f}")))
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "building {project} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target_dir.join(target).join("release").join(wasm)
}

pub fn notes_plugin() -> PathBuf {
    build_plugin("examples/plugins/notes", "notes_plugin.wasm")
}

pub fn hostile_plugin() -> PathBuf {
    build_plugin("tests/hostile", "hostile_plugin.wasm")
}

/// The hostile plugin built the standard way for `wasm32-wasip2`: it
/// imports WASI, and has the modes that reach for files, sockets and the rest.
pub fn hostile_plugin_wasip2() -> PathBuf {
    build_plugin_for(
        "tests/hostile",
        "hostile_plugin.wasm",
        None,
        "wasm32-wasip2",
    )
}

/// The notes example built the standard way for `wasm32-wasip2`.
pub fn notes_plugin_wasip2() -> PathBuf {
    build_plugin_for(
        "examples/plugins/notes",
        "notes_plugin.wasm",
        None,
        "wasm32-wasip2",
    )
}

/// `componentize-py`, from a virtual environment under `target/` that this
/// makes on first use with the version `plugins/sdk-python/requirements.txt`
/// pins (PyPI), so that the test sees to its own tool.
pub fn componentize_py() -> PathBuf {
    static READY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = READY.lock().unwrap_or_else(|e| e.into_inner());
    let venv = workspace().join("target").join("py-plugin-venv");
    let tool = venv.join("bin").join("componentize-py");
    let requirements = workspace().join("plugins/sdk-python/requirements.txt");
    let stamp = venv.join("requirements.txt");
    if tool.exists() && std::fs::read(&stamp).ok() == std::fs::read(&requirements).ok() {
        return tool;
    }
    let run = |cmd: &mut Command| {
        let out = cmd.output().expect("run python3");
        assert!(
            out.status.success(),
            "setting up componentize-py in {} failed:\n{}",
            venv.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv));
    run(Command::new(venv.join("bin").join("pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&requirements));
    std::fs::copy(&requirements, &stamp).expect("stamp the venv");
    tool
}

/// Builds the Python plugin project `project` (its `app.py`) with
/// componentize-py against the project's WIT and the Python guest library,
/// into `target/test-plugins-python/NAME.wasm`.
pub fn build_python_plugin(project: &str, name: &str) -> PathBuf {
    let root = workspace();
    let out_dir = root.join("target").join("test-plugins-python");
    std::fs::create_dir_all(&out_dir).expect("make the output folder");
    let wasm = out_dir.join(format!("{name}.wasm"));
    let out = Command::new(componentize_py())
        .current_dir(root.join(project))
        .arg("-q")
        .arg("-d")
        .arg(root.join("wit/entity.wit"))
        .args(["-w", "entity-plugin", "componentize", "app", "-p", "."])
        .arg("-p")
        .arg(root.join("plugins/sdk-python"))
        .arg("-o")
        .arg(&wasm)
        .output()
        .expect("run componentize-py");
    assert!(
        out.status.success(),
        "building {project} with componentize-py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wasm
}

/// `componentize-js`, installed on first use under `target/` with the version
/// `plugins/sdk-js/package.json` pins (npm), so that the test sees to its own
/// tool.
pub fn componentize_js() -> PathBuf {
    static READY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = READY.lock().unwrap_or_else(|e| e.into_inner());
    let prefix = workspace().join("target").join("js-plugin-tools");
    let tool = prefix.join("node_modules/.bin/componentize-js");
    let manifest = workspace().join("plugins/sdk-js/package.json");
    let stamp = prefix.join("package.json");
    if tool.exists() && std::fs::read(&stamp).ok() == std::fs::read(&manifest).ok() {
        return tool;
    }
    std::fs::create_dir_all(&prefix).expect("make the tools folder");
    std::fs::copy(&manifest, &stamp).expect("copy the manifest");
    let out = Command::new("npm")
        .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
        .arg(&prefix)
        .output()
        .expect("run npm");
    if !out.status.success() {
        let _ = std::fs::remove_file(&stamp);
    }
    assert!(
        out.status.success(),
        "installing componentize-js into {} failed:\n{}",
        prefix.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    tool
}

/// Builds the JavaScript plugin project `project` (its `app.js`) with
/// componentize-js into `target/test-plugins-js/NAME.wasm`. componentize-js
/// sees only the folder it runs in, so the project is staged under
/// `target/` with the guest library and the WIT beside it, as
/// `plugins new --lang js` lays a project out. A `world` other than
/// `entity-plugin` is the project's own, in its `wit/` folder (a world that
/// imports more), with the entity interface as a dependency.
pub fn build_js_plugin(project: &str, name: &str, world: &str) -> PathBuf {
    let root = workspace();
    let tool = componentize_js();
    let out_dir = root.join("target").join("test-plugins-js");
    let stage = out_dir.join(name);
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage).expect("make the staging folder");
    // The entity interface's own world, or the project's (in its `wit/`).
    let own_wit = (world != "entity-plugin").then(|| root.join(project).join("wit"));
    let entity_wit = if let Some(own_wit) = &own_wit {
        copy_tree(own_wit, &stage.join("wit"));
        stage.join("wit/deps/gold-entity/entity.wit")
    } else {
        stage.join("wit/entity.wit")
    };
    std::fs::create_dir_all(entity_wit.parent().unwrap()).expect("make the WIT folder");
    std::fs::copy(root.join("wit/entity.wit"), &entity_wit).expect("stage the WIT");
    for e in std::fs::read_dir(root.join(project)).expect("read the project") {
        let p = e.expect("a project file").path();
        if p.extension().is_some_and(|x| x == "js") {
            std::fs::copy(&p, stage.join(p.file_name().unwrap())).expect("stage a source file");
        }
    }
    std::fs::copy(
        root.join("plugins/sdk-js/cds_plugin.js"),
        stage.join("cds_plugin.js"),
    )
    .expect("stage the guest library");
    let wit = if own_wit.is_some() {
        "wit"
    } else {
        "wit/entity.wit"
    };
    let wasm = out_dir.join(format!("{name}.wasm"));
    let out = Command::new(tool)
        .current_dir(&stage)
        .args(["app.js", "--wit", wit, "-n", world])
        .args(["-d", "http", "fetch-event", "-o"])
        .arg(&wasm)
        .output()
        .expect("run componentize-js");
    assert!(
        out.status.success(),
        "building {project} with componentize-js failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    wasm
}

/// Copies the folder `from` to `to`, recursively.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("make a folder");
    for e in std::fs::read_dir(from).expect("read a folder") {
        let p = e.expect("an entry").path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).expect("copy a file");
        }
    }
}

/// The notes example in JavaScript (`examples/plugins/notes-js`).
pub fn notes_plugin_js() -> PathBuf {
    build_js_plugin("examples/plugins/notes-js", "notes_js", "entity-plugin")
}

/// The hostile plugin in JavaScript (`tests/hostile-js`).
pub fn hostile_plugin_js() -> PathBuf {
    build_js_plugin("tests/hostile-js", "hostile_js", "hostile")
}

/// The notes example in Python (`examples/plugins/notes-py`).
pub fn notes_plugin_python() -> PathBuf {
    build_python_plugin("examples/plugins/notes-py", "notes_py")
}

/// The hostile plugin in Python (`tests/hostile-py`).
pub fn hostile_plugin_python() -> PathBuf {
    build_python_plugin("tests/hostile-py", "hostile_py")
}

/// The hostile plugin built against interface 1.0 (no `cross-batch`).
pub fn hostile_plugin_1_0() -> PathBuf {
    build_plugin_with(
        "tests/hostile",
        "hostile_plugin.wasm",
        Some("interface-1-0"),
    )
}

/// Both ways between personal and business (add `--entities` to choose).
pub const BIDI: [&str; 6] = [
    "--source",
    "personal",
    "--target",
    "business",
    "--direction",
    "bidirectional",
];

/// Personal to business, the default direction.
pub const ONE_WAY: [&str; 4] = ["--source", "personal", "--target", "business"];

/// A bidirectional sync of `entities` (comma-separated).
pub fn bidi(entities: &str) -> Vec<&str> {
    let mut a = BIDI.to_vec();
    a.extend(["--entities", entities]);
    a
}

/// A personal-to-business sync of `entities` (comma-separated).
pub fn one_way(entities: &str) -> Vec<&str> {
    let mut a = ONE_WAY.to_vec();
    a.extend(["--entities", entities]);
    a
}

/// A contact item.
pub fn contact(id: &str, name: &str, extra: Value) -> Value {
    let mut v = json!({"id": id, "name": name, "lastModified": "2026-01-12T10:00:00Z"});
    if let Value::Object(m) = extra {
        for (k, x) in m {
            v[k] = x;
        }
    }
    v
}

/// Every file below `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The `bookmarks` test plugin, whose id field is `uid`.
pub fn uid_plugin() -> PathBuf {
    build_plugin("tests/uid-plugin", "uid_plugin.wasm")
}
