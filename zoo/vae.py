r"""Variational auto-encoder (Kingma & Welling 2014): the VAE family's baseline.

  q(z | x) = N(mu(x), diag(sigma(x)^2))        a conv encoder, sigma = softplus(.) + 1e-4
  p(z)     = N(0, I)                            `latent_size` dimensions
  p(x | z) = a Gaussian around the deconv decoder's mean image m(z)

  ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z))   (one reparameterised sample, analytic KL)

Pixels are on the [0, 1) scale of the zoo's continuous models: the sub-pixel value k
(of `levels`) owns the bin [k / L, (k + 1) / L), centre (k + 0.5) / L. Two decoder
likelihoods, `config.model.likelihood`:

  * "gaussian": N(m(z), sigma^2) with a fixed sigma (`config.model.sigma`) on the
    uniformly dequantised image: the l2 loss of the VAE papers (multi-stage VAE eqs. 3,
    7 and 14, LapCVAE section 5). Its ELBO is a density on [0, 1)^D; bits/dim adds log2(L) per
    dimension, a bound on the discrete image's bits/dim.
  * "discretized" (default): the same Gaussian integrated over each bin (the two end
    bins take the tails), a TFP `QuantizedDistribution`, with a learned sigma per
    channel: a probability of the discrete image, so the ELBO is in bits/dim directly.

Reconstruction error is the LapCVAE paper's: the square root of the mean squared error
on the 0..255 scale between an image and the decoder's mean at the posterior mean.

Choices left open by the papers, made here: the encoder halves the image `downsamples`
times (conv 3x3 stride 2, `hidden` then 2 `hidden` ... features, ReLU), then a dense
layer to the 2 `latent_size` posterior parameters; the decoder mirrors it (dense,
transposed convs) and ends in a linear 3x3 conv to the mean image, cropped to the image
size when the sides are not multiples of 2^downsamples (e.g. 28 -> 32 -> 28). Samples (`sample`)
and reconstructions are the decoder's mean image rounded to the nearest level, as the
papers show them. `log_prob` (the export's) is a one-sample ELBO with a fixed seed, so
it is deterministic; evaluation draws one sample per image from its own seed.

Train: python -m training.run --model=vae --data=lfw_faces
"""
import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from zoo import contract
from zoo import distributions
from zoo import layers

tfd = tfp.distributions

METRIC = "bits_per_dim"  # zoo.units.METRICS key: the negative ELBO in bits/dim
LIKELIHOODS = ("discretized", "gaussian")


def conv_encoder(hidden, downsamples, out_size, seeds, name="encoder"):
  """Returns a Keras Sequential: images [B, H, W, C] -> features [B, out_size]."""
  glorot = lambda: keras.initializers.GlorotUniform(seed=next(seeds))
  convs = [keras.layers.Conv2D(hidden * 2 ** k, 3, strides=2, padding="same", activation="relu",
                               kernel_initializer=glorot()) for k in range(downsamples)]
  return keras.Sequential(convs + [keras.layers.Flatten(),
                                   keras.layers.Dense(out_size, kernel_initializer=glorot())],
                          name=name)


