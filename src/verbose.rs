//! `--verbose`: extra detail on stderr (what was resolved, where the data came from, each
//! checkpoint, the whole cause of an error). One switch for the process, like a log level, so
//! that deep code can report without threading a flag through every call.

use std::sync::atomic::{AtomicBool, Ordering};

static ON: AtomicBool = AtomicBool::new(false);

pub fn enable() {
    ON.store(true, Ordering::Relaxed);
}

pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// `eprintln!` that ignores a closed or failing stderr: progress and logs must never stop the
/// work (`2>&1 | head`, a terminal that went away); the run goes on and its files stay true.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Prints `runner: <message>` when verbose; the message is only built then.
pub fn say(message: impl FnOnce() -> String) {
    if on() {
        crate::errln!("runner: {}", message());
    }
}
