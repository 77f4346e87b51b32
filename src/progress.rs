//! Training progress on stderr: a live bar on a terminal, plain periodic lines otherwise
//! (logs, CI, scripts).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    /// Plain mode prints a line every this many steps.
    line_every: u64,
    start: Instant,
    /// The step this session started after (0, or the checkpoint's step after a resume): rates
    /// and ETAs count only the steps run since.
    resumed_after: Option<u64>,
    quiet: bool,
}

impl Progress {
    /// Progress for `total` steps; `quiet` prints nothing at all.
    pub fn new(total: u64, label: &str, quiet: bool) -> Self {
        let bar = (std::io::stderr().is_terminal() && !quiet).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(4));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Progress {
            bar,
            total,
            line_every: (total / 10).max(1),
            start: Instant::now(),
            resumed_after: None,
            quiet,
        }
    }

    /// After each training step, with the smoothed training loss and accuracy.
    pub fn step(&mut self, step: u64, loss: f64, accuracy: f64) {
        if self.quiet {
            return;
        }
        let first = *self.resumed_after.get_or_insert_with(|| {
            if let Some(bar) = &self.bar {
                // Start the bar's rate estimate here, not at 0.
                bar.set_position(step - 1);
                bar.reset_eta();
            }
            step - 1
        });
        match &self.bar {
            Some(bar) => {
                bar.set_position(step);
                bar.set_message(format!("loss {loss:.4} acc {:.2}%", accuracy * 100.0));
            }
            None if step.is_multiple_of(self.line_every) || step == self.total => {
                let elapsed = self.start.elapsed().as_secs_f64();
                let per_step = elapsed / (step - first) as f64;
                let eta = per_step * (self.total - step) as f64;
                crate::errln!(
                    "step {step}/{} ({:.0}%)  loss {loss:.4}  acc {:.2}%  {:.1} ms/step  ETA {}",
                    self.total,
                    100.0 * step as f64 / self.total as f64,
                    accuracy * 100.0,
                    1000.0 * per_step,
                    format_secs(eta)
                );
            }
            None => {}
        }
    }

    /// An evaluation's line: test loss and accuracy, then validation's when there is a split.
    pub fn eval(&self, step: u64, loss: f64, accuracy: f64, val: Option<(f64, f64)>) {
        if self.quiet {
            return;
        }
        let mut line = format!(
            "eval  step {step}: test loss {loss:.4}  test accuracy {:.2}%",
            accuracy * 100.0
        );
        if let Some((loss, accuracy)) = val {
            line += &format!(
                "  val loss {loss:.4}  val accuracy {:.2}%",
                accuracy * 100.0
            );
        }
        match &self.bar {
            Some(bar) => bar.println(line),
            None => crate::errln!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

pub fn format_secs(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}
