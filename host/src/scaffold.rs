//! `plugins new`: a new entity-type plugin project, ready to test, build,
//! try (`plugins test`) and install, in Rust, Python or JavaScript.
//!
//! Each project carries what it needs to build on its own: the plugin
//! interface (`wit/entity.wit`) and the guest SDK of its language (the Rust
//! crates vendored under `vendor/`, `cds_plugin.py`, `cds_plugin.js`), all
//! embedded in this binary, so that the project builds wherever the
//! language's own tools are, with no checkout of this repository. The
//! templates live in `host/templates/`; `{{name}}` in them is the entity
//! type.

use crate::error::{Code, Error, Result};
use std::path::{Path, PathBuf};

/// The language of a new plugin project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A Rust crate built for wasm32-wasip2 with the guest SDK.
    Rust,
    /// A Python module built by componentize-py (PyPI).
    Python,
    /// A JavaScript module built by componentize-js (npm).
    Js,
}

/// One file of a project: its path in the project, its text, whether it is
/// a script to run, and whether it is a template (`{{name}}` filled in) or
/// copied as it is (the SDKs and the WIT).
struct File {
    path: &'static str,
    text: &'static str,
    script: bool,
    template: bool,
}

const fn file(path: &'static str, text: &'static str) -> File {
    File {
        path,
        text,
        script: false,
        template: true,
    }
}

const fn script(path: &'static str, text: &'static str) -> File {
    File {
        path,
        text,
        script: true,
        template: true,
    }
}

const fn verbatim(path: &'static str, text: &'static str) -> File {
    File {
        path,
        text,
        script: false,
        template: false,
    }
}

const WIT: &str = include_str!("../../wit/entity.wit");
const SCHEMA: &str = include_str!("../templates/common/schema.json");

/// Every language's files but the schema, which is JSON in Rust's and
/// Python's projects and a module in JavaScript's.
const COMMON: &[File] = &[
    verbatim("wit/entity.wit", WIT),
    file(
        "sample-items.json",
        include_str!("../templates/common/sample-items.json"),
    ),
    file(
        "cross_domain_config.json",
        include_str!("../templates/common/cross_domain_config.json"),
    ),
];

