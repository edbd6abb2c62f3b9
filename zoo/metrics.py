"""Sample-quality metrics of the GVAE paper (`shared/papers/gvae.txt`): MMD and MS-SSIM.

* `mmd2`: the unbiased estimate of the squared maximum mean discrepancy between two
  sets of images (Gretton et al. 2012) with a Gaussian kernel
  k(a, b) = exp(-|a - b|^2 / (2 h^2)), the bandwidth h the median distance between all
  pairs of the pooled images (the median heuristic). ~0 when both sets come from one
  distribution (it can be slightly negative: the estimate is unbiased), larger as they
  part.
* `ms_ssim`: multi-scale SSIM (Wang et al. 2003) through `tf.image.ssim_multiscale`, with
  the filter size and number of scales chosen to fit small images: TF's defaults (an
  11-pixel filter over 5 scales) need sides of at least 161 pixels, and MNIST's are 28.
  Here the filter is 3 pixels (`filter_size`) and the scales are as many as keep the
  coarsest side at least the filter size (28x28: 4 scales, 28/14/7/4); the power factors
  are the first ones of TF's defaults, renormalised to sum to 1.
* `ms_ssim_diversity`: the mean MS-SSIM over distinct pairs of samples: lower is more
  diverse (the GVAE paper's Table 3 and 5).

Images are uint8 or float [N, H, W, C] on the 0..255 scale.
"""
import numpy as np
import tensorflow as tf

DEFAULT_POWER_FACTORS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # tf.image.ssim_multiscale's


def _flat(images):
  """Returns float32 [N, H*W*C] on the [0, 1] scale."""
  images = tf.cast(images, tf.float32) / 255.0
  return tf.reshape(images, [tf.shape(images)[0], -1])


def _squared_distances(a, b):
  """Returns float32 [N, M]: |a_i - b_j|^2 for rows of a [N, D] and b [M, D]."""
  sq = (tf.reduce_sum(a * a, 1)[:, None] + tf.reduce_sum(b * b, 1)[None, :]
        - 2.0 * tf.matmul(a, b, transpose_b=True))
  return tf.maximum(sq, 0.0)


def median_bandwidth(x, y):
  """Returns float32 h: the median distance between distinct pairs of the pooled images."""
  pooled = tf.concat([_flat(x), _flat(y)], 0)
  d2 = _squared_distances(pooled, pooled)
  n = tf.shape(pooled)[0]
  upper = tf.boolean_mask(d2, tf.linalg.band_part(tf.ones([n, n]), 0, -1) - tf.eye(n) > 0)
  values = tf.sort(upper)
  return tf.sqrt(values[tf.size(values) // 2])


def mmd2(x, y, bandwidth=None):
  """Returns float32: the unbiased MMD^2 estimate between images x [N, ...] and y [M, ...]
  (N, M >= 2) with a Gaussian kernel; bandwidth None takes the median heuristic."""
  h = median_bandwidth(x, y) if bandwidth is None else tf.constant(bandwidth, tf.float32)
  fx, fy = _flat(x), _flat(y)
  kernel = lambda a, b: tf.exp(-_squared_distances(a, b) / (2.0 * h * h))
  n, m = tf.cast(tf.shape(fx)[0], tf.float32), tf.cast(tf.shape(fy)[0], tf.float32)
  within = lambda k, count: (tf.reduce_sum(k) - tf.linalg.trace(k)) / (count * (count - 1.0))
  return (within(kernel(fx, fx), n) + within(kernel(fy, fy), m)
          - 2.0 * tf.reduce_mean(kernel(fx, fy)))


def ms_ssim_scales(height, width, filter_size=3):
  """Returns the number of scales (at most 5) that keep the coarsest side >= filter_size."""
  scales = 1
  while scales < len(DEFAULT_POWER_FACTORS) and min(height, width) / 2 ** scales >= filter_size:
    scales += 1
  return scales


def ms_ssim(a, b, filter_size=3):
  """Returns float32 [N]: MS-SSIM between images a and b [N, H, W, C] on 0..255."""
  height, width = a.shape[1], a.shape[2]
  scales = ms_ssim_scales(height, width, filter_size)
  factors = np.array(DEFAULT_POWER_FACTORS[:scales])
  return tf.image.ssim_multiscale(tf.cast(a, tf.float32), tf.cast(b, tf.float32), 255.0,
                                  power_factors=tuple(factors / factors.sum()),
                                  filter_size=filter_size)


def ms_ssim_diversity(samples, pairs=None, seed=0, filter_size=3):
  """Returns float32: the mean MS-SSIM over distinct pairs of samples [N, H, W, C]
  (lower = more diverse): every pair, or `pairs` pairs drawn with a fixed seed."""
  n = int(samples.shape[0])
  i, j = np.triu_indices(n, 1)
  if pairs is not None and pairs < len(i):
    keep = np.random.default_rng(seed).choice(len(i), pairs, replace=False)
    i, j = i[keep], j[keep]
  return tf.reduce_mean(ms_ssim(tf.gather(samples, i), tf.gather(samples, j), filter_size))


def sample_quality(samples, held_out, pairs=2000, seed=0):
  """Returns {"mmd2", "ms_ssim_diversity", "ms_ssim_diversity_test"}: MMD^2 between
  samples and held-out images [N, H, W, C] (0..255), and the mean MS-SSIM over up to
  `pairs` pairs of the samples and, for scale, of the held-out images."""
  return {"mmd2": float(mmd2(samples, held_out)),
          "ms_ssim_diversity": float(ms_ssim_diversity(samples, pairs, seed)),
          "ms_ssim_diversity_test": float(ms_ssim_diversity(held_out, pairs, seed))}
