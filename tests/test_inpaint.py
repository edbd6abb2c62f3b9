"""Inpainting by Metropolis within Gibbs (zoo/inpaint.py, RIDE section 3.4).

Tiny MCGSM and RIDE models whose whitening is fitted on smooth images and whose
weights are perturbed away from their initial values. About 40 s on 2 CPU cores.
"""
import numpy as np
import tensorflow as tf

from configs import mcgsm as mcgsm_config
from configs import ride as ride_config
from zoo import inpaint
from zoo import mcgsm
from zoo import ride


def smooth_images(shape, seed=0):
  """Returns uint8 [B, H, W, 1]: random walks along the rows, around grey 128."""
  walks = np.cumsum(np.random.default_rng(seed).normal(0, 12, shape), axis=2)
  return np.clip(walks + 128, 0, 255).astype(np.uint8)


def fitted_model(module, config, seed=2):
  """Returns module.Model(config), whitening fitted on smooth images, weights perturbed."""
  model = module.Model(config)
  model.initialize(tf.constant(smooth_images([16, 12, 12, 1], seed=1)))
  rng = np.random.default_rng(seed)
  for v in model.trainable_variables:
    v.assign(v + rng.normal(0, 0.3, v.shape).astype(np.float32))
  return model


def ks_distance(samples, grid, cdf):
  """Returns the Kolmogorov-Smirnov distance of `samples` from a CDF tabulated on `grid`."""
  x = np.sort(samples)
  f, n = np.interp(x, grid, cdf), len(x)
  return max(np.max(np.arange(1, n + 1) / n - f), np.max(f - np.arange(n) / n))


class InpaintTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.models = {"mcgsm": fitted_model(mcgsm, mcgsm_config.get_config("tiny")),
                  "ride": fitted_model(ride, ride_config.get_config("tiny"))}
    # One trace per model for every test: shapes and the number of sweeps are inputs.
    spec = lambda shape, dtype: tf.TensorSpec(shape, dtype)
    cls.inpaint = {
        name: tf.function(
            lambda images, mask, seeds, sweeps, model=model: inpaint.inpaint(
                model, images, mask, seeds, sweeps, candidates=2),
            input_signature=[spec([None, None, None, 1], tf.uint8), spec([None, None, None, 1], tf.uint8),
                             spec([None, 2], tf.int64), spec([], tf.int32)])
        for name, model in cls.models.items()}
    images = smooth_images([3, 10, 12, 1], seed=3)
    mask = np.ones_like(images)
    mask[0, 3:7, 4:9] = 0  # a hole
    mask[1] = np.random.default_rng(4).uniform(size=mask[1].shape) > 0.3  # scattered
    mask[2, :3, :3] = mask[2, -2:, -4:] = 0  # at the borders
    cls.images, cls.mask = images, mask
    cls.seeds = np.array([[1, 2], [3, 4], [5, 6]], np.int64)

  def run_inpaint(self, name, images, mask, seeds, sweeps=1):
    return self.inpaint[name](images, mask, seeds, tf.constant(sweeps)).numpy()

  def test_known_pixels_are_kept_and_missing_ones_drawn(self):
    for name in self.models:
      with self.subTest(name):
        out = self.run_inpaint(name, self.images, self.mask, self.seeds)
        self.assertEqual(out.dtype, np.uint8)
        self.assertEqual(out.shape, self.images.shape)
        known = self.mask == 1
        self.assertAllEqual(out[known], self.images[known])
        for b in range(3):  # every image's missing pixels are drawn anew
          self.assertNotAllEqual(out[b][~known[b]], self.images[b][~known[b]])

  def test_rows_depend_only_on_their_seed_and_inputs(self):
    for name in self.models:
      with self.subTest(name):
        out = self.run_inpaint(name, self.images, self.mask, self.seeds)
        self.assertAllEqual(self.run_inpaint(name, self.images, self.mask, self.seeds), out)
        alone = self.run_inpaint(name, self.images[:1], self.mask[:1], self.seeds[:1])
        self.assertAllEqual(alone[0], out[0])
        # Row 0 beside another image, mask and seed: unchanged; row 1 with another seed: not.
        other = smooth_images([1, 10, 12, 1], seed=9)
        pair = self.run_inpaint(name, np.concatenate([self.images[:1], other]),
                                np.concatenate([self.mask[:1], self.mask[2:]]),
                                np.array([[1, 2], [7, 8]], np.int64))
        self.assertAllEqual(pair[0], out[0])
        reseeded = self.run_inpaint(name, self.images, self.mask, np.array([[1, 2], [9, 9], [5, 6]]))
        self.assertAllEqual(reseeded[[0, 2]], out[[0, 2]])
        self.assertNotAllEqual(reseeded[1], out[1])

  def test_sweeps_raise_the_posterior_density(self):
    # Missing pixels start as uniform noise, far from the posterior's typical set.
    images = smooth_images([8, 12, 12, 1], seed=5)
    missing = np.zeros([8, 12, 12], bool)
    missing[:, 3:9, 3:9] = True
    y = mcgsm.dequantise(images)[..., 0].numpy()
    y[missing] = np.random.default_rng(6).uniform(size=missing.sum())
    seeds = tf.constant(np.stack([np.arange(8), np.arange(8) + 50], 1), tf.int64)
    for name, model in self.models.items():
      with self.subTest(name):
        log_p = lambda y, model=model: tf.reduce_sum(inpaint.pixel_log_density(model, y), [1, 2]).numpy()
        sweeps = tf.function(lambda y, model=model: inpaint.metropolis_within_gibbs(
            model, y, tf.constant(missing), seeds, 2, block=5, window=9))  # window < image
        after, acceptance = sweeps(tf.constant(y))
        before, after = log_p(tf.constant(y)), log_p(after)
        self.assertGreater(np.mean(after - before), 100.0)  # nats per image (measured: 200-400)
        self.assertAllGreater(after - before, 0.0)
        self.assertAllInRange(acceptance, 0.05, 1.0)

  def test_log_alpha_of_an_unchanged_block_is_zero(self):
    current = tf.constant(mcgsm.dequantise(smooth_images([2, 9, 11, 1], seed=7))[..., 0])
    drawn = np.zeros([2, 9, 11], bool)
    drawn[:, 3:6, 4:9] = True
    for name, model in self.models.items():
      with self.subTest(name):
        self.assertAllEqual(inpaint.log_alpha(model, current, current, tf.constant(drawn)), [0.0, 0.0])

  def test_log_alpha_is_eq9_on_the_window(self):
    # alpha = p(x') / p(x) * q(x_B) / q(x'_B), q the ancestral proposal: the product of
    # the model's conditionals of the drawn pixels given everything before them.
    current = mcgsm.dequantise(smooth_images([2, 9, 11, 1], seed=7))[..., 0]
    drawn = np.zeros([2, 9, 11], bool)
    drawn[:, 3:6, 4:9] = True
    drawn[1, 4, 5] = False  # a known pixel inside the block
    noise = tf.random.stateless_uniform([2, 99, 2], [0, 1], 1e-6, 1 - 1e-6)
    for name, model in self.models.items():
      with self.subTest(name):
        proposal = model.ancestral(current, tf.constant(drawn), noise)
        self.assertAllEqual(tf.boolean_mask(proposal, ~drawn), tf.boolean_mask(current, ~drawn))
        lp, lp_new = [inpaint.pixel_log_density(model, y).numpy() for y in (current, proposal)]
        q, q_new = [np.sum(np.where(drawn, p, 0.0), (1, 2)) for p in (lp, lp_new)]
        eq9 = (lp_new.sum((1, 2)) - lp.sum((1, 2))) + (q - q_new)
        log_alpha = inpaint.log_alpha(model, current, proposal, tf.constant(drawn)).numpy()
        self.assertAllClose(log_alpha, eq9, atol=2e-3)
        self.assertTrue(np.all(np.abs(log_alpha) > 0.01))  # the later pixels do react
        # By hand: the pixels after the first drawn one (row 3, column 4) not drawn.
        after = np.arange(99).reshape(9, 11) > 3 * 11 + 4
        by_hand = np.sum(np.where(after & ~drawn, lp_new - lp, 0.0), (1, 2))
        self.assertAllClose(log_alpha, by_hand, rtol=1e-5, atol=1e-4)

  def test_chain_samples_the_posterior_of_one_missing_pixel(self):
    # Past pixels say 0.35, later ones 0.65: the posterior of the missing pixel (3, 3)
    # differs from its ancestral (prior) conditional. The window holds the whole 7 x 7
    # image, so the chain targets the exact posterior, tabulated here on a grid.
    model = self.models["mcgsm"]
    image = np.full([7, 7], 0.35, np.float32)
    image[3, 4:] = image[4:] = 0.65
    image += np.random.default_rng(8).normal(0, 0.01, image.shape).astype(np.float32)
    grid = np.linspace(5e-4, 1 - 5e-4, 1000, dtype=np.float32)
    canvases = np.repeat(image[None], len(grid), 0)
    canvases[:, 3, 3] = grid
    log_post = tf.reduce_sum(inpaint.pixel_log_density(model, tf.constant(canvases)), [1, 2]).numpy()
    cdf = np.cumsum(np.exp(log_post - log_post.max()))
    cdf /= cdf[-1]

    chains = 300
    y = tf.constant(np.repeat(image[None], chains, 0))
    missing = np.zeros([chains, 7, 7], bool)
    missing[:, 3, 3] = True
    seeds = tf.constant(np.stack([np.arange(chains), np.arange(chains) + 1000], 1), tf.int64)
    missing = tf.constant(missing)
    prior = tf.function(lambda: inpaint.initialise(model, y, missing, seeds, candidates=1))()
    chain, _ = tf.function(lambda: inpaint.metropolis_within_gibbs(model, prior, missing, seeds, 8))()
    self.assertGreater(ks_distance(prior.numpy()[:, 3, 3], grid, cdf), 0.3)
    self.assertLess(ks_distance(chain.numpy()[:, 3, 3], grid, cdf), 0.1)  # 1% level: 0.094

  def test_blocks_cover_the_image_with_overlap(self):
    self.assertAllEqual(inpaint.block_starts(12, 5, 3), [0, 3, 6, 7])
    self.assertAllEqual(inpaint.block_starts(8, 5, 3), [0, 3])
    self.assertAllEqual(inpaint.block_starts(5, 5, 3), [0])
    for size in range(5, 30):
      starts = inpaint.block_starts(size, 5, 3).numpy()
      covered = np.zeros(size, bool)
      for s in starts:
        covered[s:s + 5] = True
      self.assertTrue(covered.all())
      self.assertEqual(starts[-1], size - 5)


if __name__ == "__main__":
  tf.test.main()
