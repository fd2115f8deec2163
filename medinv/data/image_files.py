"""Reading one image file (PNG, JPEG or DICOM) into uint8 pixels, for `image_folder`.

PNG and JPEG are read with Pillow: 1-bit and 8-bit grayscale as they are, 16-bit grayscale
scaled by 255 / 65535, palette, RGBA, CMYK and YCbCr images converted to RGB (alpha is
dropped). DICOM is read with pydicom: one frame, grayscale or RGB, min-max scaled to 0..255
per image (a constant image becomes 0), MONOCHROME1 inverted. An RGB image whose three
channels are equal everywhere counts as grayscale (many exports save gray images as RGB).
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image
import pydicom

from medinv.core.errors import DataError

# File name suffix (lower case) -> kind; a file without a suffix is DICOM when it has one's
# header (the 4 bytes 'DICM' after a 128-byte preamble), as many DICOM exports are named.
SUFFIXES = {'.png': 'png', '.jpg': 'jpeg', '.jpeg': 'jpeg', '.dcm': 'dicom', '.dicom': 'dicom'}
SUPPORTED = '.png, .jpg, .jpeg, .dcm, .dicom, or DICOM files without a suffix'
_GRAY_MODES = ('1', 'L', 'LA', 'La')
_WIDE_GRAY_MODES = ('I;16', 'I;16B', 'I;16L', 'I;16N', 'I')
_COLOR_MODES = ('RGB', 'RGBA', 'RGBa', 'RGBX', 'P', 'PA', 'CMYK', 'YCbCr')


def kind(path: str) -> str | None:
  """What kind of image a file is.

  Args:
    path: the file.

  Returns:
    'png', 'jpeg' or 'dicom' by its suffix (or, without one, its DICOM header); None when it
    is none of those.
  """
  suffix = os.path.splitext(path)[1].lower()
  if suffix:
    return SUFFIXES.get(suffix)
  try:
    with open(path, 'rb') as f:
      header = f.read(132)
  except OSError as e:
    raise DataError(f'{path}: cannot read ({e.strerror})') from e
  return 'dicom' if header[128:132] == b'DICM' else None


def read(path: str, file_kind: str) -> np.ndarray:
  """uint8 pixels of one image: (h, w) grayscale or (h, w, 3) RGB.

  Args:
    path: the file.
    file_kind: what `kind(path)` returned.

  Returns:
    The pixels; an RGB image with three equal channels is returned as (h, w).

  Raises:
    DataError: naming the file when it cannot be read or holds no single 2D image.
  """
  pixels = _read_dicom(path) if file_kind == 'dicom' else _read_pillow(path)
  if pixels.ndim == 3 and np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(
      pixels[..., 0], pixels[..., 2]):
    return pixels[..., 0]
  return pixels


def _read_pillow(path: str) -> np.ndarray:
  """A PNG or JPEG as uint8 (h, w) or (h, w, 3); see the module docstring."""
  try:
    with Image.open(path) as image:
      image.load()
      mode = image.mode
      if mode in _GRAY_MODES:
        return np.asarray(image.convert('L'), np.uint8)
      if mode in _WIDE_GRAY_MODES:
        wide = np.asarray(image).astype(np.float64)
        return np.clip(np.rint(wide * (255.0 / 65535.0)), 0, 255).astype(np.uint8)
      if mode in _COLOR_MODES:
        return np.asarray(image.convert('RGB'), np.uint8)
  except Exception as e:  # Pillow raises many types (UnidentifiedImageError, OSError, ...)
    raise DataError(f'{path}: not a readable image ({type(e).__name__}: {e})') from e
  raise DataError(f'{path}: image mode {mode!r} is not supported (8- or 16-bit grayscale, '
                  'RGB, RGBA or palette images are)')


def _read_dicom(path: str) -> np.ndarray:
  """A DICOM image as uint8 (h, w) or (h, w, 3), min-max scaled; MONOCHROME1 inverted."""
  try:
    dataset = pydicom.dcmread(path)
    pixels = np.asarray(dataset.pixel_array)
    photometric = str(dataset.get('PhotometricInterpretation', 'MONOCHROME2'))
  except Exception as e:  # pydicom raises many types (InvalidDicomError, AttributeError, ...)
    raise DataError(f'{path}: not a readable DICOM image ({type(e).__name__}: {e})') from e
  if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[-1] == 3)):
    raise DataError(f'{path}: expected one 2D frame (grayscale or RGB), got pixel array '
                    f'{pixels.shape}')
  return scale_to_uint8(pixels, invert=photometric == 'MONOCHROME1')


def scale_to_uint8(pixels: np.ndarray, invert: bool = False) -> np.ndarray:
  """Min-max scales any numeric array to uint8 0..255 (a constant array gives 0).

  Args:
    pixels: the raw values.
    invert: map the minimum to 255 and the maximum to 0 (DICOM MONOCHROME1).

  Returns:
    uint8 array of pixels' shape.
  """
  values = pixels.astype(np.float64)
  low, high = float(values.min()), float(values.max())
  if high == low:
    return np.zeros(pixels.shape, np.uint8)
  scaled = (values - low) / (high - low)
  if invert:
    scaled = 1.0 - scaled
  return np.rint(scaled * 255.0).astype(np.uint8)
