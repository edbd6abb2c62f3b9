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
from zoo import eager
from zoo import layers
from zoo import units

tfd = tfp.distributions

METRIC = "bits_per_dim"  # zoo.units.METRICS key: the negative ELBO in bits/dim
LIKELIHOODS = ("discretized", "gaussian")


def conv_encoder(hidden, downsamples, out_size, seeds, name="encoder"):
  """Returns a Keras Sequential: images [B, H, W, C] -> features [B, out_size]; its
  initialisers draw from `seeds` (a `layers.Seeds`)."""
  convs = [keras.layers.Conv2D(hidden * 2 ** k, 3, strides=2, padding="same", activation="relu",
                               kernel_initializer=seeds.glorot()) for k in range(downsamples)]
  return keras.Sequential(convs + [keras.layers.Flatten(),
                                   keras.layers.Dense(out_size, kernel_initializer=seeds.glorot())],
                          name=name)


def deconv_decoder(hidden, downsamples, image_shape, seeds, name="decoder"):
  """Returns a Keras Sequential: latents [B, D] -> mean image [B, H, W, C] (linear).

  It starts at ceil(H / 2^downsamples) x ceil(W / 2^downsamples) and crops the last
  rows and columns that the doublings add beyond H x W.
  """
  height, width, channels = image_shape
  top = hidden * 2 ** max(downsamples - 1, 0)
  step = 2 ** downsamples
  h0, w0 = -(-height // step), -(-width // step)
  deconvs = [keras.layers.Conv2DTranspose(hidden * 2 ** k, 3, strides=2, padding="same",
                                          activation="relu", kernel_initializer=seeds.glorot())
             for k in reversed(range(downsamples))]
  return keras.Sequential(
      [keras.layers.Dense(h0 * w0 * top, activation="relu", kernel_initializer=seeds.glorot()),
       keras.layers.Reshape((h0, w0, top))] + deconvs
      + [keras.layers.Conv2D(channels, 3, padding="same", kernel_initializer=seeds.glorot()),
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


# -- the VAE family's shared parts ------------------------------------------------------------
# The VAE, the multi-stage VAE, LapCVAE and GVAE are each a keras.Model of their own (the
# multi-stage VAE extends the VAE's `Model` below). They share the image set-up and likelihood (`Pixels`,
# added by `add_pixels`) and the functions below, whose `model` is any of them: it has
# `pixels`, `latent_size`, `posterior(images)` (q(z | x) over all its latents),
# `decoder_mean(z)` (the likelihood's mean), `output_mean(z)` (the image it shows) and
# `elbo_terms(images, seeds)`; `elbo_terms` and `importance_weighted` use `prior()` too.


class Pixels(keras.layers.Layer):
  """The images of a VAE-family model and p(x | z) around a mean image; see the module
  docstring for the two likelihoods.

  From the config: the image size (height, width, channels), `levels`, `likelihood`
  ("discretized" or "gaussian"), `sigma`, and the weight log_sigma [C], per channel: fixed
  for "gaussian", learned for "discretized". Pixel values are on the [0, 1) scale.
  """

  def __init__(self, config, **kwargs):
    super().__init__(**kwargs)
    mc = config.model
    self.height, self.width, self.channels = (int(d) for d in config.data.image_shape)
    self.levels = int(mc.get("levels", 256))
    self.likelihood = mc.likelihood
    if self.likelihood not in LIKELIHOODS:
      raise ValueError(f"unknown config.model.likelihood {self.likelihood!r}; "
                       f"valid: {', '.join(LIKELIHOODS)}")
    self.continuous = self.likelihood == "gaussian"  # log_prob is a density on [0, 1)^D
    self.sigma = float(mc.sigma)  # the Gaussian's fixed (or initial) sigma, [0, 1) scale
    self.log_sigma = self.add_weight(
        shape=(self.channels,), initializer=keras.initializers.Constant(np.log(mc.sigma)),
        trainable=self.likelihood == "discretized", name="log_sigma")

  def scale(self, images):
    """Returns float32 [B, H, W, C]: the bin centres (k + 0.5) / levels of uint8 images."""
    return (tf.cast(images, tf.float32) + 0.5) / self.levels

  def network_input(self, images):
    """Returns `scale(images)` with the static shape [B, H, W, C] of the model's images,
    which dense layers and filters need (an export's input has none)."""
    return tf.ensure_shape(self.scale(images), [None, self.height, self.width, self.channels])

  def distribution(self, mean):
    """Returns p(x | z) for a mean image [B, H, W, C]: over the dequantised [0, 1) image
    ("gaussian") or over the integer image ("discretized"), event [H, W, C]."""
    sigma = tf.exp(self.log_sigma)  # [C]
    if self.continuous:
      return tfd.Independent(tfd.Normal(mean, sigma), reinterpreted_batch_ndims=3)
    return distributions.discretized_gaussian(mean, sigma, self.levels)

  def dequantised(self, images, seeds):
    """Returns float32 [B, H, W, C]: (images + u) / levels on [0, 1), u uniform from each
    row's reversed seed (the Gaussian likelihood's dequantisation)."""
    noise = layers.per_example_uniform(tf.reverse(seeds, [1]), tf.shape(images)[1:])
    return (tf.cast(images, tf.float32) + noise) / self.levels

  def observed(self, images, seeds):
    """Returns what p(x | z) scores: the integer image (float), or for the Gaussian the
    image dequantised on [0, 1) with uniform noise from each row's (reversed) seed."""
    return self.dequantised(images, seeds) if self.continuous else tf.cast(images, tf.float32)

  def to_images(self, mean):
    """Returns uint8 [B, H, W, C]: a mean image [0, 1) rounded to the nearest level."""
    return tf.cast(tf.clip_by_value(tf.round(mean * self.levels - 0.5), 0, self.levels - 1), tf.uint8)


def add_pixels(model, config):
  """Gives a VAE-family `model` (in its __init__) `Pixels(config)` as `model.pixels`, and
  the image attributes the model contract reads: height, width, channels, fixed_size,
  levels, continuous."""
  pixels = model.pixels = Pixels(config, name="pixels")
  # log_sigma also where checkpoints held it before `Pixels` (model/log_sigma); Keras
  # counts the variable once.
  model.log_sigma = pixels.log_sigma
  model.height, model.width, model.channels = pixels.height, pixels.width, pixels.channels
  model.fixed_size = (pixels.height, pixels.width)
  model.levels, model.continuous = pixels.levels, pixels.continuous


def standard_normal(size):
  """Returns N(0, I) over [size]: a tfd.MultivariateNormalDiag."""
  return tfd.MultivariateNormalDiag(loc=tf.zeros([size]))


def encoder_posterior(encoder, pixels, images, training=False):
  """Returns q(z | x), a tfd.MultivariateNormalDiag with batch [B], from an encoder of the
  model's uint8 images to the 2 latent_size posterior parameters.

  `training` reaches the encoder's layers: an encoder with batch norm (GVAE's "paper"
  encoder) normalises by the batch's statistics with training=True, which only the
  training losses pass, and by its moving averages otherwise."""
  return distributions.diagonal_gaussian(encoder(pixels.network_input(images), training=training))


def posterior_sample(q, seeds, latent_size):
  """Returns z [B, latent_size] = mean + stddev * eps of q, eps from each row's own seed."""
  eps = layers.per_example_normal(seeds, [latent_size])
  return q.mean() + q.stddev() * eps


def posterior_moments(model, images):
  """Returns {"mean", "stddev"}: float32 [B, latent_size] each, of model's q(z | x)."""
  q = model.posterior(images)
  return {"mean": q.mean(), "stddev": q.stddev()}


def decoded_images(model, latents):
  """Returns uint8 [B, H, W, C]: the image the model shows for latents [B, latent_size]."""
  return model.pixels.to_images(model.output_mean(tf.cast(latents, tf.float32)))


def reconstructed_images(model, images, seeds):
  """Returns uint8 [B, H, W, C]: the decoded z, z drawn from q(z | x) with row b's seed."""
  return decoded_images(model, posterior_sample(model.posterior(images), seeds, model.latent_size))


def prior_samples(model, seeds):
  """Returns uint8 [B, H, W, C]: the decoded z, z ~ N(0, I) from each row's own seed."""
  return decoded_images(model, layers.per_example_normal(seeds, [model.latent_size]))


def one_sample_elbo_terms(model, images, seeds):
  """Returns (E_q log p(x | z) [B], KL(q || p) [B]) in nats, one sample per row's seed,
  the KL analytic. For the Gaussian likelihood the image is dequantised with uniform
  noise from the same seed, so its term is a density on [0, 1)^D."""
  q = model.posterior(images)
  mean = model.decoder_mean(posterior_sample(q, seeds, model.latent_size))
  x = model.pixels.observed(images, seeds)
  return model.pixels.distribution(mean).log_prob(x), tfd.kl_divergence(q, model.prior())


def iw_bound(model, images, seeds, samples):
  """Returns float32 [B]: the importance-weighted bound (Burda et al. 2016) with `samples`
  draws from q(z | x), nats: log mean_k p(x, z_k) / q(z_k | x) (the one-sample ELBO
  with a Monte Carlo KL for samples=1; tighter as samples grow)."""
  q = model.posterior(images)
  eps = tf.transpose(layers.per_example_normal(seeds, [samples, model.latent_size]), [1, 0, 2])
  z = q.mean() + q.stddev() * eps  # [K, B, D]
  mean = tf.reshape(model.decoder_mean(tf.reshape(z, [-1, model.latent_size])),
                    tf.concat([[samples], tf.shape(images)], 0))  # [K, B, H, W, C]
  x = model.pixels.observed(images, seeds)
  log_w = model.pixels.distribution(mean).log_prob(x) + model.prior().log_prob(z) - q.log_prob(z)
  return tf.reduce_logsumexp(log_w, 0) - np.log(samples)


def fixed_seed_elbo(model, images):
  """Returns float32 [B]: the ELBO of each image in nats, one sample with fixed seeds
  (deterministic, and a row's value does not depend on the rest of the batch)."""
  seeds = tf.zeros([tf.shape(images)[0], 2], tf.int64)
  log_px, kl = model.elbo_terms(images, seeds)
  return log_px - kl


def discrete_elbo_terms(model, images, seeds):
  """Returns (ELBO [B] nats, dimensions [B]); for the Gaussian likelihood the ELBO of the
  discrete image it bounds (`units.discrete_log_prob`)."""
  log_px, kl = model.elbo_terms(images, seeds)
  dims = units.dims_per_image(images)
  elbo = units.discrete_log_prob(log_px - kl, dims, model.levels, model.continuous)
  return elbo, tf.fill(tf.shape(elbo), dims)


def posterior_mean_metrics(model, images):
  """Returns per-image [B] metrics of the reconstruction at the posterior mean:
  "reconstruction_rmse", the sqrt of the mean squared error on the 0..255 scale, and
  "sharpness", its high-frequency energy relative to the image's (`sharpness`)."""
  return reconstruction_metrics(model, images, model.output_mean(model.posterior(images).mean()))


class Model(keras.Model):
  """The VAE as a Keras model; see the module docstring.

  Model API: `encode` (posterior mean and stddev), `decode`, `reconstruct`, `sample`,
  `log_prob` (ELBO, nats), `eval_terms`, `eval_extras` (reconstruction error),
  `train_loss`.
  """

  conditional_inputs = ()
  capabilities = frozenset({contract.ENCODE, contract.DECODE, contract.EXTRAS})
  figure = "reconstructions"  # test images above their reconstructions

  def __init__(self, config, **kwargs):
    super().__init__(**kwargs)
    mc = config.model
    add_pixels(self, config)
    self.latent_size, self.kl_weight = int(mc.latent_size), float(mc.kl_weight)
    check_downsamples(mc.downsamples)
    seeds = layers.Seeds.of_model(mc.seed)
    self.encoder = conv_encoder(mc.hidden, mc.downsamples, 2 * self.latent_size, seeds)
    self.decoder = deconv_decoder(mc.hidden, mc.downsamples, config.data.image_shape, seeds)
    self.encoder.build((None, self.height, self.width, self.channels))
    self.decoder.build((None, self.latent_size))

  # -- the two halves ---------------------------------------------------------------------

  def scale(self, images):
    """Returns float32 [B, H, W, C]: the bin centres (k + 0.5) / levels of uint8 images."""
    return self.pixels.scale(images)

  def posterior(self, images, training=False):
    """Returns q(z | x): a tfd.MultivariateNormalDiag with batch [B], event [latent_size];
    `training` reaches the encoder's layers (batch norm, if any: `encoder_posterior`)."""
    return encoder_posterior(self.encoder, self.pixels, images, training)

  def prior(self):
    """Returns p(z) = N(0, I) over [latent_size]."""
    return standard_normal(self.latent_size)

  def decoder_mean(self, z):
    """Returns float32 [B, H, W, C]: the decoder's mean image on the [0, 1) scale."""
    return self.decoder(z)

  def likelihood_of(self, mean):
    """Returns p(x | z) for a mean image [B, H, W, C] (`Pixels.distribution`)."""
    return self.pixels.distribution(mean)

  def output_mean(self, z):
    """Returns float32 [B, H, W, C]: the image the model shows for latents z (samples,
    decodings, reconstructions); for the plain VAE the likelihood's mean."""
    return self.decoder_mean(z)

  def to_images(self, mean):
    """Returns uint8 [B, H, W, C]: a mean image [0, 1) rounded to the nearest level."""
    return self.pixels.to_images(mean)

  def dequantised(self, images, seeds):
    """Returns float32 [B, H, W, C]: images dequantised on [0, 1) (`Pixels.dequantised`)."""
    return self.pixels.dequantised(images, seeds)

  # -- model API --------------------------------------------------------------------------

  def encode(self, images):
    """Returns {"mean", "stddev"}: float32 [B, latent_size] each, of q(z | x)."""
    return posterior_moments(self, images)

  def decode(self, latents):
    """Returns uint8 [B, H, W, C]: the decoder's mean image for latents [B, latent_size]."""
    return decoded_images(self, latents)

  def reconstruct(self, images, seeds):
    """Returns uint8 [B, H, W, C]: decode(z), z drawn from q(z | x) with row b's seed."""
    return reconstructed_images(self, images, seeds)

  def elbo_terms(self, images, seeds):
    """Returns (E_q log p(x | z) [B], KL(q || p) [B]) in nats (`one_sample_elbo_terms`)."""
    return one_sample_elbo_terms(self, images, seeds)

  def importance_weighted(self, images, seeds, samples):
    """Returns float32 [B]: the importance-weighted bound with `samples` draws, nats (`iw_bound`)."""
    return iw_bound(self, images, seeds, samples)

  @eager.graph_when_eager
  def log_prob(self, images):
    """Returns float32 [B]: the ELBO of each image in nats, one sample with fixed seeds."""
    return fixed_seed_elbo(self, images)

  def call(self, images):
    return self.log_prob(images)

  def eval_terms(self, images, seeds):
    """Returns (ELBO [B] nats, dimensions [B]); for the Gaussian likelihood the ELBO of
    the discrete image it bounds."""
    return discrete_elbo_terms(self, images, seeds)

  def eval_extras(self, images, seeds):
    """Returns per-image [B] metrics of the reconstruction at the posterior mean:
    "reconstruction_rmse" (0..255 scale) and "sharpness" (`posterior_mean_metrics`)."""
    del seeds  # at the posterior mean
    return posterior_mean_metrics(self, images)

  def train_loss(self, images, seeds):
    """Returns (per-example loss [B], terms): (-E_q log p(x | z) + kl_weight KL) per dimension."""
    log_px, kl = self.elbo_terms(images, seeds)
    return ((self.kl_weight * kl - log_px) / units.dims_per_image(images),
            {"kl": kl, "reconstruction": log_px})

  @eager.graph_when_eager
  def sample(self, seeds):
    """Returns uint8 [B, H, W, C]: decode(z), z ~ N(0, I) from each row's own seed."""
    return prior_samples(self, seeds)
