"""Regenerate the data of the paper's experiment (deterministic): python samples/paper/make_data.py

paper.npz (spec 07 §7.4, Tensor Programs IVb Chapter 5): 100 training inputs in R^10 drawn
Gaussian, random targets, and 4 test inputs (the points whose trajectories the figures show).
Inputs are ξ ~ N(0, I/10), so ‖ξ‖² ≈ 1 and the first-layer kernel ξ·ξ′ is O(1) in every
parametrization of spec 03 (a_1 + b_1 = 0); targets y ~ N(0, 1), independent of ξ (random
regression targets, as in the paper).  One fixed seed; the bundled file is this script's output.
"""

from pathlib import Path

import numpy as np

SEED = 20260705
N_TRAIN, N_TEST, D = 100, 4, 10

rng = np.random.default_rng(SEED)
np.savez(
    Path(__file__).resolve().parent / "paper.npz",
    X_train=rng.standard_normal((N_TRAIN, D)) / np.sqrt(D),
    y_train=rng.standard_normal(N_TRAIN),
    X_test=rng.standard_normal((N_TEST, D)) / np.sqrt(D),
)
