//! The pool's other threads kept polling for work through a training step. A step is a few
//! hundred parallel stretches (each op's loops, each product's k blocks) between stretches
//! that only the step's own thread runs (dfdx's tape, copies out of its tensors). rayon puts
//! an idle worker to sleep after a few dozen empty rounds, and the next parallel loop then
//! waits for a futex wake: on this project's 2-core VM the second thread slept ~350 times a
//! reference bf16 step and ran 41 µs on average after each wake (`perf sched timehist`), and
//! the step's thread spent 2–3 % of its time in the wake-ups' system calls.
//!
//! While an `Awake` lives, one job on each other thread of the pool loops on
//! `rayon::yield_now`, which runs whatever work the pool has: it spins on its core instead
//! of sleeping. Work is found and run exactly as before (the same splits, the same order of
//! sums), so results do not change.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Keeps the pool's other threads polling until it drops.
pub struct Awake {
    stop: Arc<AtomicBool>,
}

impl Awake {
    /// Starts the pollers, when called on a thread of a pool of more than one thread (the
    /// trainer's, under `training.threads` or `pretext bench`); elsewhere does nothing.
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        if let Some(owner) = rayon::current_thread_index() {
            if rayon::current_num_threads() > 1 {
                let stop = stop.clone();
                // One job for each thread of the pool, which no other thread can take.
                rayon::spawn_broadcast(move |ctx| {
                    if ctx.index() != owner {
                        poll(&stop)
                    }
                });
            }
        }
        Awake { stop }
    }
}

impl Drop for Awake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Runs the pool's work as it comes until `stop`, or until none has come for `IDLE`; the
/// thread then goes back to rayon's own idling, sleep included.
///
/// The second way out matters because a thread may take its poller while it waits inside a
/// parallel loop for work another thread runs (when the poller arrives while it is busy):
/// the poller then sits on top of that wait, which cannot end before the poller does.
/// Returning when idle bounds that to `IDLE`, where it would otherwise last the rest of the
/// step, or forever when the loop is one that the step must finish before it drops the
/// `Awake` (`tests`).
fn poll(stop: &AtomicBool) {
    let mut idle_since = std::time::Instant::now();
    while !stop.load(Ordering::Acquire) && idle_since.elapsed() < IDLE {
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            idle_since = std::time::Instant::now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// How long a poller waits for work: longer than a step's single-threaded stretches (with
/// 2 ms the gain was gone: some stretch of a step, the batch drawn at its start perhaps,
/// outlasted that and ended the polling), short beside a step.
const IDLE: std::time::Duration = std::time::Duration::from_millis(20);

#[cfg(test)]
mod tests {
    use super::Awake;
    use std::time::Duration;

    /// Pollers started while the other workers are busy, one of which then picks one up as it
    /// waits inside a parallel loop for the half a third thread runs: the loop must still
    /// end. With pollers that stop only when the `Awake` drops (here: after the loop), that
    /// worker would poll on top of its wait forever and this would hang (caught by the
    /// timeout).
    #[test]
    fn a_poller_never_holds_up_a_parallel_loop() {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(3)
                .build()
                .unwrap();
            pool.install(|| {
                for _ in 0..20 {
                    let (awake, ()) = rayon::join(
                        || {
                            // Another worker steals the second half and splits it; the
                            // third takes its second quarter.
                            std::thread::sleep(Duration::from_millis(2));
                            Awake::start()
                        },
                        || {
                            rayon::join(
                                || std::thread::sleep(Duration::from_millis(4)),
                                || std::thread::sleep(Duration::from_millis(4)),
                            );
                        },
                    );
                    drop(awake);
                }
            });
            done.send(()).unwrap();
        });
        finished
            .recv_timeout(Duration::from_secs(60))
            .expect("a parallel loop did not finish: a poller held up a wait");
    }
}
