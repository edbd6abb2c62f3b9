"""GVAE's sample metrics: MMD ~0 within one distribution and growing with a shift;
MS-SSIM 1 for an image with itself, and usable on 28x28 images."""
import numpy as np
import tensorflow as tf

from zoo import metrics


def blobs(n, shift=0.0, seed=0, size=28):
  """Returns uint8 [n, size, size, 1]: a bright square at a random place on noise, moved
  right by `shift` of the image width."""
  rng = np.random.default_rng(seed)
  images = rng.normal(60, 20, [n, size, size, 1])
  for k in range(n):
    i, j = rng.integers(4, size // 2, 2)
    j = min(j + int(shift * size), size - 8)
    images[k, i:i + 8, j:j + 8] += 140
  return np.clip(images, 0, 255).astype(np.uint8)


class MmdTest(tf.test.TestCase):

  def test_two_samples_of_one_distribution_give_about_zero(self):
    values = [float(metrics.mmd2(blobs(40, seed=s), blobs(40, seed=100 + s))) for s in range(5)]
    shifted = float(metrics.mmd2(blobs(40, seed=0), blobs(40, shift=0.3, seed=100)))
    self.assertLess(abs(np.mean(values)), 0.1 * shifted)  # unbiased: centred on 0

  def test_grows_with_the_shift(self):
    values = [float(metrics.mmd2(blobs(40, seed=0), blobs(40, shift=s, seed=100)))
              for s in (0.0, 0.15, 0.3, 0.45)]
    self.assertAllGreater(np.diff(values), 0.0)

  def test_is_unbiased_against_the_direct_sum(self):
    x, y = blobs(5, seed=1), blobs(6, seed=2)
    h = 3.0
    fx = x.reshape(5, -1) / 255.0
    fy = y.reshape(6, -1) / 255.0
    k = lambda a, b: np.exp(-np.sum((a - b) ** 2) / (2 * h * h))
    xx = sum(k(a, b) for i, a in enumerate(fx) for j, b in enumerate(fx) if i != j) / 20
    yy = sum(k(a, b) for i, a in enumerate(fy) for j, b in enumerate(fy) if i != j) / 30
    xy = sum(k(a, b) for a in fx for b in fy) / 30
    self.assertAllClose(metrics.mmd2(x, y, bandwidth=h), xx + yy - 2 * xy, rtol=1e-4, atol=1e-6)


class MsSsimTest(tf.test.TestCase):

  def test_an_image_with_itself_is_one_and_others_less(self):
    images = blobs(4, seed=3)
    self.assertAllClose(metrics.ms_ssim(images, images), [1.0] * 4, atol=1e-5)
    self.assertAllLess(metrics.ms_ssim(images, blobs(4, seed=4)), 0.9)

  def test_fits_28x28_where_tf_defaults_do_not(self):
    self.assertEqual(metrics.ms_ssim_scales(28, 28), 4)  # 28, 14, 7, 4 >= the 3-pixel filter
    images = tf.cast(blobs(2, seed=5), tf.float32)
    with self.assertRaises((tf.errors.InvalidArgumentError, ValueError)):
      tf.image.ssim_multiscale(images, images, 255.0)

  def test_diversity_is_one_for_copies_and_lower_for_distinct_samples(self):
    copies = np.repeat(blobs(1, seed=6), 5, axis=0)
    self.assertAllClose(metrics.ms_ssim_diversity(copies), 1.0, atol=1e-5)
    self.assertLess(float(metrics.ms_ssim_diversity(blobs(8, seed=7), pairs=10)), 0.9)


if __name__ == "__main__":
  tf.test.main()
