"""LapCVAE: an exact pyramid, a valid learned prior, ELBO below the importance-weighted
bound, partial sampling that keeps the coarse image, training parts, export."""
import os
import tempfile

import numpy as np
import tensorflow as tf

from configs import lapcvae as lapcvae_config
from export import saved_model
from training import steps
from zoo import lapcvae


def tiny(shape=(8, 10, 1), **overrides):
  config = lapcvae_config.get_config("tiny")
  config.data.image_shape = shape
  config.model.update(overrides)
  return config


def random_images(shape, n=3, seed=0):
  return tf.constant(np.random.default_rng(seed).integers(0, 256, [n, *shape]), tf.uint8)


def seed_rows(n, first=0):
  return tf.constant([[5, first + k] for k in range(n)], tf.int64)


class PyramidTest(tf.test.TestCase):

  def test_decomposition_then_reconstruction_returns_the_image(self):
    for shape, levels in (((32, 32, 1), 4), ((8, 12, 3), 3), ((6, 10, 2), 2)):
      with self.subTest(shape=shape, levels=levels):
        x = tf.random.uniform([2, *shape], seed=1)
        pyramid = lapcvae.decompose(x, levels)
        self.assertEqual([p.shape[1:3] for p in pyramid],
                         [(shape[0] >> k, shape[1] >> k) for k in range(levels)])
        self.assertAllClose(lapcvae.reconstruct_pyramid(pyramid)[0], x, atol=1e-6)
        # The band-pass levels carry only detail: a constant image has none.
        flat = lapcvae.decompose(tf.fill([1, *shape], 0.3), levels)
        for h in flat[:-1]:
          self.assertAllClose(h, tf.zeros_like(h), atol=1e-6)

  def test_down_and_upsampling_keep_a_constant_image(self):
    x = tf.fill([1, 8, 8, 1], 0.7)
    self.assertAllClose(lapcvae.downsample(x), tf.fill([1, 4, 4, 1], 0.7))
    self.assertAllClose(lapcvae.upsample(x), tf.fill([1, 16, 16, 1], 0.7))


