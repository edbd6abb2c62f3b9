"""The VAE baseline: a normalised discretised likelihood, an analytic KL that matches
Monte Carlo, ELBO below the importance-weighted bound, per-row seeds, training."""
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from configs import vae as vae_config
from zoo import distributions
from zoo import vae


def tiny(likelihood="discretized", shape=(8, 8, 1), **overrides):
  config = vae_config.get_config("tiny")
  config.data.image_shape = shape
  config.model.likelihood = likelihood
  config.model.update(overrides)
  return config


def random_images(shape, n=4, seed=0):
  return tf.constant(np.random.default_rng(seed).integers(0, 256, [n, *shape]), tf.uint8)


def seed_rows(n, first=0):
  return tf.constant([[7, first + k] for k in range(n)], tf.int64)


class DistributionsTest(tf.test.TestCase):

  def test_discretized_gaussian_sums_to_one_over_all_levels(self):
    for levels in (2, 4, 256):
      for mean, sigma in ((0.5, 0.1), (0.0, 0.01), (1.2, 0.3), (0.37, 1e-3)):
        with self.subTest(levels=levels, mean=mean, sigma=sigma):
          values = tf.reshape(tf.range(levels, dtype=tf.float32), [levels, 1, 1, 1])
          dist = distributions.discretized_gaussian(tf.fill([levels, 1, 1, 1], mean), sigma, levels)
          self.assertAllClose(tf.reduce_sum(tf.exp(dist.log_prob(values))), 1.0, atol=1e-5)

  def test_discretized_gaussian_is_the_gaussian_mass_of_each_bin(self):
    levels, mean, sigma = 8, 0.4, 0.15
    normal = tfp.distributions.Normal(mean, sigma)
    dist = distributions.discretized_gaussian(tf.fill([levels, 1, 1, 1], mean), sigma, levels)
    probs = tf.exp(dist.log_prob(tf.reshape(tf.range(levels, dtype=tf.float32), [levels, 1, 1, 1])))
    edges = np.arange(1, levels) / levels
    cdf = np.concatenate([[0.0], normal.cdf(edges).numpy(), [1.0]])  # tails in the end bins
    self.assertAllClose(probs, np.diff(cdf), atol=1e-6)


class VaeTest(tf.test.TestCase):

  def test_kl_is_analytic_and_matches_monte_carlo(self):
    model = vae.Model(tiny())
    images = random_images((8, 8, 1))
    q = model.posterior(images)
    z = q.sample(20000, seed=(1, 2))  # [S, B, D]
    monte_carlo = tf.reduce_mean(q.log_prob(z) - model.prior().log_prob(z), 0)
    _, kl = model.elbo_terms(images, seed_rows(4))
    self.assertAllGreaterEqual(kl, 0.0)
    self.assertAllClose(kl, monte_carlo, rtol=0.05, atol=0.02)

  def test_elbo_is_below_the_importance_weighted_bound(self):
    for likelihood in vae.LIKELIHOODS:
      with self.subTest(likelihood=likelihood):
        model = vae.Model(tiny(likelihood))
        images = random_images((8, 8, 1))
        elbo = np.mean([model.elbo_terms(images, seed_rows(4, 10 * k))[0]
                        - model.elbo_terms(images, seed_rows(4, 10 * k))[1]
                        for k in range(50)], 0)  # [B], averaged over 50 draws
        bound = model.importance_weighted(images, seed_rows(4), samples=256)
        self.assertAllGreater(bound - elbo, 0.0)
        # ... and one importance sample is the one-sample ELBO (with the MC KL).
        one = np.mean([model.importance_weighted(images, seed_rows(4, 10 * k), samples=1)
                       for k in range(50)], 0)
        self.assertAllClose(np.mean(one), np.mean(elbo), rtol=0.02)

  def test_gaussian_eval_terms_bound_the_discrete_image(self):
    model = vae.Model(tiny("gaussian"))
    images = random_images((8, 8, 1))
    nats, dims = model.eval_terms(images, seed_rows(4))
    reconstruction, kl = model.elbo_terms(images, seed_rows(4))
    self.assertAllClose(nats, reconstruction - kl - 64 * np.log(256.0), rtol=1e-6)
    self.assertAllEqual(dims, [64.0] * 4)

  def test_a_row_depends_on_its_own_seed_only(self):
    model = vae.Model(tiny(shape=(8, 10, 3)))
    seeds = seed_rows(3)
    samples = model.sample(seeds)
    self.assertEqual(samples.dtype, tf.uint8)
    self.assertEqual(samples.shape, (3, 8, 10, 3))
    self.assertAllEqual(model.sample(seeds[2:]), samples[2:])
    images = random_images((8, 10, 3), n=3)
    self.assertAllEqual(model.reconstruct(images[1:2], seeds[1:2]), model.reconstruct(images, seeds)[1:2])
    self.assertAllEqual(model.log_prob(images[1:2]), model.log_prob(images)[1:2])

  def test_reconstruction_error_is_on_the_0_to_255_scale(self):
    model = vae.Model(tiny())
    images = random_images((8, 8, 1))
    mean = model.decoder_mean(model.posterior(images).mean())
    expected = np.sqrt(np.mean(((mean.numpy() * 256 - 0.5) - images.numpy()) ** 2, axis=(1, 2, 3)))
    self.assertAllClose(model.eval_extras(images, None)["reconstruction_rmse"], expected, rtol=1e-5)

  def test_image_size_must_suit_the_downsampling(self):
    with self.assertRaisesRegex(ValueError, "multiples of 4; these are 8x10"):
      vae.Model(tiny(shape=(8, 10, 1), downsamples=2))
    with self.assertRaisesRegex(ValueError, "unknown config.model.likelihood 'l1'"):
      vae.Model(tiny("l1"))


if __name__ == "__main__":
  tf.test.main()
