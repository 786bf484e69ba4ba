"""Checkpoint/restart of every optimiser: design, optimiser state, history, MGRIT warm starts.

A checkpoint is a folder ``checkpoint`` in the run folder: every rank writes its own file
``rank<r>.npz`` (its MGRIT warm starts and its part of the optimiser state: the design, and the
optimiser's memory where it has one), rank 0 the history and what the run is (``history.json``),
then a ``COMPLETE`` marker; the folder is written as ``checkpoint.new`` and swapped in by
renames, so a crash at any moment leaves one complete checkpoint (``checkpoint`` or, mid-swap,
``checkpoint.old``).  The mini-batch of an iteration is a function of (-seed, iteration), so the
iteration number restores the mini-batch sequence."""
import json
import os
import shutil
import zipfile

import numpy as np

from ..base.errors import OcnetError, collective_check

NAMES = ("checkpoint", "checkpoint.old", "checkpoint.new")


def _kill_hook(stage, its):
    """Test hook: OCNET_TEST_KILL=stage:iteration[:rank] sends SIGKILL to this process there
    (stages: ``during`` a checkpoint's writing, ``after`` a whole save; rank 0 unless given)."""
    spec = os.environ.get("OCNET_TEST_KILL", "")
    rank = os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMI_RANK", "0"))
    if spec in (f"{stage}:{its}", f"{stage}:{its}:{rank}") and (spec.count(":") == 2 or rank == "0"):
        os.kill(os.getpid(), 9)


def warm_arrays(objective, create=()):
    """The arrays whose values carry over between evaluations (MGRIT warm starts): the state and
    adjoint trajectories, and those of the monitored datasets' layer-parallel forward solves that
    exist (``create``: dataset names whose trajectories are allocated first, for a restart).  A
    dataset's trajectory is allocated only when a solve needs it: the training data's usually
    never is (its metrics come from the objective's own state), and on MNIST it would be 6 GB."""
    arrs = {}
    if objective.mgrit is not None:
        arrs["state"] = objective.state.U
    if objective.adj_mgrit is not None:
        arrs["adjoint"] = objective.adj_mgrit.own.U
    if objective.mgrit is not None:  # the layer-parallel forward solves of the monitored datasets
        for name in ("train", "val"):
            data = objective.problem.datasets.get(name)
            ev = None if data is None else objective.evaluation(data, create=name in create)
            if ev is not None:
                arrs[f"eval_{name}"] = ev[0].U
    return arrs


OPT = "opt__"  # prefix of the optimiser-state arrays in rank<r>.npz


def save(run_dir, comm, objective, its, opt_state, rows, meta=None):
    """Collective: write the checkpoint of iteration ``its`` (``opt_state``: this rank's
    optimiser state, a dict of arrays and numbers; ``rows``: the history up to ``its``)."""
    rank = comm.Get_rank()
    new = os.path.join(run_dir, "checkpoint.new")
    if rank == 0:
        shutil.rmtree(new, ignore_errors=True)
        os.makedirs(new)
    comm.Barrier()
    arrays = dict(warm_arrays(objective))
    arrays.update({OPT + k: np.asarray(v) for k, v in opt_state.items()})
    np.savez(os.path.join(new, f"rank{rank}.npz"), **arrays)
    from ..base.signals import test_hook
    test_hook("save", its)
    comm.Barrier()
    if rank == 0:
        _kill_hook("during", its)
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


def size(run_dir):
    """Bytes of the run folder's current checkpoint (every rank's file), or None without one."""
    path = find(run_dir)
    if path is None:
        return None
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


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
    """Restore the warm starts on every rank; return (this rank's optimiser state, history rows,
    iteration).  Raises OcnetError (every rank) for a missing, corrupt or other-rank-count one.
    Every rank first reads its whole file, then all agree before anything collective happens (a
    rank whose file was damaged used to wait in allgather while the others allocated Vecs: a hang)."""
    path = find(run_dir) if os.path.isdir(run_dir) else None
    collective_check(comm, path is not None, f"-resume: no complete checkpoint in '{run_dir}'")
    name = f"rank{comm.Get_rank()}.npz"
    err, meta, arrays = None, None, {}
    try:
        with open(os.path.join(path, "history.json")) as f:
            meta = json.load(f)
        if meta["ranks"] != comm.Get_size():
            err = (f"-resume: '{run_dir}' was written by {meta['ranks']} ranks, this run has "
                   f"{comm.Get_size()} (restart on the same rank count)")
        else:
            with np.load(os.path.join(path, name)) as z:
                arrays = {k: z[k] for k in z.files}
            its, rows = int(meta["iteration"]), list(meta["rows"])
            if rows and int(rows[-1]["iteration"]) != its:
                raise ValueError(f"its history ends at iteration {rows[-1]['iteration']}, not {its}")
    except (OSError, ValueError, KeyError, TypeError, EOFError, AttributeError, zipfile.BadZipFile) as e:
        err = f"-resume: corrupt checkpoint in '{path}': {name}: {e}"
    collective_check(comm, err is None, err)
    saved = sorted(k[len("eval_"):] for k in arrays if k.startswith("eval_"))
    collective_check(comm, len({tuple(s) for s in comm.allgather(saved)}) == 1,
                     f"-resume: corrupt checkpoint in '{path}': its rank files hold different warm starts")
    err = None
    for key, arr in warm_arrays(objective, create=saved).items():  # (collective: allocates)
        if key not in arrays or arrays[key].shape != arr.shape:
            err = err or (f"-resume: corrupt checkpoint in '{path}': {name}: warm start '{key}' has shape "
                          f"{arrays[key].shape if key in arrays else 'none'}, expected {arr.shape}")
        else:
            arr[...] = arrays[key]
    collective_check(comm, err is None, err)
    opt = {k[len(OPT):]: v for k, v in arrays.items() if k.startswith(OPT)}
    return opt, list(meta["rows"]), int(meta["iteration"])
