//! Reading `metrics.csv` and `eval.csv` back as typed rows. Columns are found by the header
//! names the writer uses ([`super::METRICS_HEADER`], [`super::EVAL_HEADER_WITH_VALIDATION`]),
//! so that the file format has one owner: this module and the writer beside it.

use super::{RunDir, EVAL, METRICS};
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalRow {
    pub step: u64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    /// Validation loss and accuracy, in runs with a validation split.
    pub val: Option<(f64, f64)>,
    /// Seconds since the run started (the last column).
    pub elapsed_s: Option<f64>,
}

impl EvalRow {
    /// The accuracy that picks a run's best evaluation: validation when the run has a split.
    pub fn selection_accuracy(&self) -> f64 {
        self.val.map_or(self.test_accuracy, |(_, acc)| acc)
    }
}

/// One `metrics.csv` row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepRow {
    pub step: u64,
    pub loss: f64,
    pub accuracy: f64,
    /// The learning rate the step used.
    pub lr: f64,
    /// Seconds since the run started, when the step ended.
    pub elapsed_s: Option<f64>,
}

/// The evaluations of a run (none if `eval.csv` is missing or has no header).
pub fn evals(dir: &RunDir) -> Vec<EvalRow> {
    let path = dir.file(EVAL);
    let Some(col) = columns(&path) else {
        return Vec::new();
    };
    let (Some(step), Some(loss), Some(acc)) = (col("step"), col("test_loss"), col("test_accuracy"))
    else {
        return Vec::new();
    };
    let val = col("val_loss").zip(col("val_accuracy"));
    let elapsed = col("elapsed_s");
    rows(&path, None)
        .into_iter()
        .filter_map(|f| {
            let num = |c: usize| f.get(c).and_then(|v| v.parse().ok());
            Some(EvalRow {
                step: f.get(step)?.parse().ok()?,
                test_loss: num(loss)?,
                test_accuracy: num(acc)?,
                val: match val {
                    Some((l, a)) => Some((num(l)?, num(a)?)),
                    None => None,
                },
                elapsed_s: elapsed.and_then(num),
            })
        })
        .collect()
}

/// Training rows from `metrics.csv`. With `last`, only (at least) the last rows: read from the
/// end of the file, so that large logs cost little.
pub fn steps(dir: &RunDir, last: Option<usize>) -> Vec<StepRow> {
    let path = dir.file(METRICS);
    let Some(col) = columns(&path) else {
        return Vec::new();
    };
    let (Some(step), Some(loss), Some(acc), Some(lr)) =
        (col("step"), col("loss"), col("accuracy"), col("lr"))
    else {
        return Vec::new();
    };
    let elapsed = col("elapsed_s");
    rows(&path, last)
        .into_iter()
        .filter_map(|f| {
            let num = |c: usize| f.get(c).and_then(|v| v.parse::<f64>().ok());
            Some(StepRow {
                step: f.get(step)?.parse().ok()?,
                loss: num(loss)?,
                accuracy: num(acc)?,
                lr: num(lr)?,
                elapsed_s: elapsed.and_then(num),
            })
        })
        .collect()
}

/// The position of each column by name, from the file's header line.
fn columns(path: &Path) -> Option<impl Fn(&str) -> Option<usize>> {
    let file = std::fs::File::open(path).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(file.take(4096))
        .read_line(&mut line)
        .ok()?;
    let header: Vec<String> = line.trim_end().split(',').map(str::to_string).collect();
    Some(move |name: &str| header.iter().position(|h| h == name))
}

/// Complete data rows of a CSV file (header skipped). A last line without its newline is a row
/// still being written and is left out. With `last`, reads only enough of the end of the file.
fn rows(path: &Path, last: Option<usize>) -> Vec<Vec<String>> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut window: u64 = last.map_or(len, |n| (n as u64 + 2) * 64);
    loop {
        let start = len.saturating_sub(window);
        let mut buf = Vec::new();
        if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut buf).is_err() {
            return Vec::new();
        }
        let text = String::from_utf8_lossy(&buf);
        let mut lines: Vec<&str> = text.split('\n').collect();
        lines.pop(); // the text after the last newline: empty, or a partial row
        if start > 0 {
            lines.remove(0); // may begin mid-line
        } else if !lines.is_empty() {
            lines.remove(0); // the header
        }
        let enough = last.is_none_or(|n| lines.len() >= n) || start == 0;
        if enough {
            let skip = last.map_or(0, |n| lines.len().saturating_sub(n));
            return lines[skip..]
                .iter()
                .map(|l| l.split(',').map(str::to_string).collect())
                .collect();
        }
        window *= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_reading_drops_a_partial_last_line_and_reads_tails() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.csv");
        let mut text = "step,x\n".to_string();
        for i in 1..=1000 {
            text.push_str(&format!("{i},{}\n", i * 2));
        }
        text.push_str("1001,20"); // being written
        std::fs::write(&p, &text).unwrap();
        let all = rows(&p, None);
        assert_eq!(all.len(), 1000);
        assert_eq!(all[999], ["1000", "2000"]);
        let tail = rows(&p, Some(3));
        assert_eq!(tail, [["998", "1996"], ["999", "1998"], ["1000", "2000"]]);
        assert_eq!(rows(&p, Some(5000)).len(), 1000);
        assert!(rows(&dir.path().join("missing.csv"), None).is_empty());
    }

    #[test]
    fn rows_are_read_by_column_name() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path().to_path_buf());
        std::fs::write(
            run.file(EVAL),
            "step,test_loss,test_accuracy,val_loss,val_accuracy,elapsed_s\n5,0.5,0.8,0.6,0.7,1.5\n",
        )
        .unwrap();
        let e = evals(&run);
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].step, e[0].test_accuracy, e[0].val),
            (5, 0.8, Some((0.6, 0.7)))
        );
        assert_eq!(e[0].elapsed_s, Some(1.5));
        std::fs::write(
            run.file(METRICS),
            "step,epoch,loss,accuracy,lr,examples,elapsed_s\n1,0,2.5,0.1,0.001,32,0.01\n",
        )
        .unwrap();
        let s = steps(&run, None);
        assert_eq!(
            (s[0].step, s[0].loss, s[0].accuracy, s[0].lr),
            (1, 2.5, 0.1, 0.001)
        );
    }
}
