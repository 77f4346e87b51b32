#!/usr/bin/env python3
"""How good is the configuration a search picks? The best trial's objective flatters it: it is
the largest of many noisy values. Retrains each search's best trial after K trials (from
bench/tpe_vs_optuna.py's trials.json files) with runner at other seeds (which also hold out
other validation images) and reports, per method, the median over searches of the mean test
accuracy, so that methods are compared on what they chose rather than on how lucky their best
trial was.

    python3 bench/tpe_selected.py bench/results/tpe-cnn-2026-12-06/trials.json.gz --space cnn

Trials train as in the sweep (its base, its [set], the trial's values) with `--set seed=S` for
each of --seeds; --jobs at a time; one training per distinct configuration and seed. With
--cache FILE, the test accuracies of earlier invocations are read from it and the new ones added
(runner's trainings are deterministic, so a configuration and seed trains once). Each method's
medians are compared with --against's, with a 90 % bootstrap interval over searches.
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
from tpe_vs_optuna import (SPACES, load_results, median_gap, runner_trains,  # noqa: E402
                           sweep_axes, sweep_path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("trials", nargs="+", help="trials.json(.gz) files (merged as --report does)")
    p.add_argument("--space", required=True, choices=sorted(SPACES))
    p.add_argument("--after", type=int, nargs="+", default=[20, 40])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--runner", default=os.path.join(ROOT, "target", "release", "runner"))
    p.add_argument("--cache", help="JSON file of test accuracies by configuration and seed")
    p.add_argument("--against", default="optuna-common",
                   help="the method the others' medians are compared with")
    args = p.parse_args()
    methods = load_results(args.trials).get(args.space, {})
    axes = sweep_axes(args.space)
    picks = {}  # (method, search, k): (its best objective, its configuration as JSON)
    for m, ss in methods.items():
        for i, s in enumerate(ss):
            for k in args.after:
                t = max(s["trials"][:k], key=lambda t: t["value"])
                # A random search's trials also record the sweep's [set] and seed; keep the
                # searched axes.
                params = {a: v for a, v in t["params"].items() if a in axes}
                picks[(m, i, k)] = (t["value"], json.dumps(params, sort_keys=True))
    configs = sorted({c for _, c in picks.values()})
    cache = {}
    if args.cache and os.path.exists(args.cache):
        with open(args.cache) as f:
            cache = {tuple(json.loads(k)): v for k, v in json.load(f).items()}
    jobs = [(c, s) for c in configs for s in args.seeds if (args.space, c, s) not in cache]
    print(f"{len(configs)} configurations x {len(args.seeds)} seeds, {len(jobs)} to train",
          file=sys.stderr)
    with tempfile.TemporaryDirectory() as runs, ThreadPoolExecutor(args.jobs) as pool:
        for (c, s), acc in zip(jobs, pool.map(
                lambda cs: runner_trains(args.runner, sweep_path(args.space), json.loads(cs[0]),
                                         runs, "--set", f"seed={cs[1]}")["test_accuracy"], jobs)):
            cache[(args.space, c, s)] = acc
    if args.cache:
        with open(args.cache, "w") as f:
            json.dump({json.dumps(k): v for k, v in sorted(cache.items())}, f, indent=0)
    trainings = {c: [cache[(args.space, c, s)] for s in args.seeds] for c in configs}

    def chosen(m, k):
        """Per search of m: its pick after k trials' best objective and test accuracies."""
        return [(picks[(m, i, k)][0], trainings[picks[(m, i, k)][1]])
                for i in range(len(methods[m]))]

    def retrained(m, k):
        """The mean test accuracy of each of m's searches' pick after k trials."""
        return [statistics.mean(accs) for _, accs in chosen(m, k)]

    print(f"{args.space}: each search's best trial after k trials, trained again by runner at "
          f"seeds {args.seeds}; medians over searches of its best objective and of the mean test "
          f"accuracy of those trainings\n")
    print("| method | searches | " + " | ".join(
        f"best @{k} | retrained @{k}" for k in args.after) + " |")
    print("|---|---|" + "---|---|" * len(args.after))
    for m, ss in methods.items():
        cells = []
        for k in args.after:
            cells.append(f"{100 * statistics.median(v for v, _ in chosen(m, k)):.2f} %")
            cells.append(f"{100 * statistics.median(retrained(m, k)):.2f} %")
        print(f"| {m} | {len(ss)} | " + " | ".join(cells) + " |")
    print("\nper method: how many picks fell to chance (below 50 %) at one seed or more, and the "
          "median over picks of their median test accuracy over the seeds\n")
    for m, ss in methods.items():
        cells = []
        for k in args.after:
            accs = [a for _, a in chosen(m, k)]
            fell = sum(any(a < 0.5 for a in r) for r in accs)
            typical = statistics.median(statistics.median(r) for r in accs)
            cells.append(f"@{k} {fell}/{len(ss)} fell, {100 * typical:.2f} %")
        print(f"| {m} | " + " | ".join(cells) + " |")
    if args.against in methods:
        print(f"\nretrained median minus {args.against}'s, with a 90 % bootstrap interval "
              "(searches drawn again with replacement, 2000 times):\n")
        for m in methods:
            if m != args.against:
                print(f"| {m} | " + " | ".join(
                    f"@{k} " + median_gap(retrained(m, k), retrained(args.against, k))
                    for k in args.after) + " |")

if __name__ == "__main__":
    main()
