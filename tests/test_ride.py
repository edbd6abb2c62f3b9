"""Properties of RIDE: the wavefront SLSTM is the SLSTM, the model is causal, sampling is exact."""
import numpy as np
import tensorflow as tf

from tests import conftest
from zoo import layers
from zoo import mcgsm
from zoo import ride
from zoo import slstm as slstm_lib


def tiny_config(num_layers=1, extended=False, mcgsm_input="both"):
  c = conftest.tiny_config("ride", components=3, hidden=5, layers=num_layers, extended=extended,
                           mcgsm_input=mcgsm_input)
  c.sample.update(size=5, margin=2)  # 5 x 5 samples keep the sampling tests short
  return c


def random_images(shape, seed=0):
  return tf.constant(np.random.default_rng(seed).integers(0, 256, shape), tf.uint8)


def perturbed(model, seed=0, scale=0.3):
  """Returns `model` with random (not initial) weights everywhere, the SLSTM read-out included."""
  rng = np.random.default_rng(seed)
  for v in model.trainable_variables:
    v.assign(v + rng.normal(0, scale, v.shape).astype(np.float32))
  return model


def naive_slstm(slstm, x):
  """Returns (h, c) [B, H, W, U] computed cell by cell in raster order (the reference)."""
  b, height, width, _ = x.shape
  zeros = tf.zeros([b, slstm.units])
  h = [[None] * width for _ in range(height)]
  c = [[None] * width for _ in range(height)]
  for i in range(height):
    for j in range(width):
      left = (h[i][j - 1], c[i][j - 1]) if j > 0 else (zeros, zeros)
      up = (h[i - 1][j], c[i - 1][j]) if i > 0 else (zeros, zeros)
      h[i][j], c[i][j] = slstm.cell(slstm.input_projection(x[:, i, j]), left[0], left[1], up[0], up[1])
  stack = lambda s: tf.stack([tf.stack(row, 1) for row in s], 1)
  return stack(h), stack(c)


class SpatialLSTMTest(tf.test.TestCase):

  def test_skew_and_unskew_are_inverse(self):
    grid = tf.random.normal([2, 4, 7, 3])
    skewed = slstm_lib.skew(grid)
    self.assertEqual(skewed.shape, (2, 4, 10, 3))
    self.assertAllEqual(skewed[:, 2, 2 + 5], grid[:, 2, 5])  # cell (i, j) at column i + j
    self.assertAllEqual(slstm_lib.unskew(skewed, 7), grid)

  def test_wavefront_equals_cell_by_cell_reference(self):
    # Both wavefronts: the while_loop (eager, or sizes known only at run time) and the
    # unrolled one (static sizes in a graph, as in training).
    for extended, path in [(e, p) for e in (False, True) for p in ("loop", "unrolled")]:
      with self.subTest(extended=extended, path=path):
        slstm = slstm_lib.SpatialLSTM(4, extended=extended, seed=3)
        slstm.build((None, None, None, 3))
        slstm.bias.assign(tf.random.normal([20], seed=1))
        x = tf.random.normal([2, 5, 6, 3], seed=2)
        run = slstm._loop if path == "loop" else tf.function(slstm._unrolled)
        with tf.GradientTape(persistent=True) as tape:
          tape.watch(x)
          h, c = run(x)
          h_ref, c_ref = naive_slstm(slstm, x)
          loss, loss_ref = [tf.reduce_sum(t * tf.sin(t)) + tf.reduce_sum(u ** 2)
                            for t, u in ((h, c), (h_ref, c_ref))]
        self.assertAllClose(h, h_ref, atol=1e-5)
        self.assertAllClose(c, c_ref, atol=1e-5)
        for g, g_ref in zip(tape.gradient(loss, [x, *slstm.trainable_variables]),
                            tape.gradient(loss_ref, [x, *slstm.trainable_variables])):
          # float32 sums in another order (oneDNN picks kernels by CPU): 1e-4, not 1e-5.
          self.assertAllClose(g, g_ref, rtol=1e-4, atol=1e-4)


