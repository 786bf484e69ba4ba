"""Problems whose ``option_defaults`` are their configuration (tests/test_adaptive.py)."""
from tests.toy import LinearControl


class Configured(LinearControl):
    name = "configured"
    option_defaults = {"N": 6, "T": 2.0, "dim": 2, "mode": "oneshot", "mgrit_cfactor": 2, "mgrit_levels": 2,
                       "tao_max_it": 3}


class Misconfigured(LinearControl):
    name = "misconfigured"
    option_defaults = {"nosuch": 1}


class MisspeltOwn(LinearControl):
    """option_defaults with a misspelt plugin option (-dim)."""
    name = "misspeltown"
    option_defaults = {"dims": 3}


class MisspeltTao(LinearControl):
    """option_defaults with a misspelt TAO option (PETSc's, so not checked against ocnet's): it was
    marked read and never reported (tester, 2026-12-07)."""
    name = "misspelt"
    option_defaults = {"tao_maxit": 5, "tao_ls_type": "armijo"}
