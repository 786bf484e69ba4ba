"""Checkpoint/restart of every optimiser: design, optimiser state, history, MGRIT warm starts.

A checkpoint is a folder ``checkpoint`` in the run folder: every rank writes its own file
``rank<r>.npz`` (its MGRIT warm starts and its part of the optimiser state: the design, and the
optimiser's memory where it has one), rank 0 the history and what the run is (``history.json``),
then a ``COMPLETE`` marker; the folder is written as ``checkpoint.new`` and swapped in by
renames, so a crash at any moment leaves one complete checkpoint (``checkpoint`` or, mid-swap,
``checkpoint.old``).  The mini-batch of an iteration is a function of (-seed, iteration), so the
iteration number restores the mini-batch sequence.

A checkpoint resumes on any rank count (``redistribute``): a rank's file holds the rows of its
layer block (``ocnet.base.grid.block_bounds``), so each rank of the resumed run reads the files of
the saved blocks that overlap its own and takes every state from the rank that owned it."""
import json
import os
import shutil
import sys
import zipfile

import numpy as np

from ..base.errors import OcnetError, collective_check
from ..base.grid import block_bounds

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
#: optimiser-state arrays shaped like the design (last axis): the design and gradient, and the
#: one-shot TAO's L-BFGS pairs (OneShot.state); the rest (numbers, adaptive state) are the same
#: on every rank
DESIGN_KEYS = ("x", "g", "S", "Y")


def _owner(n, N, P, adjoint):
    """The rank of P that owns state index n (0..N): forward trajectories u[n0+1..n1] (rank 0
    also u[0]); the adjoint, stored on the reversed grid, lambda[n0..n1-1] (the last rank also
    lambda[N])."""
    for r in range(P):
        n0, n1 = block_bounds(N, P, r)
        if (n0 < n <= n1 or n == 0 == r) if not adjoint else (n0 <= n < n1 or n == N and r == P - 1):
            return r
    raise AssertionError(n)


def _row(n, N, P, r, adjoint):
    """Row of state index n in rank r's stored array (forward: u[n0 + k]; the adjoint's own.U is
    stored back to front: row k is lambda[n1 - k])."""
    n0, n1 = block_bounds(N, P, r)
    return n1 - n if adjoint else n - n0


def redistribute(files, N, P, grid, design, replicated):
    """This rank's arrays, in the layout of ``grid`` (P' ranks), from the saved ranks' arrays
    ``files`` ({old rank: {name: array}}, the ranks whose blocks overlap this one's) of a run on P
    ranks.  Trajectories take each row from the rank that owned it; design-shaped optimiser arrays
    (DESIGN_KEYS, last axis) are, in the ``replicated`` layout (the saved run's -design_layout;
    ``_relayout`` converts them to another), whole copies taken as saved, else rebuilt from the
    layers' owners; the rest come from the first file that holds them (in the replicated layout
    only rank 0 runs the optimiser and saves its memory; the others save the design).  Raises
    KeyError/ValueError/IndexError for a file without a trajectory or a layer the others hold, or
    of the wrong shape (corrupt)."""
    out = {}
    keys = dict.fromkeys(k for r in sorted(files) for k in files[r])
    for key in keys:
        arr = next(files[r][key] for r in sorted(files) if key in files[r])
        opt = key.startswith(OPT) and key[len(OPT):] in DESIGN_KEYS
        if not key.startswith(OPT):  # a trajectory: rows u[n0..n1] of this rank
            adjoint = key == "adjoint"
            new = np.empty((grid.nlocal + 1,) + arr.shape[1:], arr.dtype)
            for k in range(grid.nlocal + 1):
                n = grid.n1 - k if adjoint else grid.n0 + k
                r = _owner(n, N, P, adjoint)
                new[k] = files[r][key][_row(n, N, P, r, adjoint)]
            out[key] = new
        elif opt and not replicated:  # distributed: [g (rank 0)] + this rank's layers
            G, p = design.G, design.p
            parts = [files[0][key][..., :G]] if grid.first else []
            for n in range(grid.n0, grid.n1):
                r = _owner(n + 1, N, P, False)  # (the owner of layer n: the rank of its output state)
                off = (G if r == 0 else 0) + (n - block_bounds(N, P, r)[0]) * p
                parts.append(files[r][key][..., off:off + p])
            out[key] = np.concatenate(parts, axis=-1)
        else:
            out[key] = arr
    return out


def _saved_layout(arrays, P, design):
    """Whether the checkpoint's optimiser vectors are replicated (True) or distributed (False), or
    None where it cannot tell or it does not matter (one rank, or no design saved).  The layout
    shows in the saved design's size: the global one replicated, a rank's part distributed."""
    x = arrays.get(OPT + "x")
    if x is None or P == 1:
        return None
    return x.shape[-1] == design.global_size


