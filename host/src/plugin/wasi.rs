//! The deny-all WASI 0.2 world of plugins built the standard way
//! (`cargo build --target wasm32-wasip2`, `componentize-py`, `jco
//! componentize`): the interfaces a language's runtime imports, with
//! nothing real behind them.
//!
//! Architecture invariant: a plugin that imports WASI gets no pre-opened
//! folder, no socket, no environment variable or argument, an empty stdin, a
//! wall clock stopped at the Unix epoch, a virtual monotonic clock whose
//! sleeps return at once, and random numbers from a fixed seed. Its stdout
//! and stderr are captured, bounded, for the host's log. Nothing a plugin
//! does through WASI reaches outside the sandbox or blocks the calling thread
//! outside the guest, so the CPU budget and the wall-clock limit of
//! `runtime.rs` (checked only while guest code runs) still bound every call.
//! Why each choice: docs/SECURITY.md, "Plugins that import WASI".
//!
//! Built on wasmtime-wasi's own implementations, configured to deny; only the
//! two clock subscriptions are replaced here, because wasmtime-wasi's sleep
//! blocks the thread in the host, where no epoch deadline can stop it.

use bytes::Bytes;
use rand::SeedableRng;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::clocks::{HostMonotonicClock, HostWallClock};
use wasmtime_wasi::p2::{DynPollable, OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView};

/// The WASI 0.2 interfaces a plugin may import (at any 0.2.x version), all
/// of them linked to deny-all implementations. Any other import is refused
/// when the plugin is loaded.
pub const PROVIDED: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stderr",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stderr",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:filesystem/preopens",
    "wasi:filesystem/types",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:random/random",
    "wasi:sockets/instance-network",
    "wasi:sockets/ip-name-lookup",
    "wasi:sockets/network",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
];

/// The name under which wasmtime-wasi links the monotonic clock (the
/// version of its WIT); imports of any 0.2.x resolve to it.
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Bytes of each of stdout and stderr kept per call; the rest is counted.
pub const OUTPUT_KEPT: usize = 16 << 10;
/// Resources (streams, pollables, ...) a plugin may hold at once: the host
/// memory behind them is outside the guest's memory cap.
const MAX_RESOURCES: usize = 10_000;
/// Largest `get-random-bytes` answered (wasmtime-wasi's default is 64 MiB
/// of host memory).
const MAX_RANDOM_BYTES: u64 = 1 << 20;
/// The fixed seed of both random generators.
const RANDOM_SEED: u64 = 0x6364_732d_7769_7369;

/// Whether `import` (e.g. `wasi:io/poll@0.2.6`) is one this world provides.
pub fn provides(import: &str) -> bool {
    import
        .split_once('@')
        .is_some_and(|(iface, version)| PROVIDED.contains(&iface) && version.starts_with("0.2."))
}

/// A plugin store's WASI state: the context wasmtime-wasi's implementations
/// read, their resources, the virtual clock and the captured output.
pub struct Sandbox {
    ctx: WasiCtx,
    table: ResourceTable,
    clock: VirtualClock,
    stdout: Capture,
    stderr: Capture,
}

impl Sandbox {
    /// The deny-all context (each call gets a fresh one).
    pub fn deny_all() -> Sandbox {
        let clock = VirtualClock::default();
        let (stdout, stderr) = (Capture::default(), Capture::default());
        let mut b = WasiCtxBuilder::new();
        // Nothing is inherited and nothing is pre-opened: no environment, no
        // arguments, no folders, stdin empty (the builder's defaults), and
        // these made explicit.
        b.stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .wall_clock(StoppedWallClock)
            .monotonic_clock(clock.clone())
            .secure_random(rand::rngs::StdRng::seed_from_u64(RANDOM_SEED))
            .insecure_random(rand::rngs::StdRng::seed_from_u64(!RANDOM_SEED))
            .insecure_random_seed(u128::from(RANDOM_SEED))
            .max_random_size(MAX_RANDOM_BYTES);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        Sandbox {
            ctx: b.build(),
            table,
            clock,
            stdout,
            stderr,
        }
    }

    pub fn view(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }

    /// What the plugin wrote to stdout and stderr so far.
    pub fn output(&self) -> Output {
        Output {
            stdout: self.stdout.taken(),
            stderr: self.stderr.taken(),
        }
    }
}

/// A store's data that holds a [`Sandbox`].
pub trait HasSandbox: wasmtime_wasi::WasiView + 'static {
    fn sandbox(&mut self) -> &mut Sandbox;
}

