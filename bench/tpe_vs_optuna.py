#!/usr/bin/env python3
"""Adaptive search, side by side: runner's TPE, runner's random search and Optuna's TPE driving
PyTorch, over the search space of experiments/sweeps/mlp-tpe.toml (log lr, batch size, hidden
width, dropout; 1000 steps a trial; objective: accuracy on 10,000 held-out training images).

For each search seed, in turn (so drift on a shared machine hits all three alike):
  runner-tpe     runner sweep <mlp-tpe.toml with that seed> -j JOBS
  runner-random  the same file with [random] in place of [tpe]
  optuna-tpe     bench/optuna_mlp.py --seed S --jobs JOBS (the bench virtual environment)
each in a fresh runs directory. Prints, per method, the median over seeds of the best validation
accuracy after 20 and after all trials (in the order trials finished), the median wall time of a
whole search and its trials per hour, then the ratios. --json also writes every trial.
--same-trials separates speed from search: runner runs exactly the trials Optuna proposed.
Not part of CI: 5 seeds take about an hour on 2 cores.

    python3 bench/tpe_vs_optuna.py --seeds 5 --json /tmp/tpe.json
    python3 bench/tpe_vs_optuna.py --seeds 3 --same-trials
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
SWEEP = os.path.join(ROOT, "experiments", "sweeps", "mlp-tpe.toml")


def sweep_file(tmp, kind, seed):
    """mlp-tpe.toml with an absolute base, the search seed, and [tpe] or [random]."""
    text = open(SWEEP).read()
    text = text.replace('base = "../mlp.toml"', f'base = "{ROOT}/experiments/mlp.toml"')
    text = re.sub(r"(?m)^seed = \d+$", f"seed = {seed}", text)
    text = text.replace('name = "mlp-tpe"', f'name = "mlp-{kind}"')
    if kind == "random":
        text = text.replace("[tpe]", "[random]")
        text = re.sub(r"(?m)^startup = \d+\n", "", text)
    path = os.path.join(tmp, f"{kind}-{seed}.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def run_runner(runner, tmp, kind, seed, jobs):
    """Values of the sweep's trials in the order they finished, and the wall time."""
    path = sweep_file(tmp, kind, seed)
    runs = os.path.join(tmp, f"runs-{kind}-{seed}")
    t0 = time.perf_counter()
    subprocess.run([runner, "sweep", path, "-j", str(jobs), "--runs-dir", runs, "-q"],
                   check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    status = subprocess.run([runner, "sweep", "status", path, "--runs-dir", runs, "--json"],
                            check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in status.splitlines()]
    if kind == "tpe":
        rows.sort(key=lambda r: r["finished"])
        trials = [{"value": r["val_accuracy"], "params": r["params"]} for r in rows]
    else:
        # A random search's trials are independent draws: their index order is a finish order.
        trials = [{"value": r["val_accuracy"], "params": r["overrides"]} for r in rows]
    return trials, wall


def run_optuna(python, seed, jobs, trials):
    out = subprocess.run([python, "optuna_mlp.py", "--seed", str(seed), "--jobs", str(jobs),
                          "--trials", str(trials)], cwd=BENCH, check=True,
                         capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return [{"value": t["value"], "params": t["params"]} for t in result["trials"]], result["wall_s"]


def replay(runner, tmp, seed, trials, jobs):
    """Optuna's trials of one search, run by runner as a [zip] sweep: wall time, same work."""
    base = open(SWEEP).read()
    settings = base[base.index("[set]"):base.index("[tpe]")]
    zipped = {
        "optimizer.lr": [t["params"]["lr"] for t in trials],
        "train.batch_size": [t["params"]["batch_size"] for t in trials],
        "model.hidden": [[t["params"]["hidden"]] for t in trials],
        "model.dropout": [t["params"]["dropout"] for t in trials],
    }
    text = (f'name = "mlp-replay"\nbase = "{ROOT}/experiments/mlp.toml"\n'
            f'metric = "val_accuracy"\n\n{settings}[zip]\n'
            + "".join(f'"{k}" = {json.dumps(v)}\n' for k, v in zipped.items()))
    path = os.path.join(tmp, f"replay-{seed}.toml")
    with open(path, "w") as f:
        f.write(text)
    t0 = time.perf_counter()
    subprocess.run([runner, "sweep", path, "-j", str(jobs), "--runs-dir",
                    os.path.join(tmp, f"runs-replay-{seed}"), "-q"],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def best_after(trials, n):
    return max(t["value"] for t in trials[:n])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--runner", default=os.path.join(ROOT, "target", "release", "runner"))
    p.add_argument("--venv", default=os.environ.get("RUNNER_BENCH_VENV",
                                                     os.path.join(ROOT, "..", "cache", "bench-venv")))
    p.add_argument("--methods", nargs="+", default=["runner-tpe", "runner-random", "optuna-tpe"])
    p.add_argument("--json", help="write every trial of every search here")
    p.add_argument("--same-trials", action="store_true",
                   help="speed alone: for each seed, Optuna's search, then runner running exactly "
                        "its trials (a [zip] sweep); prints both wall times")
    args = p.parse_args()
    python = os.path.join(args.venv, "bin", "python")
    if "optuna-tpe" in args.methods:
        if subprocess.run([python, "-c", "import optuna, torch"], capture_output=True).returncode:
            sys.exit(f"{python} lacks optuna or torch: {python} -m pip install optuna torch")
    trials_per_search = int(re.search(r"(?m)^trials = (\d+)$", open(SWEEP).read()).group(1))
    if args.same_trials:
        ratios = []
        with tempfile.TemporaryDirectory() as tmp:
            for seed in range(args.seeds):
                trials, optuna_wall = run_optuna(python, seed, args.jobs, trials_per_search)
                runner_wall = replay(args.runner, tmp, seed, trials, args.jobs)
                ratios.append(runner_wall / optuna_wall)
                print(f"seed {seed}: the same {len(trials)} trials, Optuna + PyTorch "
                      f"{optuna_wall:.1f} s, runner {runner_wall:.1f} s ({ratios[-1]:.2f}x)",
                      flush=True)
        print(f"median runner / Optuna wall time on the same trials: "
              f"{statistics.median(ratios):.2f}x")
        return
    results = {m: [] for m in args.methods}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for method in args.methods:
                if method == "optuna-tpe":
                    trials, wall = run_optuna(python, seed, args.jobs, trials_per_search)
                else:
                    trials, wall = run_runner(args.runner, tmp, method.split("-")[1], seed, args.jobs)
                results[method].append({"seed": seed, "wall_s": wall, "trials": trials})
                print(f"seed {seed} {method:<14} best@20 {best_after(trials, 20):.4f}  "
                      f"best@{len(trials)} {best_after(trials, len(trials)):.4f}  {wall:6.1f} s",
                      file=sys.stderr, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    n = trials_per_search
    print(f"{args.seeds} search seeds, {n} trials each, -j {args.jobs}; medians over seeds\n")
    print(f"| method | best val acc @20 | best val acc @{n} | wall s per search | trials/hour |")
    print("|---|---|---|---|---|")
    med = {}
    for method, searches in results.items():
        at20 = statistics.median(best_after(s["trials"], 20) for s in searches)
        atn = statistics.median(best_after(s["trials"], n) for s in searches)
        wall = statistics.median(s["wall_s"] for s in searches)
        med[method] = (at20, atn, wall)
        print(f"| {method} | {100 * at20:.2f} % | {100 * atn:.2f} % | {wall:.1f} | {3600 * n / wall:.0f} |")
    if "runner-tpe" in med and "optuna-tpe" in med:
        r, o = med["runner-tpe"], med["optuna-tpe"]
        print(f"\nrunner-tpe wall time / optuna-tpe: {r[2] / o[2]:.2f}x; best@{n} difference "
              f"{100 * (r[1] - o[1]):+.2f} points, best@20 {100 * (r[0] - o[0]):+.2f} points")
    if "runner-tpe" in med and "runner-random" in med:
        r, q = med["runner-tpe"], med["runner-random"]
        print(f"runner-tpe against runner-random: best@20 {100 * (r[0] - q[0]):+.2f} points, "
              f"best@{n} {100 * (r[1] - q[1]):+.2f} points")


if __name__ == "__main__":
    main()
