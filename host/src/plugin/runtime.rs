//! The WebAssembly sandbox: one wasmtime engine, the per-call limits, the
//! on-disk cache of compiled components, and typed calls into a plugin.
//!
//! Architecture invariant: a plugin gets nothing ambient. A component may
//! import nothing (the built-ins) or the WASI 0.2 interfaces of the deny-all
//! world in `wasi.rs` (a plugin built the standard way); any other import is
//! refused at load, naming it. Each call runs in a fresh store (and, for a
//! WASI plugin, a fresh deny-all context) with a memory cap, a CPU budget and
//! a wall-clock limit, both enforced at the engine's epoch deadline; a trap
//! poisons only that store, never the host.

use super::wasi::HasSandbox;
use crate::error::{Code, Error, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, ResourceLimiter, Store, Trap};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "entity-plugin",
});

/// The bindings of the previous interface version, still accepted: its
/// plugins get `map-batch` then `filter-batch` where newer ones get
/// `cross-batch`.
mod v1_0 {
    wasmtime::component::bindgen!({
        path: "../wit/archive/entity-1.0.0.wit",
        world: "entity-plugin",
    });
    pub use exports::gold::entity::plugin::{Descriptor, FilterRequest, MapRequest, Rename};
}

pub use exports::gold::entity::plugin::{
    CrossRequest, CrossResult, Crossed, Descriptor, Outcome, Rename,
};

/// A plugin's entry points compiled into the host (`plugin/native.rs`,
/// benchmarks only): the backend the sandbox is measured against.
#[cfg(feature = "native-plugins")]
pub struct NativePlugin {
    pub name: &'static str,
    pub describe: fn() -> Descriptor,
    pub cross: fn(&CrossRequest) -> Result<CrossResult, String>,
}

/// The WIT package every plugin exports.
pub const INTERFACE_PACKAGE: &str = "gold:entity";
/// The interface versions this host accepts (exactly these), newest first.
pub const ACCEPTED_INTERFACE_VERSIONS: &[&str] = &["1.1.0", "1.0.0"];

/// How often the epoch ticks: each tick, a running call's CPU time and wall
/// time are checked against its limits.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Per-call limits of the sandbox.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Cap on the guest's linear memory, bytes.
    pub memory_bytes: usize,
    /// CPU time per call (the calling thread's): a fixed part...
    pub cpu_base: Duration,
    /// ...plus this much per item in the batch.
    pub cpu_per_item: Duration,
    /// Wall-clock limit per call.
    pub wall: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 256 << 20,
            // A built-in plugin spends 10-50 µs of CPU on an item; these
            // leave a slow or busy machine more than 20 times that.
            cpu_base: Duration::from_secs(1),
            cpu_per_item: Duration::from_millis(1),
            wall: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// The CPU budget of a call with `items` items.
    pub fn cpu_budget(&self, items: usize) -> Duration {
        self.cpu_base.saturating_add(
            self.cpu_per_item
                .saturating_mul(items.try_into().unwrap_or(u32::MAX)),
        )
    }
}

/// Why the epoch callback stopped a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Cpu,
    Wall,
}

/// A plugin's own error (the `err` of the WIT function's `result`), carried
/// through [`Runtime::call`] so that it is told apart from the limits' causes
/// and from traps: a language runtime that meets the memory cap may report
/// it as an error of its own ("out of memory") rather than trap.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The WIT function's `err` as a [`Refused`] error of the call.
fn refused<T>(r: std::result::Result<T, String>) -> wasmtime::Result<T> {
    r.map_err(|msg| wasmtime::Error::new(Refused(msg)))
}

/// What a plugin refused to do, by the call that refused.
fn refusal(what: &str) -> &'static str {
    match what {
        "map-batch" => "map the batch",
        "filter-batch" => "filter the batch",
        _ => "map and filter the batch",
    }
}

/// The store's data: the limiter, which remembers why it refused growth,
/// and the call's CPU and wall-clock accounts, which the epoch callback
/// checks.
struct HostState {
    memory_cap: usize,
    memory_refused: bool,
    /// The calling thread's CPU time when the call began.
    cpu_start: Duration,
    cpu_budget: Duration,
    wall_start: Instant,
    wall: Duration,
    stopped: Option<Stop>,
    /// The deny-all WASI context of a plugin that imports WASI; `None` for
    /// one that imports nothing (which cannot call into WASI at all).
    wasi: Option<Box<super::wasi::Sandbox>>,
}

