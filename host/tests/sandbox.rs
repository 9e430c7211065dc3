//! The sandbox against hostile plugins (built by this test suite from
//! tests/hostile/ and from WAT): each misbehaviour is stopped with its own
//! PLUGIN_ERROR message, and the next call on a good plugin still works.
//! The hostile plugin is built three ways: against interface 1.1, against
//! 1.0, and for wasm32-wasip2 (importing WASI, which gets the deny-all world
//! of `plugin/wasi.rs`: no files, environment, sockets or real time).

mod common;

use cds::Code;
use cds::plugin::runtime::{Compiled, Interruption, Limits, Runtime};
use cds::plugin::{Crossed, Registry, Shapes};
use cds_policy::{Policy, rule};
use serde_json::{Value, json};
use std::time::Duration;

/// How the hostile plugin is built: the interface version, and whether it
/// imports WASI.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Iface {
    /// 1.1: the host calls `cross-batch`.
    Cross,
    /// 1.0: the host calls `map-batch` then `filter-batch`.
    MapThenFilter,
    /// 1.1, built for wasm32-wasip2: it imports WASI.
    Wasip2,
}

const BOTH: [Iface; 2] = [Iface::Cross, Iface::MapThenFilter];
const EVERY_BUILD: [Iface; 3] = [Iface::Cross, Iface::MapThenFilter, Iface::Wasip2];

fn registry(limits: Limits) -> (Registry, tempfile::TempDir) {
    registry_for(limits, Iface::Cross)
}

