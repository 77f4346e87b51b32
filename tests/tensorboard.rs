//! `runner export tensorboard`, read back with TensorBoard's own reader (the `tensorboard`
//! Python package's EventAccumulator). Skipped, saying why, when no Python with that package is
//! found: `RUNNER_TENSORBOARD_PYTHON` names one, else `python3` is tried.

mod common;

use std::process::Command;

const READ: &str = "
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
acc = EventAccumulator(sys.argv[1], size_guidance={'scalars': 0})
acc.Reload()
out = {t: [[e.step, e.value, e.wall_time] for e in acc.Scalars(t)] for t in acc.Tags()['scalars']}
hp = acc.PluginTagToContent('hparams')
start = plugin_data_pb2.HParamsPluginData.FromString(hp['_hparams_/session_start_info'])
end = plugin_data_pb2.HParamsPluginData.FromString(hp['_hparams_/session_end_info'])
values = start.session_start_info.hparams
out['hparams'] = {k: values[k].WhichOneof('kind') and getattr(values[k], values[k].WhichOneof('kind')) for k in values}
out['end_status'] = end.session_end_info.status
print(json.dumps(out))
";

fn python_with_tensorboard() -> Option<String> {
    let candidates = std::env::var("RUNNER_TENSORBOARD_PYTHON")
        .ok()
        .into_iter()
        .chain(["python3".to_string()]);
    for python in candidates {
        let ok = Command::new(&python)
            .args(["-c", "import tensorboard"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(python);
        }
    }
    None
}

#[test]
fn tensorboard_reads_the_exported_scalars() {
    let Some(python) = python_with_tensorboard() else {
        eprintln!(
            "skipped: no Python with the tensorboard package (pip install tensorboard, or set \
             RUNNER_TENSORBOARD_PYTHON)"
        );
        return;
    };
    let runs = tempfile::tempdir().unwrap();
    let runner = |args: &[&str]| common::runner(args, runs.path());
    let out = runner(&[
        "run",
        "experiments/smoke.toml",
        "--set",
        "data.validation=1000",
        "-q",
    ]);
    assert!(out.status.success());
    let tb = runs.path().join("tb");
    let out = runner(&["export", "tensorboard", "smoke", "-o", tb.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_dir = std::fs::read_dir(&tb)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let read = Command::new(&python)
        .args(["-c", READ, run_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let scalars: serde_json::Value = serde_json::from_slice(&read.stdout).unwrap();
    for tag in [
        "train/loss",
        "train/accuracy",
        "train/lr",
        "test/loss",
        "test/accuracy",
        "val/loss",
        "val/accuracy",
    ] {
        assert!(
            scalars.get(tag).is_some(),
            "TensorBoard lists no {tag}: {scalars}"
        );
    }
    assert_eq!(scalars["train/loss"].as_array().unwrap().len(), 60);
    // The HParams plugin's session: the config keys, typed, and a successful end.
    assert_eq!(scalars["hparams"]["optimizer.lr"], 0.1);
    assert_eq!(scalars["hparams"]["optimizer.kind"], "sgd");
    assert_eq!(scalars["hparams"]["optimizer.nesterov"], false);
    assert_eq!(scalars["hparams"]["data.validation"], 1000.0);
    assert_eq!(scalars["end_status"], 1);
    assert_eq!(scalars["test/accuracy"].as_array().unwrap().len(), 2);
    // The values are the logs' values (as f32).
    let run = common::the_run(runs.path());
    let eval = std::fs::read_to_string(run.join("eval.csv")).unwrap();
    // Finding 4 of issue 34: every event had the run's start as its wall time. Now each is the
    // start plus the step's elapsed_s, so TensorBoard's relative and wall axes mean something.
    let walls: Vec<f64> = scalars["train/loss"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[2].as_f64().unwrap())
        .collect();
    assert!(walls.windows(2).all(|w| w[0] <= w[1]), "{walls:?}");
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let elapsed: Vec<f64> = metrics
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    let (span, logged_span) = (walls[59] - walls[0], elapsed[59] - elapsed[0]);
    assert!(
        span > 0.0 && (span - logged_span).abs() < 1e-3,
        "{span} vs {logged_span}"
    );
    let last: Vec<&str> = eval.lines().last().unwrap().split(',').collect();
    let logged: f64 = last[2].parse().unwrap();
    let point = &scalars["test/accuracy"][1];
    assert_eq!(point[0], 60);
    assert!(
        (point[1].as_f64().unwrap() - logged).abs() < 1e-6,
        "{point} vs {logged}"
    );
}
