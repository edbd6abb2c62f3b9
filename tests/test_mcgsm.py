"""Properties of the factorised MCGSM: normalised, causal, correctly whitened."""
import numpy as np
import tensorflow as tf

from tests import conftest
from zoo import distributions
from zoo import layers
from zoo import mcgsm


def tiny_config():
  return conftest.tiny_config("mcgsm", components=3)  # 5-pixel neighbourhood: 12 inputs


def random_images(shape, seed=0):
  return tf.constant(np.random.default_rng(seed).integers(0, 256, shape), tf.uint8)


class McgsmTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.model = mcgsm.Model(tiny_config())
    # Smooth-ish images so that the whitening has real correlations to remove.
    base = np.cumsum(np.random.default_rng(1).normal(0, 12, [16, 12, 12, 1]), axis=2)
    cls.model.initialize(tf.constant(np.clip(base + 128, 0, 255).astype(np.uint8)))
    # Random parameters, not the initial ones, so no symmetry hides a bug.
    rng = np.random.default_rng(2)
    for v in cls.model.trainable_variables:
      v.assign(v + rng.normal(0, 0.3, v.shape).astype(np.float32))

  def test_conditional_density_integrates_to_one(self):
    x = tf.constant(np.random.default_rng(3).uniform(0, 1, [5, 12]), tf.float32)
    dist = self.model.conditional(x)  # batch [5]
    ys = np.linspace(-3.0, 4.0, 140001, dtype=np.float32)
    density = tf.exp(dist.log_prob(ys[:, None])).numpy()  # [Y, 5]
    integral = np.trapezoid(density, ys, axis=0)
    self.assertAllClose(integral, np.ones(5), atol=2e-3)

  def test_whitening_log_jacobian_matches_finite_difference(self):
    w = self.model.whitening
    x = tf.constant(np.random.default_rng(4).uniform(0, 1, [3, 12]), tf.float32)
    _, shift = w(x)
    y_hat = lambda y: np.exp(w.log_w.numpy()) * (y - shift.numpy())
    y, eps = 0.4, 1e-3
    slope = (y_hat(y + eps) - y_hat(y - eps)) / (2 * eps)
    self.assertAllClose(np.log(np.abs(slope)), np.full(3, w.log_w.numpy()), atol=1e-3)
    # The density of y includes that Jacobian: p(y) = p(y_hat) |W|.
    x_hat, _ = w(x)
    gate, loc, log_precision = self.model.head(x_hat)
    whitened = distributions.mcgsm(gate, loc, log_precision)
    expected = whitened.log_prob(y_hat(y).astype(np.float32)) + w.log_w
    self.assertAllClose(self.model.conditional(x).log_prob(y), expected, atol=1e-4)

  def test_whitening_decorrelates_training_neighbourhoods(self):
    images = random_images([4, 12, 12, 1], seed=5)
    x = layers.causal_neighbourhood(mcgsm.dequantise(images), 5, 0.0)
    model = mcgsm.Model(tiny_config())
    model.initialize(images)
    interior = layers.interior_mask(12, 12, 5).numpy() > 0
    x_hat, _ = model.whitening(x.numpy()[:, interior].reshape(-1, 12))  # [B*P, 12]
    cov = np.cov(x_hat.numpy().reshape(-1, 12), rowvar=False)
    self.assertAllClose(cov, np.eye(12), atol=1e-2)

  def test_log_prob_is_sum_of_pixel_log_probs(self):
    images = random_images([2, 6, 5, 1], seed=7)
    self.assertAllClose(self.model.log_prob(images),
                        tf.reduce_sum(self.model.pixel_log_prob(images), [1, 2, 3]))

  def test_lbfgs_finetuning_lowers_the_loss_and_touches_only_the_mcgsm(self):
    model = mcgsm.Model(tiny_config())
    base = np.cumsum(np.random.default_rng(8).normal(0, 12, [8, 10, 10, 1]), axis=2)
    images = tf.constant(np.clip(base + 128, 0, 255).astype(np.uint8))
    model.initialize(images)
    whitening = [v.numpy() for v in model.whitening.variables]
    seeds = tf.constant(np.arange(16).reshape(8, 2))
    before, after = model.finetune(images, seeds, iterations=30)
    self.assertLess(float(after), float(before) - 0.1)
    per_example, _ = model.train_loss(images, seeds)
    self.assertAllClose(tf.reduce_mean(per_example), after, rtol=1e-4)  # the weights were kept
    for v, w in zip(model.whitening.variables, whitening):
      self.assertAllEqual(v.numpy(), w)

  def test_samples_follow_the_model(self):
    # A model whose whitened conditional is sharply peaked reproduces its mean:
    # the sampler must respect the whitening shift and scale.
    model = mcgsm.Model(tiny_config())
    model.whitening.mean_y.assign(0.3)
    model.whitening.log_w.assign(8.0)  # residual std 1/W = 3e-4
    samples = model.sample(tf.constant([[0, 1]], tf.int64)).numpy()
    self.assertAllClose(samples / 256.0, np.full_like(samples, 0.3, np.float64), atol=2 / 256)


if __name__ == "__main__":
  tf.test.main()
