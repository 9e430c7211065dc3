//! The scheduler: which entity type is planned when, on how many threads.
//!
//! Types are taken largest first (by the bytes of both files), so that the
//! last one to finish is a small one and no core idles at the end, by up to
//! as many workers as the machine has cores, at most four: each type also
//! reads its two files and parses them as tasks of their own, which an idle
//! thread takes up, so more workers would only contend. Workers and tasks
//! run on threads kept for the process ([`pool`]). A small sync stays on
//! the calling thread.
//! After a failure no further type is started.

use crate::error::Result;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Below this many bytes of data files, work stays on one thread: a new
/// thread costs more than it saves there (with mimalloc, each new thread
/// first touches fresh allocator pages, and in a small sync those page
/// faults were a quarter of the time).
pub const PARALLEL_MIN_BYTES: u64 = 1 << 20;

/// The most workers a sync uses.
pub const MAX_WORKERS: usize = 4;

/// The threads a large sync runs on: made once per process and kept, as
/// many as the machine has cores (two to [`MAX_WORKERS`]). Each type's
/// reads and parses, and the workers themselves, are tasks on them
/// (`rayon`), so that an idle thread takes up what another has not got to.
///
/// They replaced the threads spawned for each type's workers, reads and
/// parses (a sync at the limits started 30 threads; 16 now, the stage's
/// writers still starting their own: on the pool, their fsyncs held its
/// threads, and that cost more time than it saved). mimalloc gives every
/// new thread pages of its own for each size of allocation, and a thread
/// that ends leaves its pages to be reclaimed later: a re-sync at the
/// limits had 95 MiB committed for 17 MB live at its peak, and the kernel
/// zeroes each committed page at its first touch (BENCHMARKS.md, "Mapped
/// files, one-pass scans, kept threads"). wasmtime's parallel compilation
/// uses rayon's global pool, not this one, so a plugin compiled while a
/// sync waits for it never waits for this pool's threads.
fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, MAX_WORKERS);
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("cds-sync-{i}"))
            .build()
            .inspect_err(|e| tracing::warn!("cannot start the sync's threads ({e}); using one"))
            .ok()
    })
    .as_ref()
}

/// How many workers plan `jobs` jobs of `total_bytes` together.
pub fn workers(jobs: usize, total_bytes: u64) -> usize {
    if total_bytes < PARALLEL_MIN_BYTES {
        return 1;
    }
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, MAX_WORKERS)
        .min(jobs.max(1))
}

/// Runs `job(i)` for each job, `sizes[i]` being its size in bytes, and
/// returns the results in job order; or the error of the first job, in job
/// order, that failed (so the error reported does not depend on timing
/// among the jobs that ran).
pub fn run<T: Send>(sizes: &[u64], job: impl Fn(usize) -> Result<T> + Sync) -> Result<Vec<T>> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<T>>>> =
        Mutex::new((0..sizes.len()).map(|_| None).collect());
    let work = || {
        loop {
            let n = next.fetch_add(1, Ordering::SeqCst);
            if n >= order.len() || failed.load(Ordering::SeqCst) {
                break;
            }
            let i = order[n];
            let r = job(i);
            if r.is_err() {
                failed.store(true, Ordering::SeqCst);
            }
            // A worker that panicked has left the slots it filled intact.
            results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
        }
    };
    let total: u64 = sizes.iter().sum();
    let workers = workers(sizes.len(), total);
    match pool() {
        Some(pool) if total >= PARALLEL_MIN_BYTES => pool.install(|| {
            rayon::scope(|scope| {
                for _ in 1..workers {
                    scope.spawn(|_| work());
                }
                work();
            })
        }),
        // A small sync: here, on one thread.
        _ => work(),
    }
    let mut out = Vec::with_capacity(sizes.len());
    for r in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
        match r {
            Some(Ok(p)) => out.push(p),
            Some(Err(e)) => return Err(e),
            // Not started: an earlier job failed.
            None => {}
        }
    }
    Ok(out)
}

/// The result of a scoped thread; its panic, if any, continues here.
pub fn join<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Code, Error};

    #[test]
    fn results_come_back_in_job_order_whatever_the_sizes() {
        let out = run(&[1, 3 << 20, 2], |i| Ok(i * 10)).unwrap();
        assert_eq!(out, vec![0, 10, 20]);
    }

    #[test]
    fn the_first_failure_in_job_order_is_reported() {
        // Small jobs run on one thread, largest first: job 2 (size 9) fails
        // first, then job 0 is not started; job 2's error is the answer.
        let r = run(&[1, 5, 9], |i| {
            if i == 0 {
                panic!("job 0 must not start after a failure");
            }
            if i == 2 {
                Err(Error::new(Code::StorageError, "two"))
            } else {
                Ok(i)
            }
        });
        assert_eq!(r.unwrap_err().message, "two");
    }

    #[test]
    fn a_small_sync_uses_one_worker_and_a_large_one_at_most_four() {
        assert_eq!(workers(5, 1000), 1);
        let w = workers(5, PARALLEL_MIN_BYTES * 10);
        assert!((1..=MAX_WORKERS).contains(&w), "{w}");
        assert_eq!(workers(1, PARALLEL_MIN_BYTES * 10), 1);
    }
}
