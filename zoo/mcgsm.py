"""Factorised mixture of conditional Gaussian scale mixtures (MCGSM).

Theis, Hosseini & Bethge 2012, in the factorised form of Theis & Bethge 2015 (RIDE,
`shared/papers/ride.txt` section 2.1). Each pixel y of a grey image depends on its
causal neighbourhood x (the pixels above and to the left), in raster order:

  p(image) = prod_ij p(y_ij | x_ij)
  p(y | x) = sum_{c,s} p(c, s | x) N(y_hat; a_c^T x_hat, exp(-alpha_cs) / l_c^2) |W|
  p(c, s | x) ∝ exp(eta_cs - 1/2 exp(alpha_cs) sum_n beta_cn^2 (b_n^T x_hat)^2 + w_c^T x_hat)

with (x_hat, y_hat) the conditionally whitened pair (RIDE eq. 7) and |W| its Jacobian.

Choices the paper leaves open, taken from the authors' code (`cmt`, MCGSM):
  * gate and expert share the log-precision alpha_cs; each component also has a
    precision factor l_c (the 1x1 "Cholesky factor" of the authors' code) and linear
    gate features w_c;
  * pixels outside the image take the training mean, so every conditional is defined
    and the density of a whole image is normalised; the RIDE metric scores only
    pixels whose neighbourhood lies inside the patch (`zoo.layers.interior_mask`);
  * intensities are u / 256 + uniform noise (training, evaluation) or + 1/2 (the
    deterministic `log_prob`), so the density lives on [0, 1) as in RIDE section 3.2;
  * samples are drawn with a margin of `config.sample.margin` pixels above and at both
    sides, which is cropped away (the border pixels see only the padding value).

Train: python -m training.run --model=mcgsm --data=deadleaves
"""
import keras
import numpy as np
import tensorflow as tf

from zoo import distributions
from zoo import layers

LEVELS = 256  # 8-bit data
METRIC = "bit_per_px_rate"  # zoo.units.METRICS key reported for this model


def dequantise(images, noise=None):
  """Returns float32 [B, H, W, 1] in [0, 1): (u + noise) / 256, noise = 1/2 if None."""
  x = tf.cast(images, tf.float32)
  return (x + (0.5 if noise is None else noise)) / LEVELS


def quantise(y):
  """Returns uint8 values of intensities y in [0, 1)."""
  return tf.cast(tf.clip_by_value(tf.floor(y * LEVELS), 0, LEVELS - 1), tf.uint8)