/// Links the deny-all world into `linker`: wasmtime-wasi's synchronous
/// implementations, with the monotonic clock's two subscriptions replaced by
/// ones that advance the virtual clock and are ready at once.
pub fn add_to_linker<T: HasSandbox>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap(
        "subscribe-duration",
        |mut cx: StoreContextMut<'_, T>, (nanos,): (u64,)| {
            let s = cx.data_mut().sandbox();
            s.clock.advance_by(nanos);
            ready_now(&mut s.table).map(|p| (p,))
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |mut cx: StoreContextMut<'_, T>, (when,): (u64,)| {
            let s = cx.data_mut().sandbox();
            s.clock.advance_to(when);
            ready_now(&mut s.table).map(|p| (p,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// A pollable that is ready at once.
fn ready_now(table: &mut ResourceTable) -> wasmtime::Result<Resource<DynPollable>> {
    let r = table.push(Ready)?;
    wasmtime_wasi::p2::subscribe(table, r)
}

struct Ready;

#[async_trait::async_trait]
impl Pollable for Ready {
    async fn ready(&mut self) {}
}

/// The wall clock: always the Unix epoch. A plugin's output must depend on
/// its input only (a re-sync must see no change); the real time would also
/// tell it the host's time zone offset through its own arithmetic, and when
/// the sync runs.
struct StoppedWallClock;

impl HostWallClock for StoppedWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// The monotonic clock: virtual nanoseconds from zero at the start of the
/// call, one microsecond more at each reading (so a loop waiting for time to
/// pass ends), and as far ahead as a sleep asks, at once. It tells a plugin
/// nothing about the host's real timing.
#[derive(Clone, Default)]
struct VirtualClock(Arc<AtomicU64>);

const CLOCK_STEP: u64 = 1_000;

impl VirtualClock {
    fn advance_by(&self, nanos: u64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(nanos))
            });
    }
    fn advance_to(&self, when: u64) {
        self.0.fetch_max(when, Ordering::Relaxed);
    }
}

impl HostMonotonicClock for VirtualClock {
    fn resolution(&self) -> u64 {
        CLOCK_STEP
    }
    fn now(&self) -> u64 {
        self.advance_by(CLOCK_STEP);
        self.0.load(Ordering::Relaxed)
    }
}

/// What a plugin wrote to one stream: the first [`OUTPUT_KEPT`] bytes and
/// how many more were dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    pub kept: Vec<u8>,
    pub dropped: u64,
}

/// What a plugin wrote to stdout and stderr.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub stdout: Written,
    pub stderr: Written,
}

/// An output stream that accepts every write, keeps the first
/// [`OUTPUT_KEPT`] bytes and counts the rest: a plugin printing without end
/// neither fails nor fills the host's memory.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Written>>);

impl Capture {
    fn push(&self, bytes: &[u8]) {
        let mut w = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let room = OUTPUT_KEPT.saturating_sub(w.kept.len()).min(bytes.len());
        w.kept.extend_from_slice(&bytes[..room]);
        w.dropped = w.dropped.saturating_add((bytes.len() - room) as u64);
    }
    fn taken(&self) -> Written {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(OUTPUT_KEPT)
    }
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wasi_0_2_interfaces_of_the_list_are_provided() {
        assert!(provides("wasi:io/poll@0.2.6"));
        assert!(provides("wasi:cli/environment@0.2.0"));
        assert!(!provides("wasi:io/poll@0.3.0"));
        assert!(!provides("wasi:http/outgoing-handler@0.2.6"));
        assert!(!provides("wasi:io/poll"));
        assert!(!provides("gold:entity/host@1.0.0"));
    }

    #[test]
    fn capture_keeps_a_bounded_prefix_and_counts_the_rest() {
        let c = Capture::default();
        c.push(&vec![b'a'; OUTPUT_KEPT - 1]);
        c.push(b"xyz");
        let w = c.taken();
        assert_eq!(w.kept.len(), OUTPUT_KEPT);
        assert_eq!(w.kept.last(), Some(&b'x'));
        assert_eq!(w.dropped, 2);
    }

    #[test]
    fn the_virtual_clock_moves_forward_only() {
        let c = VirtualClock::default();
        let a = c.now();
        c.advance_by(5_000_000_000);
        let b = c.now();
        assert!(b >= a + 5_000_000_000);
        c.advance_to(1);
        assert!(c.now() > b, "advancing to the past does not go back");
    }
}
