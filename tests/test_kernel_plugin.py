"""Fast plugins from two kernels (ocnet.plugin.kernels) and safe reuse of the built-ins.

A plugin written only as two jitted kernels (tests/kernel_toy.py: layer-dependent, with a cache)
passes -check_adjoint for every generated form on 1, 2 and 3 ranks, exact = serial, and its
histories are rank-count free in all three modes; inherited batched forms written for another
step never run; a model loads after its implementation changed."""
import numpy as np
import pytest

from tests.conftest import history_column, read_history, run_ocnet

TOY = ["-problem", "tests.kernel_toy:KernelToy", "-N", 12]
TRAIN = TOY + ["-tao_max_it", 8, "-quiet", "-mgrit_cfactor", 2]
# every generated form, with each optional extension the checker exercises
FORMS = {"sweep ": ("plain", "forcing"), "sweep_adjoint ": ("dot", "forcing"),
         "parameter_gradient ": ("dot", "rows="), "sweeps ": ("plain", "forcing", "ahead=", "ahead= forcing"),
         "steps ": ("plain", "forcing", "minus="), "sweeps_adjoint ": ("dot", "forcing", "grad=", "ahead="),
         "steps_adjoint ": ("dot", "forcing", "minus=")}


def lines(p, status):
    return [ln for ln in p.stdout.splitlines() if ln.startswith(status + "  ")]


@pytest.mark.parametrize("nprocs", [None, 2, 3])
def test_two_kernels_pass_check_adjoint(nprocs):
    p = run_ocnet(TOY + ["-check_adjoint", "-mgrit_cfactor", 2], nprocs=nprocs, check=False)
    assert p.returncode == 0 and not lines(p, "FAIL") and "checks passed" in p.stdout, p.stdout + p.stderr
    ok = lines(p, "PASS")
    for form, parts in FORMS.items():
        found = [ln for ln in ok if ln.startswith("PASS  " + form)]
        assert found, (form, p.stdout)
        for part in parts:
            assert any(part + " " in ln for ln in found), (form, part, p.stdout)
    # the all-level forms are tested at coarse step sizes too (layer index n = j*m, h*m)
    assert any(ln.startswith("PASS  sweeps_adjoint h*m=") for ln in ok), p.stdout
    assert any(ln.startswith("PASS  Taylor") for ln in ok)


@pytest.mark.parametrize("act", ["relu", "smoothrelu"])
def test_two_kernels_other_activations(act):
    p = run_ocnet(TOY + ["-check_adjoint", "-mgrit_cfactor", 2, "-toy_act", act], check=False)
    assert p.returncode == 0 and not lines(p, "FAIL"), p.stdout + p.stderr


def test_two_kernels_exact_is_serial(tmp_path):
    run_ocnet(TRAIN + ["-run_dir", tmp_path / "s"])
    run_ocnet(TRAIN + ["-mode", "exact", "-mgrit_rtol", 1e-13, "-run_dir", tmp_path / "e"], nprocs=2)
    s, e = history_column(tmp_path / "s"), history_column(tmp_path / "e")
    assert len(s) == len(e) == 9 and s[-1] < 0.9 * s[0]
    np.testing.assert_allclose(e, s, rtol=1e-10, atol=0)


@pytest.mark.parametrize("mode", ["serial", "exact", "oneshot"])
def test_two_kernels_rank_count_free(tmp_path, mode):
    for p in (1, 2, 3):
        run_ocnet(TRAIN + ["-mode", mode, "-run_dir", tmp_path / f"p{p}"], nprocs=p)
    ref = history_column(tmp_path / "p1")
    for p in (2, 3):
        np.testing.assert_allclose(history_column(tmp_path / f"p{p}"), ref, rtol=1e-10, atol=0)


