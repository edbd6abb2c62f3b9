"""The VAE family: a normalised discretised likelihood, an analytic KL that matches Monte
Carlo, ELBO below the importance-weighted bound, per-row seeds; the multi-stage VAE's
stages and losses."""
import os

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from configs import msvae as msvae_config
from configs import vae as vae_config
from training import steps
from zoo import distributions
from zoo import msvae
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
    # float32 matmuls blocked differently for 1 and 3 rows (oneDNN, by CPU): equal to rounding.
    self.assertAllClose(model.log_prob(images[1:2]), model.log_prob(images)[1:2], rtol=1e-6, atol=0)

  def test_reconstruction_error_is_on_the_0_to_255_scale(self):
    model = vae.Model(tiny())
    images = random_images((8, 8, 1))
    mean = model.decoder_mean(model.posterior(images).mean())
    expected = np.sqrt(np.mean(((mean.numpy() * 256 - 0.5) - images.numpy()) ** 2, axis=(1, 2, 3)))
    self.assertAllClose(model.eval_extras(images, None)["reconstruction_rmse"], expected, rtol=1e-5)

  def test_any_image_size_decodes_to_itself(self):
    for shape, downsamples in (((8, 10, 1), 2), ((28, 28, 1), 3), ((7, 5, 3), 1)):
      model = vae.Model(tiny(shape=shape, downsamples=downsamples))
      self.assertEqual(model.sample(seed_rows(2)).shape, (2, *shape))

  def test_bad_config_says_what_is_allowed(self):
    with self.assertRaisesRegex(ValueError, "downsamples=0 must be at least 1"):
      vae.Model(tiny(downsamples=0))
    with self.assertRaisesRegex(ValueError, "unknown config.model.likelihood 'l1'"):
      vae.Model(tiny("l1"))


if __name__ == "__main__":
  tf.test.main()


class SharpnessTest(tf.test.TestCase):

  def test_an_image_is_as_sharp_as_itself_and_blurring_lowers_it(self):
    images = tf.cast(random_images((8, 8, 3)), tf.float32)
    self.assertAllClose(vae.sharpness(images, images), [1.0] * 4)
    blurred = tf.nn.avg_pool2d(images, 3, 1, "SAME")
    self.assertAllLess(vae.sharpness(blurred, images), 0.5)


class MultiStageVaeTest(tf.test.TestCase):

  def model(self, variant, **overrides):
    config = msvae_config.get_config("tiny")
    config.data.image_shape = (8, 8, 1)
    config.model.update({"variant": variant, "stages": 3, **overrides})
    return msvae.Model(config)

  def test_every_stage_starts_as_the_identity(self):
    model = self.model("multistage")
    stages = model.stage_means(tf.random.normal([2, model.latent_size], seed=1))
    self.assertLen(stages, 3)
    for later in stages[1:]:
      self.assertAllClose(later, stages[0])

  def test_multistage_trains_refinements_by_l1_only_and_residual_by_the_likelihood(self):
    images, seeds = random_images((8, 8, 1)), seed_rows(4)
    for variant in msvae.VARIANTS:
      with self.subTest(variant=variant):
        model = self.model(variant)
        refine_vars = [v for r in model.refiners for v in r.trainable_variables]
        with tf.GradientTape(persistent=True) as tape:
          _, terms = model.train_loss(images, seeds)
          likelihood = tf.reduce_sum(terms["reconstruction"])
          l1 = tf.add_n([tf.reduce_sum(v) for k, v in terms.items() if k.startswith("l1_")]
                        or [tf.constant(0.0)])
        grads = tape.gradient(likelihood, refine_vars)
        if variant == "multistage":
          self.assertTrue(all(g is None for g in grads))  # the density is the coarse stage's
          self.assertTrue(any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0
                              for g in tape.gradient(l1, refine_vars)))
          self.assertEqual(sorted(k for k in terms if k.startswith("l1_")), ["l1_stage2", "l1_stage3"])
        else:
          self.assertTrue(any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads))
          self.assertNotIn("l1_stage2", terms)

  def test_bad_variant_or_too_few_stages_say_what_is_allowed(self):
    with self.assertRaisesRegex(ValueError, "valid: multistage, residual"):
      self.model("pyramid")
    with self.assertRaisesRegex(ValueError, "at least 2 stages"):
      self.model("residual", stages=1)

  def test_paper_preset_is_section_3_1s_mnist_model_and_decodes_28x28(self):
    config = msvae_config.get_config("paper")
    config.data.image_shape = (28, 28, 1)
    model = msvae.Model(config)
    strides = [layer.strides for layer in model.encoder.layers if hasattr(layer, "strides")]
    self.assertEqual(strides, [(2, 2)] * 3)  # "three convolution layers with a stride of 2"
    self.assertEqual(model.latent_size, 128)
    blocks = [layer for layer in model.refiners[0].layers if isinstance(layer, msvae.ResidualBlock)]
    self.assertLen(blocks, 5)
    self.assertTrue(all(block.norm is not None for block in blocks))
    self.assertTrue(model.continuous)  # the fixed-sigma l2 loss
    self.assertEqual(model.sample(seed_rows(2)).shape, (2, 28, 28, 1))  # 28 -> 4 -> 32, cropped
    loss, terms = model.train_loss(random_images((28, 28, 1), n=2), seed_rows(2))
    self.assertAllEqual(np.isfinite(loss), [True, True])
    self.assertIn("l1_stage2", terms)

  def test_batch_norm_trains_on_the_batch_and_evaluates_on_checkpointed_averages(self):
    config = msvae_config.get_config("tiny")
    config.data.image_shape = (8, 8, 1)
    config.model.batch_norm = True
    model, optimizers, checkpoint = steps.build("msvae", config)
    moving = [v for v in model.non_trainable_variables if "moving" in v.path]
    self.assertLen(moving, 2)  # one block: its mean and variance
    before = [v.numpy() for v in moving]
    steps.make_train_step(model, optimizers, tf.distribute.get_strategy(), 4)(
        {"images": random_images((8, 8, 1)), "seeds": seed_rows(4)})
    self.assertTrue(all(np.abs(v.numpy() - b).max() > 0 for v, b in zip(moving, before)))
    # Evaluation uses the moving averages: deterministic, and a row's value is its own.
    images = random_images((8, 8, 1), seed=1)
    log_prob = model.log_prob(images)
    self.assertAllEqual(model.log_prob(images), log_prob)
    self.assertAllClose(model.log_prob(images[2:3]), log_prob[2:3], rtol=1e-6)
    self.assertAllClose(model.log_prob(tf.concat([images[2:3], images[:1]], 0))[0], log_prob[2], rtol=1e-6)
    # ... which the checkpoint holds.
    path = checkpoint.save(os.path.join(self.get_temp_dir(), "ckpt"))
    restored, _, again = steps.build("msvae", config)
    again.restore(path).assert_existing_objects_matched()
    self.assertAllEqual(restored.log_prob(images), log_prob)
