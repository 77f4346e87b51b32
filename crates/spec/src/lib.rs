//! What an experiment or sweep file means, shared by `runner` and its build script: the
//! schema, parsing with defaults and overrides, the canonical form and hash, sweep expansion,
//! and the networks an experiment declares. The build script compiles exactly the networks that
//! `runner` will ask for because both resolve files with this crate.

pub mod catalog;
pub mod config;
pub mod error;
pub mod metric;
pub mod network;
pub mod rule;
pub mod schedule;
pub mod sweep;
pub mod text;

pub use error::{Error, Result};
