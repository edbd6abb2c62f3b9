r"""Deep residual VAE and multi-stage VAE (Cai, Gao & Ji 2017, `shared/papers/multistage_vae.txt`).

Both keep the VAE of `zoo.vae` (encoder, q(z | x), p(z), the deconv decoder f_1) and
append `stages - 1` refinement networks f_2, ..., f_N, each mapping an image to an image:

  x_1 = f_1(z),   x_s = f_s(x_{s-1})   (s = 2..N)

`config.model.variant`:

  * "residual" (the deep residual VAE, section 2.2, eqs. 9-11): the decoder is
    f_N o ... o f_1 and the one likelihood (the l2 loss) is on its output:
      L = -E_q log p(x | x_N) + KL(q(z | x) || p(z))
  * "multistage" (section 2.3, eqs. 12-15): the likelihood (l2) is on the coarse image
    x_1, and every refinement stage has its own l1 loss, trained jointly:
      L = -E_q log p(x | x_1) + KL + sum_{s >= 2} E_q |x - x_s|_1 / b
    The l1 loss is a Laplace negative log-likelihood of scale b = `config.model.sigma`
    (constants dropped), so it is weighed like the l2 term of the same sigma.

The ELBO reported (bits/dim) is that of the model's likelihood: of the whole decoder for
"residual", of the coarse stage for "multistage" (the refinement stages are a
deterministic post-processor there, not part of the density). Reconstructions, samples
and `decode` show the last stage's image x_N; `stage_images` returns every stage's.

The paper's MNIST model (section 3.1; `configs/msvae.py:paper`): three stride-2
convolutions in the encoder (`downsamples=3`), 128 latents, three deconvolutions, five
residual blocks "of two convolution layers followed by a batch normalization layer"
(`blocks=5`, `batch_norm=True`), the l2 loss on the coarse image (`likelihood=gaussian`,
a fixed `sigma`) and the l1 loss on the refined one.

Choices the paper leaves open, made here: a refinement network is a 3x3 conv to
`refine_hidden` features, `blocks` residual blocks (conv 3x3, ReLU, conv 3x3, plus the
skip), and a 3x3 conv back to the image channels that is added to its input image; that
last conv starts at zero, so every stage starts as the identity and training can only
refine. With `batch_norm` each block's second conv is followed by batch normalisation,
x + BN(conv(relu(conv(x)))): batch statistics in `train_loss`, the moving averages
(checkpointed variables) everywhere else, so `log_prob`, evaluation and the export are
deterministic and a row's value does not depend on its batch. The statistics are
synchronised across replicas (the global batch's), so a step under MirroredStrategy is
the same as on one device. It is off by default: the default models predate it, and a
training step's output then depends on the rest of the batch.

Train: python -m training.run --model=msvae --data=lfw_faces [--config.model.variant=residual]
       python -m training.run --model=msvae --data=mnist5k --config=configs/msvae.py:paper
"""
import keras
import tensorflow as tf
import tensorflow_probability as tfp

from zoo import layers
from zoo import units
from zoo import vae

tfd = tfp.distributions

METRIC = vae.METRIC
VARIANTS = ("multistage", "residual")


class ResidualBlock(keras.layers.Layer):
  """x + conv3x3(relu(conv3x3(x))), with `batch_norm` x + BN(conv3x3(relu(conv3x3(x)))):
  features [B, H, W, F] -> [B, H, W, F]. BN uses batch statistics only with training=True."""

  def __init__(self, features, seeds, batch_norm=False, **kwargs):
    super().__init__(**kwargs)
    self.conv1 = keras.layers.Conv2D(features, 3, padding="same", activation="relu",
                                     kernel_initializer=seeds.glorot())
    # Before batch norm a bias is redundant (beta shifts instead) and its gradient is zero
    # up to rounding, which Adam would blow up to full steps.
    self.conv2 = keras.layers.Conv2D(features, 3, padding="same", use_bias=not batch_norm,
                                     kernel_initializer=seeds.glorot())
    # Synchronised: the global batch's statistics under any strategy (1 replica = 2).
    self.norm = keras.layers.BatchNormalization(synchronized=True) if batch_norm else None

  def call(self, x, training=False):
    y = self.conv2(self.conv1(x))
    return x + (y if self.norm is None else self.norm(y, training=training))


