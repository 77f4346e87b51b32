#!/bin/bash
# The cost of activations other than ReLU and of dropout on the reference CNN: alternating runs
# of 300 steps (evaluated once, at the end) with each; prints ms per training step and the
# seconds of the evaluation on the 10,000 test images. Needs `cargo build --release` first.
cd "$(dirname "$0")/.."
for rep in 1 2 3; do
  for v in relu elu gelu relu+dropout; do
    R=$(mktemp -d)
    a=${v%%+*}; extra=""
    [ "$v" = "relu+dropout" ] && extra="--set model.dropout=0.5"
    RUNNER_RUNS_DIR=$R ./target/release/runner run experiments/baseline.toml --set train.steps=300 --set train.eval_every=300 --set model.activation=$a $extra -q >/dev/null 2>&1
    python3 -c "
import json,glob
s=json.load(open(glob.glob('$R/*/summary.json')[0]))
print('$v', round(s['ms_per_step'],2), round(s['wall_time_s']-s['train_time_s']-s['startup_s']-s['checkpoint_time_s'],2))"
    rm -rf $R
  done
done
