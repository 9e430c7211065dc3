//! The sync benchmark suite (issue 6), one run for every row so that ratios
//! are taken within the same run on this shared, noisy machine:
//!
//! - B1: a full bidirectional sync of all five types at `--items` per type and
//!   domain (first sync), and a re-sync after 1% of items changed on each side;
//! - B2: B1's first sync with the plugins compiled natively into the host
//!   (`--native BIN`, a build with `--features native-plugins`);
//! - B3: the floor: reading, parsing, serialising and atomically writing the
//!   same files with no logic at all, in a process of its own as a sync is;
//! - B4: start-up at the seed's example-1 scale (contacts, ~270 items), with
//!   the compiled-plugin cache cold and warm;
//! - B5: peak resident memory of B1's first sync against the data's size;
//! - B6: B1's first sync at a tenth of `--items` against `--items`;
//! - B1 cold: B1's first sync with an empty plugin cache, as a new user's
//!   first run has it, against B1 (warm);
//! - N: the seed's own algorithm in Node (`bench/seed-sync.mjs`) on the same
//!   data, against B1 warm and cold (issue 17); skipped, with a message,
//!   where `node` is not installed.
//! - V: B1 warm, B3 and N again on data of the varied shape (`generate data
//!   --shape varied`: values as people and other programs write them, a
//!   lower overlap, 1.5 KB message bodies), so that B1 ÷ B3 and B1 ÷ N are
//!   reported on two shapes (issue 17).
//!
//! Run everything with `bench/run.sh`; this program prints the Markdown rows.

// The floor (B3) runs as this program (`--floor DIR`): give it the product's
// allocator, so that B1 ÷ B3 compares logic, not allocators.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Args {
    items: usize,
    bin: PathBuf,
    native: Option<PathBuf>,
    repeat: usize,
}

fn args() -> Args {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let mut a = Args {
        items: 10_000,
        bin: root.join("target/release/cross-domain-sync"),
        native: None,
        repeat: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--help" || k == "-h" {
            println!(
                "bench_sync [--items N (10000)] [--repeat N (3)] [--bin RELEASE_BINARY] \
                 [--native BINARY_BUILT_WITH_native-plugins]\n\nPrints the Markdown rows of \
                 BENCHMARKS.md (B1-B6, B1 cold, N, V); see the doc comment of \
                 host/examples/bench_sync.rs and bench/run.sh."
            );
            std::process::exit(0);
        }
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--items" => a.items = v.parse().expect("--items N"),
            "--bin" => a.bin = std::fs::canonicalize(&v).expect("--bin names an existing binary"),
            "--native" => {
                a.native =
                    Some(std::fs::canonicalize(&v).expect("--native names an existing binary"))
            }
            "--repeat" => a.repeat = v.parse().expect("--repeat N"),
            _ => {
                eprintln!("bench_sync: unknown argument `{k}`; see --help");
                std::process::exit(2);
            }
        }
    }
    a
}

/// Runs a sync; returns wall time and the child's peak resident memory (KiB).
fn sync(
    bin: &Path,
    dir: &Path,
    cache: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Duration, u64) {
    let mut cmd = Command::new(bin);
    cmd.args([
        "--source",
        "personal",
        "--target",
        "business",
        "--direction",
        "bidirectional",
        "--json",
        "--user",
        "bench",
    ])
    .args(extra)
    .current_dir(dir)
    .env("CDS_CACHE_DIR", cache)
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(cmd)
}

/// Runs `cmd` to its end; returns wall time and its peak resident memory
/// (KiB).
// The child is reaped by wait4, which also gives its peak memory.
#[allow(clippy::zombie_processes)]
fn run(mut cmd: Command) -> (Duration, u64) {
    let t = Instant::now();
    let child = cmd.spawn().expect("run the binary");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be filled by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, filling status and usage.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall = t.elapsed();
    assert!(
        pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed (status {status})"
    );
    (wall, usage.ru_maxrss as u64)
}

fn data_bytes(dir: &Path) -> u64 {
    ["personal", "business"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(dir.join("data").join(d))
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum()
}

fn fresh(items: usize) -> tempfile::TempDir {
    fresh_with(items, 0.5)
}

fn fresh_with(items: usize, overlap: f64) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    cds::generate::data(d.path(), &cds::generate::Spec::canonical(items, overlap, 7)).unwrap();
    d
}

/// The varied shape (see `cds::generate`): 40% of ids in both domains,
/// message bodies of about 1.5 KB.
fn varied(items: usize) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let spec = cds::generate::Spec {
        items,
        overlap: 0.4,
        shape: cds::generate::Shape::Varied,
        body_bytes: Some(1500),
        seed: 11,
    };
    cds::generate::data(d.path(), &spec).unwrap();
    d
}

/// One run of the seed's algorithm in Node on a copy of the data.
fn node_run(script: &Path, d: &Path) -> Duration {
    let mut cmd = Command::new("node");
    cmd.arg(script)
        .args(["--source", "personal", "--target", "business"])
        .args(["--direction", "bidirectional"])
        .current_dir(d)
        .stdout(std::process::Stdio::null());
    run(cmd).0
}

