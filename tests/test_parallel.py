"""The same training on 1, 2 and 3 ranks: objective histories agree to round-off (1e-10 relative)."""
import numpy as np

from tests.conftest import history_column, run_ocnet


def test_history_independent_of_rank_count(tmp_path):
    args = ["-N", 7, "-width", 4, "-ntrain", 300, "-nval", 50, "-tao_max_it", 25, "-quiet",
            "-gamma_ddt", 1e-3]
    hist = {}
    for p in (1, 2, 3):
        run_ocnet(args + ["-run_dir", tmp_path / f"p{p}"], nprocs=p)
        hist[p] = history_column(tmp_path / f"p{p}")
    assert len(hist[1]) == 26
    for p in (2, 3):
        assert len(hist[p]) == len(hist[1])
        np.testing.assert_allclose(hist[p], hist[1], rtol=1e-10, atol=0)