def refiner(channels, hidden, blocks, seeds, name, batch_norm=False):
  """Returns a refinement network f_s: image [B, H, W, C] -> image [B, H, W, C]; call it
  with training=True in the training loss (batch norm's batch statistics).

  It adds a correction to its input; the correction's last conv starts at zero.
  """
  image = keras.Input((None, None, channels))
  features = keras.layers.Conv2D(hidden, 3, padding="same", activation="relu",
                                 kernel_initializer=seeds.glorot())(image)
  for k in range(blocks):
    features = ResidualBlock(hidden, seeds, batch_norm, name=f"{name}_block{k}")(features)
  correction = keras.layers.Conv2D(channels, 3, padding="same", kernel_initializer="zeros")(features)
  return keras.Model(image, keras.layers.Add()([image, correction]), name=name)


class Model(vae.Model):
  """The deep residual / multi-stage VAE; see the module docstring. The VAE's model API,
  plus `stage_means` and `stage_images` (every stage's output)."""

  figure = "stages"  # every stage's image of a sample, side by side

  def __init__(self, config, **kwargs):
    super().__init__(config, **kwargs)
    mc = config.model
    self.variant, self.stages = mc.variant, int(mc.stages)
    if self.variant not in VARIANTS:
      raise ValueError(f"unknown config.model.variant {self.variant!r}; valid: {', '.join(VARIANTS)}")
    if self.stages < 2:
      raise ValueError(f"config.model.stages={self.stages}: the decoder needs at least 2 stages "
                       "(the VAE's and one refinement); use --model=vae for one")
    seeds = layers.Seeds.of_model(mc.seed, offset=500)  # the VAE's networks take the first 500
    self.refiners = [refiner(self.channels, mc.refine_hidden, mc.blocks, seeds, f"stage{s + 2}",
                             bool(mc.get("batch_norm", False)))
                     for s in range(self.stages - 1)]

  def stage_means(self, z, training=False):
    """Returns [x_1, ..., x_N]: float32 [B, H, W, C] each on the [0, 1) scale; `training`:
    batch norm (if any) on the batch's statistics, updating its moving averages."""
    outputs = [super().decoder_mean(z)]
    for refine in self.refiners:
      outputs.append(refine(outputs[-1], training=training))
    return outputs

  def stage_images(self, latents):
    """Returns [uint8 [B, H, W, C]] per stage: what each stage makes of latents [B, D]."""
    return [self.pixels.to_images(x) for x in self.stage_means(tf.cast(latents, tf.float32))]

  def decoder_mean(self, z):
    """Returns the likelihood's mean: x_N ("residual") or the coarse x_1 ("multistage")."""
    if self.variant == "multistage":
      return super().decoder_mean(z)
    return self.stage_means(z)[-1]

  def output_mean(self, z):
    """Returns x_N, the last stage's image."""
    return self.stage_means(z)[-1]

  def train_loss(self, images, seeds):
    """Returns (per-example loss [B], terms) per dimension: eqs. 9-11 or 12-15. Batch norm
    (if any) runs on the batch's statistics here, and only here."""
    q = self.posterior(images)
    outputs = self.stage_means(vae.posterior_sample(q, seeds, self.latent_size), training=True)
    mean = outputs[0] if self.variant == "multistage" else outputs[-1]
    reconstruction = self.pixels.distribution(mean).log_prob(self.pixels.observed(images, seeds))
    kl = tfd.kl_divergence(q, self.prior())
    terms = {"kl": kl, "reconstruction": reconstruction}
    loss = self.kl_weight * kl - reconstruction
    if self.variant == "multistage":
      target, b = self.pixels.scale(images), self.pixels.sigma
      for s, x in enumerate(outputs[1:], start=2):
        terms[f"l1_stage{s}"] = tf.reduce_sum(tf.abs(target - x), [1, 2, 3]) / b
        loss += terms[f"l1_stage{s}"]
    return loss / units.dims_per_image(images), terms