def deconv_decoder(hidden, downsamples, image_shape, seeds, name="decoder"):
  """Returns a Keras Sequential: latents [B, D] -> mean image [B, H, W, C] (linear).

  It starts at ceil(H / 2^downsamples) x ceil(W / 2^downsamples) and crops the last
  rows and columns that the doublings add beyond H x W.
  """
  height, width, channels = image_shape
  glorot = lambda: keras.initializers.GlorotUniform(seed=next(seeds))
  top = hidden * 2 ** max(downsamples - 1, 0)
  step = 2 ** downsamples
  h0, w0 = -(-height // step), -(-width // step)
  deconvs = [keras.layers.Conv2DTranspose(hidden * 2 ** k, 3, strides=2, padding="same",
                                          activation="relu", kernel_initializer=glorot())
             for k in reversed(range(downsamples))]
  return keras.Sequential(
      [keras.layers.Dense(h0 * w0 * top, activation="relu", kernel_initializer=glorot()),
       keras.layers.Reshape((h0, w0, top))] + deconvs
      + [keras.layers.Conv2D(channels, 3, padding="same", kernel_initializer=glorot()),
         keras.layers.Cropping2D(((0, h0 * step - height), (0, w0 * step - width)))],
      name=name)


def check_downsamples(downsamples):
  """Raises ValueError unless the encoder halves the image at least once."""
  if downsamples < 1:
    raise ValueError(f"config.model.downsamples={downsamples} must be at least 1")


def sharpness(reconstruction, images):
  """Returns float32 [B]: the energy of the discrete Laplacian of each reconstruction
  relative to that of its image (1: as much fine detail; blurry reconstructions < 1).

  Both are float [B, H, W, C] on one scale; the 3x3 Laplacian runs per channel, valid
  padding. The multi-stage VAE paper's "sharper" claim is measured with it.
  """
  kernel = tf.constant([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
  channels = images.shape[-1]
  kernel = tf.tile(kernel[:, :, None, None], [1, 1, channels, 1])  # [3, 3, C, 1]
  energy = lambda x: tf.reduce_sum(tf.square(
      tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "VALID")), [1, 2, 3])
  return energy(reconstruction) / tf.maximum(energy(images), 1e-12)


def reconstruction_metrics(model, images, mean):
  """Returns {"reconstruction_rmse", "sharpness"}: float32 [B] each, for a model's mean
  image [B, H, W, C] on the [0, 1) scale against uint8 images with `model.levels` values."""
  pixels = mean * model.levels - 0.5  # on the 0..levels-1 scale of the images
  images = tf.cast(images, tf.float32)
  error = (pixels - images) * (255.0 / (model.levels - 1))
  return {"reconstruction_rmse": tf.sqrt(tf.reduce_mean(tf.square(error), [1, 2, 3])),
          "sharpness": sharpness(pixels, images)}


class Model(keras.Model):
  """The VAE as a Keras model; see the module docstring.

  Model API: `encode` (posterior mean and stddev), `decode`, `reconstruct`, `sample`,
  `log_prob` (ELBO, nats), `eval_terms`, `eval_extras` (reconstruction error),
  `train_loss`.
  """

  conditional_inputs = ()
  capabilities = frozenset({contract.ENCODE, contract.DECODE, contract.EXTRAS})

  def __init__(self, config, **kwargs):
    super().__init__(**kwargs)
    mc = config.model
    self._set_up_images(config)
    self.latent_size, self.kl_weight = int(mc.latent_size), float(mc.kl_weight)
    check_downsamples(mc.downsamples)
    seeds = iter(range(1000 * mc.seed, 1000 * mc.seed + 1000))
    self.encoder = conv_encoder(mc.hidden, mc.downsamples, 2 * self.latent_size, seeds)
    self.decoder = deconv_decoder(mc.hidden, mc.downsamples, config.data.image_shape, seeds)
    self.encoder.build((None, self.height, self.width, self.channels))
    self.decoder.build((None, self.latent_size))

  def _set_up_images(self, config):
    """Sets the image size, levels and the image likelihood (and its sigma weight) from
    the config; shared by the models built on this one."""
    mc = config.model
    self.height, self.width, self.channels = (int(d) for d in config.data.image_shape)
    self.fixed_size = (self.height, self.width)
    self.levels = int(mc.get("levels", 256))
    self.likelihood = mc.likelihood
    if self.likelihood not in LIKELIHOODS:
      raise ValueError(f"unknown config.model.likelihood {self.likelihood!r}; "
                       f"valid: {', '.join(LIKELIHOODS)}")
    self.continuous = self.likelihood == "gaussian"  # log_prob is a density on [0, 1)^D
    self.sigma = float(mc.sigma)  # the Gaussian's fixed (or initial) sigma, [0, 1) scale
    # log sigma per channel: fixed for "gaussian", learned for "discretized".
    self.log_sigma = self.add_weight(
        shape=(self.channels,), initializer=keras.initializers.Constant(np.log(mc.sigma)),
        trainable=self.likelihood == "discretized", name="log_sigma")

  # -- the two halves ---------------------------------------------------------------------

  def scale(self, images):
    """Returns float32 [B, H, W, C]: the bin centres (k + 0.5) / levels of uint8 images."""
    return (tf.cast(images, tf.float32) + 0.5) / self.levels

  def posterior(self, images, training=False):
    """Returns q(z | x): a tfd.MultivariateNormalDiag with batch [B], event [latent_size].

    `training` reaches the encoder's layers: an encoder with batch norm (GVAE's "paper"
    encoder) normalises by the batch's statistics with training=True, which only the
    training losses pass, and by its moving averages otherwise."""
    x = tf.ensure_shape(self.scale(images), [None, self.height, self.width, self.channels])
    return distributions.diagonal_gaussian(self.encoder(x, training=training))

  def prior(self):
    """Returns p(z) = N(0, I) over [latent_size]."""
    return tfd.MultivariateNormalDiag(loc=tf.zeros([self.latent_size]))

  def decoder_mean(self, z):
    """Returns float32 [B, H, W, C]: the decoder's mean image on the [0, 1) scale."""
    return self.decoder(z)

  def likelihood_of(self, mean):
    """Returns p(x | z) for a mean image [B, H, W, C]: over the dequantised [0, 1) image
    ("gaussian") or over the integer image ("discretized"), event [H, W, C]."""
    sigma = tf.exp(self.log_sigma)  # [C]
    if self.continuous:
      return tfd.Independent(tfd.Normal(mean, sigma), reinterpreted_batch_ndims=3)
    return distributions.discretized_gaussian(mean, sigma, self.levels)

  def output_mean(self, z):
    """Returns float32 [B, H, W, C]: the image the model shows for latents z (samples,
    decodings, reconstructions); for the plain VAE the likelihood's mean."""
    return self.decoder_mean(z)

  def to_images(self, mean):
    """Returns uint8 [B, H, W, C]: a mean image [0, 1) rounded to the nearest level."""
    return tf.cast(tf.clip_by_value(tf.round(mean * self.levels - 0.5), 0, self.levels - 1), tf.uint8)

  # -- model API --------------------------------------------------------------------------

  def encode(self, images):
    """Returns {"mean", "stddev"}: float32 [B, latent_size] each, of q(z | x)."""
    q = self.posterior(images)
    return {"mean": q.mean(), "stddev": q.stddev()}

  def decode(self, latents):
    """Returns uint8 [B, H, W, C]: the decoder's mean image for latents [B, latent_size]."""
    return self.to_images(self.output_mean(tf.cast(latents, tf.float32)))

  def reconstruct(self, images, seeds):
    """Returns uint8 [B, H, W, C]: decode(z), z drawn from q(z | x) with row b's seed."""
    return self.decode(self._posterior_sample(self.posterior(images), seeds))

  def _posterior_sample(self, q, seeds):
    """Returns z [B, D] = mean + stddev * eps, eps from each row's own seed."""
    eps = layers.per_example_normal(seeds, [self.latent_size])
    return q.mean() + q.stddev() * eps

  def _observed(self, images, seeds):
    """Returns what p(x | z) scores: the integer image (float), or for the Gaussian the
    image dequantised on [0, 1) with uniform noise from each row's (reversed) seed."""
    return self.dequantised(images, seeds) if self.continuous else tf.cast(images, tf.float32)

  def dequantised(self, images, seeds):
    """Returns float32 [B, H, W, C]: (images + u) / levels on [0, 1), u uniform from each
    row's reversed seed (the Gaussian likelihood's dequantisation)."""
    noise = layers.per_example_uniform(tf.reverse(seeds, [1]), tf.shape(images)[1:])
    return (tf.cast(images, tf.float32) + noise) / self.levels

  def elbo_terms(self, images, seeds):
    """Returns (E_q log p(x | z) [B], KL(q || p) [B]) in nats, one sample per row's seed.

    For the Gaussian likelihood the image is dequantised with uniform noise from the
    same seed, so its term is a density on [0, 1)^D.
    """
    q = self.posterior(images)
    mean = self.decoder_mean(self._posterior_sample(q, seeds))
    x = self._observed(images, seeds)
    return self.likelihood_of(mean).log_prob(x), tfd.kl_divergence(q, self.prior())

  def importance_weighted(self, images, seeds, samples):
    """Returns float32 [B]: the importance-weighted bound (Burda et al. 2016) with `samples`
    draws from q(z | x), nats: log mean_k p(x, z_k) / q(z_k | x) (the one-sample ELBO
    with a Monte Carlo KL for samples=1; tighter as samples grow)."""
    q = self.posterior(images)
    eps = tf.transpose(layers.per_example_normal(seeds, [samples, self.latent_size]), [1, 0, 2])
    z = q.mean() + q.stddev() * eps  # [K, B, D]
    mean = tf.reshape(self.decoder_mean(tf.reshape(z, [-1, self.latent_size])),
                      tf.concat([[samples], tf.shape(images)], 0))  # [K, B, H, W, C]
    x = self._observed(images, seeds)
    log_w = self.likelihood_of(mean).log_prob(x) + self.prior().log_prob(z) - q.log_prob(z)
    return tf.reduce_logsumexp(log_w, 0) - np.log(samples)

  def log_prob(self, images):
    """Returns float32 [B]: the ELBO of each image in nats, one sample with fixed seeds
    (deterministic, and a row's value does not depend on the rest of the batch)."""
    seeds = tf.zeros([tf.shape(images)[0], 2], tf.int64)
    reconstruction, kl = self.elbo_terms(images, seeds)
    return reconstruction - kl

  def call(self, images):
    return self.log_prob(images)

  def eval_terms(self, images, seeds):
    """Returns (ELBO [B] nats, dimensions [B]); for the Gaussian likelihood the ELBO of
    the discrete image it bounds (the density's minus D log L)."""
    reconstruction, kl = self.elbo_terms(images, seeds)
    dims = float(np.prod(images.shape[1:]))
    elbo = reconstruction - kl - (dims * np.log(self.levels) if self.continuous else 0.0)
    return elbo, tf.fill(tf.shape(elbo), dims)

  def eval_extras(self, images, seeds):
    """Returns per-image [B] metrics of the reconstruction at the posterior mean:
    "reconstruction_rmse", the sqrt of the mean squared error on the 0..255 scale, and
    "sharpness", its high-frequency energy relative to the image's (`sharpness`)."""
    del seeds
    return reconstruction_metrics(self, images, self.output_mean(self.posterior(images).mean()))

  def train_loss(self, images, seeds):
    """Returns (per-example loss [B], terms): (-E_q log p(x | z) + kl_weight KL) per dimension."""
    reconstruction, kl = self.elbo_terms(images, seeds)
    dims = float(np.prod(images.shape[1:]))
    return (self.kl_weight * kl - reconstruction) / dims, {"kl": kl, "reconstruction": reconstruction}

  def sample(self, seeds):
    """Returns uint8 [B, H, W, C]: decode(z), z ~ N(0, I) from each row's own seed."""
    return self.decode(layers.per_example_normal(seeds, [self.latent_size]))
