//! Worker threads for the emulated GPU threads, reused across blocks and launches.
//!
//! Starting an OS thread costs 50-100 µs on the build machine, more than most emulated blocks
//! run, so a launch checks out one worker per thread of a block from a process-wide pool and
//! returns them when the launch ends. Each block still gets all its threads at once (a barrier
//! needs every thread of the block alive).
//!
//! Workers are named `emu-w<k>`. With `NANO_EMU_NAMES=1` every worker renames itself (Linux:
//! `/proc/thread-self/comm`) to `b<block>t<thread>` for each block it runs, so a debugger's
//! thread list shows which emulated thread is which.

use std::boxed::Box;
use std::format;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Condvar, Mutex, OnceLock};
use std::vec::Vec;

use super::block::lock;

/// Stack of each worker: kernels keep small arrays in "registers", which in a debug build are
/// stack slots; 1 MiB is generous and costs only address space.
const WORKER_STACK: usize = 1 << 20;

/// One unit of work: an emulated thread of a block, type-erased.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// Counts finished jobs; `wait` returns when all have.
pub(crate) struct Latch {
    left: Mutex<u32>,
    cv: Condvar,
}

impl Latch {
    pub fn new(n: u32) -> Self {
        Latch {
            left: Mutex::new(n),
            cv: Condvar::new(),
        }
    }

    pub fn count_down(&self) {
        let mut left = lock(&self.left);
        *left -= 1;
        if *left == 0 {
            self.cv.notify_all();
        }
    }

    pub fn wait(&self) {
        let mut left = lock(&self.left);
        while *left > 0 {
            left = self.cv.wait(left).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// An idle worker: the sending end of its job queue.
pub(crate) struct Worker {
    jobs: Sender<Job>,
}

impl Worker {
    /// Hands `job` to the worker; `false` if the worker is gone (it never exits on its own).
    pub fn run(&self, job: Job) -> bool {
        self.jobs.send(job).is_ok()
    }
}

static IDLE: OnceLock<Mutex<Vec<Worker>>> = OnceLock::new();
static SPAWNED: Mutex<u64> = Mutex::new(0);

fn idle() -> &'static Mutex<Vec<Worker>> {
    IDLE.get_or_init(|| Mutex::new(Vec::new()))
}

/// Takes `n` workers from the pool, starting new ones as needed.
pub(crate) fn checkout(n: usize) -> std::io::Result<Vec<Worker>> {
    let mut got = {
        let mut idle = lock(idle());
        let keep = idle.len().saturating_sub(n);
        idle.split_off(keep)
    };
    while got.len() < n {
        got.push(spawn()?);
    }
    Ok(got)
}

/// Returns workers to the pool.
pub(crate) fn give_back(workers: Vec<Worker>) {
    lock(idle()).extend(workers);
}

fn spawn() -> std::io::Result<Worker> {
    let k = {
        let mut n = lock(&SPAWNED);
        *n += 1;
        *n
    };
    let (tx, rx): (Sender<Job>, Receiver<Job>) = channel();
    std::thread::Builder::new()
        .name(format!("emu-w{k}"))
        .stack_size(WORKER_STACK)
        .spawn(move || {
            for job in rx {
                job();
            }
        })?;
    Ok(Worker { jobs: tx })
}

/// Renames the calling worker (best effort, Linux only) when `NANO_EMU_NAMES` is set.
pub(crate) fn name_thread(block: u64, thread: u32) {
    static ON: OnceLock<bool> = OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("NANO_EMU_NAMES").is_some()) {
        let _ = std::fs::write("/proc/thread-self/comm", format!("b{block}t{thread}"));
    }
}