fn registry_for(limits: Limits, iface: Iface) -> (Registry, tempfile::TempDir) {
    let rt = Runtime::new(limits, Some(common::cache_dir())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut reg = Registry::open(rt, dir.path()).unwrap();
    let wasm = match iface {
        Iface::Cross => common::hostile_plugin(),
        Iface::MapThenFilter => common::hostile_plugin_1_0(),
        Iface::Wasip2 => common::hostile_plugin_wasip2(),
    };
    let info = reg.add(&wasm, "2026-01-12T10:00:00Z").unwrap();
    let want = match iface {
        Iface::Cross | Iface::Wasip2 => "1.1.0",
        Iface::MapThenFilter => "1.0.0",
    };
    assert_eq!(info.interface_version, want);
    let instance = &reg.get("hostile").unwrap().instance;
    assert_eq!(instance.interface_version(), want);
    assert_eq!(instance.wasi, iface == Iface::Wasip2, "{iface:?}");
    (reg, dir)
}

/// `small()` with a CPU budget no memory bomb reaches first: filling 64 MiB
/// costs the guest's thread the kernel's zeroing of every page it touches,
/// 50-80 ms of CPU for the Python and JavaScript builds on a warm machine
/// and past 100 ms on a cold one, so under `small()` the CPU budget, not the
/// memory cap, could stop them.
fn small_memory() -> Limits {
    Limits {
        cpu_base: Duration::from_secs(10),
        ..small()
    }
}

fn small() -> Limits {
    Limits {
        memory_bytes: 64 << 20,
        cpu_base: Duration::from_millis(100),
        cpu_per_item: Duration::from_micros(100),
        wall: Duration::from_secs(20),
    }
}

fn policy() -> Policy {
    Policy {
        withhold: vec![rule("category", &["private"])],
        strip: vec!["secret".into()],
        ..Policy::default()
    }
}

/// Runs a batch through the hostile plugin with `mode` in its first item.
fn run(reg: &Registry, mode: &str) -> cds::Result<usize> {
    run_with(reg, mode, Some(&policy()))
}

fn run_with(reg: &Registry, mode: &str, policy: Option<&Policy>) -> cds::Result<usize> {
    let items = [
        json!({"id": "a", "lastModified": "t", "mode": mode, "secret": "s3cret"}),
        json!({"id": "b", "lastModified": "t", "category": "private"}),
        json!({"id": "c", "lastModified": "t"}),
    ];
    cross(reg, &items, policy).map(|(_, c)| {
        c.items
            .iter()
            .filter(|v| !matches!(v, cds::merge::View::Withheld))
            .count()
    })
}

/// Sends `items` through the hostile plugin, personal -> business; returns
/// them as items with what the plugin made of them.
fn cross(
    reg: &Registry,
    items: &[Value],
    policy: Option<&Policy>,
) -> cds::Result<(Vec<cds::merge::Item>, Crossed)> {
    let items: Vec<cds::merge::Item> = items
        .iter()
        .map(|v| v.as_object().unwrap().clone())
        .collect();
    let refs: Vec<_> = items.iter().collect();
    let none = Vec::new();
    let shapes = Shapes {
        from_domain: "personal",
        to_domain: "business",
        from_fields: &none,
        to_fields: &none,
    };
    let p = reg.get("hostile")?;
    let crossed = p.map_filter(&reg.runtime, &shapes, policy, &refs)?;
    Ok((items, crossed))
}

/// The hostile plugin in a harmless mode, and a built-in plugin, both work.
fn still_works(reg: &Registry) {
    assert_eq!(
        run(reg, "behave").unwrap(),
        2,
        "a good call after the failure"
    );
    let contacts = reg.get("contacts").unwrap();
    let item = json!({"id": "x", "name": "n", "lastModified": "2026-01-12T10:00:00Z"});
    let item = item.as_object().unwrap().clone();
    let none = Vec::new();
    let shapes = Shapes {
        from_domain: "business",
        to_domain: "personal",
        from_fields: &none,
        to_fields: &none,
    };
    let out = contacts
        .map_filter(&reg.runtime, &shapes, Some(&Policy::default()), &[&item])
        .unwrap();
    assert_eq!(out.items.len(), 1);
}

fn expect_plugin_error(reg: &Registry, mode: &str, needle: &str) {
    let err = run(reg, mode).expect_err(mode);
    assert_eq!(err.code, Code::PluginError, "{mode}: {err}");
    assert!(
        err.message.contains("plugin `hostile`") && err.message.contains(needle),
        "{mode}: expected `{needle}` in: {}",
        err.message
    );
    still_works(reg);
}

/// `mode` is refused by every build of the hostile plugin, with the message
/// each path gives (`cross` for the builds of interface 1.1).
fn refused_by_every_build(limits: Limits, mode: &str, cross: &str, map_then_filter: &str) {
    for iface in EVERY_BUILD {
        let (reg, _d) = registry_for(limits, iface);
        let needle = match iface {
            Iface::Cross | Iface::Wasip2 => cross,
            Iface::MapThenFilter => map_then_filter,
        };
        expect_plugin_error(&reg, mode, needle);
    }
}

#[test]
fn every_build_gives_the_same_result() {
    for iface in EVERY_BUILD {
        let (reg, _d) = registry_for(small(), iface);
        let (items, out) = cross(
            &reg,
            &[
                json!({"id": "a", "lastModified": "t", "secret": "s3cret", "x": 1}),
                json!({"id": "b", "lastModified": "t", "category": "private"}),
                json!({"id": "c", "lastModified": "t"}),
            ],
            Some(&policy()),
        )
        .unwrap();
        assert_eq!((out.withheld, out.redacted_fields), (1, 1), "{iface:?}");
        let got: Vec<Option<Value>> = out
            .items
            .iter()
            .zip(&items)
            .map(|(v, i)| v.resolve(i).map(|m| Value::Object(m.into_owned())))
            .collect();
        assert_eq!(
            got,
            [
                Some(json!({"id": "a", "lastModified": "t", "x": 1})),
                None,
                Some(json!({"id": "c", "lastModified": "t"})),
            ],
            "{iface:?}"
        );
        // Unchanged items are the input itself, through either path.
        assert!(matches!(out.items[2], cds::merge::View::Same), "{iface:?}");
    }
}

#[test]
fn infinite_loop_runs_out_of_its_cpu_budget() {
    refused_by_every_build(
        small(),
        "loop",
        "ran out of its CPU budget in `cross-batch`",
        "ran out of its CPU budget in `map-batch`",
    );
}

#[test]
fn infinite_loop_hits_the_wall_clock_limit() {
    // A CPU budget that would last for minutes; the wall-clock limit stops it.
    let (reg, _d) = registry(Limits {
        cpu_base: Duration::from_secs(600),
        wall: Duration::from_millis(300),
        ..small()
    });
    expect_plugin_error(&reg, "loop", "ran past its wall-clock limit of 300 ms");
}

#[test]
fn memory_bomb_hits_the_cap() {
    for iface in [Iface::Cross, Iface::Wasip2] {
        let (reg, _d) = registry_for(small_memory(), iface);
        expect_plugin_error(&reg, "membomb", "exceeded its memory limit of 64 MiB");
    }
}

#[test]
fn trap_is_reported() {
    refused_by_every_build(
        small(),
        "trap",
        "trapped in `cross-batch`",
        "trapped in `map-batch`",
    );
}

#[test]
fn malformed_output_is_refused() {
    refused_by_every_build(
        small(),
        "malformed",
        "returned malformed JSON for item 0 from `cross-batch`",
        "returned malformed JSON for item 0 from `map-batch`",
    );
}

#[test]
fn dropped_ids_are_refused() {
    refused_by_every_build(
        small(),
        "drop",
        "returned 2 items from `cross-batch` for 3 given",
        "dropped item `c` in `filter-batch`",
    );
}

#[test]
fn invented_ids_are_refused() {
    refused_by_every_build(
        small(),
        "invent",
        "returned 4 items from `cross-batch` for 3 given",
        "returned 4 items from `map-batch` for 3 given",
    );
}

#[test]
fn swapped_ids_are_refused() {
    refused_by_every_build(
        small(),
        "swap",
        "changed the id of item 0 in `cross-batch` from `a` to `b`",
        "changed the id of item 0 in `map-batch` from `a` to `b`",
    );
}

#[test]
fn renamed_ids_are_refused() {
    let needle = "from `a` to `someone-else`";
    refused_by_every_build(small(), "rename-id", needle, needle);
}

#[test]
fn a_filtered_item_must_keep_its_id() {
    let (reg, _d) = registry(small());
    expect_plugin_error(
        &reg,
        "reid",
        "returned `not-a` where `a` was expected in `cross-batch`",
    );
}

#[test]
fn without_a_policy_nothing_is_withheld() {
    let (reg, _d) = registry(small());
    // Withholding is always allowed under a policy...
    assert_eq!(run(&reg, "withhold-all").unwrap(), 0);
    // ...but a domain's own items, only reshaped, may not disappear.
    let err = run_with(&reg, "withhold-all", None).unwrap_err();
    assert!(
        err.message
            .contains("filtered item `a` in `cross-batch` although no policy was given"),
        "{}",
        err.message
    );
    still_works(&reg);
}

#[test]
fn a_leaking_filter_cannot_leak() {
    for iface in BOTH {
        let (reg, _d) = registry_for(small(), iface);
        let err = run(&reg, "leak").unwrap_err();
        assert_eq!(err.code, Code::PluginError);
        // The first leak in input order: item `a` still carries `secret`.
        assert!(
            err.message
                .contains("broke the personal->business policy on item `a`")
                && err.message.contains("field `secret` is stripped"),
            "{iface:?}: {}",
            err.message
        );
        assert!(
            !err.message.contains("s3cret"),
            "the message must not quote the value"
        );
        still_works(&reg);
    }
}

fn load_wat(reg: &Registry, name: &str, wat: &str) -> cds::Error {
    let bytes = wat::parse_str(wat).unwrap();
    let digest = cds::plugin::runtime::sha256_hex(&bytes);
    match reg.runtime.load(name, &bytes, &digest, None) {
        Ok(_) => panic!("{name} must be refused"),
        Err(e) => e,
    }
}

#[test]
fn an_import_outside_the_deny_all_world_is_refused_at_load() {
    let (reg, _d) = registry(small());
    let err = load_wat(
        &reg,
        "sneaky.wasm",
        r#"(component
             (import "wasi:io/poll@0.2.0" (instance))
             (import "wasi:http/outgoing-handler@0.2.0" (instance))
             (import "evil:host/spy" (instance)))"#,
    );
    assert_eq!(err.code, Code::PluginError);
    assert!(
        err.message.contains(
            "plugin `sneaky.wasm` imports `wasi:http/outgoing-handler@0.2.0`, `evil:host/spy`, \
             which this host does not provide"
        ),
        "{}",
        err.message
    );
    assert!(
        !err.message.contains("`wasi:io/poll"),
        "a provided interface is not named: {}",
        err.message
    );
    still_works(&reg);
}