def test_wrong_kernel_is_named():
    p = run_ocnet(["-problem", "tests.reuse:WrongKernelToy", "-N", 8, "-check_adjoint"], check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    bad = lines(p, "FAIL")
    # each form named by the kernel it runs (both kernels for every form said nothing; tester 43)
    assert any(ln.startswith("FAIL  step h=") and "step_adjoint from the kernel wrong_adjoint (generated forms), step "
               "from the kernel toy_step (generated forms)" in ln for ln in bad), p.stdout
    assert any(ln.startswith("FAIL  sweep_adjoint h=") and "[sweep_adjoint from the kernel wrong_adjoint (generated forms)"
               in ln for ln in bad), p.stdout
    assert any(ln.startswith("PASS  sweep h=") for ln in lines(p, "PASS")), p.stdout  # the forward forms are right


@pytest.mark.parametrize("case,nprocs", [("ShortKernelArgs", 2), ("ShortSignature", None)])
def test_kernel_that_does_not_compile_is_one_line(case, nprocs):
    """A kernel_args tuple of another length, a kernel without the work argument: one line naming
    the plugin's kernel, its file and line and how ocnet calls it (was an 'internal error' with a
    page of Numba compiler passes)."""
    import inspect

    from tests import kernel_toy
    p = run_ocnet(["-problem", f"tests.kernel_toy:{case}", "-N", 8, "-tao_max_it", 2], nprocs=nprocs, check=False)
    err = [ln for ln in p.stderr.splitlines() if ln.startswith("ocnet")]  # (besides mpiexec's notice)
    assert p.returncode == 1 and len(err) == 1 and "Traceback" not in p.stderr and "TypingError" not in p.stderr, \
        p.stderr
    name, why, line = {"ShortKernelArgs": ("toy_step", "wrong tuple length for args: expected 2, got 1",
                                           inspect.getsourcelines(kernel_toy.toy_step)[1] + 2),
                       "ShortSignature": ("short_step", "its signature (n, h, theta, u, out, cache, args) takes "
                                          "other arguments (too many positional arguments)",
                                          inspect.getsourcelines(kernel_toy.short_step)[1] + 1)}[case]
    assert err[0] == (f"ocnet: error: the problem plugin's step_kernel {name} does not compile as ocnet calls it "
                      f"(Numba: {why}) at {kernel_toy.__file__}:{line}; ocnet calls it as {name}(n, h, theta, u, "
                      "out, cache, work, args) with args = kernel_args(S) (docs/plugins/fast.md)"), p.stderr


@pytest.mark.parametrize("nprocs", [None, 2])
def test_kernel_writing_past_its_arrays_is_one_line(nprocs):
    """cache_size left at 0 for a kernel that writes its cache flat: the kernel wrote into the heap
    and the process died later (munmap_chunk(): invalid pointer, tester 43); a guarded step at the
    start names the kernel and the array, for training and -check_adjoint alike."""
    for extra in (["-tao_max_it", 2], ["-check_adjoint"]):
        p = run_ocnet(["-problem", "tests.kernel_toy:ForgottenCache", "-N", 8] + extra, nprocs=nprocs, check=False)
        err = [ln for ln in p.stderr.splitlines() if ln.startswith("ocnet")]
        assert p.returncode == 2 and err == [
            "ocnet: error: problem 'kerneltoy': its kernel flat_step wrote past the end of its 'cache' array (0 doubles, "
            "from cache_size(data); it wrote up to index 71): cache_size(data) too small (default 0: override it) "
            "(docs/plugins/fast.md)"], p.stderr


@pytest.mark.parametrize("plugin, how", [
    ("ForgottenWork", "scratch_step wrote past the end of its 'work' array (0 doubles, from work_size(S); it wrote up "
                      "to index 71): work_size(S) too small (default 0: override it)"),
    ("SmallWork", "toy_step wrote past the end of its 'work' array (3 doubles, from work_size(S); it raised "
                  "ValueError: total size of new array must be unchanged, and with more room wrote up to index 71): "
                  "work_size(S) too small at S = 72"),
    ("CapWork", "toy_step wrote past the end of its 'work' array (40 doubles, from work_size(S); it raised "
                "ValueError: total size of new array must be unchanged, and with more room wrote up to index 71): "
                "work_size(S) too small at S = 72")])
def test_kernel_scratch_too_small_is_one_line(plugin, how):
    """work_size too small (tester 45): scratch written flat past it went unnoticed (the generated
    forms allocate work themselves, outside the guard zones), a reshape of it failed inside Numba
    with a message naming no size; both name the kernel, the array and work_size."""
    p = run_ocnet(["-problem", f"tests.kernel_toy:{plugin}", "-N", 8, "-tao_max_it", 2], check=False)
    err = [ln for ln in p.stderr.splitlines() if ln.startswith("ocnet")]
    assert p.returncode == 2 and err == [
        f"ocnet: error: problem 'kerneltoy': its kernel {how} (docs/plugins/fast.md)"], p.stderr
    assert "Traceback" not in p.stderr, p.stderr


def test_exception_inside_a_kernel_names_the_kernels():
    """A reshape of the wrong size inside a kernel (ValueError raised by Numba's compiled code) was
    an 'internal error ... please report it' whose traceback ended in ocnet (tester 43): it names
    the plugin's kernels and how to find the line."""
    p = run_ocnet(["-problem", "tests.kernel_toy:HalfCache", "-N", 8, "-tao_max_it", 2], check=False)
    last = p.stderr.strip().splitlines()[-1]
    assert p.returncode == 1 and last.startswith(
        "ocnet: error: the problem plugin failed (ValueError: ") and "in the forms generated from the kernels " \
        "toy_step and toy_step_adjoint, compiled by Numba, which names no line" in last, p.stderr


def test_inherited_forms_for_another_step_do_not_run():
    """A Peaks subclass with its own step: the ResNet's jitted forms (for its step) are replaced by
    the generic loops, with one line naming them; every check then passes."""
    args = ["-problem", "tests.reuse:HalfStepPeaks", "-N", 8, "-width", 3, "-ntrain", 30, "-nval", 0]
    p = run_ocnet(args + ["-check_adjoint"], check=False)
    notes = [ln for ln in p.stderr.splitlines() if ln.startswith("ocnet: note:")]
    assert len(notes) == 1 and "HalfStepPeaks defines its own step" in notes[0], p.stderr
    assert "sweep, sweep_adjoint, parameter_gradient, sweeps, steps, sweeps_adjoint, steps_adjoint from ResNet" \
        in notes[0], notes
    assert p.returncode == 0 and not lines(p, "FAIL"), p.stdout + p.stderr


def test_step_without_its_transpose_is_one_line():
    p = run_ocnet(["-problem", "tests.reuse:StepOnlyPeaks", "-N", 4, "-tao_max_it", 1], check=False)
    ours = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.startswith("ocnet")]
    assert p.returncode == 2 and len(ours) == 1, p.stdout + p.stderr
    assert "StepOnlyPeaks overrides step but inherits step_adjoint from ResNet" in ours[0]


