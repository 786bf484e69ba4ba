"""Checkpoint/restart of the one-shot optimiser: design, optimiser state, MGRIT warm starts.

A checkpoint is a folder ``checkpoint`` in the run folder: every rank writes its own trajectory
file, rank 0 the optimiser state and the history, then a ``COMPLETE`` marker; the folder is
written as ``checkpoint.new`` and swapped in by renames, so a crash at any moment leaves one
complete checkpoint (``checkpoint`` or, mid-swap, ``checkpoint.old``)."""
import json
import os
import shutil

import numpy as np

from ..base.errors import OcnetError, collective_check

NAMES = ("checkpoint", "checkpoint.old", "checkpoint.new")


def _kill_hook(stage, its):
    """Test hook: OCNET_TEST_KILL=stage:iteration sends SIGKILL to this process there."""
    spec = os.environ.get("OCNET_TEST_KILL", "")
    if spec == f"{stage}:{its}":
        os.kill(os.getpid(), 9)


def warm_arrays(objective):
    """The arrays whose values carry over between evaluations (MGRIT warm starts)."""
    arrs = {}
    if objective.mgrit is not None:
        arrs["state"] = objective.state.U
    if objective.adj_mgrit is not None:
        arrs["adjoint"] = objective.adj_mgrit.own.U
    if objective.mgrit is not None:  # the layer-parallel forward solves of the monitored datasets
        for name in ("train", "val"):
            if name in objective.problem.datasets:
                arrs[f"eval_{name}"] = objective.evaluation(objective.problem.datasets[name])[0].U
    return arrs


def save(run_dir, comm, objective, its, opt_state, rows, meta=None):
    rank = comm.Get_rank()
    new = os.path.join(run_dir, "checkpoint.new")
    if rank == 0:
        shutil.rmtree(new, ignore_errors=True)
        os.makedirs(new)
    comm.Barrier()
    np.savez(os.path.join(new, f"rank{rank}.npz"), **warm_arrays(objective))
    comm.Barrier()
    if rank == 0:
        _kill_hook("during", its)
        np.savez(os.path.join(new, "optimizer.npz"), **opt_state)
        with open(os.path.join(new, "history.json"), "w") as f:
            json.dump({"iteration": its, "ranks": comm.Get_size(), "rows": rows, "meta": meta}, f)
        with open(os.path.join(new, "COMPLETE"), "w") as f:
            f.write(str(its))
        cur, old = os.path.join(run_dir, "checkpoint"), os.path.join(run_dir, "checkpoint.old")
        shutil.rmtree(old, ignore_errors=True)
        if os.path.isdir(cur):
            os.replace(cur, old)
        os.replace(new, cur)
        shutil.rmtree(old, ignore_errors=True)
    comm.Barrier()
    _kill_hook("after", its)


def find(run_dir):
    for name in NAMES[:2]:
        path = os.path.join(run_dir, name)
        if os.path.isfile(os.path.join(path, "COMPLETE")):
            return path
    return None


def saved_meta(run_dir, comm):
    """What the checkpointed run was (problem, N, T, ranks, options), or None without a checkpoint."""
    path = find(run_dir)
    meta = None
    if comm.Get_rank() == 0 and path is not None:
        try:
            with open(os.path.join(path, "history.json")) as f:
                meta = json.load(f).get("meta")
        except (OSError, ValueError):
            meta = None  # reported as a corrupt checkpoint by load
    return comm.bcast(meta, root=0)


def load(run_dir, comm, objective):
    """Restore the warm starts on every rank; return (optimiser state, history rows) on all ranks."""
    path = find(run_dir) if os.path.isdir(run_dir) else None
    collective_check(comm, path is not None, f"-resume: no complete checkpoint in '{run_dir}'")
    try:
        with open(os.path.join(path, "history.json")) as f:
            meta = json.load(f)
        if meta["ranks"] != comm.Get_size():
            raise OcnetError(f"-resume: '{run_dir}' was written by {meta['ranks']} ranks, this run has "
                             f"{comm.Get_size()} (restart on the same rank count)")
        with np.load(os.path.join(path, f"rank{comm.Get_rank()}.npz")) as z:
            for key, arr in warm_arrays(objective).items():
                arr[...] = z[key]
        with np.load(os.path.join(path, "optimizer.npz")) as z:
            opt = {k: z[k] for k in z.files}
    except OcnetError:
        raise
    except (OSError, ValueError, KeyError) as e:
        collective_check(comm, False, f"-resume: corrupt checkpoint in '{path}': {e}")
    collective_check(comm, True, "")
    return opt, meta["rows"]
