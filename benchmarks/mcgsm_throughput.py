r"""MCGSM training throughput next to this machine's fp32 matmul rate, in one process.

  python -m benchmarks.mcgsm_throughput [--steps=50]

Prints pixels/s of the training step (forward + backward + Adam, default config,
batch 32 of 16x16 patches), the achieved GFLOP/s from an analytic FLOP count per pixel,
the fp32 matmul GFLOP/s measured right before and after, and their ratio: the fraction
of the machine's dense-matmul peak the MCGSM step reaches. The machine is shared, so
only ratios measured in the same run are worth comparing.
"""
import time

from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf

from benchmarks.common import matmul_gflops
from configs import mcgsm as mcgsm_config
from training import steps as steps_lib
from zoo import layers

flags.DEFINE_integer("steps", 50, "timed training steps")
flags.DEFINE_integer("repeats", 3, "timing repeats; the best is reported")


def mcgsm_flops_per_pixel(c):
  """Returns the approximate FLOPs of one pixel's forward + backward pass (matmuls dominate)."""
  d = len(layers.neighbourhood_offsets(c.model.neighbourhood))
  n, k, m = c.model.features, c.model.components, c.model.components * c.model.scales
  forward = 2 * (d * d + d * n + n * k + 2 * k * d) + 25 * m  # matmuls + mixture elementwise
  return 3 * forward  # backward ~ 2x forward


def main(argv):
  del argv
  steps, repeats = flags.FLAGS.steps, flags.FLAGS.repeats
  c = mcgsm_config.get_config()
  strategy = tf.distribute.get_strategy()
  model, optimizers, _ = steps_lib.build("mcgsm", c, strategy)
  rng = np.random.default_rng(0)
  p, b = c.data.patch_size, c.train.batch_size
  batch = {"images": tf.constant(rng.integers(0, 256, [b, p, p, 1]), tf.uint8),
           "seeds": tf.constant(rng.integers(0, 2**40, [b, 2]), tf.int64)}
  model.initialize(batch["images"])
  step = steps_lib.make_train_step(model, optimizers, strategy, b)
  step(batch)
  before = matmul_gflops()
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    for _ in range(steps):
      loss = step(batch)
    float(loss)
    best = min(best, time.perf_counter() - t)
  after = matmul_gflops()
  pixels_per_s = steps * b * p * p / best
  achieved = pixels_per_s * mcgsm_flops_per_pixel(c) / 1e9
  peak = max(before, after)
  print(f"mcgsm train step: {pixels_per_s:,.0f} px/s ({best / steps * 1e3:.1f} ms/step, batch {b}x{p}x{p})")
  print(f"  ~{mcgsm_flops_per_pixel(c):,} FLOP/px -> {achieved:.2f} GFLOP/s")
  print(f"fp32 matmul 1024^2: {before:.1f} GFLOP/s before, {after:.1f} after")
  print(f"ratio mcgsm / matmul peak: {achieved / peak:.3f}")


if __name__ == "__main__":
  app.run(main)