def test_plain_plugin_step_without_its_transpose(tmp_path):
    """A plain-Python plugin's subclass overriding step but inheriting step_adjoint trained with a
    wrong gradient, silently (new-user tester, 2026-12-07): one line, exit 2; a wrapper that says
    its transpose holds (step_adjoint = Parent.step_adjoint) runs the parent's history bitwise."""
    args = ["-N", 8, "-tao_max_it", 4, "-quiet"]
    p = run_ocnet(["-problem", "tests.reuse:DampedLinearControl"] + args, check=False)
    ours = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.startswith("ocnet")]
    assert p.returncode == 2 and len(ours) == 1, p.stdout + p.stderr
    assert ("DampedLinearControl overrides step but inherits step_adjoint from LinearControl, written for "
            "LinearControl's step; override step_adjoint too (if DampedLinearControl.step only wraps "
            "LinearControl's, say so in its class body: step_adjoint = LinearControl.step_adjoint)") in ours[0], ours
    run_ocnet(["-problem", "tests.reuse:CountingLinearControl"] + args + ["-run_dir", tmp_path / "w"])
    run_ocnet(["-problem", "tests.toy:LinearControl"] + args + ["-run_dir", tmp_path / "p"])
    np.testing.assert_array_equal(history_column(tmp_path / "w"), history_column(tmp_path / "p"))
    # below a kernel plugin (tester 2026-12-07: 'KernelProblem.__init__ was not called'): the wrapper's
    # super().step is the kernels' step; the history is the kernel plugin's, passing -check_adjoint
    for mode in ("serial", "exact"):
        run_ocnet(["-problem", "tests.reuse:CountingFast", "-mode", mode] + args + ["-run_dir", tmp_path / f"cf{mode}"])
        run_ocnet(["-problem", "tests.toy_fast:LinearControlFast", "-mode", mode] + args
                  + ["-run_dir", tmp_path / f"f{mode}"])
        np.testing.assert_allclose(history_column(tmp_path / f"cf{mode}"), history_column(tmp_path / f"f{mode}"),
                                   rtol=1e-12, atol=0)
    p = run_ocnet(["-problem", "tests.reuse:CountingFast", "-N", 8, "-check_adjoint"], check=False)
    assert p.returncode == 0 and not lines(p, "FAIL"), p.stdout + p.stderr
    # its note named a Python step_adjoint it does not have (tester, 2026-12-07)
    assert "CountingFast defines its own step (its step_adjoint runs LinearControlFast's kernel), so the forms " \
        "generated from LinearControlFast's kernels are not used" in p.stderr, p.stderr


