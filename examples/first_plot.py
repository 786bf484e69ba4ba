"""The first plot: objective and validation accuracy (a problem without accuracy: its first other
metric, e.g. rmse) of a run folder against the iteration.

Usage: .venv/bin/python examples/first_plot.py runs/out/peaks [out.png]
(default: runs/out/peaks/first_plot.png, inside the run folder: -run_dir_overwrite of that run
deletes it with the rest)
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

from ocnet.run.rundir import headline_metric  # noqa: E402  (accuracy, else e.g. "rmse")

run = sys.argv[1] if len(sys.argv) > 1 else "runs/out/peaks"
with open(os.path.join(run, "history.csv")) as f:
    rows = list(csv.DictReader(f))
with open(os.path.join(run, "summary.json")) as f:
    summary = json.load(f)
day = datetime.fromtimestamp(os.path.getmtime(os.path.join(run, "summary.json")), timezone.utc).date()

it = [int(r["iteration"]) for r in rows]
name = headline_metric(rows)
val = [float(r[f"val_{name}"]) * (100 if name == "accuracy" else 1) for r in rows] if name else []
if not any(v == v for v in val):  # (all nan: e.g. a scoring run's unlabelled validation set)
    val, name = [], None
label = "validation accuracy (%)" if name == "accuracy" else f"validation {name}"
fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
a.semilogy(it, [float(r["objective"]) for r in rows])
a.set_title("objective J")
if val:
    b.plot(it, val)
b.set_title(label if name else "(no validation metric)")
for ax in (a, b):
    ax.set_xlabel("iteration")
# a figure carries its machine and date: summary.json records the machine (CPU model, cores)
fig.suptitle(f"{os.path.basename(os.path.normpath(run))} on {summary.get('machine', '?')}, {day}", fontsize=9)
fig.tight_layout()
out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(run, "first_plot.png")
fig.savefig(out, dpi=100)
final = (f", final validation accuracy {val[-1]:.1f} %" if name == "accuracy" else
         f", final validation {name} {val[-1]:.4g}" if name else "")
print(f"wrote {out}: {it[-1]} iterations{final}")
