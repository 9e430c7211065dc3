//! The `cross-domain-sync` binary: see `cds::cli`.

fn main() {
    let code = cds::cli::run(std::env::args_os().collect());
    std::process::exit(code);
}
