"""Optuna's TPE driving PyTorch over the search space of a runner `[tpe]` sweep file.

The trials train what runner's would: the sweep's base experiment with its `[set]` (resolved by
`runner resolve`, given as --config JSON by bench/tpe_vs_optuna.py), each trial's values of the
`[tpe]` axes applied. Networks as bench/torch_cnn.py's generic model (conv blocks, dense ReLU
layers, 10 logits, Glorot weights, zero biases) with inverted dropout after each hidden dense
layer; Adam with the config's betas and eps; the config's learning-rate schedule (runner's
formula, crates/spec/src/schedule.rs); shuffled batches of the training images left after holding
out `data.validation` for validation; the objective is accuracy on those held-out images, the
same ones runner's trials hold out (bench/runner_split.py).
Optuna's TPESampler with the given options (its defaults otherwise) and n_jobs workers in
threads, one torch thread each. With --trainer runner the trials are runner's own (`runner run`
on the sweep's base with its `[set]` and the trial's values, as a runner sweep trains them), so
that the two samplers can be compared on one trainer. Prints one JSON line: the trials in the
order they finished (params as runner writes them), their finishing times, and the wall time.

    python bench/optuna_search.py --sweep experiments/sweeps/mlp-tpe.toml \
        --config "$(runner resolve ... | python -c 'import tomllib,json,sys; ...')" --seed 0
"""
import argparse
import json
import math
import tempfile
import time

T0 = time.perf_counter()
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import tomllib  # noqa: E402

import mnist_data  # noqa: E402
import runner_split  # noqa: E402
import tpe_vs_optuna  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--sweep", required=True, help="the runner sweep file whose [tpe] axes to search")
p.add_argument("--config", required=True, help="the base experiment resolved, as JSON")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--jobs", type=int, default=2)
p.add_argument("--sampler", default="{}",
               help='TPESampler options as JSON, e.g. \'{"multivariate": false}\'')
p.add_argument("--trainer", choices=["pytorch", "runner"], default="pytorch",
               help="who trains each trial: the PyTorch model below, or runner itself")
p.add_argument("--runner", help="the runner binary (with --trainer runner)")
p.add_argument("--common-seed", action="store_true",
               help="every PyTorch trial draws its initial weights and its data order from the "
                    "base experiment's seed, as every trial of a runner sweep does (default: "
                    "weights from torch's shared generator, the order from the trial's number)")
p.add_argument("--replay", metavar="JSON",
               help="no search: train these trials' params (a JSON list, as runner writes them) "
                    "again, with data orders 1000, 1001, ..., and print their objectives")
args = p.parse_args()
torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)

with open(args.sweep, "rb") as f:
    sweep = tomllib.load(f)
tpe = sweep["tpe"]
AXES = {k: v for k, v in tpe.items() if isinstance(v, dict)}
BASE = json.loads(args.config)

x_train, y_train, _, _ = mnist_data.load()
# The images runner's trials hold out (the base experiment's seed picks them), both in file order.
held = np.zeros(len(x_train), dtype=bool)
held[runner_split.held_out(len(x_train), BASE["data"]["validation"], BASE["seed"])] = True
val, train = np.flatnonzero(held), np.flatnonzero(~held)
X, Y = torch.from_numpy(x_train[train]), torch.from_numpy(y_train[train])
XV, YV = torch.from_numpy(x_train[val]), torch.from_numpy(y_train[val])


class Net(nn.Module):
    def __init__(self, m, generator=None):
        super().__init__()
        self.convs, self.pools = nn.ModuleList(), []
        channels, side = 1, 28
        n = len(m.get("conv", []))
        each = lambda key, default: m.get(key, default) if isinstance(m.get(key, default), list) \
            else [m.get(key, default)] * n  # noqa: E731
        for f, k, pad, pool in zip(m.get("conv", []), each("kernel", 5), each("padding", "same"),
                                   each("pool", True)):
            pd = k // 2 if pad == "same" else 0
            self.convs.append(nn.Conv2d(channels, f, k, padding=pd))
            self.pools.append(pool)
            side = side + 2 * pd - k + 1
            side = side // 2 if pool else side
            channels = f
        width = channels * side * side if self.convs else 784
        self.dense = nn.ModuleList()
        for h in m["hidden"] + [10]:
            self.dense.append(nn.Linear(width, h))
            width = h
        self.dropout = m.get("dropout", 0.0)
        for mod in self.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(mod.weight, generator=generator)
                nn.init.zeros_(mod.bias)

    def forward(self, x):
        if self.convs:
            x = x.view(-1, 1, 28, 28)
            for conv, pool in zip(self.convs, self.pools):
                x = F.relu(conv(x))
                if pool:
                    x = F.max_pool2d(x, 2)
        x = torch.flatten(x, 1)
        for i, d in enumerate(self.dense):
            x = d(x)
            if i + 1 < len(self.dense):
                x = F.dropout(F.relu(x), self.dropout, self.training)
        return x


