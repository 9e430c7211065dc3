//! The `cross-domain-sync` binary: see `cds::cli`.

// Every item is a tree of small maps and strings, built, cloned and dropped
// several times per sync; mimalloc does that with a fraction of glibc's cost
// (measured in BENCHMARKS.md, "Where the time goes").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    cds::memory::keep_freed_memory();
    let code = cds::cli::run(std::env::args_os().collect());
    std::process::exit(code);
}
