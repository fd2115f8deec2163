"""XLA:CPU's convolutions back on XLA's own (Eigen) kernels: `use_eigen_cpu_convolutions()`.

jaxlib 0.10.2's XLA:CPU runs every convolution as a YNNPACK fusion, and on a 2-core CPU its
64-channel 3x3 convolutions on 32x32 images reach about half the rate of Eigen's. The flag
`--xla_cpu_experimental_ynn_fusion_type=dot` keeps YNNPACK for matmuls and sends convolutions
back to XLA's Eigen convolution: the white-box rMLE attack runs 1.5x faster with it
(`./launch.sh benchmark` prints both). Every experiments/*.py sets it (medinv.core.cli.run),
before JAX starts its backend; `import medinv` sets nothing.
"""
from __future__ import annotations

import importlib.metadata
import os

YNN_FLAG = '--xla_cpu_experimental_ynn_fusion_type'
YNN_SETTING = 'dot'
# The jaxlib versions the flag was measured on: XLA stops the process on a flag it does not
# know, so another jaxlib is left alone.
MEASURED_JAXLIB = ('0.10.2',)


def use_eigen_cpu_convolutions() -> bool:
  """Adds `--xla_cpu_experimental_ynn_fusion_type=dot` to XLA_FLAGS, for the pinned jaxlib.

  Call this before the first jax array or program if you want the measured 1.5x on CPU
  convolutions: XLA reads XLA_FLAGS once, when JAX starts its backend, and a later call
  changes nothing in this process (only in the processes it starts). The flag is joined to the
  flags XLA_FLAGS already holds, once; XLA_FLAGS that set it already (e.g. to
  `+individual_convolution`, XLA's default YNNPACK convolutions) are kept as they are; on a
  jaxlib other than MEASURED_JAXLIB nothing is set. Computations on accelerators are
  unaffected.

  Returns:
    True when XLA_FLAGS holds medinv's setting of the flag after the call.
  """
  flags = os.environ.get('XLA_FLAGS', '')
  setting = f'{YNN_FLAG}={YNN_SETTING}'
  if YNN_FLAG in flags:
    return setting in flags.split()
  try:
    jaxlib_version = importlib.metadata.version('jaxlib')
  except importlib.metadata.PackageNotFoundError:
    return False
  if jaxlib_version not in MEASURED_JAXLIB:
    return False
  os.environ['XLA_FLAGS'] = f'{flags} {setting}'.strip()
  return True