/// What the WASI build of the hostile plugin put in the first item's `got`
/// field in `mode` (it behaves otherwise), or its error.
fn got(reg: &Registry, mode: &str, extra: Value) -> cds::Result<Option<String>> {
    let mut first = json!({"id": "a", "lastModified": "t", "mode": mode});
    if let (Value::Object(f), Value::Object(x)) = (&mut first, extra) {
        f.extend(x);
    }
    let (items, out) = cross(reg, &[first], None)?;
    let item = out.items[0].resolve(&items[0]).expect("not withheld");
    Ok(item.get("got").and_then(Value::as_str).map(String::from))
}

#[test]
fn a_wasi_plugin_reads_no_file_and_lists_no_folder() {
    let (reg, _d) = registry_for(small(), Iface::Wasip2);
    expect_plugin_error(&reg, "read-file", "cannot read /etc/passwd");
    expect_plugin_error(&reg, "list-root", "cannot list /");
    expect_plugin_error(&reg, "list-root", "cannot list .");
}

#[test]
fn a_wasi_plugin_sees_no_environment_and_no_arguments() {
    // This test process has a PATH and arguments; the plugin sees neither.
    assert!(std::env::var_os("PATH").is_some());
    let (reg, _d) = registry_for(small(), Iface::Wasip2);
    expect_plugin_error(&reg, "env", "no environment variables and no arguments");
}

