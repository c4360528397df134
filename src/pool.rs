//! The job pool of `pretext run --jobs N`: N runs at a time, each on threads of its own.

use anyhow::Result;

/// Calls `f` on every item, `jobs` at a time; returns the indices that failed (each failure
/// is printed as it happens, and the others carry on).
pub fn parallel<T: Sync>(
    jobs: usize,
    items: &[T],
    f: impl Fn(&T) -> Result<()> + Sync,
) -> Vec<usize> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(items.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                if let Err(e) = f(item) {
                    eprintln!("  FAILED: {e:#}");
                    failures.lock().unwrap_or_else(|p| p.into_inner()).push(i);
                }
            });
        }
    });
    let mut v = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    v.sort();
    v
}

/// Runs `f` on a rayon pool of its own with `threads` threads (0: on the global pool).
/// Jobs that share one pool queue their kernels behind each other's, so a run's speed — and
/// what a time budget (`training.budget`) buys — depends on what the other job computes: in
/// reports/speedrun (one shared pool of 2 threads) a run of 16-sequence batches reached
/// 690–718 steps in 10 minutes beside a run of 64-sequence batches, and 883–901 beside
/// another of 16. On pools of their own, jobs share only the cores.
///
/// Either way `f` itself runs on one of the pool's threads, never on the caller's: a
/// parallel loop started from outside a pool is handed to it and the caller sleeps until it
/// is done — a wake-up and a sleep for each of the thousand-odd kernels of a step (futex time
/// in `perf` of `pretext bench`). Inside, the thread that starts a loop works on it too.
pub fn own_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    let threads = at_most_cores(threads);
    let pool = (threads > 0)
        .then(|| rayon::ThreadPoolBuilder::new().num_threads(threads).build())
        .and_then(Result::ok);
    match pool {
        Some(pool) => pool.install(f),
        // `scope` runs its body on a thread of the global pool.
        None => rayon::scope(|_| f()),
    }
}

/// `threads`, or the machine's core count where it is more (with one line saying so, once a
/// process). Threads beyond the cores only wait for each other: 4,096 of them on 2 cores made a
/// one-step `pretext bench` take minutes. The result does not change, since every kernel
/// gives the same bits on any number of threads.
pub fn at_most_cores(threads: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(threads, |n| n.get());
    if threads <= cores {
        return threads;
    }
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        eprintln!(
            "{threads} threads asked for, and this machine has {cores} cores: using {cores} \
             (the results are the same bits on any thread count)"
        )
    });
    cores
}

#[cfg(test)]
mod tests {
    #[test]
    fn threads_past_the_cores_are_the_cores() {
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(super::at_most_cores(usize::MAX), cores);
        assert_eq!(super::at_most_cores(cores + 1), cores);
        assert_eq!(super::at_most_cores(1), 1);
        assert_eq!(super::at_most_cores(0), 0);
    }

    /// Each job's kernels run on its own pool of `training.threads` threads, not the shared one.
    #[test]
    fn a_job_runs_on_a_pool_of_its_own() {
        // Pools of one thread, told apart from the global pool of one per core (threads
        // past the cores are the cores, `at_most_cores`).
        assert!(
            rayon::current_num_threads() > 1,
            "needs a machine of 2 cores"
        );
        let seen = super::parallel(2, &[1usize, 1], |&n| {
            let inside = super::own_threads(n, rayon::current_num_threads);
            anyhow::ensure!(inside == n, "{inside} threads, expected {n}");
            Ok(())
        });
        assert!(seen.is_empty(), "jobs {seen:?} ran on another pool");
        assert_eq!(
            super::own_threads(0, rayon::current_num_threads),
            rayon::current_num_threads()
        );
    }

    /// The job's own code runs on a thread of its pool (so that its parallel loops need no
    /// hand-over), the global pool's included.
    #[test]
    fn a_job_runs_on_a_thread_of_its_pool() {
        for threads in [0, 1, 2] {
            let index = super::own_threads(threads, rayon::current_thread_index);
            assert!(index.is_some(), "threads = {threads}: ran outside the pool");
        }
    }
}
