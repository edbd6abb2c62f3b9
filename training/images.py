"""Image grids and PNG files for sample summaries."""
import math

import numpy as np
import tensorflow as tf


def grid(images, pad=1, columns=None):
  """Returns uint8 [H', W', C]: images uint8 [N, H, W, C] tiled in rows of `columns`
  (default: a near-square grid)."""
  n, h, w, c = images.shape
  cols = columns or math.ceil(math.sqrt(n))
  rows = math.ceil(n / cols)
  out = np.zeros([rows * (h + pad) + pad, cols * (w + pad) + pad, c], np.uint8)
  for k, image in enumerate(images):
    i, j = divmod(k, cols)
    out[pad + i * (h + pad):pad + i * (h + pad) + h, pad + j * (w + pad):pad + j * (w + pad) + w] = image
  return out


def write_png(path, image):
  """Writes uint8 [H, W, C] to `path` as PNG."""
  tf.io.write_file(path, tf.io.encode_png(image))