impl wasmtime_wasi::WasiView for HostState {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        self.sandbox().view()
    }
}

impl super::wasi::HasSandbox for HostState {
    fn sandbox(&mut self) -> &mut super::wasi::Sandbox {
        self.wasi
            .get_or_insert_with(|| Box::new(super::wasi::Sandbox::deny_all()))
    }
}

/// The CPU time the calling thread has used so far.
///
/// By hand, because std has no thread CPU clock; this is one `libc` call
/// (the `cpu-time` crate wraps the same call and nothing more).
fn thread_cpu_time() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for clock_gettime to fill; the thread
    // CPU-time clock exists on every Linux and BSD this host targets.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.memory_refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }

    fn instances(&self) -> usize {
        64
    }
    fn memories(&self) -> usize {
        8
    }
    fn tables(&self) -> usize {
        64
    }
}

/// Ticks the engine's epoch while the runtime lives.
struct Ticker {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            // Wake it from its tick so that dropping the runtime (at every
            // process exit) does not wait out up to a tick.
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

/// The sandbox: an engine configured for epoch interruption, and the
/// compiled component cache.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    limits: Limits,
    interruption: Interruption,
    /// `None`: no cache (none asked for, or the folder cannot be trusted).
    cache: Option<super::cache::Cache>,
    engine_key: String,
    _ticker: Ticker,
}

/// A compiled, checked plugin ready to be instantiated per call.
#[derive(Clone)]
pub struct Instance {
    /// Name used in messages: the entity type once known, else the file name.
    pub name: String,
    backend: Backend,
    /// Where its compiled form came from.
    pub compiled: Compiled,
    /// Whether it imports WASI (and so gets a deny-all context per call).
    pub wasi: bool,
}

/// Where a plugin's compiled form came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compiled {
    /// Shipped in the binary (a built-in plugin, precompiled by the build).
    Shipped,
    /// Loaded from the user's cache.
    Cached,
    /// Compiled by this run (and cached, where there is a cache).
    Now,
}

/// A component's compiled form made by the build for an engine key (a
/// built-in plugin's, `host/build.rs`).
#[derive(Clone, Copy)]
pub struct Precompiled<'a> {
    pub engine_key: &'a str,
    pub artifact: &'a [u8],
}

#[derive(Clone)]
enum Backend {
    /// `gold:entity@1.1.0`.
    Wasm(EntityPluginPre<HostState>),
    /// `gold:entity@1.0.0`: no `cross-batch`.
    Wasm10(v1_0::EntityPluginPre<HostState>),
    /// The same plugin code compiled into the host (benchmarks only).
    #[cfg(feature = "native-plugins")]
    Native(&'static NativePlugin),
}

impl Instance {
    /// The interface version the plugin exports.
    pub fn interface_version(&self) -> &'static str {
        match self.backend {
            Backend::Wasm10(_) => "1.0.0",
            _ => ACCEPTED_INTERFACE_VERSIONS[0],
        }
    }

    /// A built-in plugin's code running natively, unsandboxed: only for
    /// measuring what the sandbox costs (`--features native-plugins`,
    /// `CDS_NATIVE_PLUGINS=1`).
    #[cfg(feature = "native-plugins")]
    pub fn native(p: &'static NativePlugin) -> Instance {
        Instance {
            name: p.name.to_string(),
            backend: Backend::Native(p),
            compiled: Compiled::Shipped,
            wasi: false,
        }
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Which interruption mechanisms the engine compiles in. The product runs
/// on epochs alone (they enforce both the CPU budget and the wall-clock
/// limit); switching them off, or fuel metering on (with no limit), exists to
/// measure what each costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interruption {
    pub fuel: bool,
    pub epoch: bool,
}

impl Runtime {
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> Result<Runtime> {
        Self::with_interruption(
            limits,
            cache_dir,
            // Fuel would make the CPU budget deterministic, but its metering
            // cost a quarter of the plugins' time (BENCHMARKS.md); the
            // contract asks for fuel or an epoch deadline.
            Interruption {
                fuel: super::engine_config::FUEL,
                epoch: super::engine_config::EPOCH,
            },
        )
    }