const RUST: &[File] = &[
    file("Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
    file("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
    script("build.sh", include_str!("../templates/rust/build.sh")),
    file("schema.json", SCHEMA),
    file(".gitignore", "/target\n*.wasm\n"),
    // The guest SDK and the two crates it shares with the host, as they are
    // in this binary's source, with manifests of their own.
    verbatim("vendor/sdk/Cargo.toml", VENDOR_SDK_MANIFEST),
    verbatim(
        "vendor/sdk/src/lib.rs",
        include_str!("../../plugins/sdk/src/lib.rs"),
    ),
    verbatim(
        "vendor/sdk/src/lazy.rs",
        include_str!("../../plugins/sdk/src/lazy.rs"),
    ),
    verbatim("vendor/json/Cargo.toml", VENDOR_JSON_MANIFEST),
    verbatim(
        "vendor/json/src/lib.rs",
        include_str!("../../plugins/json/src/lib.rs"),
    ),
    verbatim("vendor/policy/Cargo.toml", VENDOR_POLICY_MANIFEST),
    verbatim(
        "vendor/policy/src/lib.rs",
        include_str!("../../plugins/policy/src/lib.rs"),
    ),
    verbatim(
        "vendor/policy/src/normalize.rs",
        include_str!("../../plugins/policy/src/normalize.rs"),
    ),
];

const PYTHON: &[File] = &[
    file("app.py", include_str!("../templates/python/app.py")),
    file(
        "test_app.py",
        include_str!("../templates/python/test_app.py"),
    ),
    file(
        "requirements.txt",
        include_str!("../templates/python/requirements.txt"),
    ),
    script("build.sh", include_str!("../templates/python/build.sh")),
    file("schema.json", SCHEMA),
    verbatim(
        "cds_plugin.py",
        include_str!("../../plugins/sdk-python/cds_plugin.py"),
    ),
    file(".gitignore", "/.venv\n__pycache__/\n*.wasm\n"),
];

const JS: &[File] = &[
    file("app.js", include_str!("../templates/js/app.js")),
    file("test_app.mjs", include_str!("../templates/js/test_app.mjs")),
    file("package.json", include_str!("../templates/js/package.json")),
    script("build.sh", include_str!("../templates/js/build.sh")),
    verbatim(
        "cds_plugin.js",
        include_str!("../../plugins/sdk-js/cds_plugin.js"),
    ),
    file(".gitignore", "/node_modules\n/package-lock.json\n*.wasm\n"),
];

// The vendored crates' manifests: the workspace's settings written out
// (`host/tests/scaffold.rs` builds a project from them).
const VENDOR_SDK_MANIFEST: &str = r#"[package]
name = "cds-plugin-sdk"
description = "Guest SDK for cross-domain-sync entity plugins (WIT gold:entity@1.1.0), vendored"
version = "0.1.0"
edition = "2024"
license = "Apache-2.0"

[dependencies]
cds-json = { path = "../json" }
cds-policy = { path = "../policy" }
serde = { version = "1", features = ["derive"] }
# arbitrary_precision: numbers cross with every digit as written.
serde_json = { version = "1", features = ["preserve_order", "raw_value", "float_roundtrip", "arbitrary_precision"] }
chrono = { version = "0.4", default-features = false, features = ["alloc", "std"] }
wit-bindgen = { version = "0.63", default-features = false, features = ["macros", "realloc"] }
"#;

const VENDOR_JSON_MANIFEST: &str = r#"[package]
name = "cds-json"
description = "serde_json's JSON text with a faster string escape, vendored"
version = "0.1.0"
edition = "2024"
license = "Apache-2.0"

[dependencies]
serde = { version = "1", features = ["derive"] }
serde_json = { version = "1", features = ["preserve_order", "raw_value", "float_roundtrip", "arbitrary_precision"] }
"#;

const VENDOR_POLICY_MANIFEST: &str = r#"[package]
name = "cds-policy"
description = "The cross-domain-sync policy model, vendored"
version = "0.1.0"
edition = "2024"
license = "Apache-2.0"

[dependencies]
serde = { version = "1", features = ["derive"] }
serde_json = { version = "1", features = ["preserve_order", "raw_value", "float_roundtrip", "arbitrary_precision"] }

[features]
schemars = []
"#;

impl Lang {
    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }

    fn files(self) -> &'static [File] {
        match self {
            Lang::Rust => RUST,
            Lang::Python => PYTHON,
            Lang::Js => JS,
        }
    }

    /// The command that runs the project's own tests.
    fn test_command(self) -> &'static str {
        match self {
            Lang::Rust => "cargo test",
            Lang::Python => "python3 test_app.py",
            Lang::Js => "node --test test_app.mjs",
        }
    }

    /// The README's table rows for the language's own files.
    fn file_rows(self) -> &'static str {
        match self {
            Lang::Rust => {
                "| `src/lib.rs` | the plugin: its declarations, and its tests |\n\
                 | `Cargo.toml`, `build.sh` | the crate, and its build for `wasm32-wasip2` |\n\
                 | `vendor/` | the guest SDK (`cds-plugin-sdk`, with `cds-json` and `cds-policy`) |\n\
                 | `schema.json` | the item schema |"
            }
            Lang::Python => {
                "| `app.py` | the plugin: its declarations |\n\
                 | `test_app.py` | its tests |\n\
                 | `cds_plugin.py` | the guest library |\n\
                 | `requirements.txt`, `build.sh` | componentize-py, pinned, and the build |\n\
                 | `schema.json` | the item schema |"
            }
            Lang::Js => {
                "| `app.js` | the plugin: its declarations |\n\
                 | `test_app.mjs` | its tests |\n\
                 | `cds_plugin.js` | the guest library |\n\
                 | `package.json`, `build.sh` | componentize-js, pinned, and the build |\n\
                 | `schema.js` | the item schema (a module: componentize-js cannot import JSON) |"
            }
        }
    }
}