def rate_factor(schedule, lr, steps):
    """runner's ScheduleConfig::lr_at(lr, t, total) / lr for step index i (t = i + 1)."""
    kind, warm = schedule.get("kind", "constant"), schedule.get("warmup_steps", 0)
    low = schedule.get("min_lr", 0.0)

    def factor(i):
        t = i + 1
        if t <= warm:
            return t / warm
        u, span = t - warm, max(steps - warm, 1)
        if kind == "cosine":
            return (low + (lr - low) * (1 + math.cos(math.pi * u / span)) / 2) / lr
        if kind == "linear":
            return (lr + (low - lr) * u / span) / lr
        if kind == "constant":
            return 1.0
        raise SystemExit(f"optuna_search.py: schedule kind {kind!r} is not implemented")
    return factor


def suggest(trial, key, dist):
    """The trial's value of a [tpe] axis, as runner writes it in the trial's params."""
    if "log_uniform" in dist:
        return trial.suggest_float(key, *dist["log_uniform"], log=True)
    if "uniform" in dist:
        return trial.suggest_float(key, *dist["uniform"])
    if "int" in dist:
        return trial.suggest_int(key, *dist["int"])
    choices = dist["choice"]
    return choices[trial.suggest_categorical(key, list(range(len(choices))))]


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        right = sum((model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
                    for i in range(0, len(x), 1000))
    return right / len(x)


def runner_objective(trial):
    """The trial trained by runner: what a runner sweep would train for these values."""
    params = {key: suggest(trial, key, dist) for key, dist in AXES.items()}
    trial.set_user_attr("params", params)
    summary = tpe_vs_optuna.runner_trains(args.runner, args.sweep, params, RUNS)
    return summary[sweep.get("metric", "val_accuracy")]


def objective(trial):
    cfg = json.loads(json.dumps(BASE))
    params = {}
    for key, dist in AXES.items():
        params[key] = suggest(trial, key, dist)
        section, name = key.split(".", 1)
        cfg.setdefault(section, {})[name] = params[key]
    trial.set_user_attr("params", params)
    # With --common-seed, one configuration trains the same way in any trial and worker
    # (dropout's masks aside: they come from torch's shared generator).
    common = torch.Generator().manual_seed(BASE["seed"]) if args.common_seed else None
    model = Net(cfg["model"], common)
    o, steps, batch = cfg["optimizer"], cfg["train"]["steps"], cfg["train"]["batch_size"]
    if o["kind"] != "adam":
        raise SystemExit("optuna_search.py: only Adam is implemented")
    opt = torch.optim.Adam(model.parameters(), lr=o["lr"], betas=(o["beta1"], o["beta2"]),
                           eps=o["eps"], weight_decay=o.get("weight_decay", 0.0))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, rate_factor(cfg.get("schedule", {}), o["lr"], steps))
    order = torch.Generator().manual_seed(BASE["seed"] if args.common_seed else trial.number)
    perm, at = torch.randperm(len(X), generator=order), 0
    model.train()
    for _ in range(steps):
        if at + batch > len(X):
            perm, at = torch.randperm(len(X), generator=order), 0
        idx = perm[at:at + batch]
        at += batch
        loss = F.cross_entropy(model(X[idx]), Y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return accuracy(model, XV, YV)


finished = []


def record(study, trial):
    finished.append({"number": trial.number, "value": trial.value,
                     "params": trial.user_attrs["params"],
                     "elapsed_s": time.perf_counter() - T0})


if args.replay:
    from concurrent.futures import ThreadPoolExecutor

    def replay(numbered):
        number, params = numbered
        fixed = {k: AXES[k]["choice"].index(v) if "choice" in AXES[k] else v
                 for k, v in params.items()}
        return objective(optuna.trial.FixedTrial(fixed, number=1000 + number))
    with ThreadPoolExecutor(args.jobs) as pool:
        values = list(pool.map(replay, enumerate(json.loads(args.replay))))
    print(json.dumps(values))
    raise SystemExit(0)

sampler = optuna.samplers.TPESampler(seed=args.seed, n_startup_trials=tpe.get("startup", 10),
                                     **json.loads(args.sampler))
study = optuna.create_study(direction="maximize", sampler=sampler)
with tempfile.TemporaryDirectory() as RUNS:
    study.optimize(runner_objective if args.trainer == "runner" else objective,
                   n_trials=tpe["trials"], n_jobs=args.jobs, callbacks=[record])
print(json.dumps({"seed": args.seed, "trials": finished, "wall_s": time.perf_counter() - T0}))
