#!/usr/bin/env python3
"""Adaptive search, side by side: runner's TPE, runner's random search and Optuna's TPE driving
PyTorch, on one or more search spaces (runner [tpe] sweep files; Optuna searches the same axes
with the same trials, bench/optuna_search.py):

  mlp       experiments/sweeps/mlp-tpe.toml: log lr, 3 batch sizes, 3 widths, dropout
  mlp-wide  experiments/sweeps/mlp-wide-tpe.toml: log lr over 4 decades, 4 batch sizes to 256,
            6 widths from 32 to 1024
  cnn       experiments/sweeps/cnn-tpe.toml: a small CNN; log lr, batch size, dropout, constant
            or cosine schedule

For each space and search seed, in turn (so drift on a shared machine hits all alike):
  runner-tpe      runner sweep <the file with that seed> -j JOBS
  runner-random   the same file with [random] in place of [tpe]
  runner-<label>  with --variant LABEL:KEY=VALUE,...: [tpe] options added (e.g. multivariate=false)
  optuna-tpe      bench/optuna_search.py --seed S --jobs JOBS, --optuna-runs times (Optuna's
                  parallel searches are not deterministic)
  optuna-runner   the same, with runner training the trials (--trainer runner): Optuna's sampler
                  and runner's on one trainer (not a default method)
  optuna-common   optuna-tpe with --common-seed: every PyTorch trial starts from the same
                  weights and data order, as runner's trials do (not a default method)
each in a fresh runs directory. Prints per space the median over seeds of the best objective after
10, 20 and all trials (trials in the order they finished) and of a whole search's wall time; with
--out DIR also every trial (DIR/trials.json), best-so-far traces (DIR/<space>-trace.csv: against
trial and against seconds) and their plot (DIR/<space>.svg, matplotlib from the bench venv).
Not part of CI: 3 spaces x 5 seeds take about 1.5 hours on 2 cores.

    python3 bench/tpe_vs_optuna.py --space mlp mlp-wide cnn --seeds 5 --out /tmp/tpe
    python3 bench/tpe_vs_optuna.py --space mlp --seeds 3 --variant uni:multivariate=false
"""
import argparse
import glob
import gzip
import json
import math
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
SPACES = {
    "mlp": "mlp-tpe.toml",
    "mlp-wide": "mlp-wide-tpe.toml",
    "cnn": "cnn-tpe.toml",
}


def sweep_path(space):
    return os.path.join(ROOT, "experiments", "sweeps", SPACES[space])


def sweep_axes(space):
    """The space's searched axes: its [tpe] table's distributions, by key."""
    with open(sweep_path(space), "rb") as f:
        return {k: v for k, v in tomllib.load(f)["tpe"].items() if isinstance(v, dict)}


