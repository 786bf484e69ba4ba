"""The three modes (-mode serial|exact|oneshot): the MGRIT settings of the state and adjoint
solves each implies, and the options a configuration leaves unused (reported, never ignored)."""
from ..mgrit.solver import auto_levels, hierarchy, settings_for


# -mode oneshot's MGRIT defaults where neither -mgrit_X nor -state_/-adjoint_mgrit_X is given
# (README "Scaling": the measured levers; one-shot accuracy held at N = 32 and 256)
ONESHOT_MGRIT = {"relax": "F", "cfactor": (8,)}
# (-state_mgrit_warm_skip is not among them: it cut R to 2.7 on Peaks but broke lmvm's line
# search on Indian Pines and on MNIST with 1 state iteration; measured, README "Scaling")


def mode_settings(values, db, grid):
    """MGRIT settings of the state and adjoint solves for -mode serial|exact|oneshot."""
    out = []
    for which, its in (("state", values["oneshot_state_its"]), ("adjoint", values["oneshot_adjoint_its"])):
        st = settings_for(values, db, which)
        if values["mode"] == "oneshot":
            for k, v in ONESHOT_MGRIT.items():
                if not (db.hasName(f"mgrit_{k}") or db.hasName(f"{which}_mgrit_{k}")):
                    setattr(st, k, v)
        if values["mode"] == "serial":
            st.levels = 1
        else:
            if not (db.hasName("mgrit_levels") or db.hasName(f"{which}_mgrit_levels")):
                st.levels = auto_levels(grid.N, st)
            if values["mode"] == "oneshot":
                st.max_it, st.rtol, st.atol = its, 0.0, 0.0
        out.append(st)
    return out



#: MGRIT options that shape cycles (no effect on a one-level solve, the layer-serial sweep)
CYCLE_OPTIONS = ("cfactor", "relax", "fine_relax", "cweight", "cycle", "skip_down", "warm_skip")


def inactive_options(values, db, grid, settings):
    """One line for each option given that this configuration does not use, saying why."""
    mode = values["mode"]
    given = [k for k in db.getAll() if k in values]
    out = []
    mgrit_like = [k for k in given if "mgrit_" in k and k != "mgrit_view"]  # -mgrit_view reports serial itself
    oneshot_only = ("oneshot_state_its", "oneshot_adjoint_its", "oneshot_adapt")
    if mode == "serial":  # (each option's advice names the modes that use it)
        for k in mgrit_like + [k for k in given if k in oneshot_only + (
                "unconverged", "stop_state_residual", "stop_adjoint_residual")]:
            use = ("-mode oneshot" if k in oneshot_only or k.endswith("mgrit_warm_skip") else
                   "-mode exact" if k == "unconverged" else "-mode exact or -mode oneshot")
            out.append(f"-{k} has no effect in -mode serial (layer-serial sweeps, no MGRIT): use {use}")
        return out
    if mode == "exact":
        out += [f"-{k} has no effect in -mode exact (solves run to -mgrit_rtol/-mgrit_atol): "
                f"use -mode oneshot" for k in given if k in oneshot_only or k.endswith("mgrit_warm_skip")]
    if mode == "oneshot":
        out += [f"-{k} has no effect in -mode oneshot (each solve runs -oneshot_state_its / "
                f"-oneshot_adjoint_its cycles): use those, or -mode exact"
                for k in mgrit_like if k.rsplit("mgrit_", 1)[1] in ("max_it", "rtol", "atol")]
        if "unconverged" in given:
            out.append("-unconverged has no effect in -mode oneshot (fixed cycle counts): use -mode exact")
    auto = [w for w, st in zip(("state", "adjoint"), settings)  # levels chosen by ocnet, N too short
            if len(hierarchy(grid.N, st)) == 1 and not {f"{w}_mgrit_levels", "mgrit_levels"} & set(given)]
    if auto:
        solves = " and ".join(auto) + (" solves are" if len(auto) > 1 else " solve is")
        st = settings[0]
        short = (f"too short for a coarse level of -mgrit_min_coarse {st.min_coarse} points"
                 if any(k.endswith("mgrit_min_coarse") for k in given) else "too short for a coarse level")
        out.append(f"-mode {mode}: N={grid.N} is {short} (coarsening factor {st.factor(0)}), so the {solves} "
                   "the layer-serial sweep")
    single = {w for w, st in zip(("state", "adjoint"), settings) if len(hierarchy(grid.N, st)) == 1}
    for k in given:  # cycle settings of a one-level solve
        x = k.rsplit("mgrit_", 1)[-1]
        hit = [w for w in ("state", "adjoint") if w in single and k in (f"mgrit_{x}", f"{w}_mgrit_{x}")]
        if x in CYCLE_OPTIONS and hit:
            out.append(f"-{k} has no effect: the {' and '.join(hit)} solve{'s have' if len(hit) > 1 else ' has'} one "
                       "level, the layer-serial sweep")
    for which, st in zip(("state", "adjoint"), settings):
        built = hierarchy(grid.N, st)
        for k in (f"{which}_mgrit_levels", "mgrit_levels"):
            if k in given and st.levels > len(built):
                out.append(f"-{k} {st.levels}: the {which} hierarchy of N={grid.N} has only {len(built)} "
                           f"level(s) (coarsening factors {','.join(map(str, st.cfactor))}, -mgrit_min_coarse "
                           f"{st.min_coarse}){'; one level is the layer-serial sweep' if len(built) == 1 else ''}")
                break
        for k in (f"{which}_mgrit_cfactor", "mgrit_cfactor"):
            if k in given and len(st.cfactor) > max(len(built) - 1, 1):
                out.append(f"-{k} {values[k]}: the {which} hierarchy has {len(built)} level(s), so only the "
                           f"first {max(len(built) - 1, 1)} factor(s) are used")
                break
    return list(dict.fromkeys(out))
