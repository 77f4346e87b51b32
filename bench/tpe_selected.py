#!/usr/bin/env python3
"""How good is the configuration a search picks? The best trial's objective flatters it: it is
the largest of many noisy values. Retrains each search's best trial after K trials (from
bench/tpe_vs_optuna.py's trials.json files) with runner at other seeds (which also hold out
other validation images) and reports, per method, the median over searches of the mean test
accuracy, so that methods are compared on what they chose rather than on how lucky their best
trial was.

    python3 bench/tpe_selected.py bench/results/tpe-cnn-2026-12-06/trials.json.gz --space cnn

Trials train as in the sweep (its base, its [set], the trial's values) with `--set seed=S` for
each of --seeds; --jobs at a time; one training per distinct configuration and seed.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from tpe_vs_optuna import (SPACES, load_results, runner_trains, sweep_axes,  # noqa: E402
                           sweep_path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("trials", nargs="+", help="trials.json(.gz) files (merged as --report does)")
    p.add_argument("--space", required=True, choices=sorted(SPACES))
    p.add_argument("--after", type=int, nargs="+", default=[20, 40])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--runner", default=os.path.join(ROOT, "target", "release", "runner"))
    args = p.parse_args()
    methods = load_results(args.trials).get(args.space, {})
    axes = sweep_axes(args.space)
    # A random search's trials also record the sweep's [set] and seed; keep the searched axes.
    picks = {(m, i, k): max(s["trials"][:k], key=lambda t: t["value"])
             for m, ss in methods.items() for i, s in enumerate(ss) for k in args.after}
    picks = {key: {**t, "params": {a: v for a, v in t["params"].items() if a in axes}}
             for key, t in picks.items()}
    configs = sorted({json.dumps(t["params"], sort_keys=True) for t in picks.values()})
    jobs = [(c, s) for c in configs for s in args.seeds]
    print(f"{len(configs)} configurations x {len(args.seeds)} seeds", file=sys.stderr)
    with tempfile.TemporaryDirectory() as runs, ThreadPoolExecutor(args.jobs) as pool:
        accs = dict(zip(jobs, pool.map(
            lambda cs: runner_trains(args.runner, sweep_path(args.space), json.loads(cs[0]), runs,
                                     "--set", f"seed={cs[1]}")["test_accuracy"], jobs)))
    quality = {c: statistics.mean(accs[(c, s)] for s in args.seeds) for c in configs}
    print(f"{args.space}: each search's best trial after k trials, trained again by runner at "
          f"seeds {args.seeds}; medians over searches of its best objective and of the mean test "
          f"accuracy of those trainings\n")
    print("| method | searches | " + " | ".join(
        f"best @{k} | retrained @{k}" for k in args.after) + " |")
    print("|---|---|" + "---|---|" * len(args.after))
    for m, ss in methods.items():
        cells = []
        for k in args.after:
            chosen = [picks[(m, i, k)] for i in range(len(ss))]
            cells.append(f"{100 * statistics.median(t['value'] for t in chosen):.2f} %")
            cells.append(f"{100 * statistics.median(quality[json.dumps(t['params'], sort_keys=True)] for t in chosen):.2f} %")
        print(f"| {m} | {len(ss)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
