#!/usr/bin/env python3
"""Writes N synthetic run directories of S steps each, to time `runner report` on many runs.

    python3 bench/report-fixtures.py OUT_DIR [--runs 1000] [--steps 3000]
    runner report 'fake-*' --runs-dir OUT_DIR -o /tmp/report.html

The runs look like an MLP sweep over lr, batch size, width and weight decay with three seeds each: real file
formats (config.toml, metrics.csv, eval.csv, summary.json), made-up numbers from a fixed seed.
Every 50th run is still running (half its steps) and every 7th was pruned, as in a sweep with
early stopping.
"""
import argparse
import json
import math
import os
import random

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--runs", type=int, default=1000)
p.add_argument("--steps", type=int, default=3000)
p.add_argument("--eval-every", type=int, default=250)
a = p.parse_args()
os.makedirs(a.out, exist_ok=True)
rng = random.Random(0)
lrs = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
batches = [32, 64, 128, 256]
widths = [128, 256, 512, 1024]
decays = [0.0, 1e-5, 1e-4, 1e-3, 1e-2]

for i in range(a.runs):
    seed = i % 3
    cfg = i // 3
    lr = lrs[cfg % len(lrs)]
    batch = batches[(cfg // len(lrs)) % len(batches)]
    width = widths[(cfg // (len(lrs) * len(batches))) % len(widths)]
    decay = decays[(cfg // (len(lrs) * len(batches) * len(widths))) % len(decays)]
    run_id = f"fake-{i:012x}"
    d = os.path.join(a.out, run_id)
    os.makedirs(d, exist_ok=True)
    quality = 1.0 - abs(math.log10(lr) + 3) / 3
    running = i % 50 == 49
    pruned = i % 7 == 6 and not running
    done = a.steps // 2 if (running or pruned) else a.steps
    with open(os.path.join(d, "config.toml"), "w") as f:
        f.write(f'name = "fake"\nseed = {seed}\n\n[data]\ndataset = "mnist"\n\n'
                f'[model]\nkind = "mlp"\nhidden = [{width}]\ninit = "glorot"\n\n'
                f'[optimizer]\nkind = "adam"\nlr = {lr}\nweight_decay = {decay}\n\n'
                f'[train]\nbatch_size = {batch}\nsteps = {a.steps}\neval_every = {a.eval_every}\n')
    with open(os.path.join(d, "metrics.csv"), "w") as f:
        f.write("step,epoch,loss,accuracy,lr,examples,elapsed_s\n")
        for s in range(1, done + 1):
            loss = 2.3 * math.exp(-s * quality / 400) + 0.05 + 0.1 * rng.random()
            f.write(f"{s},{s * batch // 60000},{loss:.6f},{min(1, 1 - loss / 2.5):.5f},{lr},{s * batch},{s * 0.002:.3f}\n")
    evals = []
    with open(os.path.join(d, "eval.csv"), "w") as f:
        f.write("step,test_loss,test_accuracy,elapsed_s\n")
        for s in range(a.eval_every, done + 1, a.eval_every):
            acc = 0.9 + 0.09 * quality * (1 - math.exp(-s / 800)) + 0.005 * rng.random()
            loss = 0.4 * (1 - quality) + 0.05 + 0.3 * math.exp(-s / 600)
            evals.append((s, loss, acc))
            f.write(f"{s},{loss:.6f},{acc:.4f},{s * 0.002:.3f}\n")
    best = max(evals, key=lambda e: e[2]) if evals else None
    summary = {
        "status": "running" if running else "pruned" if pruned else "complete",
        "name": "fake", "hash": f"{i:064x}", "steps": a.steps, "steps_done": done,
        "final_test_accuracy": evals[-1][2] if evals else None,
        "final_test_loss": evals[-1][1] if evals else None,
        "best_test_accuracy": best[2] if best else None,
        "best_test_step": best[0] if best else None,
        "wall_time_s": done * 0.002, "train_time_s": done * 0.002,
        "ms_per_step": 2.0, "started_at": f"2026-11-29T00:{i // 60 % 60:02d}:{i % 60:02d}.000+00:00",
        "finished_at": None if running else "2026-11-29T01:00:00.000+00:00", "error": None,
    }
    with open(os.path.join(d, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump({"note": "synthetic run from bench/report-fixtures.py"}, f)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write((2).to_bytes(8, "little") + b"{}")  # an empty but well-formed safetensors file
print(f"wrote {a.runs} runs of {a.steps} steps under {a.out}")
