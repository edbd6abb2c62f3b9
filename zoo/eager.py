"""Eager calls of a model's API run as graphs: no slow path by default.

A notebook user calls `model.sample(seeds)` eagerly; run op by op, a sampler's while loop
costs Python overhead per step (four 32x32x3 PixelCNN samples took 84 s eagerly against
0.46 s inside `tf.function`). Methods decorated with `graph_when_eager` trace themselves
into a `tf.function` on an eager call, once per input signature (`reduce_retracing`), and
reuse it after; called while tracing (training steps, exports, other methods' graphs)
they run as written, so exports hold exactly the graphs they held before (no nested
functions, no XLA).
"""
import functools

import tensorflow as tf


def graph_when_eager(method):
  """Decorates a model method: eager calls go through a tf.function of it, cached on the
  model (`benchmarks/eager_calls.py` measures eager against wrapped calls)."""
  name = method.__name__

  @functools.wraps(method)
  def wrapper(self, *args, **kwargs):
    if not tf.executing_eagerly():
      return method(self, *args, **kwargs)
    graphs = self.__dict__.get("_eager_graphs")
    if graphs is None:  # set past Keras' attribute tracking: not a weight or a layer
      graphs = {}
      object.__setattr__(self, "_eager_graphs", graphs)
    if name not in graphs:
      graphs[name] = tf.function(functools.partial(method, self), reduce_retracing=True)
    return graphs[name](*args, **kwargs)

  return wrapper
