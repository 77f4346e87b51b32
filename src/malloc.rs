//! glibc malloc tuning for training loops. Each step allocates and frees the same few
//! multi-megabyte buffers (activations, gradients, copies in and out of dfdx tensors). By default
//! glibc serves those with fresh `mmap`s and returns them to the kernel on free, so every step
//! pays page faults, zeroing and cross-core TLB shootdowns. Keeping them on the heap measured
//! 7 % faster training steps and 12 % faster evaluation on the baseline network
//! (`cargo bench --bench kernels`, with and without the equivalent MALLOC_* variables).

/// Keeps allocations up to 32 MiB (glibc's maximum) on the heap and freed memory in the process.
/// Call once, before threads start. A no-op where the C library is not glibc.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}
