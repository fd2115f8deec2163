"""Model inversion in collaborative (split) inference: attacks, their grid driver, the
experiment, its validation and figures.

The built-in attacks are registered here, in one place: `attacks` registers the paper's and
He et al.'s attacks, MI-FACE and feature alignment; `noise_aware` the adaptive attacker
against per-query noise. A new attack is one module that calls `attacks.register(...)`,
imported before the experiment runs (see the README's "Adding an attack").
"""
from medinv.inversion import attacks  # noqa: F401  (registers the built-in attacks)
from medinv.inversion import noise_aware  # noqa: F401  (registers noise_aware_inverse)
