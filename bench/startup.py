#!/usr/bin/env python3
"""Start-up of runner binaries, alternating: the summary's `startup_s` (command start to the first
training step) and the wall time of a whole 1-step run, medians over --reps runs each.

    python3 bench/startup.py OLD_BINARY NEW_BINARY [--reps 10] [--experiment experiments/mlp.toml]

Each binary reads its data as it would for a user; the first, untimed run of each warms the
page cache and any decoded-dataset cache.
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def once(binary, experiment):
    with tempfile.TemporaryDirectory() as runs:
        t0 = time.perf_counter()
        subprocess.run([binary, "--quiet", "run", experiment, "--runs-dir", runs, "--set", "train.steps=1",
                        "--set", "train.eval_every=1"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        with open(glob.glob(os.path.join(runs, "*", "summary.json"))[0]) as f:
            return json.load(f)["startup_s"], wall


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("binaries", nargs="+")
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--experiment", default="experiments/mlp.toml")
    args = p.parse_args()
    for b in args.binaries:
        once(b, args.experiment)
    got = {b: [] for b in args.binaries}
    for _ in range(args.reps):
        for b in args.binaries:
            got[b].append(once(b, args.experiment))
    print(f"{args.experiment}, 1-step runs, medians of {args.reps} (alternating)")
    print("| binary | start-up ms | 1-step run wall ms |")
    print("| --- | --- | --- |")
    for b, xs in got.items():
        print(f"| {b} | {1000 * statistics.median(x[0] for x in xs):.1f} "
              f"| {1000 * statistics.median(x[1] for x in xs):.1f} |")


if __name__ == "__main__":
    main()
