//! Test hooks: fault injection and kill points, switched on by environment
//! variables that only the test suite sets.
//!
//! They exist only in a build with the `fault-injection` feature, which the
//! test build enables (the host's own dev-dependency on itself, in
//! `host/Cargo.toml`). In a release binary each hook is an empty inline
//! function: no environment variable can make it kill itself or fail a write.

#[cfg(feature = "fault-injection")]
mod hooks {
    use std::io;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// `CDS_FAULT_KILL_AT=N`: the process kills itself with SIGKILL at the
    /// N-th kill point it passes (1-based). Lets the crash tests stop a sync
    /// at every step of its commit.
    pub fn kill_point(name: &str) {
        static PASSED: AtomicU32 = AtomicU32::new(0);
        let Some(at) = std::env::var("CDS_FAULT_KILL_AT")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
        else {
            return;
        };
        let n = PASSED.fetch_add(1, Ordering::SeqCst) + 1;
        if n == at {
            eprintln!("cds: fault injection: SIGKILL at kill point {n} ({name})");
            // SAFETY: kill(2) on our own pid; no memory is touched.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }

    /// An injected transient failure, told apart by its type (not its text).
    #[derive(Debug)]
    struct Transient(String);

    impl std::fmt::Display for Transient {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "injected transient fault writing {}", self.0)
        }
    }

    impl std::error::Error for Transient {}

    /// `CDS_FAULT_WRITE=MODE[:N]`: the N-th file write (default 1st) fails,
    /// once: `enospc` (no space left), `erofs` (read-only file system), `eio`,
    /// or `transient` (which the retry loop retries, and then succeeds).
    pub fn before_write(path: &std::path::Path) -> io::Result<()> {
        static WRITES: AtomicU32 = AtomicU32::new(0);
        let Ok(spec) = std::env::var("CDS_FAULT_WRITE") else {
            return Ok(());
        };
        let (mode, nth) = match spec.split_once(':') {
            Some((m, n)) => (m.to_string(), n.parse::<u32>().unwrap_or(1)),
            None => (spec.clone(), 1),
        };
        let n = WRITES.fetch_add(1, Ordering::SeqCst) + 1;
        if n != nth {
            return Ok(());
        }
        match mode.as_str() {
            "enospc" => Err(io::Error::from_raw_os_error(libc::ENOSPC)),
            "erofs" => Err(io::Error::from_raw_os_error(libc::EROFS)),
            "transient" => Err(io::Error::other(Transient(path.display().to_string()))),
            _ => Err(io::Error::from_raw_os_error(libc::EIO)),
        }
    }

    /// `CDS_FAULT_DELAY_MS=N`: each entity type's work takes N ms longer
    /// (lets tests hit the sync's time limit and kill it mid-way).
    pub fn delay() {
        if let Some(ms) = std::env::var("CDS_FAULT_DELAY_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }

    pub fn is_injected_transient(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<Transient>())
    }
}

#[cfg(not(feature = "fault-injection"))]
mod hooks {
    #[inline(always)]
    pub fn kill_point(_name: &str) {}

    #[inline(always)]
    pub fn before_write(_path: &std::path::Path) -> std::io::Result<()> {
        Ok(())
    }

    #[inline(always)]
    pub fn delay() {}

    #[inline(always)]
    pub fn is_injected_transient(_e: &std::io::Error) -> bool {
        false
    }
}

pub use hooks::*;