class Model(keras.Model):
  """The factorised MCGSM as a Keras model; see the module docstring."""

  channels = 1  # grey images
  levels = LEVELS
  continuous = True  # log_prob is a density on [0, 1); a discrete model's is a probability

  def __init__(self, config, **kwargs):
    super().__init__(**kwargs)
    mc = config.model
    self.width = mc.neighbourhood
    self.offsets = layers.neighbourhood_offsets(self.width)
    self.sample_size = config.sample.size
    self.margin = config.sample.margin
    dim = len(self.offsets)
    c, s, n = mc.components, mc.scales, mc.features
    self.num_components, self.num_scales = c, s
    init = lambda stddev, i: keras.initializers.RandomNormal(stddev=stddev, seed=mc.seed + i)
    self.whitening = layers.ConditionalWhitening(dim, name="whitening")
    self.priors = self.add_weight(shape=(c, s), initializer="zeros", name="priors")
    # Spread the scales so that each (c, s) starts with a different precision.
    spread = np.tile(np.linspace(-1.0, 2.0, s, dtype=np.float32), (c, 1))
    self.log_scales = self.add_weight(
        shape=(c, s), initializer=keras.initializers.Constant(spread), name="log_scales")
    self.beta = self.add_weight(shape=(c, n), initializer=init(0.5, 1), name="beta")
    self.features = self.add_weight(shape=(dim, n), initializer=init(dim ** -0.5, 2), name="features")
    self.predictors = self.add_weight(shape=(c, dim), initializer=init(0.1, 3), name="predictors")
    self.linear_features = self.add_weight(shape=(c, dim), initializer="zeros", name="linear_features")
    self.log_cholesky = self.add_weight(shape=(c,), initializer="zeros", name="log_cholesky")
    self.built = True

  # -- the conditional distribution -------------------------------------------------

  def _params(self, x):
    """Returns the MCGSM parameters for neighbourhoods x [..., D].

    (gate_logits, loc, log_precision) each [..., C*S] in whitened units, and the
    whitening's y_shift [...] and log W (scalar).
    """
    # Flatten to [P, D] and use matmuls: einsum with an ellipsis has a ~40x slower
    # gradient on CPU.
    batch_shape = tf.shape(x)[:-1]
    x_hat, y_shift = self.whitening(tf.reshape(x, [-1, x.shape[-1]]))  # [P, D], [P]
    energy = tf.square(x_hat @ self.features) @ tf.transpose(tf.square(self.beta))  # [P, C]
    linear = x_hat @ tf.transpose(self.linear_features)  # [P, C]
    gate = (self.priors + linear[:, :, None]
            - 0.5 * tf.exp(self.log_scales) * energy[:, :, None])  # [P, C, S]
    loc = (x_hat @ tf.transpose(self.predictors))[:, :, None]  # [P, C, 1]
    log_precision = self.log_scales + 2.0 * self.log_cholesky[:, None]  # [C, S]
    loc, log_precision = [tf.broadcast_to(t, tf.shape(gate)) for t in (loc, log_precision)]
    flat = tf.concat([batch_shape, [self.num_components * self.num_scales]], 0)
    gate, loc, log_precision = [tf.reshape(t, flat) for t in (gate, loc, log_precision)]  # [..., M]
    return gate, loc, log_precision, tf.reshape(y_shift, batch_shape), self.whitening.log_w

  def conditional(self, x):
    """Returns p(y | x) for neighbourhoods x [..., D] as a TFP distribution, batch [...]."""
    gate, loc, log_precision, y_shift, log_w = self._params(x)
    return distributions.unwhitened(
        distributions.mcgsm(gate, loc, log_precision), y_shift, tf.exp(-log_w))

  # -- model API --------------------------------------------------------------------

  def pixel_log_prob(self, images, noise=None):
    """Returns float32 [B, H, W, 1]: each pixel's conditional log-density, nats.

    `images` uint8 [B, H, W, 1]; `noise` (optional) float [B, H, W, 1] in [0, 1)
    dequantises them, 1/2 is used otherwise.
    """
    y = dequantise(images, noise)  # [B, H, W, 1]
    x = layers.causal_neighbourhood(y, self.width, self.whitening.mean_y)  # [B, H, W, D]
    return self.conditional(x).log_prob(y[..., 0])[..., None]

  def call(self, images):
    return self.pixel_log_prob(images)

  def log_prob(self, images, noise=None):
    """Returns float32 [B]: log-density of each whole image on [0, 1)^(H*W), nats."""
    return tf.reduce_sum(self.pixel_log_prob(images, noise), axis=[1, 2, 3])

  def eval_terms(self, images, seeds):
    """Returns (log-density of the scored pixels [B] nats, number scored [B]).

    The RIDE protocol: uniform dequantisation noise (keyed per image by `seeds`
    int [B, 2]), and only pixels whose whole neighbourhood lies inside the image.
    """
    noise = layers.per_example_uniform(seeds, tf.shape(images)[1:])
    lp = self.pixel_log_prob(images, noise)[..., 0]  # [B, H, W]
    mask = layers.interior_mask(images.shape[1], images.shape[2], self.width)
    return tf.reduce_sum(lp * mask, axis=[1, 2]), tf.fill(tf.shape(lp)[:1], tf.reduce_sum(mask))

  def train_loss(self, images, seeds):
    """Returns (per-example loss [B], terms): negative log-density per scored pixel, nats.

    (`loss` is taken by keras.Model.) `seeds` int [B, 2] key each image's noise.
    """
    nats, count = self.eval_terms(images, seeds)
    return -nats / count, {"nats_per_pixel": nats / count}

  def initialize(self, images, seed=(0, 0)):
    """Fits the conditional whitening on a batch of training images uint8 [B, H, W, 1]."""
    noise = tf.random.stateless_uniform(tf.shape(images), seed)
    y = dequantise(images, noise)
    x = layers.causal_neighbourhood(y, self.width, 0.0)
    mask = layers.interior_mask(images.shape[1], images.shape[2], self.width) > 0
    keep = tf.broadcast_to(mask, tf.shape(y)[:3])
    self.whitening.fit(tf.boolean_mask(x, keep).numpy(), tf.boolean_mask(y[..., 0], keep).numpy())

  def sample(self, seeds):
    """Returns uint8 [B, S, S, 1] samples, S = config.sample.size; one per seed row.

    Ancestral sampling pixel by pixel in one `tf.while_loop`. All randomness is drawn
    up front per row from `seeds` int64 [B, 2] with stateless ops, so a row's image
    depends only on its own seed.
    """
    r, m, size = self.width // 2, self.margin, self.sample_size
    rows, cols = size + m, size + 2 * m
    batch = tf.shape(seeds)[0]
    noise = layers.per_example_uniform(seeds, [rows * cols, 2], 1e-6, 1 - 1e-6)  # [B, T, 2]
    window = [(di + r) * (2 * r + 1) + (dj + r) for di, dj in self.offsets]
    canvas = tf.fill([batch, rows + r, cols + 2 * r], self.whitening.mean_y)

    def step(t, canvas):
      i, j = t // cols, t % cols
      patch = canvas[:, i:i + r + 1, j:j + 2 * r + 1]  # [B, r+1, 2r+1], pixel at (r, r)
      x = tf.gather(tf.reshape(patch, [batch, -1]), window, axis=1)  # [B, D]
      gate, loc, log_precision, y_shift, log_w = self._params(x)  # [B, M]
      u = noise[:, t]  # [B, 2]
      cdf = tf.cumsum(tf.nn.softmax(gate), axis=-1)
      k = tf.minimum(tf.reduce_sum(tf.cast(cdf < u[:, :1] * cdf[:, -1:], tf.int32), -1),
                     tf.shape(gate)[-1] - 1)  # [B] sampled (c, s)
      pick = lambda p: tf.gather(p, k, batch_dims=1)
      y_hat = pick(loc) + tf.exp(-0.5 * pick(log_precision)) * tf.math.ndtri(u[:, 1])
      y = tf.clip_by_value(y_shift + y_hat * tf.exp(-log_w), 0.0, 1.0 - 1e-6)
      index = tf.stack([tf.range(batch), tf.fill([batch], i + r), tf.fill([batch], j + r)], 1)
      return t + 1, tf.tensor_scatter_nd_update(canvas, index, y)

    _, canvas = tf.while_loop(lambda t, _: t < rows * cols, step, [tf.constant(0), canvas])
    crop = canvas[:, r + m:r + m + size, r + m:r + m + size]  # [B, S, S]
    return quantise(crop)[..., None]
