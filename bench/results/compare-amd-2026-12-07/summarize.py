"""Per network: runner, the build before, and the best peer in each column, from compare.py --json files:
    python3 summarize.py native   (or avx2)"""
import json, statistics, sys, os
d = sys.argv[1]
print("| network | runner ms/step | before ms/step | best peer ms/step | training | runner eval img/s | before eval img/s | best peer eval img/s | evaluation |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for n in ["mlp", "mlp-300-100", "lenet5", "lenet-caffe", "cnn3x3", "smoke-cnn", "baseline"]:
    f = os.path.join(d, n + ".jsonl")
    if not os.path.exists(f): continue
    rs = [json.loads(l) for l in open(f)]
    med = {}
    for r in rs:
        med.setdefault(r["config"], []).append(r)
    m = {c: (statistics.median(x["ms_per_step"] for x in v), statistics.median(x["eval_images_per_s"] for x in v)) for c, v in med.items()}
    peers = {c: v for c, v in m.items() if not c.startswith("runner")}
    bt = min(peers, key=lambda c: peers[c][0]); be = max(peers, key=lambda c: peers[c][1])
    r, b = m["runner"], m.get("runner-before", (float("nan"),) * 2)
    print(f"| {n} | {r[0]:.2f} | {b[0]:.2f} | {peers[bt][0]:.2f} ({bt}) | **{peers[bt][0]/r[0]:.2f}x** | {r[1]:.0f} | {b[1]:.0f} | {peers[be][1]:.0f} ({be}) | **{r[1]/peers[be][1]:.2f}x** |")
