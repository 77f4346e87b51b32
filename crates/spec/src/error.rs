//! One error type for the whole tool, mapped to documented exit codes.

use std::path::Path;

/// Every failure the tool reports. The variant decides the exit code; the message is what the
/// user sees (one paragraph: what is wrong, where, and what is allowed).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad user input: experiment file, `--set` override, command-line value.
    #[error("{0}")]
    Input(String),
    /// The dataset files are missing, corrupt or inconsistent.
    #[error("{0}")]
    Data(String),
    /// The networks a command needs are not compiled into this binary: `runner` builds one
    /// that has them (see `runner::compile`) or reports `message`. Exit code 2, as bad input.
    #[error("{message}")]
    NotCompiled {
        networks: Vec<crate::network::Network>,
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Training itself failed (tensor-library error, failed sweep trials).
    #[error("{0}")]
    Failed(String),
    /// The training loss became NaN or infinite.
    #[error("{0}")]
    Diverged(String),
    /// Another runner process holds the run directory's lock.
    #[error("{0}")]
    Busy(String),
    /// The user stopped the run (Ctrl-C or SIGTERM).
    #[error("interrupted: {0}")]
    Interrupted(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Exit codes, documented in the README: 1 run failed, 2 bad input, 3 bad data,
    /// 4 I/O error, 5 diverged, 6 run directory busy (locked by another process), 130 interrupted.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Failed(_) => 1,
            Error::Input(_) | Error::NotCompiled { .. } => 2,
            Error::Data(_) => 3,
            Error::Io { .. } => 4,
            Error::Diverged(_) => 5,
            Error::Busy(_) => 6,
            Error::Interrupted(_) => 130,
        }
    }

    /// What [`Error::exit_code`] tells a script, as the README lists it.
    pub fn exit_code_meaning(&self) -> &'static str {
        match self {
            Error::Failed(_) => "run failed",
            Error::Input(_) | Error::NotCompiled { .. } => {
                "bad input: experiment, --set or arguments"
            }
            Error::Data(_) => "bad dataset files",
            Error::Io { .. } => "file-system error",
            Error::Diverged(_) => "diverged: non-finite loss",
            Error::Busy(_) => "run directory busy: another runner holds its lock",
            Error::Interrupted(_) => "interrupted",
        }
    }

    /// An I/O error with the action and path that failed.
    pub fn io(action: &str, path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            context: format!("cannot {action} {}", path.display()),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_exit_code_is_documented_in_the_readme() {
        let readme = include_str!("../../../README.md");
        let table = &readme[readme.find("## Exit codes").expect("section")..];
        for e in [
            Error::Failed(String::new()),
            Error::Input(String::new()),
            Error::Data(String::new()),
            Error::io("read", Path::new("x"), std::io::Error::other("x")),
            Error::Diverged(String::new()),
            Error::Busy(String::new()),
            Error::Interrupted(String::new()),
        ] {
            let row = format!("| {} | ", e.exit_code());
            assert!(
                table.contains(&row),
                "README lacks exit code {}",
                e.exit_code()
            );
        }
    }
}