def _relayout(path, P, grid, design, replicated):
    """This rank's optimiser arrays (OPT keys) in the ``replicated`` layout, from a checkpoint
    (``path``, P ranks) saved in the other one: distributed -> replicated concatenates every saved
    rank's part in layer order (each rank's file read for those arrays only); replicated ->
    distributed takes this rank's part ([g] on the first rank, then its layers) of rank 0's whole
    arrays (rank 0 holds the optimiser's memory there, the others the design).  Raises
    ValueError/KeyError/OSError for a file without them (corrupt)."""
    out = {}
    if replicated:
        parts = {}
        for r in range(P):
            with np.load(os.path.join(path, f"rank{r}.npz")) as z:
                for k in z.files:
                    if k.startswith(OPT) and k[len(OPT):] in DESIGN_KEYS:
                        parts.setdefault(k, []).append(z[k])
                    elif k.startswith(OPT) and r == 0:
                        out[k] = z[k]
        for k, v in parts.items():
            if len(v) != P:
                raise ValueError(f"'{k[len(OPT):]}' is saved by {len(v)} of its {P} ranks")
            out[k] = np.concatenate(v, axis=-1)
        if out[OPT + "x"].shape[-1] != design.global_size:
            raise ValueError(f"its ranks' designs hold {out[OPT + 'x'].shape[-1]} values, not {design.global_size}")
        return out
    G, p = design.G, design.p
    with np.load(os.path.join(path, "rank0.npz")) as z:
        for k in z.files:
            if not k.startswith(OPT):
                continue
            a = z[k]
            if k[len(OPT):] in DESIGN_KEYS:
                a = np.concatenate(([a[..., :G]] if grid.first else []) + [a[..., G + grid.n0 * p:G + grid.n1 * p]],
                                   axis=-1)
            out[k] = a
    return out


def _overlapping(N, P, grid):
    """The saved ranks (of P) whose stored rows or layers this rank needs: those whose blocks meet
    [n0, n1] (for the first rank, rank 0 with the global parameters among them)."""
    return [r for r in range(P) if block_bounds(N, P, r)[0] <= grid.n1 and block_bounds(N, P, r)[1] >= grid.n0]


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


def saved_meta(run_dir, comm, key="meta"):
    """What the checkpointed run was (problem, N, T, ranks, options), or None without a checkpoint
    (``key`` "iteration": the iteration it holds)."""
    path = find(run_dir)
    meta = None
    if comm.Get_rank() == 0 and path is not None:
        try:
            with open(os.path.join(path, "history.json")) as f:
                meta = json.load(f).get(key)
        except (OSError, ValueError, AttributeError):
            meta = None  # reported as a corrupt checkpoint by load
    return comm.bcast(meta, root=0)


def load(run_dir, comm, objective, replicated=True):
    """Restore the warm starts on every rank; return (this rank's optimiser state, history rows,
    iteration).  A checkpoint of another rank count is redistributed (``redistribute``;
    ``replicated``: the optimiser's design layout).  Raises OcnetError (every rank) for a missing
    or corrupt one.  Every rank first reads its whole file, then all agree before anything collective happens (a
    rank whose file was damaged used to wait in allgather while the others allocated Vecs: a hang)."""
    path = find(run_dir) if os.path.isdir(run_dir) else None
    collective_check(comm, path is not None, f"-resume: no complete checkpoint in '{run_dir}'")
    name = "history.json"  # (the file being read: named in the error)
    err, meta, arrays, relayout = None, None, {}, False
    grid, N = objective.grid, objective.grid.N
    try:
        with open(os.path.join(path, "history.json")) as f:
            meta = json.load(f)
        P = int(meta["ranks"])
        its, rows = int(meta["iteration"]), list(meta["rows"])
        if rows and int(rows[-1]["iteration"]) != its:
            raise ValueError(f"its history ends at iteration {rows[-1]['iteration']}, not {its}")
        name = f"rank{comm.Get_rank()}.npz"
        if P == comm.Get_size():
            with np.load(os.path.join(path, name)) as z:
                arrays = {k: z[k] for k in z.files}
            saved_replicated = _saved_layout(arrays, P, objective.design)
        else:  # another rank count: the saved blocks that overlap this rank's
            files = {}
            for r in _overlapping(N, P, grid):
                name = f"rank{r}.npz"
                with np.load(os.path.join(path, name)) as z:
                    files[r] = {k: z[k] for k in z.files}
            name = f"rank{min(files)}..{max(files)}.npz (of {P} ranks)"
            saved_replicated = _saved_layout(files[min(files)], P, objective.design)
            arrays = redistribute(files, N, P, grid, objective.design,
                                  replicated if saved_replicated is None else saved_replicated)
        relayout = saved_replicated is not None and saved_replicated != replicated
        if relayout:  # another -design_layout: the optimiser's arrays converted
            shown, name = name, f"rank0..{P - 1}.npz (optimiser vectors)"
            arrays = {k: v for k, v in arrays.items() if not k.startswith(OPT)}
            arrays.update(_relayout(path, P, grid, objective.design, replicated))
            name = shown
    except (OSError, ValueError, KeyError, TypeError, EOFError, AttributeError, IndexError,
            zipfile.BadZipFile) as e:
        err = f"-resume: corrupt checkpoint in '{path}': {name}: {e}"
    collective_check(comm, err is None, err)
    if comm.Get_rank() == 0 and (meta["ranks"] != comm.Get_size() or relayout):
        said, P = [], meta["ranks"]
        if P != comm.Get_size():
            said.append(f"the checkpoint was written by {P} rank{'s' * (P != 1)}; its warm starts and optimiser "
                        f"state are redistributed over {comm.Get_size()}")
        if relayout:
            old, new = ("distributed", "replicated") if replicated else ("replicated", "distributed")
            said.append(f"its optimiser vectors, saved with -design_layout {old}, are converted to this run's {new} "
                        "layout")
        print(f"ocnet: note: -resume: {'; '.join(said)}", file=sys.stderr, flush=True)
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
