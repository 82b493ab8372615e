//! The thread pool every tensor operation runs on. Its size comes from `IQRS_NUM_THREADS`
//! (default: all cores) and can be changed with [`set_num_threads`]. Work below a size
//! threshold runs on the calling thread to avoid paying for the fork/join.

use std::sync::{Arc, RwLock};

use rayon::ThreadPool;

static POOL: RwLock<Option<Arc<ThreadPool>>> = RwLock::new(None);

fn default_threads() -> usize {
    std::env::var("IQRS_NUM_THREADS")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

fn build(n: usize) -> Arc<ThreadPool> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("iqrs-{i}"))
        .build()
        .unwrap_or_else(|_| rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a 1-thread pool"));
    Arc::new(pool)
}

/// The pool, created on first use.
pub fn pool() -> Arc<ThreadPool> {
    if let Some(p) = POOL.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        return p.clone();
    }
    let mut w = POOL.write().unwrap_or_else(|e| e.into_inner());
    w.get_or_insert_with(|| build(default_threads())).clone()
}

/// Number of threads the operations use.
pub fn num_threads() -> usize {
    pool().current_num_threads()
}

/// Sets the number of threads (at least 1) for all later operations.
pub fn set_num_threads(n: usize) {
    let n = n.max(1);
    if POOL.read().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(|p| p.current_num_threads() == n) {
        return;
    }
    let p = build(n);
    *POOL.write().unwrap_or_else(|e| e.into_inner()) = Some(p);
}
