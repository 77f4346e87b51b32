//! `runner`: a declarative experiment runner for neural-network training on dfdx.
//!
//! An experiment file (TOML) is parsed and validated ([`config`]), selects a statically typed
//! network from the registry ([`models`]), trains it on MNIST-format data ([`data`],
//! [`train`]) and writes a content-hashed run directory ([`rundir`], [`run`]).

pub mod cache_dir;
pub mod cli;
pub mod compile;
pub mod data;
pub mod fpmode;
pub mod malloc;
pub mod models;
pub mod optim;
pub mod pool;
pub mod progress;
pub mod report;
pub mod run;
pub mod rundir;
pub mod sweep;
pub mod train;
pub mod verbose;
pub mod verify;

pub use error::{Error, Result};
pub use runner_spec::{config, error};
pub mod ops;