    /// A runtime with chosen interruption mechanisms (benchmarks only: without
    /// epochs a plugin's CPU and wall-clock use is unbounded, and fuel, when
    /// on, is given without limit).
    pub fn with_interruption(
        limits: Limits,
        cache_dir: Option<PathBuf>,
        interruption: Interruption,
    ) -> Result<Runtime> {
        let config = super::engine_config::config(interruption.fuel, interruption.epoch);
        let engine = Engine::new(&config)
            .map_err(|e| Error::new(Code::PluginError, format!("cannot start wasmtime: {e}")))?;
        let mut linker = Linker::new(&engine);
        super::wasi::add_to_linker(&mut linker).map_err(|e| {
            Error::new(
                Code::PluginError,
                format!("cannot link the plugins' WASI world: {e:#}"),
            )
        })?;
        let engine_key = super::engine_config::engine_key(&engine);
        let stop = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.clone();
        let ticker_stop = stop.clone();
        let handle = std::thread::Builder::new()
            .name("cds-epoch".into())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    // Parked rather than asleep, so that Drop can wake it; a
                    // spurious wake-up does not shorten the tick.
                    let due = std::time::Instant::now() + EPOCH_TICK;
                    loop {
                        let now = std::time::Instant::now();
                        if now >= due || ticker_stop.load(Ordering::Relaxed) {
                            break;
                        }
                        std::thread::park_timeout(due - now);
                    }
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| {
                Error::new(Code::PluginError, format!("cannot start epoch ticker: {e}"))
            })?;
        let cache = cache_dir.and_then(|dir| match super::cache::Cache::open(&dir) {
            Ok(c) => Some(c),
            Err(why) => {
                tracing::warn!(
                    "not caching compiled plugins in `{}`: {why}; each run compiles them",
                    dir.display()
                );
                None
            }
        });
        Ok(Runtime {
            engine,
            linker,
            limits,
            interruption,
            cache,
            engine_key,
            _ticker: Ticker {
                stop,
                handle: Some(handle),
            },
        })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The cache entry of the compiled form of a component with this digest.
    fn cache_name(&self, digest: &str) -> String {
        format!("{digest}-{}.cwasm", self.engine_key)
    }

    /// Where the compiled form of a component with this digest is cached.
    pub fn cache_path(&self, digest: &str) -> Option<PathBuf> {
        self.cache
            .as_ref()
            .map(|c| c.path(&self.cache_name(digest)))
    }