/// B3 as a process of its own, as each sync is: it starts, and touches its
/// memory for the first time, as a sync does, rather than reusing pages the
/// data generator left in this process. (Measured both ways over 5 rounds:
/// 515-799 ms as a child, 593-645 ms in this process; the same within this
/// machine's noise, but only the child's conditions are the sync's.)
fn floor(dir: &Path) -> Duration {
    let mut cmd = Command::new(std::env::current_exe().expect("this program's path"));
    cmd.arg("--floor").arg(dir);
    run(cmd).0
}

/// B3: read, parse, serialise and atomically write every data file.
fn floor_here(dir: &Path) {
    for d in ["personal", "business"] {
        for e in std::fs::read_dir(dir.join("data").join(d))
            .unwrap()
            .flatten()
        {
            let bytes = std::fs::read(e.path()).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let mut out = serde_json::to_vec_pretty(&v).unwrap();
            out.push(b'\n');
            let mut tmp = tempfile::NamedTempFile::new_in(dir.join("data").join(d)).unwrap();
            tmp.write_all(&out).unwrap();
            tmp.as_file().sync_all().unwrap();
            tmp.persist(e.path()).unwrap();
        }
    }
}

fn main() {
    let mut argv = std::env::args().skip(1);
    if argv.next().as_deref() == Some("--floor") {
        // The product's allocator settings too (see `cds::memory`).
        cds::memory::keep_freed_memory();
        floor_here(Path::new(&argv.next().expect("--floor DIR")));
        return;
    }
    let a = args();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let seed_script = root.join("bench/seed-sync.mjs");
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let cache = tempfile::tempdir().unwrap();
    // Warm the compiled-plugin cache once (B4 measures the cold case).
    {
        let d = fresh(10);
        sync(&a.bin, d.path(), cache.path(), &[], &[]);
    }
    let mut first = Vec::new();
    let mut resync = Vec::new();
    let mut floors = Vec::new();
    let mut rss = Vec::new();
    let mut native = a.native.as_ref().map(|_| Vec::new());
    let mut tenth = Vec::new();
    let mut cold_first = Vec::new();
    let mut seed = Vec::new();
    let (mut varied_first, mut varied_floors, mut varied_seed) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut varied_bytes = 0;
    let mut bytes = 0;
    // Each round takes every measurement once, one after the other, so that
    // a ratio pairs two runs minutes apart at most: this machine has slow
    // and fast phases lasting about as long as one measurement's repeats,
    // and running all of one measurement before the next put them on
    // different sides of a ratio (sandboxed ÷ native read 1.5 that way and
    // 1.1 alternated).
    for _ in 0..a.repeat {
        let d = fresh(a.items);
        bytes = data_bytes(d.path());
        floors.push(floor(d.path()));
        let d = fresh(a.items);
        let (t, m) = sync(&a.bin, d.path(), cache.path(), &[], &[]);
        first.push(t);
        rss.push(m);
        if let (Some(nb), Some(times)) = (&a.native, native.as_mut()) {
            let d = fresh(a.items);
            let env = [("CDS_NATIVE_PLUGINS", "1")];
            times.push(sync(nb, d.path(), cache.path(), &[], &env).0);
        }
        // As a new user's first run: a fresh folder and no compiled plugin.
        let d = fresh(a.items);
        let empty = tempfile::tempdir().unwrap();
        cold_first.push(sync(&a.bin, d.path(), empty.path(), &[], &[]).0);
        if node {
            seed.push(node_run(&seed_script, fresh(a.items).path()));
        }
        // The varied shape: the floor, the sync and the script.
        let d = varied(a.items);
        varied_bytes = data_bytes(d.path());
        varied_floors.push(floor(d.path()));
        varied_first.push(sync(&a.bin, varied(a.items).path(), cache.path(), &[], &[]).0);
        if node {
            varied_seed.push(node_run(&seed_script, varied(a.items).path()));
        }
        let d = fresh(a.items / 10);
        tenth.push(sync(&a.bin, d.path(), cache.path(), &[], &[]).0);
        // A first sync with half the items unique to each side leaves each
        // domain past the limits, so the re-sync starts from two domains at
        // the limits that agree (synced once, untimed), then 1% edited.
        let d = fresh_with(a.items, 1.0);
        sync(&a.bin, d.path(), cache.path(), &[], &[]);
        cds::generate::edit(d.path(), 0.01, 3).unwrap();
        resync.push(sync(&a.bin, d.path(), cache.path(), &[], &[]).0);
    }
    // B4: example-1 scale, cold then warm cache.
    let example = || {
        let d = tempfile::tempdir().unwrap();
        let src = root.join("examples/data");
        for dom in ["personal", "business"] {
            std::fs::create_dir_all(d.path().join("data").join(dom)).unwrap();
            std::fs::copy(
                src.join(dom).join("contacts.json"),
                d.path().join("data").join(dom).join("contacts.json"),
            )
            .unwrap();
        }
        d
    };
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for _ in 0..a.repeat {
        let empty = tempfile::tempdir().unwrap();
        cold.push(
            sync(
                &a.bin,
                example().path(),
                empty.path(),
                &["--entities", "contacts"],
                &[],
            )
            .0,
        );
        warm.push(
            sync(
                &a.bin,
                example().path(),
                empty.path(),
                &["--entities", "contacts"],
                &[],
            )
            .0,
        );
    }
    let mb = bytes as f64 / 1e6;
    println!(
        "Data: {} items per type per domain, {mb:.1} MB in 10 files; {} runs of each \
         measurement: the median, and the range in brackets.\n",
        a.items, a.repeat
    );
    let secs = |v: &[Duration]| v.iter().map(Duration::as_secs_f64).collect::<Vec<_>>();
    // Ratios pair the i-th run of one measurement with the i-th of the other.
    let ratio = |a: &[Duration], b: &[Duration]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| x.as_secs_f64() / y.as_secs_f64())
            .collect::<Vec<_>>()
    };
    let ms = |v: &[Duration]| Stat::of(&secs(v)).show(1e3, 0, " ms");
    let times = |v: &[f64], d: usize| Stat::of(v).show(1.0, d, "");
    println!("| figure | measured | target |");
    println!("| --- | --- | --- |");
    println!(
        "| B1 first sync, bidirectional, 5 types | {} | ≤ 2.0 s |",
        ms(&first)
    );
    println!(
        "| B1 re-sync, 1% changed on each side | {} | ≤ 1.0 s |",
        ms(&resync)
    );
    println!(
        "| B1 re-sync ÷ B1 first sync | {} | ≤ 0.25 |",
        times(&ratio(&resync, &first), 2)
    );
    match &native {
        Some(n) => println!(
            "| B2 sandboxed ÷ native (first sync; native {}) | {} | ≤ 1.3 |",
            ms(n),
            times(&ratio(&first, n), 2)
        ),
        None => println!("| B2 sandboxed ÷ native | (not run: pass --native) | ≤ 1.3 |"),
    }
    println!(
        "| B3 floor: read+parse+serialise+write the same files | {} | |",
        ms(&floors)
    );
    println!(
        "| B1 ÷ B3 | {} | ≤ 2.0 |",
        times(&ratio(&first, &floors), 2)
    );
    println!(
        "| B4 start-up at example-1 scale, cache warm / cold | {} / {} | ≤ 30 ms / ≤ 1.5 s |",
        ms(&warm),
        ms(&cold)
    );
    let mib: Vec<f64> = rss.iter().map(|&k| k as f64 / 1024.0).collect();
    let times_data: Vec<f64> = rss
        .iter()
        .map(|&k| k as f64 * 1024.0 / bytes as f64)
        .collect();
    println!(
        "| B5 peak resident memory (first sync) | {} = {} × the data | ≤ 3 × |",
        Stat::of(&mib).show(1.0, 0, " MB"),
        times(&times_data, 1)
    );
    println!(
        "| B6 {} items ÷ {} items (first sync: {} / {}) | {} × the time | ≤ 12 × |",
        a.items,
        a.items / 10,
        ms(&first),
        ms(&tenth),
        times(&ratio(&first, &tenth), 1)
    );
    println!(
        "| B1 cold: first sync, fresh folder, empty plugin cache ({}) ÷ B1 warm | {} | ≤ 1.15 |",
        ms(&cold_first),
        times(&ratio(&cold_first, &first), 2)
    );
    if seed.is_empty() {
        println!("| N: the seed's algorithm in Node | (not run: `node` was not found) | |");
    } else {
        println!(
            "| N: the seed's algorithm in Node (bench/seed-sync.mjs) | {} | |",
            ms(&seed)
        );
        println!(
            "| B1 warm ÷ N / B1 cold ÷ N | {} / {} | ≤ 0.6 / ≤ 0.6 |",
            times(&ratio(&first, &seed), 2),
            times(&ratio(&cold_first, &seed), 2)
        );
    }
    println!(
        "| V: varied shape ({:.1} MB): B1 warm / B3 | {} / {} | |",
        varied_bytes as f64 / 1e6,
        ms(&varied_first),
        ms(&varied_floors)
    );
    println!(
        "| V: B1 ÷ B3 (varied) | {} | ≤ 2.0 |",
        times(&ratio(&varied_first, &varied_floors), 2)
    );
    if !varied_seed.is_empty() {
        println!(
            "| V: N (varied) / B1 warm ÷ N (varied) | {} / {} | ≤ 0.6 |",
            ms(&varied_seed),
            times(&ratio(&varied_first, &varied_seed), 2)
        );
    }
}

/// The median and range of a sample.
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

impl Stat {
    fn of(v: &[f64]) -> Stat {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        Stat {
            median: v[v.len() / 2],
            min: v[0],
            max: v[v.len() - 1],
        }
    }

    /// `median unit (min-max)` (values times `scale`), or the one value of a
    /// single run.
    fn show(&self, scale: f64, digits: usize, unit: &str) -> String {
        let f = |x: f64| format!("{:.digits$}", x * scale);
        if self.min == self.max {
            format!("{}{unit}", f(self.median))
        } else {
            format!("{}{unit} ({}-{})", f(self.median), f(self.min), f(self.max))
        }
    }
}
