r"""GVAE (`shared/papers/gvae.txt`): a VAE encoder, a ResNet generator and a WGAN-GP critic.

  q(z | x) = N(mu(x), diag(sigma(x)^2))   the VAE's conv encoder (`zoo.vae.conv_encoder`),
                                          or section 4.2's (`config.model.encoder="paper"`)
  G(z)     in [-1, 1]^(H x W x C)          ResNet generator (paper Table 1, scaled)
  D(x)     in R                            critic, ResNet blocks (paper Table 2, scaled)
  p(x | z) = N((G(z) + 1) / 2, sigma^2)    the VAE's image likelihood around the generator

The generator is fed two kinds of latents (section 4.2): z_q ~ q(z | x) (the encoder's,
a reconstruction) and z_p ~ N(0, I) (a sample); the critic sees both kinds of images
against real ones. Training alternates, per step of the shared loop (section 4.3 with the
WGAN-GP objective of Gulrajani et al. 2017):

  critic, `n_critic` times:
    L_D = 1/2 (D(G(z_p)) + D(G(z_q))) - D(x) + lambda P,
    P = (|grad D(x~)|_2 - 1)^2,  x~ = alpha x + (1 - alpha) G(z_p),  alpha ~ U(0, 1) per example
    (`penalty_on="prior_and_reconstruction"`: P is the mean of that and the same at
    x~' = alpha' x + (1 - alpha') G(z_q), alpha' drawn independently)
  encoder + generator, as one network, once:
    L_G = (-log p(x | G(z_q)) + beta KL(q(z | x) || N(0, I))) / dims
          - gamma 1/2 (D(G(z_p)) + D(G(z_q)))

each loss averaged over the global batch, each network with its own Adam (learning rate
1e-4, betas (0.5, 0.9)). Images are on [-1, 1] for the critic (the paper normalises its
data so), real ones uniformly dequantised like the Gaussian likelihood's.

The encoder, `config.model.encoder`:
  * "vae" (default): the VAE's, `downsamples` stride-2 3x3 convs with ReLU and a dense
    layer to q's parameters.
  * "paper" (section 4.2: "four 3D convolution layers, each of which uses 3x3 filters ...
    We use Batch Normalization and Leaky Rectified Linear Unit (LeakyReLU) layers after
    each layer"; 2-D convolutions here, the images are 2-D): four 3x3 convs of stride 2
    (strides not given; halving four times takes 28x28 to 2x2) with `hidden`, 2, 4 times
    `hidden` features, each of the first three followed by batch norm and LeakyReLU(0.2);
    the fourth outputs q's 2 `latent_size` parameters per position ("output channel
    sizes are set accordingly"), linear (an activation would bias the means, batch norm
    would fix their batch statistics), averaged over the positions left. Batch norm uses
    the batch's statistics in the training losses (critic and generator phases, both of
    which encode the batch) and its moving averages (checkpointed variables) everywhere
    else, so `log_prob`, evaluation and the export are deterministic and per row. The
    statistics are synchronised over replicas (the global batch's), so 2 replicas step
    as 1 does.

Choices left open by the paper, made here (`configs/gvae.py` holds the numbers):
  * Sizes: Table 1 starts at 32x32 with 256 channels, then two upsamplings to 128x128
    with 128 and 64; here the generator starts at ceil(H / 2^upsamples) (default two
    upsamplings: 8x8 digits from 2x2, MNIST's 28x28 from 7x7), `hidden` channels at the
    finest scale and twice as many per coarser one, two residual blocks per scale, the
    output cropped to H x W. The critic follows Table 2: a 3x3 conv to `hidden`
    channels, two blocks (the second doubling the channels), 2x average pooling, two
    blocks (doubling again), 2x average pooling, then one dense output — one score,
    where Table 2 lists 1000 units: a Wasserstein critic is scalar.
  * Residual blocks are pre-activation, x + conv3x3(act(conv3x3(act(x)))) with a 1x1
    conv on the shortcut when the channels change: ReLU in the generator, LeakyReLU(0.2)
    in the critic (section 4.2). The paper's blocks also hold max pooling, 30 % dropout
    and batch normalisation: pooling inside a block does not fit the tables' sizes,
    batch norm is not allowed in a WGAN-GP critic (the penalty is per example; section
    4.2 also puts batch norm in its four-conv "discriminator", which Table 2 replaces by
    ResNet blocks) and is left out of the generator (a sample would depend on its batch
    in training), and dropout would make the generator's image random given z — all
    three are left out.
  * The penalty: the paper says only "we used the gradient penalty term to stabilize the
    training" (section 4.2). WGAN-GP samples x~ on lines between real images and the
    fakes the critic is trained against; here those are both G(z_p) and G(z_q) (L_D
    scores both), so `penalty_on="prior_and_reconstruction"` (the `paper` preset)
    penalises the critic on both kinds of lines, each x~' between an image and its own
    reconstruction. The default, "prior", interpolates towards prior samples only,
    leaving the critic's slope unconstrained on the lines towards the reconstructions
    that it also scores. alpha is drawn uniformly per example (not from a normal
    distribution, a bug of widely copied code); lambda = 10, n_critic = 5 (WGAN-GP's
    defaults).
  * The critic steps of one loop step reuse that step's real batch with fresh z, eps and
    alpha each time (the loop hands one batch per step); WGAN-GP draws a new real batch
    for each critic step.
  * The loss weights beta (`kl_weight`, 1: the ELBO) and gamma (`adversarial_weight`) are
    ours; the reconstruction term is the VAE's fixed-sigma Gaussian (the l2 loss), so
    the reported ELBO, KL and reconstruction error (paper Table 5) are the VAE's.

Evaluation (the loop): negative ELBO in bits/dim, reconstruction RMSE and sharpness (as
the VAE), KL per image and the importance-weighted log-likelihood bound
(`iw_bits_per_dim`, `config.eval.iw_samples` draws), and with
`config.eval.sample_quality` = N: MMD^2 between N samples and N held-out images and the
MS-SSIM diversity of the samples (`zoo.metrics`, paper Tables 3-4).

Train: python -m training.run --model=gvae --data=digits
       python -m training.run --model=gvae --data=mnist5k --config=configs/gvae.py:paper
"""
import keras
import tensorflow as tf
import tensorflow_probability as tfp

