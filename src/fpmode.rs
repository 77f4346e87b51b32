//! Flush-to-zero for subnormal floats on every compute thread.
//!
//! Late in training, tiny gradients and moments become subnormal and x86 arithmetic on them is
//! many times slower. TensorFlow (the reference) flushes them to zero on its compute threads;
//! runner does the same unless `RUNNER_FLUSH_DENORMALS=0`, on every thread of the pool
//! (the `pool` module). Results stay deterministic.

/// Whether subnormals are flushed (the environment can turn it off).
pub fn enabled() -> bool {
    std::env::var("RUNNER_FLUSH_DENORMALS").map_or(true, |v| v != "0")
}

/// Sets FTZ and DAZ in this thread's MXCSR (x86-64 only; a no-op elsewhere).
pub fn flush_denormals_on_this_thread() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: reads and writes this thread's MXCSR register only; FTZ (bit 15) and DAZ (bit 6)
    // change how subnormal floats are treated, nothing else.
    unsafe {
        let mut csr: u32 = 0;
        std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack));
        csr |= (1 << 15) | (1 << 6);
        std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, readonly));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn subnormal_results_become_zero_on_a_flushing_thread() {
        let handle = std::thread::spawn(|| {
            let tiny = std::hint::black_box(f32::MIN_POSITIVE);
            let before = tiny / std::hint::black_box(4.0f32);
            super::flush_denormals_on_this_thread();
            let after = tiny / std::hint::black_box(4.0f32);
            (before, after)
        });
        let (before, after) = handle.join().unwrap();
        assert!(before > 0.0 && before.is_subnormal());
        if cfg!(target_arch = "x86_64") {
            assert_eq!(after, 0.0);
        }
    }
}
