"""Regenerate the bundled input sets (deterministic): python samples/data/make_data.py

gauss10.npz: 8 training and 4 test inputs in R^10, ξ ~ N(0, I/10) (so ‖ξ‖² ≈ 1, and the
first-layer kernel ξ·ξ' is O(1)). seq3x4.npz: 4 sequences of 3 tokens in R^4, entries N(0, 1/4).
regress10.npz: a regression set for `nexort train` (see below).
"""

from pathlib import Path

import numpy as np

here = Path(__file__).resolve().parent
rng = np.random.default_rng(20231108)
np.savez(
    here / "gauss10.npz",
    X_train=rng.standard_normal((8, 10)) / np.sqrt(10),
    X_test=rng.standard_normal((4, 10)) / np.sqrt(10),
)
np.savez(here / "seq3x4.npz", X_train=rng.standard_normal((4, 3, 4)) / 2.0)

# regress10.npz (for `nexort train`): 8 training and 4 test inputs in R^10 as gauss10, with
# targets y = tanh(2 w·ξ) for a fixed unit vector w (its own stream: the sets above are unchanged).
reg = np.random.default_rng(20261206)
w = reg.standard_normal(10)
w /= np.linalg.norm(w)
x_train = reg.standard_normal((8, 10)) / np.sqrt(10)
np.savez(
    here / "regress10.npz",
    X_train=x_train,
    y_train=np.tanh(2 * x_train @ w),
    X_test=reg.standard_normal((4, 10)) / np.sqrt(10),
)
