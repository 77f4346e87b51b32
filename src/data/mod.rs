//! Datasets: the IDX reader and MNIST-format loading with checksum verification.

pub mod idx;
pub mod known;
pub mod mnist;

pub use mnist::{Dataset, Split};