def sweep_file(tmp, space, kind, seed, options, seed_per_search=False):
    """The space's sweep file with an absolute base, the search seed, [tpe] options or [random];
    with `seed_per_search`, the search seed as the trials' base seed too (in [set])."""
    src = sweep_path(space)
    text = open(src).read()
    base = re.search(r'(?m)^base = "([^"]+)"$', text).group(1)
    text = text.replace(f'base = "{base}"',
                        f'base = "{os.path.normpath(os.path.join(os.path.dirname(src), base))}"')
    text = re.sub(r"(?m)^seed = \d+$", f"seed = {seed}", text)
    if seed_per_search:
        text = text.replace("[set]\n", f'[set]\n"seed" = {seed}\n', 1)
    if kind == "random":
        text = text.replace("[tpe]", "[random]")
        text = re.sub(r"(?m)^startup = \d+\n", "", text)
    elif options:
        text = text.replace("[tpe]\n", "[tpe]\n" + "".join(f"{k} = {v}\n" for k, v in options))
    path = os.path.join(tmp, f"{space}-{kind}-{seed}{'-s' if seed_per_search else ''}.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def run_runner(runner, tmp, space, kind, seed, jobs, options, seed_per_search=False):
    """The sweep's trials in the order they finished (value, params, seconds from the start)."""
    label = kind + "".join(f"-{k}{v}" for k, v in options)
    path = sweep_file(tmp, space, kind, seed, options, seed_per_search)
    runs = os.path.join(tmp, f"runs-{space}-{label}-{seed}")
    start = time.time()
    t0 = time.perf_counter()
    subprocess.run([runner, "sweep", path, "-j", str(jobs), "--runs-dir", runs, "-q"],
                   check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    metric = tomllib.load(open(path, "rb"))["metric"]
    status = subprocess.run([runner, "sweep", "status", path, "--runs-dir", runs, "--json"],
                            check=True, capture_output=True, text=True).stdout
    # `sweep status --json`: [tpe] trials by "trial" with "params", planned ones by "index"
    # with "overrides".
    rows = {r.get("trial", r.get("index")): r for r in map(json.loads, status.splitlines())}
    (journal,) = glob.glob(os.path.join(runs, "sweeps", "*", "journal.jsonl"))
    trials = []
    for event in map(json.loads, open(journal)):
        if event["event"] == "finished":
            r = rows[event["trial"]]
            at = datetime.fromisoformat(event["at"].replace("Z", "+00:00")).timestamp()
            trials.append({"value": r[metric], "params": r.get("params") or r.get("overrides"),
                           "elapsed_s": at - start})
    return trials, wall


def optuna_search(python, runner, path, *args):
    """bench/optuna_search.py on the sweep file at `path`, given its base experiment resolved by
    runner, with these further arguments; its last line of output, parsed."""
    sweep = tomllib.load(open(path, "rb"))
    base = os.path.normpath(os.path.join(os.path.dirname(path), sweep["base"]))
    sets = [f"{k}={json.dumps(v)}" for k, v in sweep.get("set", {}).items()]
    resolved = subprocess.run([runner, "resolve", base] + [a for s in sets for a in ("--set", s)],
                              check=True, capture_output=True, text=True).stdout
    out = subprocess.run([python, "optuna_search.py", "--sweep", path,
                          "--config", json.dumps(tomllib.loads(resolved)),
                          "--runner", os.path.abspath(runner), *args],
                         cwd=BENCH, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_optuna(python, runner, path, seed, jobs, sampler, trainer, *extra):
    result = optuna_search(python, runner, path, "--seed", str(seed), "--jobs", str(jobs),
                           "--sampler", json.dumps(sampler), "--trainer", trainer, *extra)
    return result["trials"], result["wall_s"]


def runner_trains(runner, sweep_file, params, runs, *extra):
    """What `runner run` reports (its --json summary) for the trial of these values: the sweep
    file's base with its [set], the values, and any further --set arguments in `extra`."""
    with open(sweep_file, "rb") as f:
        sweep = tomllib.load(f)
    base = os.path.join(os.path.dirname(os.path.abspath(sweep_file)), sweep["base"])
    cmd = [runner, "--quiet", "--json", "run", base, "--runs-dir", runs, *extra]
    for key, value in {**sweep.get("set", {}), **params}.items():
        cmd += ["--set", f"{key}={json.dumps(value)}"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def load_results(paths):
    """trials.json(.gz) files this script wrote, merged per space and method: a later file's
    search of the same seed and run replaces an earlier one's."""
    merged = {}
    for path in paths:
        with gzip.open(path, "rt") if path.endswith(".gz") else open(path) as f:
            for space, results in json.load(f).items():
                for method, searches in results.items():
                    into = merged.setdefault(space, {}).setdefault(method, {})
                    into.update({(s["seed"], s["run"]): s for s in searches})
    return {space: {m: sorted(ss.values(), key=lambda s: (s["seed"], s["run"]))
                    for m, ss in results.items()} for space, results in merged.items()}


def best_after(trials, n):
    return max(t["value"] for t in trials[:n])


def trace(trials):
    """Best so far after each trial: (trial, seconds, best)."""
    best, out = float("-inf"), []
    for i, t in enumerate(trials, 1):
        best = max(best, t["value"])
        out.append((i, t["elapsed_s"], best))
    return out


def plot(csv_path, svg_path, title):
    """Median best-so-far over searches against trials and against seconds, from a trace CSV."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import csv
    curves = {}
    for row in csv.DictReader(open(csv_path)):
        search = curves.setdefault(row["method"], {}).setdefault((row["seed"], row["run"]), [])
        search.append((float(row["seconds"]), float(row["best"])))
    fig, (by_trial, by_time) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    floor = []
    for method, searches in curves.items():
        traces = list(searches.values())
        n = min(len(t) for t in traces)
        med = [statistics.median(t[i][1] for t in traces) for i in range(n)]
        secs = [statistics.median(t[i][0] for t in traces) for i in range(n)]
        line, = by_trial.plot(range(1, n + 1), med, label=method)
        by_time.plot(secs, med, color=line.get_color(), label=method)
        floor.append(med[min(9, n - 1)])
    by_trial.set_xlabel("trials finished")
    by_time.set_xlabel("seconds (median time of the k-th finished trial)")
    by_trial.set_ylabel("best objective so far (median)")
    by_trial.set_ylim(bottom=min(floor) - 0.005)
    by_trial.legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(svg_path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--space", nargs="+", default=["mlp"], choices=sorted(SPACES))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--optuna-runs", type=int, default=2)
    p.add_argument("--first-run", type=int, default=0,
                   help="number Optuna's runs from this one, so that a later invocation adds "
                        "runs to an earlier one's in --report instead of replacing them")
    p.add_argument("--runner", default=os.path.join(ROOT, "target", "release", "runner"))
    p.add_argument("--venv", default=os.environ.get(
        "RUNNER_BENCH_VENV", os.path.expanduser("~/.cache/runner-bench/venv")))
    p.add_argument("--methods", nargs="*", default=["runner-tpe", "runner-random", "optuna-tpe"])
    p.add_argument("--variant", action="append", default=[], metavar="LABEL:KEY=VALUE,...",
                   help="also run runner's TPE with these [tpe] options, as runner-LABEL")
    p.add_argument("--seed-per-search", action="store_true",
                   help="train each search's trials at base seed = the search seed (runner's "
                        "and Optuna's alike; it also picks the held-out images), so that the "
                        "searches sample the trainers' noise instead of sharing one draw of it")
    p.add_argument("--optuna-sampler", default="{}",
                   help="TPESampler options as JSON (default: Optuna's defaults)")
    p.add_argument("--out", help="directory for trials.json, traces and plots")
    p.add_argument("--plot", nargs=3, metavar=("CSV", "SVG", "TITLE"),
                   help="only plot a trace CSV this script wrote (needs matplotlib)")
    p.add_argument("--report", metavar="JSON", nargs="+",
                   help="only print the tables of trials.json files this script wrote (their "
                        "searches merged per space and method; a later file's search of the same "
                        "seed and run replaces an earlier one's)")
    args = p.parse_args()
    if args.plot:
        plot(*args.plot)
        return
    if args.report:
        for space, results in load_results(args.report).items():
            report(space, results, args)
        return
    python = os.path.join(args.venv, "bin", "python")
    if any(m.startswith("optuna-") for m in args.methods):
        if subprocess.run([python, "-c", "import optuna, torch, matplotlib"],
                          capture_output=True).returncode:
            sys.exit(f"{python} lacks optuna, torch or matplotlib: "
                     f"{python} -m pip install optuna torch matplotlib")
    variants = {}
    for v in args.variant:
        label, opts = v.split(":", 1)
        variants[f"runner-{label}"] = [tuple(o.split("=", 1)) for o in opts.split(",")]
    methods = args.methods + list(variants)
    sampler = json.loads(args.optuna_sampler)
    everything = {}
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    optuna_runs = range(args.first_run, args.first_run + args.optuna_runs)
    for space in args.space:
        results = {m: [] for m in methods}
        with tempfile.TemporaryDirectory() as tmp:
            for seed in seeds:
                for method in methods:
                    optuna = method.startswith("optuna-")
                    for run in (optuna_runs if optuna else [0]):
                        if optuna:
                            trainer = "runner" if method == "optuna-runner" else "pytorch"
                            extra = ["--common-seed"] if method == "optuna-common" else []
                            path = sweep_file(tmp, space, "tpe", seed, [], True) \
                                if args.seed_per_search else sweep_path(space)
                            trials, wall = run_optuna(python, args.runner, path, seed, args.jobs,
                                                      sampler, trainer, *extra)
                        else:
                            kind = "random" if method == "runner-random" else "tpe"
                            trials, wall = run_runner(args.runner, tmp, space, kind, seed,
                                                      args.jobs, variants.get(method, []),
                                                      args.seed_per_search)
                        results[method].append({"seed": seed, "run": run, "wall_s": wall,
                                                "trials": trials})
                        n = len(trials)
                        print(f"{space} seed {seed} {method:<16} best@10 {best_after(trials, 10):.4f}"
                              f"  best@20 {best_after(trials, 20):.4f}  best@{n} "
                              f"{best_after(trials, n):.4f}  {wall:6.1f} s", file=sys.stderr,
                              flush=True)
        everything[space] = results
        report(space, results, args)
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            with open(os.path.join(args.out, f"{space}-trace.csv"), "w") as f:
                f.write("method,seed,run,trial,seconds,best\n")
                for method, searches in results.items():
                    for s in searches:
                        for i, secs, best in trace(s["trials"]):
                            f.write(f"{method},{s['seed']},{s['run']},{i},{secs:.2f},{best}\n")
            with open(os.path.join(args.out, "trials.json"), "w") as f:
                json.dump(everything, f, indent=1)
            csv_path = os.path.join(args.out, f"{space}-trace.csv")
            # The bench venv has matplotlib (compare.py's setup installs it); plot there.
            if os.path.exists(python):
                subprocess.run([python, os.path.abspath(__file__), "--plot", csv_path,
                                os.path.join(args.out, f"{space}.svg"),
                                f"{space}: {SPACES[space]}"], check=False)
            else:
                print(f"no plot: {python} is missing (--venv)", file=sys.stderr)


# The Optuna methods other methods are measured against, in order of preference.
REFERENCES = ("optuna-tpe", "optuna-common")


def report(space, results, args):
    n = min(len(s["trials"]) for ss in results.values() for s in ss)
    seeds = len({s["seed"] for ss in results.values() for s in ss})
    runs = max(s["run"] for ss in results.values() for s in ss) + 1
    print(f"\n{space} ({SPACES[space]}): {seeds} search seeds, {n} trials each, "
          f"-j {args.jobs}; medians over seeds (Optuna: over its {runs} runs too)\n")
    print(f"| method | searches | best @10 | best @20 | best @{n} | wall s | wall / optuna |")
    print("|---|---|---|---|---|---|---|")
    walls = {m: statistics.median(s["wall_s"] for s in ss) for m, ss in results.items()}
    optuna = next((m for m in REFERENCES if m in walls), None)
    for method, searches in results.items():
        groups = [searches]
        method_runs = sorted({s["run"] for s in searches})
        if len(method_runs) > 1:
            groups += [[s for s in searches if s["run"] == r] for r in method_runs]
        for i, g in enumerate(groups):
            label = method if i == 0 else f"{method} run {i}"
            cells = [statistics.median(best_after(s["trials"], k) for s in g) for k in (10, 20, n)]
            wall = statistics.median(s["wall_s"] for s in g)
            ratio = f"{wall / walls[optuna]:.2f}x" if optuna else "-"
            print(f"| {label} | {len(g)} | " + " | ".join(f"{100 * c:.2f} %" for c in cells)
                  + f" | {wall:.1f} | {ratio} |")
    for against in [m for m in REFERENCES if m in results]:
        print(f"\nmedian best minus {against}'s, with a 90 % bootstrap interval (searches drawn "
              "again with replacement, 2000 times):\n")
        for method, searches in results.items():
            if method != against:
                cells = [gap_interval(searches, results[against], k) for k in (10, 20, n)]
                print(f"| {method} | " + " | ".join(cells) + " |")
    proposals(space, results)
    sys.stdout.flush()


def gap_interval(ours, theirs, k):
    """Median best after k trials of ours minus theirs, in points, and a bootstrap interval."""
    return f"@{k} " + median_gap([best_after(s["trials"], k) for s in ours],
                                 [best_after(s["trials"], k) for s in theirs])


def median_gap(a, b):
    """Median of a minus median of b, in points, with a 90 % bootstrap interval (both drawn
    again with replacement, 2000 times)."""
    draw = random.Random(0)
    gaps = sorted(statistics.median(draw.choices(a, k=len(a)))
                  - statistics.median(draw.choices(b, k=len(b))) for _ in range(2000))
    gap = statistics.median(a) - statistics.median(b)
    return f"{100 * gap:+.2f} [{100 * gaps[100]:+.2f}, {100 * gaps[1899]:+.2f}]"


def proposals(space, results):
    """Where each method's trials after the start-up ones went: per choice axis the share of
    each value, per real axis the quartiles (geometric for log scales), over all searches."""
    sweep = tomllib.load(open(sweep_path(space), "rb"))
    tpe = sweep["tpe"]
    startup = tpe.get("startup", 10)
    axes = sweep_axes(space)
    print(f"\nwhere trials {startup + 1}-{tpe['trials']} went (all seeds and runs):\n")
    print("| method | " + " | ".join(axes) + " |")
    print("|---|" + "---|" * len(axes))
    for method, searches in results.items():
        later = [t["params"] for s in searches for t in s["trials"][startup:]]
        cells = []
        for key, dist in axes.items():
            values = [p[key] for p in later if key in p]
            if "choice" in dist:
                cells.append(" ".join(
                    f"{json.dumps(c).replace(' ', '')}:{sum(v == c for v in values) / len(values):.0%}"
                    for c in dist["choice"]))
            else:
                log = "log_uniform" in dist
                qs = statistics.quantiles([math.log(v) if log else v for v in values], n=4)
                cells.append(" / ".join(f"{math.exp(q) if log else q:.3g}" for q in qs))
        print(f"| {method} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends the output, not a traceback
    main()