class LapCvaeTest(tf.test.TestCase):

  def test_learned_prior_is_a_density_whose_kl_matches_monte_carlo(self):
    model = lapcvae.Model(tiny(latent_size=3))
    terms = model.pyramid_terms(random_images((8, 10, 1)), seed_rows(3))
    prior, q = terms["prior"][0], terms["posterior"][0]  # the finest level: eq. 13
    self.assertNotAllClose(prior.mean(), tf.zeros_like(prior.mean()))  # image-dependent
    self.assertAllGreater(prior.stddev(), 0.0)
    z = q.sample(20000, seed=(3, 4))
    monte_carlo = tf.reduce_mean(q.log_prob(z) - prior.log_prob(z), 0)
    self.assertAllGreaterEqual(terms["kl"][0], 0.0)
    self.assertAllClose(terms["kl"][0], monte_carlo, rtol=0.05, atol=0.02)

  def test_without_m_every_prior_is_standard_normal(self):
    model = lapcvae.Model(tiny(learned_prior=False))
    terms = model.pyramid_terms(random_images((8, 10, 1)), seed_rows(3))
    for prior in terms["prior"]:
      self.assertAllClose(prior.mean(), tf.zeros_like(prior.mean()))
      self.assertAllClose(prior.stddev(), tf.ones_like(prior.stddev()))
    self.assertEqual(model.trainable_for("prior"), [])  # no M networks at all

  def test_elbo_is_below_the_importance_weighted_bound(self):
    model = lapcvae.Model(tiny())
    images = random_images((8, 10, 1))
    elbo = np.mean([np.subtract(*model.elbo_terms(images, seed_rows(3, 10 * k))) for k in range(30)], 0)
    bound = model.importance_weighted(images, seed_rows(3), samples=64)
    self.assertAllGreater(bound - elbo, 0.0)

  def test_partial_sampling_keeps_the_coarse_image_and_resamples_the_rest(self):
    model = lapcvae.Model(tiny(shape=(16, 16, 1), levels_k=3))
    images = random_images((16, 16, 1))
    for j, (h, w) in model.coarse_sizes().items():
      with self.subTest(level=j):
        coarse = images[:, :h, :w]
        first, kept = model.sample_from_coarse(coarse, seed_rows(3))
        second, kept_again = model.sample_from_coarse(coarse, seed_rows(3, 100))
        self.assertAllEqual(kept, model.scale(coarse))  # x'_j is the given coarse image
        self.assertAllEqual(kept_again, kept)
        self.assertEqual(first.shape, images.shape)
        self.assertNotAllEqual(first, second)  # the finer levels are drawn anew
        # A row depends on its own coarse image and seed only.
        self.assertAllEqual(model.sample_from_coarse(coarse[1:2], seed_rows(3)[1:2])[0], first[1:2])

  def test_training_parts_select_levels_and_priors(self):
    model = lapcvae.Model(tiny(shape=(16, 16, 1), levels_k=3))
    count = lambda nets: sum(len(n.trainable_variables) for n in nets)
    self.assertLen(model.trainable_for("level2"), count([model.encoders[2], model.decoders[2]]))
    self.assertLen(model.trainable_for("level0"),
                   count([model.encoders[0], model.decoders[0], *model.priors[0]]))
    self.assertLen(model.trainable_for("prior"), count([net for pair in model.priors for net in pair]))
    with self.assertRaisesRegex(ValueError, r"valid: all, prior or level<k> with k in \[0, levels_k\)"):
      model.trainable_for("level3")
    # A greedy stage's loss is its own level's: the coarser levels only condition it.
    images, seeds = random_images((16, 16, 1)), seed_rows(3)
    with tf.GradientTape() as tape:
      loss, terms = model.train_loss(images, seeds, part="level1")
    self.assertEqual(sorted(terms), ["kl1"])
    self.assertTrue(all(g is None for g in tape.gradient(loss, model.trainable_for("level0"))))

  def test_bad_config_says_what_is_allowed(self):
    with self.assertRaisesRegex(ValueError, "levels_k=3 needs image sides that are multiples of 4; these are 8x10"):
      lapcvae.Model(tiny(levels_k=3))
    with self.assertRaisesRegex(ValueError, r"kl_weights='1,2,3' must be one non-negative number or 2 "
                                r"comma-separated ones \(finest level first"):
      lapcvae.Model(tiny(kl_weights="1,2,3"))
    with self.assertRaisesRegex(ValueError, "latent_sizes='4,0' must be one integer >= 1 or 2"):
      lapcvae.Model(tiny(latent_sizes="4,0"))

  def test_unequal_latent_sizes_build_train_encode_decode_and_sample(self):
    sizes = [5, 3, 2]  # n_0 (finest), n_1, n_2 (coarsest)
    model = lapcvae.Model(tiny(shape=(16, 16, 1), levels_k=3, latent_sizes="5,3,2"))
    self.assertEqual((model.latent_sizes, model.latent_size), (sizes, 10))
    images, seeds = random_images((16, 16, 1)), seed_rows(3)
    terms = model.pyramid_terms(images, seeds)
    for k, n in enumerate(sizes):  # each level's posterior, prior and z have its width
      self.assertEqual(terms["z"][k].shape, (3, n))
      self.assertEqual(terms["prior"][k].event_shape, [n])
    for k, (r, s) in enumerate(model.priors):  # M_k maps n_{k+1} to n_k
      for net in (r, s):
        self.assertEqual((net.layers[0].kernel.shape[0], net.layers[-1].kernel.shape[1]),
                         (sizes[k + 1], sizes[k]))
    with tf.GradientTape() as tape:
      loss, _ = model.train_loss(images, seeds)
      loss = tf.reduce_mean(loss)
    grads = tape.gradient(loss, model.trainable_variables)
    self.assertTrue(all(g is not None and np.all(np.isfinite(g)) for g in grads))
    tf.keras.optimizers.SGD(0.01).apply_gradients(zip(grads, model.trainable_variables))
    mean = model.encode(images)["mean"]  # [3, 2 + 3 + 5]: z_2, z_1, z_0, coarsest first
    posteriors = model.pyramid_terms(images, seeds)["posterior"]
    self.assertAllClose(mean, tf.concat([q.mean() for q in posteriors[::-1]], -1))
    self.assertEqual(model.decode(mean).shape, images.shape)
    self.assertEqual(model.sample(seeds).shape, images.shape)
    for h, w in model.coarse_sizes().values():
      self.assertEqual(model.sample_from_coarse(images[:, :h, :w], seeds)[0].shape, images.shape)

  def test_a_zero_kl_weight_removes_exactly_that_levels_kl(self):
    shape = (16, 16, 1)
    images, seeds = random_images(shape), seed_rows(3)
    # A wide fixed sigma keeps the reconstruction terms small: the KLs stand out in float32.
    loss = lambda weights: lapcvae.Model(tiny(shape=shape, levels_k=3, kl_weights=weights,
                                              likelihood="gaussian", sigma=10.0)
                                         ).train_loss(images, seeds)
    full, terms = loss("1")
    for k, weights in enumerate(["0,1,1", "1,0,1", "1,1,0"]):  # finest level first
      with self.subTest(level=k):
        dropped, _ = loss(weights)
        self.assertAllClose((full - dropped) * np.prod(shape), terms[f"kl{k}"],
                            rtol=1e-4, atol=1e-5)

  def test_paper_presets_weight_the_learned_prior_levels_finest_first(self):
    config = lapcvae_config.get_config("paper")
    config.data.image_shape = (32, 32, 1)
    model = lapcvae.Model(config)
    # Section 5: lambda = [10, 0.1, 0.01] on the three levels with M_k (k = 0, 1, 2); the
    # coarsest level's N(0, I) KL, which the paper does not weight, keeps 1.
    self.assertEqual(model.kl_weights, [10.0, 0.1, 0.01, 1.0])
    self.assertEqual(model.latent_sizes, [64] * 4)
    self.assertLen(model.priors, 3)
    config = lapcvae_config.get_config("paper128")
    config.data.image_shape = (32, 32, 1)
    model = lapcvae.Model(config)
    self.assertEqual(model.kl_weights, [100.0, 100.0, 0.1, 0.01, 1.0])
    self.assertEqual((model.latent_sizes, model.latent_size), ([128, 128, 64, 64, 64], 448))

  def test_exported_sample_from_coarse_matches_the_model_and_checks_sizes(self):
    config = tiny(shape=(16, 16, 1), levels_k=3, latent_sizes="3,2,1")  # unequal widths
    model = lapcvae.Model(config)
    path = saved_model.export(model, config, os.path.join(tempfile.mkdtemp(), "export"))
    signatures = tf.saved_model.load(path).signatures
    signature = signatures["sample_from_coarse"]
    images = random_images((16, 16, 1))
    mean = signatures["encode"](images=images)["mean"]  # [3, 1 + 2 + 3], coarsest first
    self.assertAllClose(mean, model.encode(images)["mean"], rtol=1e-5, atol=1e-6)
    self.assertAllEqual(signatures["decode"](latents=mean)["images"], model.decode(mean))
    for h, w in model.coarse_sizes().values():
      out = signature(coarse=images[:, :h, :w], seed=seed_rows(3))["images"]
      self.assertAllEqual(out, model.sample_from_coarse(images[:, :h, :w], seed_rows(3))[0])
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                r"`coarse` must be uint8 \[N, h, w, 1\].*sizes 8x8, 4x4.*wrong size"):
      signature(coarse=images[:, :5, :5], seed=seed_rows(3))


