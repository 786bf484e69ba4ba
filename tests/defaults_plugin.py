"""Problems whose ``option_defaults`` are their configuration (tests/test_adaptive.py)."""
import os

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


class EditedDefault(LinearControl):
    """A plugin whose declared default of -rate is edited between a run and its -resume (the
    environment stands for the edit; option_defaults are recorded in options.txt, these are not)."""
    name = "edited"

    @classmethod
    def declare_options(cls, opts):
        super().declare_options(opts)
        opts.add("rate", float, float(os.environ.get("OCNET_TEST_RATE", "0.3")), "a rate", group=cls.name)
