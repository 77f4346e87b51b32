#!/usr/bin/env python3
"""Seconds from starting a command to its first training-step line on stderr (and total)."""
import subprocess, sys, time
t0 = time.monotonic()
p = subprocess.Popen(sys.argv[1:], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
first = None
built = False
for line in p.stderr:
    if line.startswith("runner: compiling"):
        built = True
    if first is None and line.startswith("step "):
        first = time.monotonic() - t0
p.wait()
print(f"first_step_s={first if first is None else round(first,2)} total_s={time.monotonic()-t0:.2f} built={built} rc={p.returncode}")