if __name__ == "__main__":
  tf.test.main()


class LapCvaeTrainingTest(tf.test.TestCase):
  """LapCVAE through the one loop: greedy level-by-level stages on the 8x8 digits."""

  def test_greedy_stages_train_one_level_at_a_time(self):
    from training import loop  # pylint: disable=g-import-not-at-top
    config = lapcvae_config.get_config("tiny")
    config.train.update(steps=4, checkpoint_every=2, stages="level1:0:0.5, level0:0:0.5")
    config.data.image_shape = (8, 8, 1)
    initial = lapcvae.Model(config)  # seeded: the run starts from these weights
    workdir = os.path.join(self.get_temp_dir(), "greedy")
    metrics = loop.train("lapcvae", "digits", config, workdir, tf.distribute.get_strategy(),
                         export=False)
    self.assertEqual(metrics["steps"], 4)
    model, _, checkpoint = steps.build("lapcvae", config)
    checkpoint.restore(os.path.join(workdir, "checkpoints", "ckpt-2")).expect_partial()
    moved = lambda part: [bool(np.any(v.numpy() != v0.numpy())) for v, v0 in
                          zip(model.trainable_for(part), initial.trainable_for(part))]
    self.assertTrue(any(moved("level1")))  # after the first stage: level 1 trained ...
    self.assertFalse(any(moved("level0")))  # ... level 0 and its M untouched