class RideTest(tf.test.TestCase):

  def test_pixel_ignores_later_pixels(self):
    for num_layers, mcgsm_input in ((1, "both"), (2, "both"), (3, "both"), (1, "hidden")):
      with self.subTest(layers=num_layers, mcgsm_input=mcgsm_input):
        model = perturbed(ride.Model(tiny_config(num_layers, num_layers == 2, mcgsm_input)))
        images = random_images([1, 5, 6, 1], seed=num_layers)
        base = model.pixel_log_prob(images).numpy().reshape(-1)
        later_changed = False
        for k in range(30):
          i, j = divmod(k, 6)
          changed = images.numpy().copy()
          changed[0, i, j, 0] = (int(changed[0, i, j, 0]) + 101) % 256
          after = model.pixel_log_prob(tf.constant(changed)).numpy().reshape(-1)
          self.assertAllEqual(base[:k], after[:k], msg=f"pixel {k} changed an earlier one")
          # Through the SLSTM a pixel reaches beyond its 12-pixel neighbourhood.
          later_changed |= k < 6 and bool(np.any(base[k + 14:] != after[k + 14:]))
        self.assertTrue(later_changed, "the SLSTM carries no information beyond the neighbourhood")

  def test_untrained_ride_is_the_mcgsm(self):
    config = tiny_config()
    model, base = ride.Model(config), mcgsm.Model(config)
    images = random_images([2, 6, 6, 1], seed=4)
    model.initialize(images)
    base.initialize(images)
    self.assertAllClose(model.log_prob(images), base.log_prob(images), rtol=1e-6)
    self.assertAllClose(model.pixel_log_prob(images, part="mcgsm"), model.pixel_log_prob(images))

  def test_paper_mcgsm_reads_only_the_top_hidden_state(self):
    model = ride.Model(tiny_config(mcgsm_input="hidden"))
    self.assertEqual(model.head.features.shape[0], 5)  # hidden units only, no neighbourhood
    self.assertEqual(ride.Model(tiny_config()).head.features.shape[0], 12 + 5)
    with self.assertRaisesRegex(ValueError, "mcgsm_input=both"):
      model.pixel_log_prob(random_images([1, 4, 4, 1]), part="mcgsm")
    bad = tiny_config()
    bad.model.mcgsm_input = "neighbourhood"
    with self.assertRaisesRegex(ValueError, r"^config.model.mcgsm_input='neighbourhood'; valid: hidden"):
      ride.Model(bad)

  def test_ensemble_members_score_the_same_central_pixels(self):
    central = layers.interior_mask(8, 8, 5, central=True)[None, :, :, None]
    for t in mcgsm.DIHEDRAL:  # the same pixels in every member's frame
      self.assertAllEqual(t(central), central)
    interior = layers.interior_mask(8, 8, 5)[None, :, :, None]
    for t in mcgsm.DIHEDRAL:  # and each has its whole neighbourhood inside in every frame
      self.assertAllEqual(t(central) * t(interior), t(central))

  def test_ensemble_is_a_mixture_of_the_transformed_models(self):
    model = perturbed(ride.Model(tiny_config()), seed=7)
    images, seeds = random_images([3, 8, 8, 1], seed=8), tf.constant([[1, 2], [3, 4], [5, 6]])
    single, pixels = model.ensemble_terms(images, seeds, members=1)
    self.assertAllEqual(pixels, [16.0] * 3)  # the central 4x4 of 8x8, 2 from every border
    noise = layers.per_example_uniform(seeds, [8, 8, 1])
    central_sum = lambda x, n: tf.reduce_sum(model.pixel_log_prob(x, n)[:, 2:6, 2:6], [1, 2, 3])
    self.assertAllClose(single, central_sum(images, noise))
    # With every member the identity, the mixture is the single model.
    identity = [lambda x: x] * 8
    self.assertAllClose(model.ensemble_terms(images, seeds, 8, identity)[0], single, rtol=1e-6)
    # The 8 members are 8 distinct transforms, and the mixture lies between max - log 8 and max.
    members = tf.stack([central_sum(t(images), t(noise)) for t in mcgsm.DIHEDRAL])  # [8, B]
    self.assertEqual(len({tuple(t(images).numpy().reshape(-1)) for t in mcgsm.DIHEDRAL}), 8)
    mixture, _ = model.ensemble_terms(images, seeds, 8)
    top = tf.reduce_max(members, 0)
    self.assertAllInRange(mixture - top, -np.log(8.0) - 1e-4, 1e-4)

  def test_incremental_sampling_equals_recomputing_the_network(self):
    for num_layers, extended, mcgsm_input in ((1, False, "both"), (2, True, "both"),
                                              (1, False, "hidden")):
      with self.subTest(layers=num_layers, extended=extended, mcgsm_input=mcgsm_input):
        model = perturbed(ride.Model(tiny_config(num_layers, extended, mcgsm_input)), seed=5,
                          scale=0.5)
        seeds = tf.constant([[1, 2], [3, 4]], tf.int64)
        fast = tf.function(model.sample)(seeds).numpy()
        self.assertAllEqual(fast, self.recomputed_sample(model, seeds))
        self.assertGreater(len(np.unique(fast)), 3)  # not a constant image

  def recomputed_sample(self, model, seeds):
    """Samples like Model.sample, but reruns the whole network on the canvas per pixel."""
    r, m, size = model.width // 2, model.margin, model.sample_size
    rows, cols = size + m, size + 2 * m
    noise = layers.per_example_uniform(seeds, [rows * cols, 2], 1e-6, 1 - 1e-6).numpy()
    canvas = np.full([len(seeds), rows, cols], model.whitening.mean_y.numpy(), np.float32)
    for t in range(rows * cols):
      i, j = divmod(t, cols)
      x = layers.causal_neighbourhood(tf.constant(canvas[..., None]), model.width, model.whitening.mean_y)
      x_hat, y_shift = model.whitening(tf.reshape(x, [-1, x.shape[-1]]))
      x_hat = tf.reshape(x_hat, x.shape)
      z = model._head_inputs(x_hat, model._context(x_hat))[:, i, j]  # [B, D_in]
      gate, loc, log_precision = [p.numpy() for p in model.head(z)]
      probs = tf.nn.softmax(gate).numpy()
      for b in range(len(seeds)):
        cdf = np.cumsum(probs[b])
        k = min(int(np.sum(cdf < noise[b, t, 0] * cdf[-1])), len(cdf) - 1)
        y_hat = loc[b, k] + np.exp(-0.5 * log_precision[b, k]) * tf.math.ndtri(noise[b, t, 1]).numpy()
        shift = tf.reshape(y_shift, x.shape[:3])[b, i, j].numpy()
        canvas[b, i, j] = np.clip(shift + y_hat * np.exp(-model.whitening.log_w.numpy()), 0, 1 - 1e-6)
    return mcgsm.quantise(canvas[:, m:, m:m + size])[..., None].numpy()


if __name__ == "__main__":
  tf.test.main()
