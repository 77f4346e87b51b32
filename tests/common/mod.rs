//! Helpers shared by integration tests.

/// The seed for random kill instants: `RUNNER_KILL_SEED` when set (to replay a failure), else
/// the clock. Printed by the caller so that any run can be replayed.
pub fn kill_seed() -> u64 {
    std::env::var("RUNNER_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}
