r"""Spatial LSTM: wavefront vs raster-order loop, and incremental vs recomputed sampling.

  python -m benchmarks.slstm_speed [--repeats=3] [--profile]

1. Training step (forward + backward of one 64-unit SLSTM layer, batch 50) at 22x22 and
   32x32: the zoo's anti-diagonal wavefront (H + W - 1 batched steps) against a
   raster-order `tf.while_loop` over the H * W pixels, each with and without XLA, and the
   wavefront's useful FLOP rate as a fraction of this machine's fp32 matmul rate
   measured in the same process; and the same matmuls alone (every diagonal's, at its
   shapes, with nothing else), the rate this structure of small matmuls allows.
   `--profile` adds where the wavefront's time goes, with and without XLA: each op
   type's (XLA: each thunk kind's) share of the busy thread time, and how much of the
   two cores' time was busy at all (`benchmarks.common.op_profile`).
2. Sampling from RIDE (default config, untrained weights: the cost does not depend on
   them): the zoo's incremental sampler (one cell update per pixel, a sloped wavefront
   that draws one pixel of every row per step) against recomputing
   the network on the whole canvas for every pixel, in pixels/s; and the time for a
   batch of four 64x64 samples.
Everything is measured side by side in one process; only the ratios are meant to be
compared across runs (the machine is shared).
"""

import functools
import os

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from benchmarks.common import best_time
from benchmarks.common import matmul_gflops
from benchmarks.common import op_profile
from configs import ride as ride_config
from zoo import layers
from zoo import ride
from zoo import slstm as slstm_lib

flags.DEFINE_integer("repeats", 3, "timing repeats; the best is reported")
flags.DEFINE_integer("batch", 50, "batch size of the training-step comparison")
flags.DEFINE_integer("units", 64, "SLSTM hidden units")
flags.DEFINE_bool("profile", False, "print the wavefront step's time by op type")

FEATURES = 12  # a whitened 5-wide causal neighbourhood


def raster_slstm(slstm, x):
  """Returns h [B, H, W, U]: the SLSTM over x [B, H, W, F] one pixel per loop step."""
  b, height, width, _ = x.shape
  u = slstm.units
  projected = tf.reshape(tf.transpose(slstm.input_projection(x), [1, 2, 0, 3]),
                         [height * width, b, 5 * u])  # [H*W, B, 5U] in raster order

  def step(t, h_rows, c_rows, hs):
    j = t % width
    left = lambda rows: tf.gather(rows, tf.maximum(j - 1, 0)) * tf.cast(j > 0, tf.float32)
    h, c = slstm.cell(projected[t], left(h_rows), left(c_rows), h_rows[j], c_rows[j])
    onehot = tf.one_hot(j, width)[:, None, None]  # [W, 1, 1]
    h_rows = h_rows + onehot * (h[None] - h_rows)
    c_rows = c_rows + onehot * (c[None] - c_rows)
    return t + 1, h_rows, c_rows, hs.write(t, h)

  zeros = tf.zeros([width, b, u])
  _, _, _, hs = tf.while_loop(lambda t, *_: t < height * width, step,
                              [0, zeros, zeros, tf.TensorArray(tf.float32, height * width)],
                              maximum_iterations=height * width)
  return tf.transpose(tf.reshape(hs.stack(), [height, width, b, u]), [2, 0, 1, 3])


def slstm_flops(b, h, w, u):
  """Returns the useful FLOPs of one forward + backward pass (matmuls, 3x forward)."""
  return 3 * 2 * b * h * w * (FEATURES + 2 * u) * 5 * u


def gradients(forward, variables, x):
  """Returns the gradients of sum(h^2) for h = forward(x) (a training step's work)."""
  with tf.GradientTape() as tape:
    h = forward(x)
    h = h[0] if isinstance(h, tuple) else h
    loss = tf.reduce_sum(tf.square(h))
  return tape.gradient(loss, variables)


def matmuls_alone(batch, size, units):
  """Returns f() running only the wavefront step's matmuls for a size x size grid: per
  diagonal of n cells, forward [nB, F] x [F, 5U] and [nB, 2U] x [2U, 5U]; backward the
  two transposed products and the two weight-gradient products [., nB] x [nB, 5U]."""
  _, ranges = slstm_lib.diagonal_order(size, size)
  shapes = []
  for lo, hi in ranges:
    rows = (hi - lo + 1) * batch
    shapes += [(rows, FEATURES, 5 * units), (rows, 2 * units, 5 * units),
               (rows, 5 * units, 2 * units), (rows, 5 * units, FEATURES),
               (2 * units, rows, 5 * units), (FEATURES, rows, 5 * units)]
  operands = [(tf.random.normal([m, k]), tf.random.normal([k, n])) for m, k, n in shapes]
  # Each product feeds the next's left operand, so none is skipped or reordered away.
  @tf.function(jit_compile=True)
  def run():
    total = tf.zeros([])
    for a, b in operands:
      total += tf.reduce_sum(tf.matmul(a + total * 0.0, b)[:1, :1])
    return total
  return run


