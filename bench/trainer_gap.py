#!/usr/bin/env python3
"""Trainer or sampler? Retrains trials Optuna + PyTorch trained (bench/tpe_vs_optuna.py's
trials.json) with runner and, again, with PyTorch (another data order), the same values of the
space's axes, and compares the objectives trial by trial: if runner's trainer scores the same
configurations lower than PyTorch's second try does, a gap between the searches is the trainer's,
not the sampler's. (The best trials' recorded values are biased upwards: they were picked for
being high. The second PyTorch try is not, so runner is compared with it.)

    python3 bench/trainer_gap.py bench/results/tpe-2026-12-06/trials.json.gz --space cnn \\
        --top 30 --random 30

Picks, over all searches of --method, the --top best trials and --random others (seeded), trains
each with `runner run` (the sweep's base, its [set], the trial's values; --jobs at a time) and
with PyTorch (bench/optuna_search.py --replay), prints the three objectives per trial, then the mean
differences over the picked top and random trials and how often two trainers rank two trials
alike.
"""
import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import tomllib
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from tpe_vs_optuna import SPACES, load_results, optuna_search, runner_trains, sweep_path  # noqa: E402,E501


def pytorch_values(python, runner, space, trials, jobs):
    """The trials trained again by bench/optuna_search.py's PyTorch model."""
    return optuna_search(python, runner, sweep_path(space), "--jobs", str(jobs),
                         "--replay", json.dumps([t["params"] for t in trials]))


def concordance(pairs):
    """The share of trial pairs both objectives order the same way (ties skipped)."""
    same = total = 0
    for i, (a1, b1) in enumerate(pairs):
        for a2, b2 in pairs[i + 1:]:
            if a1 != a2 and b1 != b2:
                total += 1
                same += (a1 > a2) == (b1 > b2)
    return same / total if total else float("nan")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("trials", help="trials.json(.gz) written by bench/tpe_vs_optuna.py --out")
    p.add_argument("--space", required=True, choices=sorted(SPACES))
    p.add_argument("--method", default="optuna-tpe")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--random", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--runner", default=os.path.join(ROOT, "target", "release", "runner"))
    p.add_argument("--venv", default=os.environ.get(
        "RUNNER_BENCH_VENV", os.path.expanduser("~/.cache/runner-bench/venv")))
    args = p.parse_args()
    searches = load_results([args.trials])[args.space][args.method]
    trials = sorted((t for s in searches for t in s["trials"]), key=lambda t: -t["value"])
    rest = trials[args.top:]
    picked = [("top", t) for t in trials[:args.top]]
    picked += [("random", t) for t in random.Random(args.seed).sample(rest, min(args.random,
                                                                                  len(rest)))]
    with open(sweep_path(args.space), "rb") as fh:
        metric = tomllib.load(fh).get("metric", "val_accuracy")
    with tempfile.TemporaryDirectory() as runs, ThreadPoolExecutor(args.jobs) as pool:
        values = list(pool.map(
            lambda pt: runner_trains(args.runner, sweep_path(args.space), pt[1]["params"],
                                     runs)[metric], picked))
    again = pytorch_values(os.path.join(args.venv, "bin", "python"), args.runner, args.space,
                           [t for _, t in picked], args.jobs)
    print("| pick | params | recorded | pytorch again | runner | runner - pytorch again |")
    print("|---|---|---|---|---|---|")
    for (kind, t), a, v in zip(picked, again, values):
        print(f"| {kind} | {json.dumps(t['params'], sort_keys=True)} | {t['value']:.4f} | {a:.4f} "
              f"| {v:.4f} | {100 * (v - a):+.2f} |")
    print()
    for kind in ("top", "random"):
        rows = [(t["value"], a, v) for (k, t), a, v in zip(picked, again, values) if k == kind]
        if not rows:
            continue
        for label, col in (("recorded", 0), ("pytorch again", 1)):
            d = [r[2] - r[col] for r in rows]
            print(f"{kind} {len(d)}: runner - {label}: mean {100 * statistics.mean(d):+.3f} "
                  f"points, median {100 * statistics.median(d):+.3f}, runner higher in "
                  f"{sum(x > 0 for x in d)}, lower in {sum(x < 0 for x in d)}")
        print(f"{kind} {len(rows)}: medians recorded {statistics.median(r[0] for r in rows):.4f}, "
              f"pytorch again {statistics.median(r[1] for r in rows):.4f}, runner "
              f"{statistics.median(r[2] for r in rows):.4f}; best {max(r[0] for r in rows):.4f}, "
              f"{max(r[1] for r in rows):.4f}, {max(r[2] for r in rows):.4f}")
    rows = [(t["value"], a, v) for (_, t), a, v in zip(picked, again, values)]
    print(f"pairs of trials ordered alike: recorded and pytorch again "
          f"{concordance([(r[0], r[1]) for r in rows]):.0%}, pytorch again and runner "
          f"{concordance([(r[1], r[2]) for r in rows]):.0%}")


if __name__ == "__main__":
    main()
