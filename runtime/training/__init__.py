"""Pieces of the finite-width trainer (:mod:`runtime.trainer`): the optimizer's state carried
across steps (:mod:`~runtime.training.stepper`), the error signal and loss in numpy
(:mod:`~runtime.training.signal`), and the training data file (:mod:`~runtime.training.dataset`).
"""
