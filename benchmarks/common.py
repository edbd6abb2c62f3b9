"""Timing helpers shared by the benchmarks: this machine's matmul rate and best-of timing."""
import time

import tensorflow as tf


def matmul_gflops(n=1024, iters=20):
  """Returns the best fp32 GFLOP/s of n x n matmuls on this machine."""
  a, b = tf.random.normal([n, n]), tf.random.normal([n, n])
  mm = tf.function(lambda a, b: tf.reduce_sum(a @ b))
  mm(a, b)
  best = float("inf")
  for _ in range(3):
    t = time.perf_counter()
    for _ in range(iters):
      mm(a, b).numpy()
    best = min(best, time.perf_counter() - t)
  return 2 * n ** 3 * iters / best / 1e9


def best_time(fn, *args, repeats=3, inner=3):
  """Returns the best mean seconds per call of fn(*args) over `repeats` rounds (after a warm-up call)."""
  fn(*args)  # trace / compile
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    for _ in range(inner):
      out = fn(*args)
    tf.nest.map_structure(lambda t: t.numpy(), out)
    best = min(best, (time.perf_counter() - t) / inner)
  return best