from zoo import contract
from zoo import eager
from zoo import layers
from zoo import units
from zoo import vae

tfd = tfp.distributions

METRIC = vae.METRIC  # the negative ELBO in bits/dim
ENCODERS = ("vae", "paper")
PENALTIES = ("prior", "prior_and_reconstruction")
# Random stream of the second penalty's alpha: clear of streams 0-2 of every critic update
# (they start at 10 + k, k < n_critic).
RECONSTRUCTION_ALPHA_STREAM = 1000


def _stream(seeds, k):
  """Returns int64 [B, 2]: per-example seeds of random stream k (distinct keys per k)."""
  return seeds + tf.constant([[k, 0]], tf.int64)


class ResidualBlock(keras.layers.Layer):
  """x + conv3x3(act(conv3x3(act(x)))), a 1x1 conv on the shortcut when channels change."""

  def __init__(self, channels, activation, seeds, **kwargs):
    super().__init__(**kwargs)
    self.channels, self.activation = channels, activation
    # The biases are added by hand (and the critic's LeakyReLU is a maximum): grappler's
    # remapper fails, logging an error, when it fuses Conv2D + BiasAdd with the residual
    # Add or a LeakyRelu whose gradient (the gradient penalty's) needs the unfused value.
    self.conv1 = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False,
                                     kernel_initializer=seeds.glorot())
    self.conv2 = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False,
                                     kernel_initializer=seeds.glorot())
    self.shortcut_seed = seeds.next()

  def build(self, input_shape):
    self.conv1.build(input_shape)
    self.conv2.build(tuple(input_shape[:-1]) + (self.channels,))
    self.bias1 = self.add_weight(shape=(self.channels,), initializer="zeros", name="bias1")
    self.bias = self.add_weight(shape=(self.channels,), initializer="zeros", name="bias")
    self.shortcut = None
    if input_shape[-1] != self.channels:
      self.shortcut = keras.layers.Conv2D(
          self.channels, 1, kernel_initializer=keras.initializers.GlorotUniform(seed=self.shortcut_seed))
      self.shortcut.build(input_shape)

  def call(self, x):
    y = self.conv2(self.activation(self.conv1(self.activation(x)) + self.bias1))
    return (x if self.shortcut is None else self.shortcut(x)) + y + self.bias


