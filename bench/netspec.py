"""A network and optimizer as `runner resolve` prints them, for the peers' generic models.

`from_experiment(runner, file)` returns the JSON that `torch_cnn.py --net` and `tf_cnn.py --net`
take: {"model": {"kind": "mlp"|"cnn", "hidden": [...], "conv": [...], "kernel": [...],
"padding": [...], "pool": [...]}, "optimizer": {"kind": "adam"|"sgd", "lr": ..., ...}}, with the
per-block settings expanded to one value per block.
"""
import json
import subprocess
import tomllib


def from_experiment(runner, experiment, cwd):
    text = subprocess.run([runner, "resolve", experiment], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout
    cfg = tomllib.loads(text)
    model = dict(cfg["model"])
    if model["kind"] == "cnn":
        n = len(model["conv"])
        for key, default in (("kernel", 5), ("padding", "same"), ("pool", True)):
            v = model.get(key, default)
            model[key] = v if isinstance(v, list) else [v] * n
    return json.dumps({"model": model, "optimizer": cfg["optimizer"]})


def parse(text):
    spec = json.loads(text)
    return spec["model"], spec["optimizer"]
