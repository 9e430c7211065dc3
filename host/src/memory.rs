//! How the process's allocator (mimalloc, the global allocator `main.rs`
//! sets) keeps freed memory and gives it back to the system.
//!
//! A sync at the limits frees and allocates again hundreds of megabytes
//! within a second or two: the entity types planned first free their items
//! while the next ones parse theirs. mimalloc returns ("purges") freed
//! memory to the system one second after it is freed, by default, so the
//! next type's first touch of that memory page-faults and the kernel zeroes
//! it again: 440 MB of purges and refaults per first sync on this
//! project's machine, about 2% of its time (BENCHMARKS.md). A
//! one-shot sync is over before holding its freed memory could matter, so
//! [`keep_freed_memory`] delays purging past any sync's length; a long-lived
//! `serve` process gives its freed memory back after each sync with
//! [`release_freed_memory`].

use libmimalloc_sys::{mi_collect, mi_option_set, mi_option_t};
use std::os::raw::c_long;

/// mimalloc's `mi_option_purge_delay` (`mimalloc.h`, v3: the sixteenth
/// option, counted from 0). The Rust bindings name no constant for it;
/// `tests::purge_delay_is_the_option_its_variable_sets` checks the number.
const MI_OPTION_PURGE_DELAY: mi_option_t = 15;

/// How long freed memory is kept for reuse before it is given back: longer
/// than a sync at the limits takes (1-3 s here), short enough that an idle
/// process that frees memory still returns it.
const PURGE_DELAY_MS: c_long = 10_000;

/// The variable by which a user sets the purge delay themselves; when set,
/// [`keep_freed_memory`] leaves their choice alone.
const PURGE_DELAY_VAR: &str = "MIMALLOC_PURGE_DELAY";

/// Keeps freed memory for reuse for [`PURGE_DELAY_MS`] (see the module
/// docs), unless the user set `MIMALLOC_PURGE_DELAY`. Call it once, first
/// thing in `main`.
pub fn keep_freed_memory() {
    if std::env::var_os(PURGE_DELAY_VAR).is_none() {
        // SAFETY: sets a mimalloc option; valid at any time, from any thread.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

/// Gives the memory freed so far back to the system now, whatever the
/// delay (a long-lived process, after a sync).
pub fn release_freed_memory() {
    // SAFETY: a forced collection of mimalloc's free memory; it frees
    // nothing that is in use.
    unsafe { mi_collect(true) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use libmimalloc_sys::mi_option_get;

    /// The purge delay in force, in milliseconds.
    fn purge_delay_ms() -> c_long {
        // SAFETY: reads a mimalloc option.
        unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }
    }

    /// The option number is the one mimalloc reads `MIMALLOC_PURGE_DELAY`
    /// into: a child process (this test binary, running only the helper
    /// below) started with the variable set reports that value for it.
    #[test]
    fn purge_delay_is_the_option_its_variable_sets() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "memory::tests::report_purge_delay",
                "--ignored",
                "--nocapture",
            ])
            .env(PURGE_DELAY_VAR, "4321")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("purge delay: 4321"),
            "the child saw another value: {stdout}"
        );
    }

    /// Run by the test above, in a child process.
    #[test]
    #[ignore = "a helper: purge_delay_is_the_option_its_variable_sets runs it"]
    fn report_purge_delay() {
        println!("purge delay: {}", purge_delay_ms());
    }

    /// `keep_freed_memory` sets the delay, and leaves a user's own alone.
    #[test]
    fn keeping_sets_the_delay_unless_the_user_chose() {
        if std::env::var_os(PURGE_DELAY_VAR).is_none() {
            keep_freed_memory();
            assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
        } else {
            let theirs = purge_delay_ms();
            keep_freed_memory();
            assert_eq!(purge_delay_ms(), theirs);
        }
    }
}