#[test]
fn a_wasi_plugin_opens_no_socket_and_resolves_no_name() {
    let (reg, _d) = registry_for(small(), Iface::Wasip2);
    connects_to_nothing(&reg);
    expect_plugin_error(&reg, "dns", "cannot resolve localhost");
}

/// The hostile plugin's `socket` mode, aimed at a socket this test listens
/// on, fails to connect, and nothing reaches the socket.
fn connects_to_nothing(reg: &Registry) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let err = got(reg, "socket", json!({"port": port})).unwrap_err();
    assert_eq!(err.code, Code::PluginError);
    assert!(
        err.message
            .contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{}",
        err.message
    );
    assert!(
        listener.accept().is_err(),
        "nothing reached the listening socket"
    );
}

#[test]
fn a_wasi_plugin_sleeps_in_virtual_time_and_sees_a_stopped_wall_clock() {
    let (reg, _d) = registry_for(small(), Iface::Wasip2);
    // An hour's sleep returns at once (a real one would hold the calling
    // thread where no epoch deadline reaches); the virtual clock says it
    // passed.
    let slept: u64 = got(&reg, "sleep", json!({}))
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    assert!(slept >= 3600, "{slept}");
    assert_eq!(got(&reg, "time", json!({})).unwrap().as_deref(), Some("0"));
}

#[test]
fn a_wasi_plugin_gets_the_same_random_bytes_every_call() {
    let (reg, _d) = registry_for(small(), Iface::Wasip2);
    let first = got(&reg, "random", json!({})).unwrap().unwrap();
    assert_eq!(first.len(), 16, "{first}");
    assert_eq!(got(&reg, "random", json!({})).unwrap().unwrap(), first);
}

#[test]
fn a_wasi_plugin_that_prints_without_end_or_exits_is_contained() {
    let (reg, _d) = registry_for(small(), Iface::Wasip2);
    // Its output is captured, bounded, and the call succeeds.
    assert_eq!(run(&reg, "shout").unwrap(), 2);
    // WASI 0.2 has only success or failure: any status other than 0 is 1.
    expect_plugin_error(&reg, "exit", "exited with status 1 in `cross-batch`");
}

#[test]
fn other_interface_versions_are_refused_by_name() {
    let (reg, _d) = registry(small());
    let err = load_wat(
        &reg,
        "future.wasm",
        r#"(component (instance $i) (export "gold:entity/plugin@2.0.0" (instance $i)))"#,
    );
    assert!(
        err.message.contains(
            "implements interface gold:entity@2.0.0, but this host accepts gold:entity@1.1.0, \
             gold:entity@1.0.0 only"
        ),
        "{}",
        err.message
    );
    let err = load_wat(&reg, "other.wasm", "(component)");
    assert!(
        err.message
            .contains("does not export the interface `gold:entity/plugin`"),
        "{}",
        err.message
    );
}

#[test]
fn not_a_component_is_refused() {
    let (reg, _d) = registry(small());
    let digest = cds::plugin::runtime::sha256_hex(b"hello");
    let err = match reg.runtime.load("junk.wasm", b"hello", &digest, None) {
        Ok(_) => panic!("junk must be refused"),
        Err(e) => e,
    };
    assert!(
        err.message.contains("is not a valid WebAssembly component"),
        "{}",
        err.message
    );
}

#[test]
fn the_compiled_cache_is_used_on_the_second_load() {
    // The cache serves plugins the binary does not ship compiled: a
    // built-in's component loaded as an installed plugin's would be.
    let cache = tempfile::tempdir().unwrap();
    let (bytes, digest) = cds::plugin::builtin_component("tasks").unwrap();
    let rt = || Runtime::new(Limits::default(), Some(cache.path().to_path_buf())).unwrap();
    let first = rt().load("tasks", bytes, digest, None).unwrap();
    assert_eq!(first.compiled, Compiled::Now, "cold: compiled");
    let artifacts: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert_eq!(artifacts.len(), 1, "one compiled artifact cached");
    let second = rt();
    let again = second.load("tasks", bytes, digest, None).unwrap();
    assert_eq!(
        again.compiled,
        Compiled::Cached,
        "warm: loaded without compiling"
    );
    // A cache made by an engine with other settings is refused by key, so
    // the key carries the settings: different limits do not change it, the
    // digest does.
    let key = second.cache_path("abc").unwrap();
    assert!(key.to_string_lossy().contains("abc-wasmtime48-"));
}