def paper_encoder(hidden, out_size, seeds, name="encoder"):
  """Returns a Keras Sequential: images [B, H, W, C] -> features [B, out_size] (section 4.2):
  four 3x3 stride-2 convs, batch norm + LeakyReLU(0.2) after the first three, the last
  one linear to `out_size` channels, averaged over its positions. Call it with
  training=True in the training losses (batch statistics)."""
  stack = []
  for k in range(3):  # the bias is batch norm's beta
    stack += [keras.layers.Conv2D(hidden * 2 ** k, 3, strides=2, padding="same", use_bias=False,
                                  kernel_initializer=seeds.glorot()),
              keras.layers.BatchNormalization(synchronized=True),  # the global batch's statistics
              keras.layers.LeakyReLU(0.2)]
  stack += [keras.layers.Conv2D(out_size, 3, strides=2, padding="same",
                                kernel_initializer=seeds.glorot()),
            keras.layers.GlobalAveragePooling2D()]  # [B, out_size]
  return keras.Sequential(stack, name=name)


def resnet_generator(hidden, upsamples, image_shape, seeds, name="generator"):
  """Returns a Keras Sequential: latents [B, D] -> images [B, H, W, C] in [-1, 1] (Table 1)."""
  height, width, channels = image_shape
  step = 2 ** upsamples
  h0, w0 = -(-height // step), -(-width // step)
  top = hidden * 2 ** upsamples
  stack = [keras.layers.Dense(h0 * w0 * top, kernel_initializer=seeds.glorot()),
           keras.layers.Reshape((h0, w0, top))]
  for k in reversed(range(upsamples + 1)):  # channels hidden * 2^k at the k-th finest scale
    stack += [ResidualBlock(hidden * 2 ** k, tf.nn.relu, seeds) for _ in range(2)]
    if k:
      stack.append(keras.layers.UpSampling2D(2))
  stack += [keras.layers.Activation("relu"),
            keras.layers.Conv2D(channels, 3, padding="same", activation="tanh",
                                kernel_initializer=seeds.glorot()),
            keras.layers.Cropping2D(((0, h0 * step - height), (0, w0 * step - width)))]
  return keras.Sequential(stack, name=name)


def resnet_critic(hidden, seeds, name="critic"):
  """Returns a Keras Sequential: images [B, H, W, C] in [-1, 1] -> scores [B, 1] (Table 2,
  no normalisation layers)."""
  leaky = lambda x: tf.maximum(x, 0.2 * x)  # LeakyReLU(0.2), not its op: see ResidualBlock
  return keras.Sequential(
      [keras.layers.Conv2D(hidden, 3, padding="same", kernel_initializer=seeds.glorot()),
       ResidualBlock(hidden, leaky, seeds), ResidualBlock(2 * hidden, leaky, seeds),
       keras.layers.AveragePooling2D(2, padding="same"),
       ResidualBlock(2 * hidden, leaky, seeds), ResidualBlock(4 * hidden, leaky, seeds),
       keras.layers.AveragePooling2D(2, padding="same"),
       keras.layers.Activation(leaky), keras.layers.Flatten(),
       keras.layers.Dense(1, kernel_initializer=seeds.glorot())], name=name)


def interpolation_weights(seeds):
  """Returns float32 [B, 1, 1, 1]: the penalty's alpha ~ U(0, 1), one per example, from
  stream 2 of each row's seed."""
  return layers.per_example_uniform(_stream(seeds, 2), [1, 1, 1])


def penalty(critic, real, fake_p, fake_q, seeds, on="prior"):
  """Returns float32 [B]: the critic's gradient penalty per example, on lines towards prior
  samples `fake_p` (alpha from stream 2), and for on="prior_and_reconstruction" the mean
  of that and the same towards the reconstructions `fake_q` (an independent alpha); all
  images [B, H, W, C] on [-1, 1]."""
  alpha = interpolation_weights(seeds)
  if on == "prior":
    return gradient_penalty(critic, real, fake_p, alpha)
  alpha_q = interpolation_weights(_stream(seeds, RECONSTRUCTION_ALPHA_STREAM))
  both = gradient_penalty(critic, tf.concat([real, real], 0), tf.concat([fake_p, fake_q], 0),
                          tf.concat([alpha, alpha_q], 0))  # one critic pass, [2B]
  return tf.reduce_mean(tf.reshape(both, [2, -1]), 0)


def gradient_penalty(critic, real, fake, alpha):
  """Returns float32 [B]: (|grad_x D(x~)|_2 - 1)^2 at x~ = alpha real + (1 - alpha) fake,
  per example; alpha [B, 1, 1, 1]."""
  mix = alpha * real + (1.0 - alpha) * fake
  with tf.GradientTape() as tape:
    tape.watch(mix)
    scores = critic(mix)
  grad = tape.gradient(scores, mix)
  norm = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=[1, 2, 3]) + 1e-12)
  return tf.square(norm - 1.0)


