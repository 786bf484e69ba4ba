"""Problems whose ``option_defaults`` are their configuration (tests/test_adaptive.py)."""
from tests.toy import LinearControl


class Configured(LinearControl):
    name = "configured"
    option_defaults = {"N": 6, "T": 2.0, "dim": 2, "mode": "oneshot", "mgrit_cfactor": 2, "mgrit_levels": 2,
                       "tao_max_it": 3}


class Misconfigured(LinearControl):
    name = "misconfigured"
    option_defaults = {"nosuch": 1}
