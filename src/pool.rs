//! rayon's global pool, which dfdx's matmul and this project's kernels use. The thread that
//! builds it (the main thread) is one of its workers, so a parallel region it starts runs as a
//! join on a worker instead of being handed to the pool from outside, which wakes a worker and
//! puts the caller to sleep for every region: dozens a training step. On one thread the MLP's
//! step (hidden 64, batch 32) went from 0.33 to 0.17 ms; on two, the reference CNN's from 22.0
//! to 20.7 ms. The thread count, and so the results, are what they were (`RAYON_NUM_THREADS`).
//!
//! With one thread the pool is the main thread alone: rayon called from another thread while
//! the main thread waits outside rayon would never run. Nothing does (sweep workers and the data
//! reader's thread do no parallel work).

use crate::fpmode;

/// Builds the global pool, its threads flushing subnormals unless the environment says not to
/// (see [`fpmode`]). Call once, on the main thread, before any parallel work. Returns whether it
/// was built here (not if something built it before, e.g. a test).
pub fn install() -> bool {
    let flush = fpmode::enabled();
    if flush {
        fpmode::flush_denormals_on_this_thread();
    }
    let builder = rayon::ThreadPoolBuilder::new().use_current_thread();
    let builder = if flush {
        builder.start_handler(|_| fpmode::flush_denormals_on_this_thread())
    } else {
        builder
    };
    builder.build_global().is_ok()
}
