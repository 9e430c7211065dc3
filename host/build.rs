//! Builds the five built-in entity plugins as WebAssembly components and
//! embeds them in the host, so that they ship with the binary and nobody builds
//! them by hand; and embeds each one's compiled form too, precompiled with the
//! host's own engine settings (`src/plugin/engine_config.rs`), so that no sync
//! compiles a built-in plugin, not even a new user's first one (issue 17).
//! The host checks the compiled form's engine key before it loads it, and
//! compiles the component itself where the key differs (another CPU, or a
//! benchmark's other engine settings).
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

#[path = "src/plugin/engine_config.rs"]
mod engine_config;

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

    let wasm: Vec<Vec<u8>> = BUILTINS
        .iter()
        .map(|name| {
            let src = wasm_dir.join(format!("cds_plugin_{name}.wasm"));
            std::fs::read(&src)
                .unwrap_or_else(|e| panic!("built-in plugin {} is missing: {e}", src.display()))
        })
        .collect();
    let (key, compiled) = precompile(&wasm);
    let mut code = String::from(
        "/// (entity type, component, its SHA-256, its compiled form or empty)\n\
         pub const BUILTINS: &[(&str, &[u8], &str, &[u8])] = &[\n",
    );
    for ((name, bytes), compiled) in BUILTINS.iter().zip(&wasm).zip(&compiled) {
        let dest = out.join(format!("{name}.wasm"));
        std::fs::write(&dest, bytes).expect("write plugin into OUT_DIR");
        let cwasm = out.join(format!("{name}.cwasm"));
        std::fs::write(&cwasm, compiled).expect("write compiled plugin into OUT_DIR");
        let digest = hex::encode(Sha256::digest(bytes));
        writeln!(
            code,
            "    ({name:?}, include_bytes!({:?}), {digest:?}, include_bytes!({:?})),",
            dest.display().to_string(),
            cwasm.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    writeln!(
        code,
        "/// The engine key the compiled forms were made for.\npub const ENGINE_KEY: &str = {key:?};"
    )
    .unwrap();
    std::fs::write(out.join("builtin_plugins.rs"), code).expect("write builtin_plugins.rs");
}

/// Each component's compiled form, made with the product's engine settings
/// (epochs on, fuel off), and the engine key they are for. A cross build
/// (another target than this machine) embeds none: its engine would detect
/// another CPU.
fn precompile(wasm: &[Vec<u8>]) -> (String, Vec<Vec<u8>>) {
    let none = || (String::new(), wasm.iter().map(|_| Vec::new()).collect());
    if env::var("TARGET").ok() != env::var("HOST").ok() {
        return none();
    }
    let engine = wasmtime::Engine::new(&engine_config::config(
        engine_config::FUEL,
        engine_config::EPOCH,
    ))
    .expect("start wasmtime to precompile the built-in plugins");
    let compiled = std::thread::scope(|s| {
        let jobs: Vec<_> = wasm
            .iter()
            .map(|bytes| s.spawn(|| engine.precompile_component(bytes)))
            .collect();
        jobs.into_iter()
            .map(|j| {
                j.join()
                    .expect("precompiling thread")
                    .unwrap_or_else(|e| panic!("precompiling a built-in plugin failed: {e:#}"))
            })
            .collect()
    });
    (engine_config::engine_key(&engine), compiled)
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
            || stderr.contains("can't find crate for `std`")
        {
            "\n\nThe wasm target is missing: run `rustup target add wasm32-unknown-unknown`."
        } else {
            ""
        };
        // The hint goes first and last: cargo's output in between is long.
        panic!("building the built-in plugins failed{hint}\n\n{stderr}{hint}");
    }
    target_dir.join(TARGET).join(PROFILE)
}
