"""Sample grids: image grids, PNG files, and the grid of samples a run draws."""
import math

import numpy as np
import tensorflow as tf

from training import batches as batches_lib
from zoo import contract


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


def sample_conditioning(model, config, source=None):
  """Returns the conditioning of config.sample.num samples: {} for an unconditional model,
  label k % num_classes for sample k of a class-conditional one, and for an auto-encoder
  the codes of the first test images of `source` (a batches.Source)."""
  names, num = contract.conditioning(model), config.sample.num
  if contract.LABEL in names:
    return {contract.LABEL: tf.range(num, dtype=tf.int32) % model.num_classes}
  if contract.CODE in names:
    if source is None:
      raise ValueError("an auto-encoder's samples need test images to encode: pass a source")
    (images,) = next(iter(batches_lib.eval_dataset(config, source).batch(num)))
    reps = -(-num // int(images.shape[0]))
    return {contract.CODE: tf.repeat(model.encode(images), reps, axis=0)[:num]}
  return {}


class SampleGrid:
  """A run's grid of config.sample.num samples, sample k drawn with the seed
  (config.sample.seed, k), so every grid of a run shows the same seeds; the sampler is
  traced once. `cond`: `sample_conditioning`'s dict (labels or codes), if any."""

  def __init__(self, model, config, cond=None):
    self.sampler = tf.function(model.sample)
    self.cond = cond or {}
    num = config.sample.num
    self.seeds = tf.cast(tf.stack([tf.fill([num], config.sample.seed), tf.range(num)], axis=1),
                         tf.int64)

  def draw(self):
    """Returns uint8 [H', W', C]: the samples in a grid."""
    return grid(self.sampler(self.seeds, **self.cond).numpy())

  def summarize(self, writer, step):
    """Draws the grid and writes it to TensorBoard as `samples` at `step`."""
    with writer.as_default():
      tf.summary.image("samples", self.draw()[None], step=step)


def run_samples(workdir, num, seed):
  """Returns uint8 [H', W', C]: a grid of `num` samples (seeds (seed, k)) of the trained
  run in `workdir` (a local path or a URL of TensorFlow's filesystems)."""
  from export import trained  # pylint: disable=g-import-not-at-top  (the zoo's models)
  _, config, model = trained.restore(workdir)
  _, data_name, _ = trained.read_run(workdir)
  config.sample.update(num=num, seed=seed)
  # Labels or codes, if the model is conditional (an auto-encoder encodes test images).
  cond = sample_conditioning(model, config, batches_lib.Source(data_name))
  return SampleGrid(model, config, cond).draw()
