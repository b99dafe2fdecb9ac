"""Training as data (spec 04): optimizers, error signals and the width exponents of training."""
