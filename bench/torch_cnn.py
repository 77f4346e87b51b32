"""The tutorial's CNN in PyTorch (same layers, Glorot init, Adam 1e-4 with eps 1e-7), timed.

Prints one JSON line. --channels-last runs the convolutions in NHWC memory format.

    python bench/torch_cnn.py --steps 500 --batch 50 [--channels-last]
"""
import argparse
import json
import time

T0 = time.perf_counter()
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import mnist_data  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=500)
p.add_argument("--batch", type=int, default=50)
p.add_argument("--warmup", type=int, default=20)
p.add_argument("--eval-batch", type=int, default=1000)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--channels-last", action="store_true")
p.add_argument("--net", help="another network and optimizer, as bench/netspec.py writes them")
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)
fmt = torch.channels_last if args.channels_last else torch.contiguous_format


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc1 = nn.Linear(7 * 7 * 64, 1024)
        self.fc2 = nn.Linear(1024, 10)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = x.view(-1, 1, 28, 28).contiguous(memory_format=fmt)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))


class Generic(nn.Module):
    """A network of `bench/netspec.py`: conv blocks (conv, ReLU, 2x2 max-pool if `pool`), then
    dense ReLU layers and 10 logits; Glorot init, as runner's default."""

    def __init__(self, m):
        super().__init__()
        self.convs, self.pools = nn.ModuleList(), []
        channels, side = 1, 28
        for f, k, pad, pool in zip(m.get("conv", []), m.get("kernel", []), m.get("padding", []),
                                   m.get("pool", [])):
            p = k // 2 if pad == "same" else 0
            self.convs.append(nn.Conv2d(channels, f, k, padding=p))
            self.pools.append(pool)
            side = side + 2 * p - k + 1
            side = side // 2 if pool else side
            channels = f
        width = channels * side * side if self.convs else 784
        self.dense = nn.ModuleList()
        for h in m["hidden"] + [10]:
            self.dense.append(nn.Linear(width, h))
            width = h
        for mod in self.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(mod.weight)
                nn.init.zeros_(mod.bias)

    def forward(self, x):
        if self.convs:
            x = x.view(-1, 1, 28, 28).contiguous(memory_format=fmt)
            for conv, pool in zip(self.convs, self.pools):
                x = F.relu(conv(x))
                if pool:
                    x = F.max_pool2d(x, 2)
        x = torch.flatten(x, 1)
        for i, d in enumerate(self.dense):
            x = d(x)
            if i + 1 < len(self.dense):
                x = F.relu(x)
        return x


x_train, y_train, x_test, y_test = (torch.from_numpy(a) for a in mnist_data.load())
if args.net:
    import netspec  # noqa: E402

    net, optim = netspec.parse(args.net)
    model = Generic(net).to(memory_format=fmt)
    if optim["kind"] == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=optim["lr"], momentum=optim.get("momentum", 0),
                              weight_decay=optim.get("weight_decay", 0))
    else:
        opt = torch.optim.Adam(model.parameters(), lr=optim["lr"], eps=optim.get("eps", 1e-8))
else:
    model = CNN().to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-7)
startup_s = time.perf_counter() - T0
order = torch.randperm(len(x_train))
pos = 0
for i in range(args.warmup + args.steps):
    if i == args.warmup:
        t = time.perf_counter()
    if pos + args.batch > len(order):
        order, pos = torch.randperm(len(x_train)), 0
    idx = order[pos:pos + args.batch]
    pos += args.batch
    loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
train_s = time.perf_counter() - t


def evaluate():
    correct = 0
    with torch.no_grad():
        for s in range(0, len(x_test), args.eval_batch):
            logits = model(x_test[s:s + args.eval_batch])
            correct += int((logits.argmax(1) == y_test[s:s + args.eval_batch]).sum())
    return correct / len(x_test)


evaluate()
t = time.perf_counter()
accuracy = evaluate()
eval_s = time.perf_counter() - t
print(json.dumps({
    "framework": "pytorch" + ("+channels_last" if args.channels_last else ""),
    "version": torch.__version__,
    "batch": args.batch,
    "steps": args.steps,
    "ms_per_step": 1000 * train_s / args.steps,
    "eval_images_per_s": len(x_test) / eval_s,
    "startup_s": startup_s,
    "peak_rss_mb": mnist_data.peak_rss_mb(),
    "test_accuracy": accuracy,
}))