/// Every file of a new `lang` project for the entity type `name`, with its
/// text, and whether it is a script.
fn project(name: &str, lang: Lang) -> Vec<(String, String, bool)> {
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{crate}}", &format!("{}_plugin", name.replace('-', "_")))
    };
    let mut out: Vec<(String, String, bool)> = COMMON
        .iter()
        .chain(lang.files())
        .map(|f| {
            let text = if f.template {
                fill(f.text)
            } else {
                f.text.to_string()
            };
            (f.path.to_string(), text, f.script)
        })
        .collect();
    if lang == Lang::Js {
        out.push((
            "schema.js".into(),
            format!(
                "// The item schema of `{name}` (JSON Schema 2020-12). componentize-js cannot\n\
                 // import a JSON file, so it is a module.\nexport default {};\n",
                fill(SCHEMA).trim_end()
            ),
            false,
        ));
    }
    let readme = include_str!("../templates/common/README.md")
        .replace("{{language}}", lang.name())
        .replace("{{lang}}", lang.flag())
        .replace("{{files}}\n", &format!("{}\n", lang.file_rows()))
        .replace("{{test}}", lang.test_command());
    out.push(("README.md".into(), fill(&readme), false));
    out
}

/// Writes a new `lang` plugin project for the entity type `name` into
/// `dir`, which must not exist or be empty; returns the files written.
pub fn new_project(name: &str, lang: Lang, dir: &Path) -> Result<Vec<PathBuf>> {
    crate::plugin::check_new_entity_name(name)?;
    let occupied = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
    if occupied {
        return Err(Error::invalid(format!(
            "`{}` already exists and is not empty; choose another folder with --dir, or \
             remove it",
            dir.display()
        ))
        .with("dir", dir.display().to_string()));
    }
    let mut written = Vec::new();
    for (rel, text, is_script) in project(name, lang) {
        let path = dir.join(&rel);
        let fail = |e: std::io::Error| {
            Error::new(
                Code::StorageError,
                format!("cannot write `{}`: {e}", path.display()),
            )
            .with("file", path.display().to_string())
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(fail)?;
        }
        std::fs::write(&path, text).map_err(fail)?;
        if is_script {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(fail)?;
        }
        written.push(path);
    }
    Ok(written)
}

/// What to do next, for the human output of `plugins new`.
pub fn next_steps(name: &str, lang: Lang, dir: &Path) -> String {
    format!(
        "Next:\n  cd {}\n  {}                # the plugin's own tests\n  \
         cross-domain-sync plugins test .   # builds it, shows what each sample item becomes\n  \
         cross-domain-sync plugins add {name}.wasm",
        dir.display(),
        lang.test_command()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_project_has_its_name_filled_in_and_the_interface() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            let files = project("recipes", lang);
            assert!(
                files
                    .iter()
                    .any(|(p, t, _)| p == "wit/entity.wit" && t == WIT)
            );
            let text_of = |path: &str| &files.iter().find(|(p, _, _)| p == path).unwrap().1;
            for f in lang.files().iter().chain(COMMON) {
                if f.template {
                    assert!(
                        !text_of(f.path).contains("{{"),
                        "{lang:?} {} unfilled",
                        f.path
                    );
                } else {
                    assert_eq!(text_of(f.path), f.text, "{} is copied exactly", f.path);
                }
            }
            let readme = &files.iter().find(|(p, _, _)| p == "README.md").unwrap().1;
            assert!(readme.contains("plugins add recipes.wasm"), "{readme}");
            assert!(files.iter().any(|(p, _, s)| p == "build.sh" && *s));
        }
        let rust = project("my-type", Lang::Rust);
        let build = &rust.iter().find(|(p, _, _)| p == "build.sh").unwrap().1;
        assert!(
            build.contains("release/my_type_plugin.wasm\" my-type.wasm"),
            "{build}"
        );
    }

    #[test]
    fn every_source_file_of_the_sdk_crates_is_vendored() {
        // A file added to one of these crates must be added to RUST too, or a
        // new Rust project will not build.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
        for (krate, vendored) in [("sdk", "sdk"), ("json", "json"), ("policy", "policy")] {
            for e in std::fs::read_dir(root.join(krate).join("src")).unwrap() {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                let path = format!("vendor/{vendored}/src/{name}");
                assert!(
                    RUST.iter().any(|f| f.path == path),
                    "{path} is not vendored"
                );
            }
        }
    }

    #[test]
    fn a_project_is_not_written_over_a_folder_in_use() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let err = new_project("recipes", Lang::Js, dir.path()).unwrap_err();
        assert_eq!(err.code, Code::InvalidArgument);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let err = new_project("contacts", Lang::Js, &dir.path().join("new")).unwrap_err();
        assert!(err.message.contains("built in"), "{}", err.message);
        let err = new_project("Bad Name", Lang::Js, &dir.path().join("new")).unwrap_err();
        assert!(err.message.contains("a-z"), "{}", err.message);
    }
}
