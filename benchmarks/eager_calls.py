"""Eager calls of each model's sample, log_prob and per-pixel likelihoods against the same
call wrapped in tf.function (issue 18, goal 4: within 1.5x).

  python -m benchmarks.eager_calls [--repeats=3]

For every registry model (its "tiny" config on 32x32 images, batch 8): the median time of
a call from Python as a notebook user makes it ("eager"), of the same method inside a
`tf.function` of the user's own ("wrapped"), and of the method as written, run op by op
("op by op": what an eager call cost before `zoo.eager`), each after one warm-up call
(which traces); the ratios to "wrapped". All run in this process, side by side.
"""
import importlib
import statistics
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

import zoo
from zoo import contract

flags.DEFINE_integer("repeats", 5, "timed calls of each (median)")


def _model(name):
  config = importlib.import_module(f"configs.{name}").get_config("tiny")
  config.data.image_shape = (32, 32, 1)
  config.data.num_classes = 3
  model = zoo.get(name).Model(config)
  images = tf.constant(np.random.RandomState(0).randint(0, 256, [8, 32, 32, 1]), tf.uint8)
  if contract.has(model, contract.INITIALIZE):
    model.initialize(images)
  return model, images


def _median_seconds(fn, repeats):
  fn()  # warm-up: traces
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def main(argv):
  del argv
  seeds = tf.constant([[0, i] for i in range(8)], tf.int64)
  print(f"{'model':10s} {'call':16s} {'wrapped s':>10s} {'eager':>7s} {'op by op':>9s}")
  for name in zoo.NAMES:
    model, images = _model(name)
    calls = {"sample": (model.sample, (seeds,)), "log_prob": (model.log_prob, (images,))}
    if contract.has(model, contract.PIXELS):
      calls["pixel_log_prob"] = (model.pixel_log_prob, (images,))
    for call, (method, args) in calls.items():
      wrapped = tf.function(method)
      as_written = getattr(type(model), call).__wrapped__  # undecorated: runs op by op
      graph = _median_seconds(lambda: wrapped(*args), flags.FLAGS.repeats)
      eager = _median_seconds(lambda: method(*args), flags.FLAGS.repeats)
      op_by_op = _median_seconds(lambda: as_written(model, *args), 1)
      print(f"{name:10s} {call:16s} {graph:10.4f} {eager / graph:6.2f}x {op_by_op / graph:8.1f}x",
            flush=True)


if __name__ == "__main__":
  app.run(main)