    /// Compiles (or loads from the cache, or from `shipped`) and checks a
    /// component: no imports but the deny-all WASI world's, the plugin
    /// interface at an accepted version.
    pub fn load(
        &self,
        name: &str,
        bytes: &[u8],
        digest: &str,
        shipped: Option<Precompiled<'_>>,
    ) -> Result<Instance> {
        let (component, compiled) = match self.load_shipped(name, shipped) {
            Some(c) => (c, Compiled::Shipped),
            None => self.compile_cached(name, bytes, digest)?,
        };
        let ty = component.component_type();
        let imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let refused: Vec<String> = imports
            .iter()
            .filter(|i| !super::wasi::provides(i))
            .cloned()
            .collect();
        if !refused.is_empty() {
            return Err(Error::plugin(
                name,
                format!(
                    "imports {}, which this host does not provide. A plugin may import \
                     nothing, or only the WASI 0.2 interfaces a language runtime needs \
                     (wasi:cli, wasi:io, wasi:clocks, wasi:random, wasi:filesystem, \
                     wasi:sockets), through which it gets no files, network, environment \
                     or real time (docs/SECURITY.md). Build it without that dependency \
                     (JavaScript: componentize-js `-d http fetch-event`)",
                    refused
                        .iter()
                        .map(|i| format!("`{i}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .with("imports", refused));
        }
        let wasi = !imports.is_empty();
        let prefix = format!("{INTERFACE_PACKAGE}/plugin@");
        let exported: Vec<String> = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_string())
            .filter(|n| n.starts_with(INTERFACE_PACKAGE))
            .collect();
        let Some(version) = exported.iter().find_map(|n| n.strip_prefix(&prefix)) else {
            return Err(Error::plugin(
                name,
                format!(
                    "does not export the interface `{INTERFACE_PACKAGE}/plugin`; it is not a \
                     cross-domain-sync entity plugin (exports: {})",
                    exported.join(", ")
                ),
            ));
        };
        if !ACCEPTED_INTERFACE_VERSIONS.contains(&version) {
            return Err(Error::plugin(
                name,
                format!(
                    "implements interface {INTERFACE_PACKAGE}@{version}, but this host accepts \
                     {} only; rebuild the plugin against a matching cds-plugin-sdk",
                    accepted_list()
                ),
            )
            .with("interfaceVersion", version));
        }
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| Error::plugin(name, format!("cannot be prepared: {e:#}")))?;
        let backend = if version == "1.0.0" {
            v1_0::EntityPluginPre::new(pre).map(Backend::Wasm10)
        } else {
            EntityPluginPre::new(pre).map(Backend::Wasm)
        }
        .map_err(|e| {
            Error::plugin(
                name,
                format!("does not match interface {INTERFACE_PACKAGE}@{version}: {e:#}"),
            )
        })?;
        Ok(Instance {
            name: name.to_string(),
            backend,
            compiled,
            wasi,
        })
    }

    /// The compiled form the binary ships, when it is for this engine.
    fn load_shipped(&self, name: &str, shipped: Option<Precompiled<'_>>) -> Option<Component> {
        let p = shipped.filter(|p| !p.artifact.is_empty())?;
        if p.engine_key != self.engine_key {
            tracing::debug!(
                plugin = name,
                "the shipped compiled form is for engine {}, this one is {}; compiling",
                p.engine_key,
                self.engine_key
            );
            return None;
        }
        // SAFETY: the artifact is part of this binary, made by its build
        // from the component it ships beside it (host/build.rs), as trusted
        // as the host's own code; wasmtime re-checks the engine settings.
        match unsafe { Component::deserialize(&self.engine, p.artifact) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::debug!(plugin = name, "the shipped compiled form is refused: {e:#}");
                None
            }
        }
    }

    fn compile_cached(
        &self,
        name: &str,
        bytes: &[u8],
        digest: &str,
    ) -> Result<(Component, Compiled)> {
        // One process compiles a given component at a time; the others wait
        // and then load what it cached.
        let _guard = self.cache_path(digest).and_then(|p| {
            crate::store::lock_file(&p.with_extension("lock"), Duration::from_secs(120)).ok()
        });
        let entry = self.cache_name(digest);
        if let Some(cache) = &self.cache {
            match cache.get(&entry) {
                Ok(None) => {}
                Ok(Some(artifact)) => {
                    // SAFETY: the artifact carries this user's keyed digest
                    // over its entry name (the source's digest and the
                    // engine's compatibility hash) and its bytes, so it is one
                    // this host serialised itself for exactly this source and
                    // engine (see `cache.rs`); wasmtime also re-checks the
                    // engine settings and refuses a mismatched artifact.
                    match unsafe { Component::deserialize(&self.engine, &artifact) } {
                        Ok(c) => return Ok((c, Compiled::Cached)),
                        Err(e) => {
                            tracing::warn!(
                                plugin = name,
                                "cached component refused, recompiling: {e:#}"
                            );
                        }
                    }
                }
                Err(why) => tracing::warn!(
                    plugin = name,
                    "the cached compiled plugin `{}` {why}; it is not loaded, recompiling",
                    cache.path(&entry).display()
                ),
            }
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| {
            Error::plugin(name, format!("is not a valid WebAssembly component: {e:#}"))
        })?;
        if let Some(cache) = &self.cache {
            match component.serialize() {
                Ok(art) => {
                    if let Err(e) = cache.put(&entry, &art) {
                        tracing::warn!(plugin = name, "cannot cache compiled plugin: {e}");
                    }
                }
                Err(e) => tracing::warn!(plugin = name, "cannot serialise compiled plugin: {e:#}"),
            }
        }
        Ok((component, Compiled::Now))
    }

    fn store(&self, items: usize, wasi: bool) -> Result<Store<HostState>> {
        let mut store = Store::new(
            &self.engine,
            HostState {
                memory_cap: self.limits.memory_bytes,
                memory_refused: false,
                cpu_start: thread_cpu_time(),
                cpu_budget: self.limits.cpu_budget(items),
                wall_start: Instant::now(),
                wall: self.limits.wall,
                stopped: None,
                wasi: wasi.then(|| Box::new(super::wasi::Sandbox::deny_all())),
            },
        );
        store.limiter(|s| s as &mut dyn ResourceLimiter);
        if self.interruption.fuel {
            store
                .set_fuel(u64::MAX)
                .map_err(|e| Error::new(Code::PluginError, format!("cannot set fuel: {e}")))?;
        }
        if self.interruption.epoch {
            // At every tick: the calling thread's CPU time since the call
            // began (the guest runs on it) against the budget, and the wall
            // time against the limit. A tick costs a clock read.
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(|mut ctx| {
                let s = ctx.data_mut();
                s.stopped = if thread_cpu_time().saturating_sub(s.cpu_start) > s.cpu_budget {
                    Some(Stop::Cpu)
                } else if s.wall_start.elapsed() > s.wall {
                    Some(Stop::Wall)
                } else {
                    None
                };
                Ok(match s.stopped {
                    Some(_) => wasmtime::UpdateDeadline::Interrupt,
                    None => wasmtime::UpdateDeadline::Continue(1),
                })
            });
        }
        Ok(store)
    }

    /// Runs `f` (which instantiates `plugin` in the store it is given and
    /// calls it) in a fresh store under the limits, turning every failure into
    /// a `PLUGIN_ERROR` that names the plugin and the cause.
    fn call<T>(
        &self,
        plugin: &Instance,
        what: &str,
        items: usize,
        f: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<T> {
        let mut store = self.store(items, plugin.wasi)?;
        let result = f(&mut store);
        if let Some(sandbox) = &store.data().wasi {
            log_output(&plugin.name, what, &sandbox.output(), result.is_err());
        }
        result.map_err(|e| {
            let said = e.downcast_ref::<Refused>();
            let cause = if store.data().memory_refused {
                format!(
                    "exceeded its memory limit of {} MiB in `{what}`{}",
                    self.limits.memory_bytes >> 20,
                    said.map(|m| format!(" (it then said: {m})"))
                        .unwrap_or_default()
                )
            } else if let Some(msg) = said {
                // The plugin's own answer: no trap, no limit, nothing to see
                // on its stdout that its message does not say.
                return Error::plugin(&plugin.name, format!("refused to {}: {msg}", refusal(what)));
            } else {
                match (e.downcast_ref::<Trap>(), store.data().stopped) {
                    (Some(Trap::Interrupt), Some(Stop::Cpu)) => format!(
                        "ran out of its CPU budget in `{what}` ({} ms of CPU for {items} items)",
                        self.limits.cpu_budget(items).as_millis()
                    ),
                    (Some(Trap::Interrupt), _) => format!(
                        "ran past its wall-clock limit of {} ms in `{what}`",
                        self.limits.wall.as_millis()
                    ),
                    (Some(trap), _) => format!("trapped in `{what}`: {trap}"),
                    (None, _) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                        Some(exit) => format!(
                            "exited with status {} in `{what}`; a plugin returns its result, \
                             it does not exit",
                            exit.0
                        ),
                        None => format!("failed in `{what}`: {e:#}"),
                    },
                }
            };
            let hint = if plugin.wasi {
                "; run with -vv to see what it wrote to stdout and stderr"
            } else {
                ""
            };
            Error::plugin(&plugin.name, format!("{cause}{hint}"))
        })
    }

    pub fn describe(&self, plugin: &Instance) -> Result<Descriptor> {
        match &plugin.backend {
            Backend::Wasm(pre) => self.call(plugin, "describe", 0, |s| {
                pre.instantiate(&mut *s)?
                    .gold_entity_plugin()
                    .call_describe(s)
            }),
            Backend::Wasm10(pre) => self
                .call(plugin, "describe", 0, |s| {
                    pre.instantiate(&mut *s)?
                        .gold_entity_plugin()
                        .call_describe(s)
                })
                .map(|d: v1_0::Descriptor| Descriptor {
                    entity_type: d.entity_type,
                    plugin_version: d.plugin_version,
                    interface_version: d.interface_version,
                    item_schema: d.item_schema,
                    id_field: d.id_field,
                }),
            #[cfg(feature = "native-plugins")]
            Backend::Native(p) => Ok((p.describe)()),
        }
    }

    /// `cross-batch`: map and, given a policy, filter in one call, with the
    /// calls that produced the result (for the checker's errors). A plugin
    /// of interface 1.0 has no `cross-batch`: its `map-batch` and
    /// `filter-batch` are adapted into that shape here ([`Self::cross_1_0`]),
    /// so that the host has one checker of what plugins return.
    /// `ids` are the ids of the items sent, in order, under `id_field`.
    pub fn cross_batch(
        &self,
        plugin: &Instance,
        req: &CrossRequest,
        ids: &[&str],
        id_field: &str,
    ) -> Result<(CrossResult, Calls)> {
        let result = match &plugin.backend {
            Backend::Wasm(pre) => self.call(plugin, "cross-batch", req.items.len(), |s| {
                refused(
                    pre.instantiate(&mut *s)?
                        .gold_entity_plugin()
                        .call_cross_batch(s, req)?,
                )
            })?,
            Backend::Wasm10(pre) => {
                return self
                    .cross_1_0(plugin, pre, req, (ids, id_field))
                    .map(|r| (r, Calls::V1_0));
            }
            #[cfg(feature = "native-plugins")]
            Backend::Native(p) => (p.cross)(req).map_err(|msg| {
                Error::plugin(
                    &plugin.name,
                    format!("refused to {}: {msg}", refusal("cross-batch")),
                )
            })?,
        };
        Ok((result, Calls::CROSS))
    }

    /// Interface 1.0's `map-batch`, then (given a policy) `filter-batch`,
    /// as one `cross-batch` result. Only what the adapting itself needs is
    /// checked here: as many items back from `map-batch` as were sent, each
    /// well-formed JSON (before `filter-batch` is given them), and each id
    /// `filter-batch` names accounted for exactly once. Everything else (ids
    /// kept, outcomes, the policy) is the one checker's, in `plugin/mod.rs`.
    fn cross_1_0(
        &self,
        plugin: &Instance,
        pre: &v1_0::EntityPluginPre<HostState>,
        req: &CrossRequest,
        (ids, id_field): (&[&str], &str),
    ) -> Result<CrossResult> {
        let name = plugin.name.as_str();
        // Re-typed for the 1.0 bindings: a copy of at most one batch
        // (BATCH_BYTES), only for plugins built against 1.0.
        let map_req = v1_0::MapRequest {
            from_domain: req.from_domain.clone(),
            to_domain: req.to_domain.clone(),
            from_fields: renames_1_0(&req.from_fields),
            to_fields: renames_1_0(&req.to_fields),
            items: req.items.clone(),
        };
        let mapped = self.call(plugin, "map-batch", map_req.items.len(), |s| {
            refused(
                pre.instantiate(&mut *s)?
                    .gold_entity_plugin()
                    .call_map_batch(s, &map_req)?,
            )
        })?;
        if mapped.len() != req.items.len() {
            return Err(Error::plugin(
                name,
                format!(
                    "returned {} items from `map-batch` for {} given; a plugin may not drop or \
                     invent items",
                    mapped.len(),
                    req.items.len()
                ),
            ));
        }
        for (i, (m, sent)) in mapped.iter().zip(&req.items).enumerate() {
            if m != sent && serde_json::from_str::<serde::de::IgnoredAny>(m).is_err() {
                return Err(Error::plugin(
                    name,
                    format!("returned malformed JSON for item {i} from `map-batch`"),
                )
                .with("index", i));
            }
        }
        // The text as sent back means "the item itself", as in 1.1.
        let as_mapped = |i: usize| (mapped[i] != req.items[i]).then(|| mapped[i].clone());
        let Some(policy) = &req.policy else {
            let items = (0..mapped.len())
                .map(|i| Crossed {
                    mapped: as_mapped(i),
                    outcome: Outcome::Kept,
                })
                .collect();
            return Ok(CrossResult {
                items,
                redacted_fields: 0,
            });
        };
        let filter_req = v1_0::FilterRequest {
            from_domain: req.from_domain.clone(),
            to_domain: req.to_domain.clone(),
            policy: policy.clone(),
            items: mapped.clone(),
        };
        let filtered = self.call(plugin, "filter-batch", filter_req.items.len(), |s| {
            refused(
                pre.instantiate(&mut *s)?
                    .gold_entity_plugin()
                    .call_filter_batch(s, &filter_req)?,
            )
        })?;
        let outcomes = outcomes_1_0(
            name,
            &mapped,
            filtered.kept,
            &filtered.withheld,
            (ids, id_field),
        )?;
        Ok(CrossResult {
            items: outcomes
                .into_iter()
                .enumerate()
                .map(|(i, outcome)| Crossed {
                    mapped: as_mapped(i),
                    outcome,
                })
                .collect(),
            redacted_fields: filtered.redacted_fields,
        })
    }
}

/// Each item's outcome from interface 1.0's `filter-batch` result: every id
/// is either kept (in order) or withheld, exactly once; a kept item whose
/// text is the mapped text is `Kept`, else `Changed`.
fn outcomes_1_0(
    name: &str,
    mapped: &[String],
    kept: Vec<String>,
    withheld: &[String],
    (ids, id_field): (&[&str], &str),
) -> Result<Vec<Outcome>> {
    let withheld_set: std::collections::HashSet<&str> =
        withheld.iter().map(String::as_str).collect();
    if withheld_set.len() != withheld.len() {
        return Err(Error::plugin(
            name,
            "listed an id twice as withheld in `filter-batch`",
        ));
    }
    if let Some(bad) = withheld.iter().find(|w| !ids.contains(&w.as_str())) {
        return Err(Error::plugin(
            name,
            format!("withheld an id it was not given in `filter-batch`: `{bad}`"),
        ));
    }
    let mut kept = kept.into_iter();
    let mut outcomes = Vec::with_capacity(mapped.len());
    for (i, id) in ids.iter().enumerate() {
        if withheld_set.contains(id) {
            outcomes.push(Outcome::Withheld);
            continue;
        }
        let Some(k) = kept.next() else {
            return Err(Error::plugin(
                name,
                format!("dropped item `{id}` in `filter-batch`: it was neither kept nor withheld"),
            )
            .with("id", *id));
        };
        outcomes.push(if k == mapped[i] {
            Outcome::Kept
        } else {
            Outcome::Changed(k)
        });
    }
    if let Some(extra) = kept.next() {
        let extra = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&extra)
            .ok()
            .and_then(|m| cds_policy::item_id(&m, id_field).map(String::from))
            .unwrap_or_default();
        return Err(Error::plugin(
            name,
            format!("returned an item it was not given in `filter-batch`: `{extra}`"),
        ));
    }
    Ok(outcomes)
}

/// The calls a [`CrossResult`] came from, as errors name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calls {
    /// The call that mapped the items.
    pub mapped: &'static str,
    /// The call that filtered them.
    pub filtered: &'static str,
}

impl Calls {
    /// Interface 1.1 and later: one call.
    pub const CROSS: Calls = Calls {
        mapped: "cross-batch",
        filtered: "cross-batch",
    };
    /// Interface 1.0, adapted.
    pub const V1_0: Calls = Calls {
        mapped: "map-batch",
        filtered: "filter-batch",
    };
}

fn renames_1_0(r: &[Rename]) -> Vec<v1_0::Rename> {
    r.iter()
        .map(|r| v1_0::Rename {
            canonical: r.canonical.clone(),
            local: r.local.clone(),
        })
        .collect()
}

/// Logs what a WASI plugin wrote in one call. The text is the plugin's own
/// and may quote the items it was given, private fields included, so it is
/// logged only at `debug` (`-vv`, which a developer asks for); when the call
/// failed, a `warn` line says how much it wrote to stderr and where to see it.
fn log_output(plugin: &str, call: &str, out: &super::wasi::Output, failed: bool) {
    for (stream, w) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        if w.kept.is_empty() {
            continue;
        }
        let text = String::from_utf8_lossy(&w.kept);
        let text = text.trim_end();
        let written = w.kept.len() as u64 + w.dropped;
        let more = if w.dropped > 0 {
            format!(" ({} bytes more not kept)", w.dropped)
        } else {
            String::new()
        };
        if failed && stream == "stderr" {
            tracing::warn!(
                plugin,
                call,
                "plugin wrote {written} bytes to stderr before failing; run with -vv to see them"
            );
        }
        tracing::debug!(plugin, call, "plugin wrote to {stream}{more}:\n{text}");
    }
}

pub fn accepted_list() -> String {
    ACCEPTED_INTERFACE_VERSIONS
        .iter()
        .map(|v| format!("{INTERFACE_PACKAGE}@{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads a file for loading as a plugin, with its digest.
pub fn read_plugin_file(path: &Path) -> Result<(Vec<u8>, String)> {
    let bytes = std::fs::read(path).map_err(|e| Error::storage("reading plugin", path, e))?;
    let digest = sha256_hex(&bytes);
    Ok((bytes, digest))
}
