r"""MCGSM training throughput next to this machine's fp32 matmul rate, in one process.

  python -m benchmarks.mcgsm_throughput [--steps=50] [--nojit]

Prints pixels/s of the training step (forward + backward + Adam, default config:
batch 64 of 16x16 patches, loss and gradients XLA-compiled; --nojit runs them op by
op), the achieved GFLOP/s from an analytic FLOP count per pixel, the fp32 matmul
GFLOP/s measured right before and after, and their ratio: the fraction of the
machine's dense-matmul peak the MCGSM step reaches. The machine is shared, so
only ratios measured in the same run are worth comparing.

Then its roofline (issue 18, goal 2): the step's memory traffic per pixel, counted from
its graph (every op reading its inputs and writing its outputs once, as TF's unfused
kernels do), and the bandwidth TF's elementwise kernels reach on tensors of the step's
size (the traffic-weighted median: they live in the caches) and on a 256 MB stream
(DRAM); the bound is the lower of matmul rate / FLOP per pixel and bandwidth / bytes
per pixel, and the step's pixels/s is printed as a fraction of it.
"""
import time

from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf

from benchmarks.common import graph_traffic_bytes
from benchmarks.common import matmul_gflops
from benchmarks.common import memory_gbps
from benchmarks.common import traffic_median
from configs import mcgsm as mcgsm_config
from training import steps as steps_lib
from zoo import layers

flags.DEFINE_integer("steps", 50, "timed training steps")
flags.DEFINE_integer("repeats", 3, "timing repeats; the best is reported")
flags.DEFINE_bool("jit", None, "XLA-compile the loss and gradients (config.train.jit; "
                  "default: the config's, true)")


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
  jit = c.train.jit if flags.FLAGS.jit is None else flags.FLAGS.jit
  step = steps_lib.make_train_step(model, optimizers, strategy, b, jit=jit)
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
  print(f"mcgsm train step{' (XLA)' if jit else ''}: {pixels_per_s:,.0f} px/s ({best / steps * 1e3:.1f} ms/step, batch {b}x{p}x{p})")
  print(f"  ~{mcgsm_flops_per_pixel(c):,} FLOP/px -> {achieved:.2f} GFLOP/s")
  print(f"fp32 matmul 1024^2: {before:.1f} GFLOP/s before, {after:.1f} after")
  print(f"ratio mcgsm / matmul peak: {achieved / peak:.3f}")
  traffic, unknown, sizes = graph_traffic_bytes(step.get_concrete_function(batch))
  bytes_per_pixel = traffic / (b * p * p)
  typical = traffic_median(sizes)
  cache, dram = memory_gbps(typical / 2 ** 20), memory_gbps()
  compute_bound = peak * 1e9 / mcgsm_flops_per_pixel(c)
  print(f"roofline: {bytes_per_pixel:,.0f} B/px moved op by op ({unknown} tensors of unknown "
        f"size left out), {mcgsm_flops_per_pixel(c) / bytes_per_pixel:.2f} FLOP/B; half the "
        f"traffic in tensors up to {typical / 2 ** 20:.2f} MB")
  print(f"  matmul {peak:.1f} GFLOP/s -> {compute_bound:,.0f} px/s")
  for what, bandwidth in ((f"{typical / 2 ** 20:.2f} MB tensors", cache), ("256 MB stream", dram)):
    memory_bound = bandwidth * 1e9 / bytes_per_pixel
    bound = min(memory_bound, compute_bound)
    print(f"  bandwidth on {what}: {bandwidth:.1f} GB/s -> {memory_bound:,.0f} px/s; "
          f"{'memory' if memory_bound < compute_bound else 'matmul'} binds; "
          f"ratio mcgsm / bound: {pixels_per_s / bound:.3f}")


if __name__ == "__main__":
  app.run(main)
