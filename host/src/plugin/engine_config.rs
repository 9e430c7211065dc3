//! The wasmtime engine's settings, in one file for the host and for its
//! build script (`host/build.rs` includes it with `#[path]`), which
//! precompiles the built-in plugins with exactly these settings: a
//! precompiled artifact loads only into an engine configured alike.

/// The product's settings (`Runtime::new`, and the build script's
/// precompilation): epoch interruption on, fuel metering off.
pub const FUEL: bool = false;
pub const EPOCH: bool = true;

/// The engine configuration. The product runs with [`EPOCH`] and [`FUEL`];
/// the other combinations exist to measure them.
pub fn config(fuel: bool, epoch: bool) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.consume_fuel(fuel);
    config.epoch_interruption(epoch);
    config
}

/// The key of an engine's compiled artifacts: the wasmtime release and
/// the engine's compatibility hash (its settings and the machine's CPU
/// features). Artifacts under another key are compiled anew.
pub fn engine_key(engine: &wasmtime::Engine) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("wasmtime48-{:016x}", h.finish())
}
