r"""Deep residual VAE and multi-stage VAE (Cai, Gao & Ji 2017, `shared/papers/multistage_vae.txt`).

Both keep the VAE of `zoo.vae` (encoder, q(z | x), p(z), the deconv decoder f_1) and
append `stages - 1` refinement networks f_2, ..., f_N, each mapping an image to an image:

  x_1 = f_1(z),   x_s = f_s(x_{s-1})   (s = 2..N)

`config.model.variant`:

  * "residual" (the deep residual VAE, section 3.1): the decoder is f_N o ... o f_1 and
    the one likelihood (the l2 loss) is on its output:
      L = -E_q log p(x | x_N) + KL(q(z | x) || p(z))
  * "multistage" (section 3.2, eqs. 12-13): the likelihood (l2) is on the coarse image
    x_1, and every refinement stage has its own l1 loss, trained jointly:
      L = -E_q log p(x | x_1) + KL + sum_{s >= 2} E_q |x - x_s|_1 / b
    The l1 loss is a Laplace negative log-likelihood of scale b = `config.model.sigma`
    (constants dropped), so it is weighed like the l2 term of the same sigma.

The ELBO reported (bits/dim) is that of the model's likelihood: of the whole decoder for
"residual", of the coarse stage for "multistage" (the refinement stages are a
deterministic post-processor there, not part of the density). Reconstructions, samples
and `decode` show the last stage's image x_N; `stage_images` returns every stage's.

Choices the paper leaves open, made here: a refinement network is a 3x3 conv to
`refine_hidden` features, `blocks` residual blocks (conv 3x3, ReLU, conv 3x3, plus the
skip, as the paper's "two convolution layers" per block), and a 3x3 conv back to the image
channels that is added to its input image; that last conv starts at zero, so every
stage starts as the identity and training can only refine. The paper's blocks end in
batch normalisation; it is left out here because per-replica batch statistics would
make a step depend on how the global batch is split across replicas.

Train: python -m training.run --model=msvae --data=lfw_faces [--config.model.variant=residual]
"""
import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from zoo import vae

tfd = tfp.distributions

METRIC = vae.METRIC
VARIANTS = ("multistage", "residual")


class ResidualBlock(keras.layers.Layer):
  """x + conv3x3(relu(conv3x3(x))): features [B, H, W, F] -> [B, H, W, F]."""

  def __init__(self, features, seeds, **kwargs):
    super().__init__(**kwargs)
    glorot = lambda: keras.initializers.GlorotUniform(seed=next(seeds))
    self.conv1 = keras.layers.Conv2D(features, 3, padding="same", activation="relu",
                                     kernel_initializer=glorot())
    self.conv2 = keras.layers.Conv2D(features, 3, padding="same", kernel_initializer=glorot())

  def call(self, x):
    return x + self.conv2(self.conv1(x))


def refiner(channels, hidden, blocks, seeds, name):
  """Returns a refinement network f_s: image [B, H, W, C] -> image [B, H, W, C].

  It adds a correction to its input; the correction's last conv starts at zero.
  """
  image = keras.Input((None, None, channels))
  features = keras.layers.Conv2D(hidden, 3, padding="same", activation="relu",
                                 kernel_initializer=keras.initializers.GlorotUniform(seed=next(seeds)))(image)
  for k in range(blocks):
    features = ResidualBlock(hidden, seeds, name=f"{name}_block{k}")(features)
  correction = keras.layers.Conv2D(channels, 3, padding="same", kernel_initializer="zeros")(features)
  return keras.Model(image, keras.layers.Add()([image, correction]), name=name)


class Model(vae.Model):
  """The deep residual / multi-stage VAE; see the module docstring. The VAE's model API,
  plus `stage_means` and `stage_images` (every stage's output)."""

  def __init__(self, config, **kwargs):
    super().__init__(config, **kwargs)
    mc = config.model
    self.variant, self.stages = mc.variant, int(mc.stages)
    if self.variant not in VARIANTS:
      raise ValueError(f"unknown config.model.variant {self.variant!r}; valid: {', '.join(VARIANTS)}")
    if self.stages < 2:
      raise ValueError(f"config.model.stages={self.stages}: the decoder needs at least 2 stages "
                       "(the VAE's and one refinement); use --model=vae for one")
    seeds = iter(range(1000 * mc.seed + 500, 1000 * mc.seed + 1000))
    self.refiners = [refiner(self.channels, mc.refine_hidden, mc.blocks, seeds, f"stage{s + 2}")
                     for s in range(self.stages - 1)]

  def stage_means(self, z):
    """Returns [x_1, ..., x_N]: float32 [B, H, W, C] each on the [0, 1) scale."""
    outputs = [super().decoder_mean(z)]
    for refine in self.refiners:
      outputs.append(refine(outputs[-1]))
    return outputs

  def stage_images(self, latents):
    """Returns [uint8 [B, H, W, C]] per stage: what each stage makes of latents [B, D]."""
    return [self.to_images(x) for x in self.stage_means(tf.cast(latents, tf.float32))]

  def decoder_mean(self, z):
    """Returns the likelihood's mean: x_N ("residual") or the coarse x_1 ("multistage")."""
    if self.variant == "multistage":
      return super().decoder_mean(z)
    return self.stage_means(z)[-1]

  def output_mean(self, z):
    """Returns x_N, the last stage's image."""
    return self.stage_means(z)[-1]

  def train_loss(self, images, seeds):
    """Returns (per-example loss [B], terms) per dimension: eq. 11 or eqs. 12-13."""
    q = self.posterior(images)
    outputs = self.stage_means(self._posterior_sample(q, seeds))
    mean = outputs[0] if self.variant == "multistage" else outputs[-1]
    reconstruction = self.likelihood_of(mean).log_prob(self._observed(images, seeds))
    kl = tfd.kl_divergence(q, self.prior())
    terms = {"kl": kl, "reconstruction": reconstruction}
    loss = self.kl_weight * kl - reconstruction
    if self.variant == "multistage":
      target, b = self.scale(images), self.sigma
      for s, x in enumerate(outputs[1:], start=2):
        terms[f"l1_stage{s}"] = tf.reduce_sum(tf.abs(target - x), [1, 2, 3]) / b
        loss += terms[f"l1_stage{s}"]
    return loss / float(np.prod(images.shape[1:])), terms
