"""zoo.portable: TF's stateless random numbers, log Phi and the discretised Gaussian from
TFLite's builtin ops, equal to what the SavedModel computes with TF's own kernels."""
import numpy as np
from scipy import special
import tensorflow as tf

from zoo import distributions
from zoo import layers
from zoo import portable

# Seeds of every kind: zero, small, negative, past 2^32 and 2^62, the int64 extremes.
SEEDS = np.array([[0, 0], [1, 2], [-3, 2 ** 40 + 5], [2 ** 62, -1], [-2 ** 63, 2 ** 63 - 1],
                  [123456789, -987654321]], np.int64)


class RandomTest(tf.test.TestCase):

  def test_bits_are_tfs_philox_bits_for_any_seed(self):
    for count in (1, 4, 7, 21):
      expected = np.stack([tf.random.stateless_uniform(
          [count], s, dtype=tf.uint32, minval=None, maxval=None).numpy() for s in SEEDS])
      self.assertAllEqual(portable.random_bits(SEEDS, count), expected.astype(np.int64))

  def test_uniforms_are_the_kernels_bit_for_bit(self):
    shape = [3, 5]
    expected = layers.per_example_uniform(SEEDS, shape, 1e-6, 1 - 1e-6)  # TF's kernels
    self.assertAllEqual(portable.uniform_rows(SEEDS, shape, 1e-6, 1 - 1e-6), expected)
    with portable.ops():  # what the model code draws in a TFLite trace
      self.assertAllEqual(layers.per_example_uniform(SEEDS, shape, 1e-6, 1 - 1e-6), expected)

  def test_normals_are_the_kernels_up_to_the_last_bits_of_log_sin_and_cos(self):
    for shape in ([3], [2, 5]):  # an odd count uses half of the last Box-Muller pair
      expected = layers.per_example_normal(SEEDS, shape).numpy()
      with portable.ops():
        got = layers.per_example_normal(SEEDS, shape).numpy()
      self.assertEqual(got.shape, expected.shape)
      self.assertAllClose(got, expected, rtol=0, atol=4e-6)

  def test_shapes_must_be_known_when_traced(self):
    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.int64), tf.TensorSpec([], tf.int32)])
    def draw(seeds, n):
      return portable.uniform_rows(seeds, [n, 2])

    with self.assertRaisesRegex(ValueError, "only known when it runs"):
      draw.get_concrete_function()


class DiscretizedGaussianTest(tf.test.TestCase):

  def test_log_ndtr_matches_scipy_from_the_far_tail_to_one(self):
    z = np.linspace(-40.0, 8.0, 4001).astype(np.float32)
    expected = special.log_ndtr(z.astype(np.float64))
    got = portable.log_ndtr(tf.constant(z)).numpy()
    self.assertAllClose(got, expected, rtol=2e-5, atol=1e-9)

  def test_probabilities_over_all_levels_sum_to_one(self):
    levels = 256
    loc = np.array([-30.0, -0.5, 0.3, 100.7, 254.5, 290.0], np.float32)[:, None]  # in bins
    for scale in (0.3, 3.0, 40.0):
      dist = portable.DiscretizedGaussian(loc, np.float32(scale), levels, event_ndims=0)
      p = np.exp(dist.log_prob(np.arange(levels, dtype=np.float32)[None]).numpy())
      self.assertAllClose(p.sum(-1), np.ones(len(loc)), atol=2e-5)

  def test_log_prob_is_the_tfp_distributions(self):
    rng = np.random.RandomState(0)
    for sigma in (0.002, 0.02, 0.1, 0.5):
      mean = rng.uniform(-0.2, 1.2, [4, 8, 8, 3])
      x = rng.randint(0, 256, [4, 8, 8, 3]).astype(np.float64)
      x[0] = np.clip(np.round(mean[0] * 256 - 0.5), 0, 255)  # the likely values
      x[1, 0, 0], x[1, 0, 1] = 0, 255  # both tails
      expected = distributions.discretized_gaussian(mean, sigma, 256).log_prob(x)  # float64
      with portable.ops():
        got = distributions.discretized_gaussian(
            mean.astype(np.float32), np.float32(sigma), 256).log_prob(x.astype(np.float32))
      self.assertAllClose(got, expected, rtol=1e-5, atol=0)


if __name__ == "__main__":
  tf.test.main()
