#!/usr/bin/env python3
"""A/B of two runner binaries on one experiment, alternating A and B (so drift on a shared
machine hits both alike): median training ms per step and median evaluation seconds (wall time
less training, start-up and checkpoints: the evaluations and the final writes), then B/A.
RUNNER_ISA is passed through, so `RUNNER_ISA=avx2 python3 bench/ab.py ...` measures that path
(on a binary that honours it). Each repetition runs in a fresh runs directory.

    python3 bench/ab.py OLD_RUNNER NEW_RUNNER --reps 5 -- experiments/baseline.toml \\
        --set train.steps=300 --set train.eval_every=300
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def once(runner, args):
    with tempfile.TemporaryDirectory() as runs:
        subprocess.run([runner, "run", *args, "--runs-dir", runs, "-q"], check=True,
                       stdout=subprocess.DEVNULL)
        (run,) = os.listdir(runs)
        s = json.load(open(os.path.join(runs, run, "summary.json")))
        evaluation = (s["wall_time_s"] - s["train_time_s"] - s.get("startup_s", 0)
                      - s.get("checkpoint_time_s", 0))
        return s["ms_per_step"], evaluation


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--reps", type=int, default=5)
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = p.parse_args(argv[:split])
    run_args = argv[split + 1:]
    got = {"a": [], "b": []}
    for rep in range(args.reps):
        for which in ("a", "b") if rep % 2 == 0 else ("b", "a"):
            got[which].append(once(getattr(args, which), run_args))
            step, ev = got[which][-1]
            print(f"rep {rep} {which}: {step:.2f} ms/step, evaluation {ev:.2f} s", file=sys.stderr)
    med = {w: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v))
           for w, v in got.items()}
    isa = os.environ.get("RUNNER_ISA", "auto")
    print(f"RUNNER_ISA={isa}, {args.reps} alternating repetitions, medians: "
          f"training A {med['a'][0]:.2f} B {med['b'][0]:.2f} ms/step (B/A {med['b'][0] / med['a'][0]:.3f}); "
          f"evaluation A {med['a'][1]:.2f} B {med['b'][1]:.2f} s (B/A {med['b'][1] / med['a'][1]:.3f})")


if __name__ == "__main__":
    main()
