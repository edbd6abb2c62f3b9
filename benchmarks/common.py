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


# Profiler events that wait or only contain others: their own time is not work.
_WAITS = {"BlockUntilReady", "SlinkyThreadPool::Await", "KernelAndDeviceFunc::Run"}
# Events whose own time belongs to the event around them (an op's Eigen work split).
_PART_OF_PARENT = {"ParallelFor"}


def op_profile(fn, *args, calls=5):
  """Returns ({category: busy ms per call}, wall ms per call) of fn(*args) under TF's
  profiler: each traced event's own time (its duration less its children's, on its
  thread), summed over threads, by op type for TF kernels ("MatMul", "_MklEinsum") and
  by kind for an XLA executable's thunks ("dot", "fusion", "pad"); waits are left out,
  and containers keep only their own time (e.g. "ThunkExecutor::Execute": XLA's thunk
  scheduling; "ExecutorState::Process": TF's op-by-op executor). `fn` is called once
  before, so tracing and compiling are not counted.
  """
  import collections  # pylint: disable=import-outside-toplevel
  import glob  # pylint: disable=import-outside-toplevel
  import re  # pylint: disable=import-outside-toplevel
  import tempfile  # pylint: disable=import-outside-toplevel
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=import-outside-toplevel
  fn(*args)
  logdir = tempfile.mkdtemp(prefix="op_profile")
  tf.profiler.experimental.start(logdir)
  t = time.perf_counter()
  for _ in range(calls):
    tf.nest.map_structure(lambda t: t.numpy(), fn(*args))
  wall = (time.perf_counter() - t) / calls * 1e3
  tf.profiler.experimental.stop()
  space = xplane_pb2.XSpace()
  with open(sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1], "rb") as f:
    space.ParseFromString(f.read())

  def category(name):
    name = name.strip()
    if ":" in name and "::" not in name:  # a TF kernel: "scope/op_name:OpType"
      return name.rsplit(":", 1)[1].replace("_Mkl", "")
    kind = re.sub(r"([._]\d+)+$", "", name).replace("wrapped_", "")  # an XLA thunk: "dot.12"
    return "fusion" if kind.endswith("fusion") else kind

  busy = collections.Counter()

  def close(stack):
    _, name, own = stack.pop()
    if name in _PART_OF_PARENT and stack:
      stack[-1][2] += own
    else:
      busy[category(name)] += own

  for plane in (p for p in space.planes if p.name.startswith("/host:")):
    for line in plane.lines:
      stack = []  # [end_ps, name, own_ps] of the open events, outermost first
      for e in sorted(line.events, key=lambda e: (e.offset_ps, -e.duration_ps)):
        while stack and stack[-1][0] <= e.offset_ps:
          close(stack)
        if stack:
          stack[-1][2] -= e.duration_ps
        stack.append([e.offset_ps + e.duration_ps, plane.event_metadata[e.metadata_id].name,
                      e.duration_ps])
      while stack:
        close(stack)
  return ({k: v / 1e9 / calls for k, v in busy.items()
           if k not in _WAITS and v > 0 and not k.startswith(("Eager", "TFE_", "__inference"))},
          wall)
