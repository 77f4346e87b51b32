//! Standard output that can be closed early. `runner ls | head -1` closes the pipe after one
//! line; Rust's `println!` then panics. These write instead, and a closed pipe comes back as an
//! I/O error of kind `BrokenPipe` that [`super::main`] ends quietly with exit 0, as git and
//! ripgrep do.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Writes formatted text to standard output.
pub fn write(args: std::fmt::Arguments) -> Result<()> {
    std::io::stdout()
        .lock()
        .write_fmt(args)
        .map_err(|e| Error::io("write to", Path::new("standard output"), e))
}

/// Whether `e` is a write to a pipe whose reader has gone.
pub fn is_closed_pipe(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
}

/// `print!` that returns an error instead of panicking (use with `?`).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::stdout::write(format_args!($($arg)*))
    };
}

/// `println!` that returns an error instead of panicking (use with `?`).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::stdout::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {out, outln};