@pytest.mark.parametrize("block", ["single", "double"])
def test_python_subclass_of_a_builtin_resnet(tmp_path, block):
    """A Python subclass of Peaks that wraps its step runs Peaks' history (single block: it ended in
    a RecursionError); one that changes the step runs its own (double block: the generated forms
    hid it, and the run was plain Peaks'), and passes -check_adjoint (verification tester,
    2026-12-07)."""
    args = ["-block", block, "-N", 8, "-ntrain", 60, "-nval", 20, "-tao_max_it", 3, "-quiet"]
    for cls in ("tests.reuse:CountingPeaks", "tests.reuse:HalfHPeaks", "peaks"):
        run_ocnet(["-problem", cls] + args + ["-run_dir", tmp_path / cls.split(":")[-1]])
    peaks = history_column(tmp_path / "peaks")
    np.testing.assert_allclose(history_column(tmp_path / "CountingPeaks"), peaks, rtol=1e-12, atol=0)
    assert abs(history_column(tmp_path / "HalfHPeaks")[0] - peaks[0]) > 1e-6 * abs(peaks[0])
    p = run_ocnet(["-problem", "tests.reuse:HalfHPeaks", "-block", block, "-N", 8, "-ntrain", 30, "-nval", 0,
                   "-check_adjoint"], check=False)
    assert p.returncode == 0 and not lines(p, "FAIL"), p.stdout + p.stderr


def test_python_step_below_the_kernels_runs(tmp_path):
    """A subclass of a kernel plugin that writes step and step_adjoint in Python: its step runs
    (the history is that of the same step without kernels, bitwise), with one note; overriding
    only step is one line."""
    args = ["-N", 8, "-tao_max_it", 4, "-quiet"]
    for mode in ("serial", "exact"):
        p = run_ocnet(["-problem", "tests.reuse:PythonStepFast", "-mode", mode] + args + ["-run_dir", tmp_path / f"f{mode}"])
        notes = [ln for ln in p.stderr.splitlines() if ln.startswith("ocnet: note:")]
        assert len(notes) == 1 and "PythonStepFast defines its own step and step_adjoint, so the forms generated " \
            "from LinearControlFast's kernels are not used" in notes[0], p.stderr
        run_ocnet(["-problem", "tests.reuse:PythonStep", "-mode", mode] + args + ["-run_dir", tmp_path / f"r{mode}"])
        np.testing.assert_array_equal(history_column(tmp_path / f"f{mode}"), history_column(tmp_path / f"r{mode}"))
    p = run_ocnet(["-problem", "tests.reuse:PythonStepOnlyFast"] + args, check=False)
    ours = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.startswith("ocnet")]
    assert p.returncode == 2 and len(ours) == 1, p.stdout + p.stderr
    assert "PythonStepOnlyFast overrides step but inherits step_adjoint from LinearControlFast's kernels" in ours[0]


def test_kernels_missing_is_one_line():
    p = run_ocnet(["-problem", "tests.reuse:EmptyKernelProblem", "-N", 4], check=False)
    ours = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.startswith("ocnet")]
    assert p.returncode == 2 and len(ours) == 1 and "step_kernel and step_adjoint_kernel" in ours[0], \
        p.stdout + p.stderr


def test_builtin_data_with_new_block():
    """use_kernels: Peaks' data, opening and classifier with a block from two kernels."""
    p = run_ocnet(["-problem", "tests.reuse:KernelPeaks", "-N", 8, "-width", 3, "-ntrain", 30, "-nval", 0,
                   "-check_adjoint", "-mgrit_cfactor", 2], check=False)
    assert p.returncode == 0 and not lines(p, "FAIL"), p.stdout + p.stderr
    assert any(ln.startswith("PASS  sweeps_adjoint") for ln in lines(p, "PASS")), p.stdout


