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


def memory_gbps(megabytes=256, iters=10):
  """Returns the best GB/s of TF's elementwise kernels streaming a `megabytes` float32
  array (y = 2x: reads and writes it once each), per-op overhead included: at 256 MB
  the machine's memory bandwidth, at a few MB the caches' as a TF op sees them."""
  x = tf.random.normal([int(megabytes * 2 ** 20) // 4])
  iters = max(iters, int(iters * 256 / megabytes))  # small arrays: more calls
  double = tf.function(lambda x: x * 2.0)
  double(x)
  best = float("inf")
  for _ in range(3):
    t = time.perf_counter()
    for _ in range(iters):
      y = double(x)
    y.numpy()[:1]
    best = min(best, time.perf_counter() - t)
  return 2 * x.shape[0] * 4 * iters / best / 1e9


# Ops that move no tensor data (views, metadata, control).
_NO_TRAFFIC = {"Const", "Identity", "IdentityN", "NoOp", "Placeholder", "Reshape",
               "ExpandDims", "Squeeze", "StopGradient", "Shape", "ShapeN", "Size", "Rank",
               "ReadVariableOp", "VarHandleOp", "PartitionedCall", "StatefulPartitionedCall",
               "While", "StatelessWhile", "If", "StatelessIf", "AssignVariableOp",
               "AssignAddVariableOp", "AssignSubVariableOp"}


def _graphs(graph, seen):
  """Yields `graph` and, once each, the graphs of the functions it calls."""
  yield graph
  for function in getattr(graph, "_functions", {}).values():
    inner = getattr(function, "graph", None)
    if inner is not None and id(inner) not in seen:
      seen.add(id(inner))
      yield from _graphs(inner, seen)


def graph_traffic_bytes(concrete_function):
  """Returns (bytes, unknown, sizes): the memory traffic of running `concrete_function` op
  by op (each op reads its inputs and writes its outputs once; views and control ops move
  nothing; loop bodies counted once), how many tensors had no static size, and the byte
  size of every tensor counted (once per read or write)."""
  total, unknown, sizes = 0, 0, []
  for graph in _graphs(concrete_function.graph, set()):
    for op in graph.get_operations():
      if op.type in _NO_TRAFFIC:
        continue
      for tensor in list(op.inputs) + list(op.outputs):
        if tensor.dtype == tf.resource or tensor.dtype == tf.variant:
          continue
        if not tensor.shape.is_fully_defined():
          unknown += 1
          continue
        sizes.append(tensor.shape.num_elements() * tensor.dtype.size)
        total += sizes[-1]
  return total, unknown, sizes


def traffic_median(sizes):
  """Returns the tensor size (bytes) below which half of the traffic in `sizes` moves."""
  ordered = sorted(sizes)
  half, running = sum(ordered) / 2, 0
  for size in ordered:
    running += size
    if running >= half:
      return size
  return 0
