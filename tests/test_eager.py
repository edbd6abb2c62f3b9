"""zoo.eager: a model's sample, log_prob and pixel_log_prob called eagerly run as a
cached graph, with the values, errors and gradients of the method as written."""
import numpy as np
import tensorflow as tf

from tests.conftest import tiny_config
from tests.conftest import tiny_model

SEEDS = np.array([[0, 1], [0, 2], [5, 5]], np.int64)


def images(batch=3):
  return tf.constant(np.random.RandomState(0).randint(0, 256, [batch, 8, 10, 1]), tf.uint8)


class EagerTest(tf.test.TestCase):

  def test_eager_calls_equal_the_method_run_op_by_op(self):
    for name in ("pixelcnn", "vae", "mcgsm"):
      with self.subTest(name):
        model = tiny_model(tiny_config(name), name)
        methods = {"sample": (SEEDS,), "log_prob": (images(),)}
        for method, args in methods.items():
          as_written = getattr(type(model), method).__wrapped__
          self.assertAllClose(getattr(model, method)(*args), as_written(model, *args),
                              rtol=1e-6, atol=0, msg=method)

  def test_one_trace_per_input_signature(self):
    model = tiny_model(tiny_config("pixelcnn"), "pixelcnn")
    for _ in range(3):
      model.log_prob(images(3))
    traced = model.__dict__["_eager_graphs"]["log_prob"]
    self.assertEqual(traced.experimental_get_tracing_count(), 1)
    for batch in (2, 5, 7):  # other batch sizes: one more, generalised, trace at most
      model.log_prob(images(batch))
    self.assertLessEqual(traced.experimental_get_tracing_count(), 3)

  def test_errors_and_gradients_are_the_methods(self):
    model = tiny_model(tiny_config("pixelcnn", conditional="autoencoder"), "pixelcnn")
    with self.assertRaisesRegex(ValueError, "samples given a code"):
      model.sample(SEEDS)
    code = tf.random.stateless_normal([3, model.code_size], [1, 2])
    grads = {}
    for how, log_prob in {"eager": model.log_prob,
                          "as written": lambda *a, **k: type(model).log_prob.__wrapped__(
                              model, *a, **k)}.items():
      with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(log_prob(images(), code=code))
      grads[how] = tape.gradient(loss, model.trainable_variables)
    used = [g is not None for g in grads["as written"]]
    self.assertGreater(sum(used), 0)
    self.assertEqual([g is not None for g in grads["eager"]], used)
    for eager, written in zip(grads["eager"], grads["as written"]):
      if written is not None:
        self.assertAllClose(eager, written, rtol=1e-4, atol=1e-6)

  def test_calls_inside_a_graph_run_as_written(self):
    model = tiny_model(tiny_config("vae"), "vae")
    graph = tf.function(model.sample).get_concrete_function(tf.TensorSpec([None, 2], tf.int64))
    self.assertNotIn("_eager_graphs", model.__dict__)  # no cached function was made
    calls = [op.type for op in graph.graph.get_operations()
             if op.type in ("PartitionedCall", "StatefulPartitionedCall")]
    self.assertEqual(calls, [])  # the method's ops themselves, no nested function


if __name__ == "__main__":
  tf.test.main()
