//! Builds the five built-in entity plugins as WebAssembly components and
//! embeds them in the host, so that they ship with the binary and nobody builds
//! them by hand.
//!
//! This runs a nested `cargo build` for `wasm32-unknown-unknown` (linked by
//! `wasm-component-ld` into components that import nothing) in its own target
//! folder. No crate does this for component guests, hence the few lines here.
//! `CDS_PREBUILT_PLUGINS` may name a folder holding `cds_plugin_<type>.wasm`
//! files to embed instead (for builds without the wasm target).

use sha2::{Digest, Sha256};
use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const BUILTINS: [&str; 5] = [
    "contacts",
    "calendar",
    "tasks",
    "documents",
    "communications",
];
const TARGET: &str = "wasm32-unknown-unknown";
const PROFILE: &str = "wasm-plugin";

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("host/ has a parent").to_path_buf();
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    for watched in ["plugins", "wit", "Cargo.lock", ".cargo/config.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=CDS_PREBUILT_PLUGINS");

    let wasm_dir = match env::var_os("CDS_PREBUILT_PLUGINS") {
        Some(dir) => PathBuf::from(dir),
        None => build_plugins(&root),
    };

    let mut code = String::from("pub const BUILTINS: &[(&str, &[u8], &str)] = &[\n");
    for name in BUILTINS {
        let src = wasm_dir.join(format!("cds_plugin_{name}.wasm"));
        let bytes = std::fs::read(&src)
            .unwrap_or_else(|e| panic!("built-in plugin {} is missing: {e}", src.display()));
        let dest = out.join(format!("{name}.wasm"));
        std::fs::write(&dest, &bytes).expect("write plugin into OUT_DIR");
        let digest = hex::encode(Sha256::digest(&bytes));
        writeln!(
            code,
            "    ({name:?}, include_bytes!({:?}), {digest:?}),",
            dest.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    std::fs::write(out.join("builtin_plugins.rs"), code).expect("write builtin_plugins.rs");
}

fn build_plugins(root: &Path) -> PathBuf {
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| if d.is_absolute() { d } else { root.join(d) })
        .unwrap_or_else(|| root.join("target"))
        .join("wasm-plugins");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args([
            "build",
            "--profile",
            PROFILE,
            "--target",
            TARGET,
            "--target-dir",
        ])
        .arg(&target_dir);
    for name in BUILTINS {
        cmd.args(["-p", &format!("cds-plugin-{name}")]);
    }
    // The outer build's settings are for the host, not for the guests.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        let outer = key.starts_with("CARGO_")
            && !key.starts_with("CARGO_HOME")
            && !key.starts_with("CARGO_NET")
            && !key.starts_with("CARGO_REGISTR")
            && !key.starts_with("CARGO_HTTP");
        if outer
            || matches!(
                key.as_str(),
                "RUSTFLAGS" | "RUSTC_WRAPPER" | "RUSTC_WORKSPACE_WRAPPER" | "RUSTDOCFLAGS"
            )
        {
            cmd.env_remove(&key);
        }
    }
    let output = cmd
        .output()
        .expect("run cargo to build the built-in plugins");
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("target may not be installed")
            || stderr.contains("can't find crate for `core`")
        {
            "\n\nThe wasm target is missing: run `rustup target add wasm32-unknown-unknown`."
        } else {
            ""
        };
        panic!("building the built-in plugins failed:\n{stderr}{hint}");
    }
    target_dir.join(TARGET).join(PROFILE)
}
