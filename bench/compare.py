#!/usr/bin/env python3
"""Side-by-side benchmark: runner against PyTorch, TensorFlow and JAX on the tutorial CNN.

Runs every configuration in turn (alternating, so drift on a shared machine hits all of them
alike), several repetitions per batch size, and prints medians and ratios. Sets up its own
virtual environment with torch, tensorflow-cpu, jax, flax and optax on first use (cached; RUNNER_BENCH_VENV or
--venv chooses where). Not part of CI: a full run takes tens of minutes.

    python3 bench/compare.py                         # batch 50, 3 x 300 steps per configuration
    python3 bench/compare.py --batches 50 100 256 --reps 6 --steps 500
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import netspec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
CONFIGS = {
    "runner": None,
    "pytorch": ["torch_cnn.py"],
    "pytorch+channels_last": ["torch_cnn.py", "--channels-last"],
    "tensorflow": ["tf_cnn.py"],
    "tensorflow+onednn": ["tf_cnn.py"],
    "jax": ["jax_cnn.py"],
}


# What limits each framework to AVX2 (`--isa avx2`): runner's kernels, PyTorch's ATen kernels,
# MKL (PyTorch's dense layers: without it an MLP's evaluation stayed on AVX-512), oneDNN (in
# PyTorch and TensorFlow), XLA's code generation (JAX).
AVX2_ONLY = {
    "RUNNER_ISA": "avx2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "DNNL_MAX_CPU_ISA": "AVX2",
    "XLA_FLAGS": "--xla_cpu_max_isa=AVX2",
}


def setup_venv(venv):
    py = os.path.join(venv, "bin", "python")
    if os.path.exists(py) and subprocess.run([py, "-c", "import torch, tensorflow, jax, flax, optax"], capture_output=True).returncode == 0:
        return py
    print(f"setting up {venv} (torch, tensorflow-cpu, jax; several GB, once)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([py, "-m", "pip", "install", "--quiet", "torch", "tensorflow-cpu", "numpy",
                    "jax", "flax", "optax"], check=True)
    return py


def run_runner(binary, batch, steps, warmup, experiment):
    # The peers evaluate once untimed, then time a second evaluation; runner does the same: it
    # evaluates after `first` steps (the warm-up, and at least `steps` so that no multiple of
    # `first` falls in the timed steps) and after the last one. Timed: the `steps` steps after
    # the one that paid for the first evaluation, and the second evaluation.
    first = max(warmup, steps + 1)
    total = first + 1 + steps
    with tempfile.TemporaryDirectory() as runs:
        cmd = [binary, "--quiet", "--json", "run", experiment, "--runs-dir", runs,
               "--set", f"train.batch_size={batch}", "--set", f"train.steps={total}",
               "--set", f"train.eval_every={first}", "--set", f"train.checkpoint_every={total}"]
        t0 = time.perf_counter()
        out, rss = run_with_rss(cmd)
        wall = time.perf_counter() - t0
        run = json.loads(out.strip().splitlines()[-1])
        d = run["dir"]
        elapsed = {}
        with open(os.path.join(d, "metrics.csv")) as f:
            next(f)
            for line in f:
                fields = line.strip().split(",")
                elapsed[int(fields[0])] = float(fields[-1])
        with open(os.path.join(d, "eval.csv")) as f:
            rows = [line.strip().split(",") for line in f][1:]
            eval_end = float(next(r for r in rows if int(r[0]) == total)[-1])
        with open(os.path.join(d, "summary.json")) as f:
            summary = json.load(f)
    return {
        "framework": "runner",
        "batch": batch,
        "steps": steps,
        "ms_per_step": 1000 * (elapsed[total] - elapsed[first + 1]) / steps,
        "eval_images_per_s": 10000 / (eval_end - elapsed[total]),
        "startup_s": summary.get("startup_s"),
        "peak_rss_mb": rss,
        "test_accuracy": run["test_accuracy"],
        "wall_s": wall,
    }


def run_with_rss(cmd, env=None):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT, text=True)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        sys.exit(f"{' '.join(cmd)} failed (status {status}):\n{err[-3000:]}")
    return out, usage.ru_maxrss / 1024.0


def run_peer(py, name, batch, steps, warmup, threads, net):
    env = dict(os.environ)
    env["TF_ENABLE_ONEDNN_OPTS"] = "1" if name == "tensorflow+onednn" else "0"
    cmd = [py, os.path.join(BENCH, CONFIGS[name][0]), *CONFIGS[name][1:],
           "--batch", str(batch), "--steps", str(steps), "--warmup", str(warmup)]
    if name.startswith("pytorch"):
        cmd += ["--threads", str(threads)]
    if net:
        cmd += ["--net", net]
    out, rss = run_with_rss(cmd, env)
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mb"] = rss
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, nargs="+", default=[50])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--steps", type=int, default=300, help="timed steps per run (after warm-up)")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--venv", default=os.environ.get("RUNNER_BENCH_VENV", os.path.expanduser("~/.cache/runner-bench/venv")))
    p.add_argument("--json", help="also write every measurement to this file (JSON lines)")
    p.add_argument("--runner-before", metavar="BINARY",
                   help="another runner binary (an earlier build) to run alternately as 'runner-before'")
    p.add_argument("--experiment", default="experiments/baseline.toml",
                   help="the network and optimizer to compare (its network must be compiled in); the peers "
                        "run the tutorial's own code for the baseline, a generic model of the same layers "
                        "otherwise")
    p.add_argument("--isa", choices=["native", "avx2"], default="native",
                   help="avx2: every framework limited to AVX2 on an AVX-512 CPU, as on the many machines "
                        "without it (RUNNER_ISA, ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, XLA_FLAGS)")
    args = p.parse_args()
    threads = os.cpu_count()
    if args.isa == "avx2":
        os.environ.update(AVX2_ONLY)

    py = setup_venv(args.venv) if any(c != "runner" for c in args.configs) else None
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target", "release", "runner")
    binaries = {"runner": binary}
    if args.runner_before:
        binaries["runner-before"] = os.path.abspath(args.runner_before)
        args.configs.insert(args.configs.index("runner") + 1 if "runner" in args.configs else 0, "runner-before")
    net = (None if os.path.normpath(args.experiment) == os.path.normpath("experiments/baseline.toml")
           else netspec.from_experiment(binary, args.experiment, ROOT))

    results = []
    for batch in args.batches:
        for rep in range(args.reps):
            for name in args.configs:
                r = (run_runner(binaries[name], batch, args.steps, args.warmup, args.experiment) if name in binaries
                     else run_peer(py, name, batch, args.steps, args.warmup, threads, net))
                r["config"], r["rep"] = name, rep
                results.append(r)
                print(f"batch {batch} rep {rep + 1}/{args.reps} {name:22} {r['ms_per_step']:7.1f} ms/step "
                      f"{r['eval_images_per_s']:7.0f} img/s eval", file=sys.stderr)
                if args.json:
                    with open(args.json, "a") as f:
                        f.write(json.dumps(r) + "\n")

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    isa = ", every framework limited to AVX2" if args.isa == "avx2" else ""
    print(f"\n{args.experiment}: {cpu}{isa}, {threads} threads; medians of {args.reps} runs of {args.steps} timed steps "
          f"(after {args.warmup} warm-up steps); eval: 10,000 test images at batch 1000.\n")
    print("| config | batch | ms/step | samples/s | runner speed-up | eval img/s | runner eval speed-up | start-up s | peak RSS MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for batch in args.batches:
        med = {}
        for name in args.configs:
            rs = [r for r in results if r["config"] == name and r["batch"] == batch]
            med[name] = {k: statistics.median(r[k] for r in rs)
                         for k in ("ms_per_step", "eval_images_per_s", "startup_s", "peak_rss_mb")
                         if all(r.get(k) is not None for r in rs)}
        base = med.get("runner")
        for name in args.configs:
            m = med[name]
            speed = f"{m['ms_per_step'] / base['ms_per_step']:.2f}x" if base else "-"
            espeed = f"{base['eval_images_per_s'] / m['eval_images_per_s']:.2f}x" if base else "-"
            print(f"| {name} | {batch} | {m['ms_per_step']:.1f} | {1000 * batch / m['ms_per_step']:.0f} | {speed} | "
                  f"{m['eval_images_per_s']:.0f} | {espeed} | {m.get('startup_s', float('nan')):.2f} | {m['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
