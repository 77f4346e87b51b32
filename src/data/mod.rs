//! Datasets: the IDX reader, MNIST-format loading with checksum verification, and the decoded
//! cache that spares later runs the decompression.

pub mod bytes;
pub mod cache;
pub mod idx;
pub mod known;
pub mod mnist;

pub use mnist::{Dataset, Split};
