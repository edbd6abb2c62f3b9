"""What the loop feeds a model: uint8 batches at the model's levels, one seed pair per image.

Training batches are a pure function of (config.train.seed, step) (`training.data`), and
so are their seeds: a resumed run sees what an uninterrupted one would. Evaluation
batches come in a fixed order with seeds keyed by (config.eval.seed, batch index).
"""
import dataclasses

import tensorflow as tf

from training import data as data_lib


@dataclasses.dataclass(frozen=True)
class Source:
  """A data set: its resolved name (`data.resolve`) and TFDS data dir (None: TFDS's own)."""
  name: str
  data_dir: str = None


def requantize(images, levels):
  """Returns uint8 images with values in [0, levels): u // (256 / levels) (levels divides 256).

  levels=2 thresholds at 128: the binarised MNIST of the PixelCNN literature.
  """
  if levels == 256:
    return images
  return images // tf.constant(256 // levels, tf.uint8)


def step_seeds(seed, steps, batch_size):
  """Returns a dataset of int64 [batch_size, 2] seeds, one per step, keyed by (seed, step)."""
  return steps.map(lambda s: tf.random.stateless_uniform(
      [batch_size, 2], [seed, s], minval=0, maxval=2**62, dtype=tf.int64))


def train_dataset(config, source, start_step, patch_size, labels=False):
  """Returns a dataset of dicts from `start_step`: images uint8 [GB, P, P, C], seeds int64
  [GB, 2] and, with `labels`, label int32 [GB]. Images are requantised to config.model.levels."""
  gb = config.train.batch_size
  batches = data_lib.train_batches(
      source.name, patch_size=patch_size, global_batch_size=gb, seed=config.train.seed,
      start_step=start_step, flips=config.data.flips, data_dir=source.data_dir, labels=labels)
  levels = config.model.get("levels", 256)
  if labels:
    batches = batches.map(lambda images, label: {"images": requantize(images, levels),
                                                 "label": tf.cast(label, tf.int32)})
  else:
    batches = batches.map(lambda images: {"images": requantize(images, levels)})
  seeds = step_seeds(config.train.seed + 1, tf.data.Dataset.range(start_step, 2**62), gb)
  ds = tf.data.Dataset.zip((batches, seeds)).map(lambda batch, seeds: {**batch, "seeds": seeds})
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return ds.with_options(options)


def eval_seeds(config, index, batch_size):
  """Returns int64 [batch_size, 2]: the per-image seeds of evaluation batch `index`."""
  return tf.random.stateless_uniform([batch_size, 2], [config.eval.seed, index],
                                     minval=0, maxval=2**62, dtype=tf.int64)


def eval_dataset(config, source, split="test", labels=False):
  """Returns the held-out patches (config.eval.patch_size, at most config.eval.max_patches)
  as a dataset of (images uint8 [P, P, C],) or, with `labels`, (images, label int32)."""
  patches = data_lib.eval_patches(source.name, patch_size=config.eval.patch_size,
                                  data_dir=source.data_dir, labels=labels, split=split)
  levels = config.model.get("levels", 256)
  if labels:
    patches = patches.map(lambda image, label: (requantize(image, levels), tf.cast(label, tf.int32)))
  else:
    patches = patches.map(lambda image: (requantize(image, levels),))
  return patches.take(config.eval.max_patches)
