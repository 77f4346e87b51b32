"""Optuna's TPE driving PyTorch over the search space of experiments/sweeps/mlp-tpe.toml.

The same network and training as runner's trials: an MLP of 784 inputs, one hidden ReLU layer
(64, 256 or 1024 wide) with inverted dropout after it, 10 logits, Glorot-uniform weights and
zero biases; Adam (betas 0.9/0.999, eps 1e-8) for 1000 steps on shuffled batches of the 50,000
training images left after holding out 10,000 for validation; then accuracy on the validation
split (the objective) and on the test set (as runner evaluates both). Optuna's TPESampler with
its defaults (10 startup trials, univariate) and n_jobs workers in threads, one torch thread
each. Prints one JSON line: the trials in the order they finished, and the wall time.

    python bench/optuna_mlp.py --seed 0 --trials 40 --jobs 2
"""
import argparse
import json
import time

T0 = time.perf_counter()
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import mnist_data  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=0)
p.add_argument("--trials", type=int, default=40)
p.add_argument("--jobs", type=int, default=2)
p.add_argument("--steps", type=int, default=1000)
p.add_argument("--validation", type=int, default=10000)
args = p.parse_args()
torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)

x_train, y_train, x_test, y_test = mnist_data.load()
held = np.random.default_rng(0).permutation(len(x_train))
val, train = held[: args.validation], held[args.validation:]
X, Y = torch.from_numpy(x_train[train]), torch.from_numpy(y_train[train])
XV, YV = torch.from_numpy(x_train[val]), torch.from_numpy(y_train[val])
XT, YT = torch.from_numpy(x_test), torch.from_numpy(y_test)


class MLP(nn.Module):
    def __init__(self, hidden, dropout):
        super().__init__()
        self.fc1, self.fc2, self.dropout = nn.Linear(784, hidden), nn.Linear(hidden, 10), dropout
        for m in (self.fc1, self.fc2):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.fc2(F.dropout(F.relu(self.fc1(x)), self.dropout, self.training))


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        right = sum((model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
                    for i in range(0, len(x), 1000))
    return right / len(x)


def objective(trial):
    lr = trial.suggest_float("lr", 1e-4, 3e-2, log=True)
    batch = trial.suggest_categorical("batch_size", [32, 64, 128])
    hidden = trial.suggest_categorical("hidden", [64, 256, 1024])
    dropout = trial.suggest_float("dropout", 0.0, 0.5)
    model = MLP(hidden, dropout)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
    order = torch.Generator().manual_seed(trial.number)
    perm, at = torch.randperm(len(X), generator=order), 0
    model.train()
    for _ in range(args.steps):
        if at + batch > len(X):
            perm, at = torch.randperm(len(X), generator=order), 0
        idx = perm[at:at + batch]
        at += batch
        loss = F.cross_entropy(model(X[idx]), Y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    trial.set_user_attr("test_accuracy", accuracy(model, XT, YT))
    return accuracy(model, XV, YV)


finished = []


def record(study, trial):
    finished.append({"number": trial.number, "value": trial.value, "params": trial.params,
                     "elapsed_s": time.perf_counter() - T0})


study = optuna.create_study(direction="maximize",
                            sampler=optuna.samplers.TPESampler(seed=args.seed))
study.optimize(objective, n_trials=args.trials, n_jobs=args.jobs, callbacks=[record])
print(json.dumps({"seed": args.seed, "trials": finished, "wall_s": time.perf_counter() - T0}))