#[test]
fn a_built_in_plugin_loads_the_compiled_form_the_binary_ships() {
    // No cache at all, and nothing is compiled: the build precompiled it.
    let plugins = tempfile::tempdir().unwrap();
    let reg = Registry::open(
        Runtime::new(Limits::default(), None).unwrap(),
        plugins.path(),
    )
    .unwrap();
    for name in cds::plugin::builtin_names() {
        let p = reg.get(name).unwrap();
        assert_eq!(p.instance.compiled, Compiled::Shipped, "{name}");
        assert_eq!(p.info.entity_type, name);
    }
    // An engine with other settings cannot use it, and compiles instead.
    let other = Runtime::with_interruption(
        Limits::default(),
        None,
        Interruption {
            fuel: true,
            epoch: true,
        },
    )
    .unwrap();
    let (bytes, digest) = cds::plugin::builtin_component("tasks").unwrap();
    let shipped = cds::plugin::builtin_precompiled("tasks");
    let i = other.load("tasks", bytes, digest, shipped).unwrap();
    assert_eq!(i.compiled, Compiled::Now);
}

#[test]
fn callers_for_one_plugin_at_once_share_one_load() {
    // An installed plugin with an empty cache: the sync's preloading thread
    // and a worker may ask for it together; it is compiled once.
    let plugins = tempfile::tempdir().unwrap();
    {
        let mut reg = Registry::open(
            Runtime::new(Limits::default(), None).unwrap(),
            plugins.path(),
        )
        .unwrap();
        reg.add(&common::uid_plugin(), "2026-01-12T10:00:00Z")
            .unwrap();
    }
    let cache = tempfile::tempdir().unwrap();
    let reg = Registry::open(
        Runtime::new(Limits::default(), Some(cache.path().to_path_buf())).unwrap(),
        plugins.path(),
    )
    .unwrap();
    let wanted = vec!["contacts".to_string(), "bookmarks".to_string()];
    assert_eq!(
        reg.unloaded_installed(&wanted),
        vec!["bookmarks".to_string()]
    );
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| reg.get("bookmarks").unwrap());
        let b = s.spawn(|| reg.get("bookmarks").unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(std::sync::Arc::ptr_eq(&a, &b), "one load, shared");
    assert_eq!(a.instance.compiled, Compiled::Now);
    assert!(reg.unloaded_installed(&wanted).is_empty());
}

/// A hostile plugin built by a language's componentizer (`wasm`), which
/// imports WASI: each attempt fails with what the deny-all world refused,
/// and the host goes on.
fn a_hostile_language_plugin_is_contained(wasm: &std::path::Path) {
    let (reg, _d) = language_registry(wasm);
    assert!(reg.get("hostile").unwrap().instance.wasi);
    assert_eq!(run(&reg, "behave").unwrap(), 2);
    expect_plugin_error(&reg, "read-file", "cannot read /etc/passwd");
    expect_plugin_error(&reg, "list-root", "cannot list /");
    expect_plugin_error(&reg, "env", "no environment variables and no arguments");
    connects_to_nothing(&reg);
    still_works(&reg);
    expect_plugin_error(&reg, "loop", "ran out of its CPU budget in `cross-batch`");
    expect_plugin_error(&reg, "membomb", "exceeded its memory limit of 64 MiB");
}

/// A registry with the language-built plugin `wasm` added, under `small()`
/// with the product's default CPU budget: an interpreter's harmless calls
/// take 2-35 ms of CPU here, and its memory bomb 50-80 ms (see
/// `small_memory`), too close to `small()`'s 100 ms on a cold machine.
fn language_registry(wasm: &std::path::Path) -> (Registry, tempfile::TempDir) {
    let limits = Limits {
        cpu_base: Limits::default().cpu_base,
        ..small()
    };
    let rt = Runtime::new(limits, Some(common::cache_dir())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut reg = Registry::open(rt, dir.path()).unwrap();
    reg.add(wasm, "2026-01-12T10:00:00Z").unwrap();
    (reg, dir)
}

#[test]
fn a_hostile_javascript_plugin_is_contained() {
    // Built by componentize-js: a JavaScript engine inside, and the WASI
    // interfaces for files, the environment and sockets imported by name.
    a_hostile_language_plugin_is_contained(&common::hostile_plugin_js());
}

#[test]
fn a_hostile_python_plugin_is_contained() {
    // Built by componentize-py: CPython inside.
    a_hostile_language_plugin_is_contained(&common::hostile_plugin_python());
}
