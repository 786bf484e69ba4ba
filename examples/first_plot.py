"""The first plot: validation accuracy and objective of a run folder against the iteration.

Usage: .venv/bin/python examples/first_plot.py runs/out/peaks   (writes runs/out/peaks/first_plot.png)
(tests/test_docs.py runs it on a short run.)
"""
import csv
import json
import os
import sys
from datetime import datetime, timezone

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

run = sys.argv[1] if len(sys.argv) > 1 else "runs/out/peaks"
with open(os.path.join(run, "history.csv")) as f:
    rows = list(csv.DictReader(f))
with open(os.path.join(run, "summary.json")) as f:
    summary = json.load(f)
day = datetime.fromtimestamp(os.path.getmtime(os.path.join(run, "summary.json")), timezone.utc).date()

it = [int(r["iteration"]) for r in rows]
fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
a.semilogy(it, [float(r["objective"]) for r in rows])
a.set_title("objective J")
b.plot(it, [100 * float(r["val_accuracy"]) for r in rows])
b.set_title("validation accuracy (%)")
for ax in (a, b):
    ax.set_xlabel("iteration")
# a figure carries its machine and date: summary.json records the machine (CPU model, cores)
fig.suptitle(f"{os.path.basename(os.path.normpath(run))} on {summary.get('machine', '?')}, {day}", fontsize=9)
fig.tight_layout()
out = os.path.join(run, "first_plot.png")
fig.savefig(out, dpi=100)
print(f"wrote {out}: {it[-1]} iterations, final validation accuracy {100 * float(rows[-1]['val_accuracy']):.1f} %")