class Model(keras.Model):
  """GVAE as a Keras model; see the module docstring.

  On top of the VAE's API (`encode`, `decode`, `reconstruct`, `sample`, `log_prob`,
  `eval_terms`, `eval_extras`, `train_loss` for the encoder + generator): `critic_loss`,
  `make_optimizers` and `training_phases`, which the training loop runs instead of its
  one-optimizer step. The image set-up and likelihood (`pixels`) and the generic methods
  are the VAE family's (`zoo.vae`).
  """

  conditional_inputs = ()
  capabilities = vae.Model.capabilities | {contract.PARTS, contract.PHASES}
  figure = "reconstructions_and_samples"  # test images, VAE-style reconstructions, samples

  def __init__(self, config, **kwargs):
    super().__init__(**kwargs)
    mc = config.model
    vae.add_pixels(self, config)
    self.latent_size, self.kl_weight = int(mc.latent_size), float(mc.kl_weight)
    self.adversarial_weight, self.penalty_weight = float(mc.adversarial_weight), float(mc.penalty_weight)
    self.n_critic = int(mc.n_critic)
    self.betas = (float(mc.beta_1), float(mc.beta_2))
    self.iw_samples = int(config.eval.get("iw_samples", 0))
    self.encoder_kind = mc.get("encoder", "vae")
    self.penalty_on = mc.get("penalty_on", "prior")
    if self.encoder_kind not in ENCODERS:
      raise ValueError(f"unknown config.model.encoder {self.encoder_kind!r}; valid: {', '.join(ENCODERS)}")
    if self.penalty_on not in PENALTIES:
      raise ValueError(f"unknown config.model.penalty_on {self.penalty_on!r}; valid: {', '.join(PENALTIES)}")
    vae.check_downsamples(mc.downsamples)
    if self.n_critic < 1:
      raise ValueError(f"config.model.n_critic={self.n_critic} must be at least 1")
    if mc.upsamples < 0:
      raise ValueError(f"config.model.upsamples={mc.upsamples} must be at least 0")
    seeds = layers.Seeds.of_model(mc.seed)
    if self.encoder_kind == "paper":
      self.encoder = paper_encoder(mc.hidden, 2 * self.latent_size, seeds)
    else:
      self.encoder = vae.conv_encoder(mc.hidden, mc.downsamples, 2 * self.latent_size, seeds)
    self.generator = resnet_generator(mc.hidden, mc.upsamples, config.data.image_shape, seeds)
    self.critic = resnet_critic(mc.critic_hidden, seeds)
    self.encoder.build((None, self.height, self.width, self.channels))
    self.generator.build((None, self.latent_size))
    self.critic.build((None, self.height, self.width, self.channels))

  # -- the networks -----------------------------------------------------------------------

  def posterior(self, images, training=False):
    """Returns q(z | x): a tfd.MultivariateNormalDiag with batch [B], event [latent_size];
    `training` (the training losses only) puts the "paper" encoder's batch norm on the
    batch's statistics (`vae.encoder_posterior`)."""
    return vae.encoder_posterior(self.encoder, self.pixels, images, training)

  def prior(self):
    """Returns p(z) = N(0, I) over [latent_size]."""
    return vae.standard_normal(self.latent_size)

  def decoder_mean(self, z):
    """Returns float32 [B, H, W, C]: the generator's image on the [0, 1] scale."""
    return (self.generator(z) + 1.0) / 2.0

  output_mean = decoder_mean  # samples and reconstructions show the likelihood's mean

  def real(self, images, seeds):
    """Returns float32 [B, H, W, C]: images dequantised (the Gaussian likelihood's noise)
    and put on the critic's [-1, 1] scale."""
    return 2.0 * self.pixels.dequantised(images, seeds) - 1.0

  def score(self, x):
    """Returns float32 [B]: the critic's scores of images on [-1, 1]."""
    return self.critic(x)[:, 0]

  def trainable_for(self, part):
    """Returns the variables of "generator" (encoder + generator, one network, with a
    learned sigma if any), "critic", or "all"."""
    if part == "critic":
      return list(self.critic.trainable_variables)
    if part == "generator":
      sigma = [self.log_sigma] if self.log_sigma.trainable else []
      return list(self.encoder.trainable_variables) + list(self.generator.trainable_variables) + sigma
    if part in (None, "all"):
      return self.trainable_variables
    raise ValueError(f"unknown part {part!r} of a GVAE; valid: generator, critic, all")

  # -- losses -----------------------------------------------------------------------------

  def _fakes(self, images, seeds):
    """Returns (q(z | x), G(z_q), G(z_p)) [B, H, W, C] on [-1, 1]; z_q from q with the
    row's seed, z_p ~ N(0, I) from its stream 1. For the training losses only: the
    encoder's batch norm (if any) uses the batch's statistics."""
    q = self.posterior(images, training=True)
    z = tf.concat([vae.posterior_sample(q, seeds, self.latent_size),
                   layers.per_example_normal(_stream(seeds, 1), [self.latent_size])], 0)
    fake_q, fake_p = tf.split(self.generator(z), 2, axis=0)
    return q, fake_q, fake_p

  def critic_loss(self, images, seeds):
    """Returns (per-example L_D [B], terms): the critic's WGAN-GP loss."""
    _, fake_q, fake_p = self._fakes(images, seeds)
    fake_q, fake_p = tf.stop_gradient(fake_q), tf.stop_gradient(fake_p)
    real = self.real(images, seeds)
    s_real, s_q, s_p = tf.split(self.score(tf.concat([real, fake_q, fake_p], 0)), 3)
    slope = penalty(self.critic, real, fake_p, fake_q, seeds, self.penalty_on)
    distance = s_real - 0.5 * (s_q + s_p)  # the critic's estimate of W1, per example
    return -distance + self.penalty_weight * slope, {"wasserstein": distance, "penalty": slope}

  def train_loss(self, images, seeds):
    """Returns (per-example L_G [B], terms): the encoder + generator loss."""
    q, fake_q, fake_p = self._fakes(images, seeds)
    reconstruction = self.pixels.distribution((fake_q + 1.0) / 2.0).log_prob(
        self.pixels.observed(images, seeds))
    kl = tfd.kl_divergence(q, self.prior())
    s_q, s_p = tf.split(self.score(tf.concat([fake_q, fake_p], 0)), 2)
    adversarial = -0.5 * (s_q + s_p)
    loss = ((self.kl_weight * kl - reconstruction) / units.dims_per_image(images)
            + self.adversarial_weight * adversarial)
    return loss, {"kl": kl, "reconstruction": reconstruction, "adversarial": adversarial}

  # -- training with two optimizers (run by training.loop under any strategy) -------------

  def make_optimizers(self, learning_rate):
    """Returns {"generator", "critic"}: one Adam each (the first counts the loop's steps)."""
    beta_1, beta_2 = self.betas
    return {part: keras.optimizers.Adam(learning_rate, beta_1=beta_1, beta_2=beta_2, name=part)
            for part in ("generator", "critic")}

  def training_phases(self, optimizers, global_batch_size):
    """Returns the replica functions (batch -> loss) of one training step, in order:
    `n_critic` critic updates (stream 10 + k of each row's seed for update k), then one
    update of the encoder and generator (the row's own seed). Each loss is averaged
    over the global batch; the loop runs each phase with `strategy.run`."""
    def update(part, loss_fn):
      def phase(batch):
        variables = self.trainable_for(part)
        with tf.GradientTape() as tape:
          per_example, _ = loss_fn(batch["images"], batch["seeds"])
          loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)
        optimizers[part].apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss
      return phase

    critic_loss = lambda k: lambda images, seeds: self.critic_loss(images, _stream(seeds, 10 + k))
    return ([update("critic", critic_loss(k)) for k in range(self.n_critic)]
            + [update("generator", self.train_loss)])

  # -- the VAE's model API ------------------------------------------------------------------

  def encode(self, images):
    """Returns {"mean", "stddev"}: float32 [B, latent_size] each, of q(z | x)."""
    return vae.posterior_moments(self, images)

  def decode(self, latents):
    """Returns uint8 [B, H, W, C]: the generator's image for latents [B, latent_size]."""
    return vae.decoded_images(self, latents)

  def reconstruct(self, images, seeds):
    """Returns uint8 [B, H, W, C]: decode(z), z drawn from q(z | x) with row b's seed."""
    return vae.reconstructed_images(self, images, seeds)

  @eager.graph_when_eager
  def sample(self, seeds):
    """Returns uint8 [B, H, W, C]: decode(z), z ~ N(0, I) from each row's own seed."""
    return vae.prior_samples(self, seeds)

  def elbo_terms(self, images, seeds):
    """Returns (E_q log p(x | z) [B], KL(q || p) [B]) in nats (`vae.one_sample_elbo_terms`)."""
    return vae.one_sample_elbo_terms(self, images, seeds)

  def importance_weighted(self, images, seeds, samples):
    """Returns float32 [B]: the importance-weighted bound with `samples` draws, nats."""
    return vae.iw_bound(self, images, seeds, samples)

  @eager.graph_when_eager
  def log_prob(self, images):
    """Returns float32 [B]: the ELBO of each image in nats, one sample with fixed seeds."""
    return vae.fixed_seed_elbo(self, images)

  def call(self, images):
    return self.log_prob(images)

  def eval_terms(self, images, seeds):
    """Returns (ELBO [B] nats, dimensions [B]); for the Gaussian likelihood the ELBO of
    the discrete image it bounds."""
    return vae.discrete_elbo_terms(self, images, seeds)

  def eval_extras(self, images, seeds):
    """Returns the VAE's per-image metrics (`vae.posterior_mean_metrics`) plus `table5_extras`."""
    return {**vae.posterior_mean_metrics(self, images),
            **table5_extras(self, images, seeds, self.iw_samples)}


def table5_extras(model, images, seeds, iw_samples):
  """Returns per-image [B] metrics of the paper's Table 5 for a VAE-family `model`:
  "kl", KL(q(z | x) || p(z)) in nats, and with iw_samples > 0 "iw_bits_per_dim", the
  importance-weighted bound (Burda et al.) on the discrete image's bits/dim."""
  extras = {"kl": model.elbo_terms(images, seeds)[1]}
  if iw_samples:
    dims = units.dims_per_image(images)
    log_p = units.discrete_log_prob(model.importance_weighted(images, seeds, iw_samples), dims,
                                    model.levels, model.continuous)
    extras["iw_bits_per_dim"] = units.bits_per_dim(log_p, dims)
  return extras
