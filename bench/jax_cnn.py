"""The tutorial's CNN in JAX + Flax + Optax (same layers, Glorot init, Adam 1e-4 with eps 1e-7),
timed like bench/torch_cnn.py: the train step and the prediction are jit-compiled ahead of the
timed loop, and that compilation is counted in start-up, not in steps. Prints one JSON line.

    python bench/jax_cnn.py --steps 500 --batch 50 [--net JSON]
"""
import argparse
import json
import time

T0 = time.perf_counter()
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import linen as nn  # noqa: E402

import mnist_data  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=500)
p.add_argument("--batch", type=int, default=50)
p.add_argument("--warmup", type=int, default=20)
p.add_argument("--eval-batch", type=int, default=1000)
p.add_argument("--net", help="another network and optimizer, as bench/netspec.py writes them")
args = p.parse_args()

REFERENCE = {"kind": "cnn", "conv": [32, 64], "kernel": [5, 5], "padding": ["same", "same"],
             "pool": [True, True], "hidden": [1024]}
glorot, zeros = nn.initializers.glorot_uniform(), nn.initializers.zeros


class Net(nn.Module):
    """Conv blocks (conv, ReLU, 2x2 max-pool if `pool`), then dense ReLU layers and 10 logits:
    the reference CNN, or a network of bench/netspec.py."""
    spec: dict

    @nn.compact
    def __call__(self, x):
        m = self.spec
        if m.get("conv"):
            x = x.reshape(-1, 28, 28, 1)
            for f, k, pad, pool in zip(m["conv"], m["kernel"], m["padding"], m["pool"]):
                x = nn.relu(nn.Conv(f, (k, k), padding="SAME" if pad == "same" else "VALID",
                                    kernel_init=glorot, bias_init=zeros)(x))
                if pool:
                    x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        for h in m["hidden"]:
            x = nn.relu(nn.Dense(h, kernel_init=glorot, bias_init=zeros)(x))
        return nn.Dense(10, kernel_init=glorot, bias_init=zeros)(x)


if args.net:
    import netspec  # noqa: E402

    spec, optim = netspec.parse(args.net)
else:
    spec, optim = REFERENCE, {"kind": "adam", "lr": 1e-4, "eps": 1e-7}
if optim["kind"] == "sgd":
    momentum = optim.get("momentum", 0) or None
    tx = optax.chain(optax.add_decayed_weights(optim.get("weight_decay", 0)),
                     optax.sgd(optim["lr"], momentum=momentum))
else:
    tx = optax.adam(optim["lr"], eps=optim.get("eps", 1e-8))

x_train, y_train, x_test, y_test = mnist_data.load()
model = Net(spec)
params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 784), jnp.float32))
opt_state = tx.init(params)


def loss_fn(params, x, y):
    logits = model.apply(params, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def train_step(params, opt_state, x, y):
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def correct(params, x, y):
    return (model.apply(params, x).argmax(-1) == y).sum()


xb, yb = x_train[:args.batch], y_train[:args.batch].astype(np.int32)
step = jax.jit(train_step, donate_argnums=(0, 1)).lower(params, opt_state, xb, yb).compile()
ex, ey = x_test[:args.eval_batch], y_test[:args.eval_batch].astype(np.int32)
count = jax.jit(correct).lower(params, ex, ey).compile()
startup_s = time.perf_counter() - T0

rng = np.random.default_rng(0)
order, pos = rng.permutation(len(x_train)), 0
y_train = y_train.astype(np.int32)
for i in range(args.warmup + args.steps):
    if i == args.warmup:
        jax.block_until_ready(params)
        t = time.perf_counter()
    if pos + args.batch > len(order):
        order, pos = rng.permutation(len(x_train)), 0
    idx = order[pos:pos + args.batch]
    pos += args.batch
    params, opt_state, loss = step(params, opt_state, x_train[idx], y_train[idx])
jax.block_until_ready(params)
train_s = time.perf_counter() - t

y_test = y_test.astype(np.int32)


def evaluate():
    total = 0
    for s in range(0, len(x_test), args.eval_batch):
        total += int(count(params, x_test[s:s + args.eval_batch], y_test[s:s + args.eval_batch]))
    return total / len(x_test)


evaluate()
t = time.perf_counter()
accuracy = evaluate()
eval_s = time.perf_counter() - t
print(json.dumps({
    "framework": "jax",
    "version": jax.__version__,
    "batch": args.batch,
    "steps": args.steps,
    "ms_per_step": 1000 * train_s / args.steps,
    "eval_images_per_s": len(x_test) / eval_s,
    "startup_s": startup_s,
    "peak_rss_mb": mnist_data.peak_rss_mb(),
    "test_accuracy": accuracy,
}))
