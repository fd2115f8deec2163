"""medinv: how much a medical deep-learning model leaks about its patients.

Importing medinv sets one XLA:CPU flag before JAX starts its backend (XLA reads XLA_FLAGS
once, when the first array or program is made): `--xla_cpu_experimental_ynn_fusion_type=dot`,
which keeps XLA's YNNPACK library for matmuls and sends convolutions back to XLA's own
(Eigen) convolution. jaxlib 0.10.2 otherwise runs every convolution as a YNNPACK fusion, and
on a 2-core CPU its 64-channel 3x3 convolutions on 32x32 images reach about half the rate of
Eigen's: the white-box rMLE attack runs 1.5x faster with the flag (`./launch.sh benchmark`
prints both). The flag is left alone when XLA_FLAGS already sets it, and is only set for the
jaxlib versions it was measured on (an unknown XLA flag stops the process).
"""
import importlib.metadata as _metadata
import os as _os

YNN_FLAG = '--xla_cpu_experimental_ynn_fusion_type'
YNN_SETTING = 'dot'
_MEASURED_JAXLIB = ('0.10.2',)


def _cpu_convolutions_off_ynnpack() -> None:
  flags = _os.environ.get('XLA_FLAGS', '')
  if YNN_FLAG in flags:
    return
  try:
    jaxlib_version = _metadata.version('jaxlib')
  except _metadata.PackageNotFoundError:
    return
  if jaxlib_version in _MEASURED_JAXLIB:
    _os.environ['XLA_FLAGS'] = f'{flags} {YNN_FLAG}={YNN_SETTING}'.strip()


_cpu_convolutions_off_ynnpack()
