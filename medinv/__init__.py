"""medinv: how much a medical deep-learning model leaks about its patients.

Importing medinv sets nothing in the process. The XLA:CPU flag the experiments run with (XLA's
Eigen convolutions, 1.5x faster than YNNPACK's on a CPU) is
`medinv.core.xla.use_eigen_cpu_convolutions()`, which every experiments/*.py calls (through
medinv.core.cli.run) before JAX starts its backend; call it first in a script of your own.
"""