def training_steps(repeats, batch, units, profile):
  peak = matmul_gflops()
  print(f"fp32 matmul 1024^2: {peak:.1f} GFLOP/s")
  slstm = slstm_lib.SpatialLSTM(units, seed=0)
  slstm.build((None, None, None, FEATURES))
  for size in (22, 32):
    x = tf.random.normal([batch, size, size, FEATURES], seed=1)
    times = {}
    for name, forward in (("wavefront", slstm), ("raster", lambda x: raster_slstm(slstm, x))):
      for jit in (False, True):
        step = functools.partial(gradients, forward, slstm.trainable_variables)
        times[name, jit] = best_time(tf.function(step, jit_compile=jit), x, repeats=repeats)
    gflops = slstm_flops(batch, size, size, units) / times["wavefront", True] / 1e9
    alone = best_time(matmuls_alone(batch, size, units), repeats=repeats)
    print(f"{size}x{size}, batch {batch}, {units} units: ms/step "
          + ", ".join(f"{n}{' xla' if j else ''} {t * 1e3:.0f}" for (n, j), t in times.items()))
    print(f"  wavefront / raster speed: {times['raster', False] / times['wavefront', False]:.1f}x "
          f"(no XLA), {times['raster', True] / times['wavefront', True]:.1f}x (XLA); "
          f"wavefront+XLA {gflops:.1f} GFLOP/s = {gflops / peak:.2f} of matmul peak")
    print(f"  its matmuls alone (XLA): {alone * 1e3:.0f} ms = "
          f"{slstm_flops(batch, size, size, units) / alone / 1e9 / peak:.2f} of matmul peak; the "
          f"step takes {times['wavefront', True] / alone:.2f}x their time")
    if profile:
      for jit in (False, True):
        step = functools.partial(gradients, slstm, slstm.trainable_variables)
        busy, wall = op_profile(tf.function(step, jit_compile=jit), x)
        total = sum(busy.values())
        threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
        print(f"  profile{' (XLA)' if jit else ''}: {wall:.0f} ms/step, busy {total / wall / threads:.0%}"
              f" of {threads} cores' time; busy time by op: " + ", ".join(
                  f"{name} {ms / total:.0%}" for name, ms in sorted(busy.items(), key=lambda kv: -kv[1])
                  if ms / total >= 0.01))


def sampling(repeats):
  config = ride_config.get_config()
  config.sample.update(size=16, margin=4)
  model = ride.Model(config)
  seeds = tf.constant([[0, k] for k in range(4)], tf.int64)
  incremental = tf.function(model.sample)
  pixels = 4 * (16 + 4) * (16 + 8)
  t_inc = best_time(incremental, seeds, repeats=repeats, inner=1)

  def recompute_pixel(canvas, i, j):
    """One pixel of naive sampling: the whole network on the canvas, read at (i, j)."""
    x = layers.causal_neighbourhood(canvas[..., None], model.width, model.whitening.mean_y)
    x_hat, _ = model.whitening(tf.reshape(x, [-1, x.shape[-1]]))
    x_hat = tf.reshape(x_hat, x.shape)
    z = tf.concat([x_hat, model._context(x_hat)], -1)[:, i, j]  # pylint: disable=protected-access
    return model.head(z)

  canvas = tf.random.uniform([4, 20, 24])
  per_pixel = best_time(tf.function(recompute_pixel), canvas, 10, 10, repeats=repeats)
  print(f"sampling 4 x 16x16 (+margin, {pixels} px): incremental {pixels / t_inc:,.0f} px/s, "
        f"recomputing the network per pixel {1 / per_pixel * 4:,.0f} px/s: "
        f"ratio {per_pixel * pixels / 4 / t_inc:.0f}x")
  config.sample.update(size=64, margin=8)
  model64 = ride.Model(config)
  t64 = best_time(tf.function(model64.sample), seeds, repeats=repeats, inner=1)
  print(f"a batch of four 64x64 RIDE samples (margin 8): {t64:.2f} s")


def main(argv):
  del argv
  f = flags.FLAGS
  training_steps(f.repeats, f.batch, f.units, f.profile)
  sampling(f.repeats)


if __name__ == "__main__":
  app.run(main)