def test_model_loads_after_implementation_change(tmp_path):
    base = ["-N", 6, "-width", 3, "-ntrain", 40, "-nval", 0, "-quiet"]
    run_ocnet(["-problem", "peaks"] + base + ["-tao_max_it", 2, "-run_dir", tmp_path / "a"])
    p = run_ocnet(["-problem", "tests.reuse:FasterPeaks"] + base + ["-tao_max_it", 0, "-load", tmp_path / "a",
                                                                    "-run_dir", tmp_path / "b"], check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    np.testing.assert_allclose(history_column(tmp_path / "b")[0], history_column(tmp_path / "a")[-1], rtol=1e-12)
    # another class under the same name is said (a subclass with another step loaded silently: tester,
    # 2026-12-07); a registered name and its import string are one class
    assert ("ocnet: note: -load: the saved model was trained with -problem peaks, this run's is "
            "tests.reuse:FasterPeaks: loaded as the same model (problem name 'peaks'") in p.stderr, p.stderr
    p = run_ocnet(["-problem", "ocnet_problems.peaks:Peaks"] + base + ["-tao_max_it", 0, "-load", tmp_path / "a"])
    assert "trained with" not in p.stderr, p.stderr
    # -resume continues a run with another implementation of its model (it was refused: tester, 2026-12-07)
    p = run_ocnet(["-problem", "tests.reuse:FasterPeaks", "-tao_max_it", 4, "-resume", tmp_path / "a"])
    assert ("ocnet: note: -resume: the run was started with -problem peaks, continued with tests.reuse:FasterPeaks: "
            "the same model (problem name 'peaks', the same parameter sizes)") in p.stderr, p.stderr
    assert [r["iteration"] for r in read_history(tmp_path / "a")] == ["0", "1", "2", "3", "4"]
    p = run_ocnet(["-problem", "tests.toy:LinearControl", "-tao_max_it", 6, "-resume", tmp_path / "a"], check=False)
    assert p.returncode == 2 and "other settings: -problem tests.reuse:FasterPeaks (now tests.toy:LinearControl)" \
        in p.stderr, p.stderr
    p = run_ocnet(["-problem", "peaks"] + base + ["-tao_max_it", 0, "-block", "double", "-load", tmp_path / "a"],
                  check=False)
    assert p.returncode == 2 and "another model" in p.stderr, p.stdout + p.stderr


def test_docs_example_is_toy_fast():
    import os

    from tests.conftest import ROOT
    doc = open(os.path.join(ROOT, "docs", "plugins", "fast.md")).read()
    section = doc.split("## 5. Worked example", 1)[1]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    code = open(os.path.join(ROOT, "tests", "toy_fast.py")).read().split('"""', 2)[2].lstrip("\n")
    assert block == code


def test_fast_example_same_as_numpy(tmp_path):
    """The worked example: the kernels give the numpy plugin's iterates (round-off apart)."""
    args = ["-N", 8, "-tao_max_it", 6, "-quiet"]
    run_ocnet(["-problem", "tests.toy:LinearControl"] + args + ["-run_dir", tmp_path / "a"])
    run_ocnet(["-problem", "tests.toy_fast:LinearControlFast"] + args + ["-run_dir", tmp_path / "b"])
    np.testing.assert_allclose(history_column(tmp_path / "b"), history_column(tmp_path / "a"), rtol=1e-9)


CACHE_PROBE = """
import sys
import numpy as np
sys.path.insert(0, {root!r})
from tests.kernel_toy import KernelToy
pb = KernelToy(dict(dim=3, nsamples=8, toy_act="tanh", gamma_tik=0.0, gamma_ddt=0.0), None)
th, U, C = np.full((2, 12), 0.1), np.ones((3, 24)), np.zeros((2, 24))
pb.sweep(0, 0.1, th, U, C)
mod = pb._generated_forms.mod
print("hits", sum(mod.sweep.stats.cache_hits.values()), "misses", sum(mod.sweep.stats.cache_misses.values()))
"""


def test_generated_forms_cached_on_disk(tmp_path):
    """A second process loads the generated loops from Numba's disk cache (no compilation)."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    out = [subprocess.run([sys.executable, "-c", CACHE_PROBE.format(root=ROOT)], capture_output=True, text=True,
                          env=env, timeout=300).stdout.split() for _ in range(2)]
    assert out[0][:4] == ["hits", "0", "misses", "1"], out
    assert out[1][:4] == ["hits", "1", "misses", "0"], out
    assert any(f.startswith("ocnet_kernels_") for f in os.listdir(tmp_path / "ocnet_kernels"))
