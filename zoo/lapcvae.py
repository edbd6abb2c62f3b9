r"""LapCVAE: a Laplacian pyramid of conditional VAEs (Dorta et al. 2017, `shared/papers/lapcvae.txt`).

Pyramid (eqs. 6-7), K = `levels_k` levels, k = 0 the finest, K-1 the coarsest:

  b_0 = x,  b_{k+1} = d(b_k),  h_k = b_k - u(b_{k+1}),  h_{K-1} = b_{K-1}
  x_{K-1} = h_{K-1},  x_k = h_k + u(x_{k+1})  (x_0 = x exactly, whatever d and u are)

d blurs with the 5-tap binomial filter [1 4 6 4 1] / 16 (separable, symmetric padding)
and keeps every second pixel; u inserts zeros and blurs with 4 times that filter.

Level k is a conditional VAE (eqs. 9-12):

  q_k(z_k | h_k, u(x_{k+1}))        conv encoder on the channel concatenation
  p_k(h_k | z_k, z_{k+1}, ..., z_{K-1})  deconv decoder on the concatenated latents
  p(z_{K-1}) = N(0, I)
  p(z_k) = N(R_k(mu'), S_k(sigma'))  (eq. 13, `zoo.distributions.pyramid_prior`)

where (mu', sigma') re-encode the reconstruction of the coarser level: q_{k+1} applied to
the decoded h'_{k+1} and u(x'_{k+2}) of the generated image, so the prior is the same at
training and at test time; R_k, S_k are one-hidden-layer MLPs (M_k), S_k positive by a
softplus, each mapping the coarser level's latent width n_{k+1} to this level's n_k (the
paper's 128x128 model has n_z = [128, 128, 64, 64, 64]). The prior of level k is a
function of z_{k+1..K-1} only, so p(z) is a proper hierarchical prior.
`config.model.learned_prior=False` is the paper's "without M" ablation (N(0, I) at every
level).

Loss (eq. 12): sum_k [ a_k ||h_k - h'_k||^2 / (2 sigma^2)  + lambda_k KL(q_k || p(z_k)) ]
per image, the reconstruction term the squared error on each pyramid level (fixed sigma
on the [0, 1) pixel scale); lambda_k multiplies level k's own KL, against the learned
prior M_k for k < K-1 (the paper's "weight for the KL divergence term for M_k"), against
N(0, I) at the coarsest. `config.model.kl_weights` lists lambda_0, ..., lambda_{K-1}
finest level first, the paper's order (its 64x64 model's lambda = [10, 0.1, 0.01] are
lambda_0..lambda_2, the three M_k levels; the coarsest N(0, I) level's is not given);
one value sets every level. The paper leaves the levels' relative scale open; with
`area_weighted` (default) a_k = 4^k, the number of full-resolution pixels a level-k
pixel covers, so the sum weighs an error by its footprint in the image as the VAE's l2
does (without it, a_k = 1, the coarse levels count 4^k times less and the
reconstructions of `benchmarks.vae_family` were worse than the VAE's: RMSE 29.7 vs 24.3
on lfw_faces, against 23.0 with it). Every level's encoder sees the true coarser image
(the image is known in training), its decoder the posterior samples of its own and
coarser levels.

Reported: the reconstruction error of the composed image x'_0 at the posterior means
(LapCVAE Table 1: sqrt MSE on 0..255), its sharpness, and the negative ELBO in bits/dim
of the image under p(x | z) = the VAE's likelihood around x'_0(z) (discretised Gaussian,
its sigma per channel learned from a stop-gradient term that leaves the paper's
objective unchanged; or the fixed-sigma Gaussian) with the hierarchical prior: a valid
bound on the image's bits/dim, comparable with the VAE's.

Training (`config.train.stages`, "part:0:fraction"): "all" trains the levels jointly;
"level<k>" trains level k (and its M_k) alone on top of the coarser, already trained
levels (greedy, coarse to fine: "level3:0:0.25, level2:0:0.25, ..."); "prior" retrains
only the M networks with the rest fixed (section 5.1.3: "all:0:0.8, prior:0:0.2").

Choices the paper leaves open, made here: every level's encoder and decoder are the
VAE's conv/deconv stacks (`zoo.vae`) with `downsamples` halvings (fewer at small
levels, at least one); level k has n_k latents (`config.model.latent_sizes`, finest
level first like `kl_weights`; unset: `latent_size` at every level); M_k has
`prior_hidden` ReLU units; the re-encoding is a stop-gradient input of M_k (M_k learns
to predict the finer posterior, it does not pull the coarser levels); samples show the
composed mean image x'_0.

Partial sampling (section 5.2, Figure 7): `sample_from_coarse(coarse, seeds)` takes a
coarse image at the size of level j (H / 2^j), keeps it as x_j, encodes its own pyramid
for z_j..z_{K-1}, and samples the finer levels from the learned prior.

Train: python -m training.run --model=lapcvae --data=lfw_faces
The paper's 64x64 model (sizes and lambda_k, sourced in `configs/lapcvae.py`):
       python -m training.run --model=lapcvae --data=celeb_a --config=configs/lapcvae.py:paper
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
from zoo import vae

tfd = tfp.distributions

METRIC = vae.METRIC
PART_HELP = "all, prior or level<k> with k in [0, levels_k)"

_BINOMIAL = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _blur(x, gain=1.0, padding=2):
  """Returns x [B, H, W, C] filtered by gain * the 5x5 binomial filter (valid), after
  `padding` pixels of symmetric padding on each side."""
  channels = x.shape[-1]
  kernel = tf.constant(gain * np.outer(_BINOMIAL, _BINOMIAL), tf.float32)
  kernel = tf.tile(kernel[:, :, None, None], [1, 1, channels, 1])  # [5, 5, C, 1]
  padded = tf.pad(x, [[0, 0], [padding, padding], [padding, padding], [0, 0]], mode="SYMMETRIC")
  return tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")


def downsample(x):
  """Returns d(x) [B, H/2, W/2, C]: binomial blur, then every second pixel."""
  return _blur(x)[:, ::2, ::2]


def upsample(x):
  """Returns u(x) [B, 2H, 2W, C]: zeros between the pixels, then 4 x the binomial blur.

  The border pixel is repeated once before the zeros go in, so u keeps a constant image.
  """
  x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")  # [B, H+2, W+2, C]
  b, h, w, c = [x.shape[k] if x.shape[k] is not None else tf.shape(x)[k] for k in range(4)]
  rows = tf.reshape(tf.stack([x, tf.zeros_like(x)], 3), [b, h, 2 * w, c])  # a zero after each pixel
  spread = tf.reshape(tf.stack([rows, tf.zeros_like(rows)], 2), [b, 2 * h, 2 * w, c])
  return _blur(spread, gain=4.0, padding=0)  # [B, 2H, 2W, C]: the padding's 4 rows are gone


def decompose(x, levels):
  """Returns [h_0, ..., h_{K-1}]: the Laplacian pyramid of x [B, H, W, C] (eq. 6)."""
  pyramid, b = [], x
  for _ in range(levels - 1):
    coarser = downsample(b)
    pyramid.append(b - upsample(coarser))
    b = coarser
  return pyramid + [b]


def reconstruct_pyramid(pyramid):
  """Returns [x_0, ..., x_{K-1}]: the images composed from a pyramid (eq. 7); x_0 is the image."""
  images = [pyramid[-1]]
  for h in reversed(pyramid[:-1]):
    images.insert(0, h + upsample(images[0]))
  return images


def per_level(spec, levels, field, cast=float, minimum=0):
  """Returns [v_0, ..., v_{K-1}], level 0 the finest: `spec` is one value (every level) or
  `levels` values, "a,b,..." or a sequence, listed finest level first as the paper's
  vectors are (lambda = [lambda_0, lambda_1, ...], n_z = [n_z0, n_z1, ...])."""
  items = str(spec).split(",") if isinstance(spec, (str, int, float)) else list(spec)
  try:
    values = [cast(str(v).strip()) for v in items if str(v).strip()]
  except ValueError:
    values = []
  if len(values) == 1:
    values *= levels
  if len(values) != levels or any(not minimum <= v < float("inf") for v in values):
    kind = "non-negative number" if cast is float else f"integer >= {minimum}"
    raise ValueError(f"config.model.{field}={spec!r} must be one {kind} or {levels} "
                     f"comma-separated ones (finest level first, as the paper lists them)")
  return values


class Model(keras.Model):
  """LapCVAE; see the module docstring. The VAE's model API (`encode` returns every
  level's posterior, concatenated coarse to fine: [B, latent_size = sum of latent_sizes]),
  plus `pyramid_terms`, `sample_from_coarse` and `coarse_sizes`; `latent_sizes` and
  `kl_weights` are lists indexed by level k (finest first). The image set-up and
  likelihood (`pixels`) and the generic methods are the VAE family's (`zoo.vae`)."""

  conditional_inputs = ()
  capabilities = vae.Model.capabilities | {contract.COARSE, contract.PARTS}
  figure = "partial_sampling"  # Figure 7: a test image's coarse levels kept, finer ones redrawn

  def __init__(self, config, **kwargs):
    super().__init__(**kwargs)
    mc = config.model
    vae.add_pixels(self, config)
    self.k = int(mc.levels_k)
    if self.k < 2:
      raise ValueError(f"config.model.levels_k={self.k}: a pyramid needs at least 2 levels")
    # Per level, finest first (index k); `latent_sizes` (if set) overrides `latent_size`.
    self.latent_sizes = per_level(mc.get("latent_sizes") or mc.latent_size, self.k,
                                  "latent_sizes", int, minimum=1)
    self.latent_size = sum(self.latent_sizes)  # all levels' latents, concatenated coarsest first
    self.kl_weights = per_level(mc.kl_weights, self.k, "kl_weights")
    self.learned_prior = bool(mc.learned_prior)
    self.area_weighted = bool(mc.area_weighted)
    step = 2 ** (self.k - 1)
    if self.height % step or self.width % step:
      raise ValueError(f"config.model.levels_k={self.k} needs image sides that are multiples of "
                       f"{step}; these are {self.height}x{self.width}")
    seeds = layers.Seeds.of_model(mc.seed)
    self.encoders, self.decoders, self.priors = [], [], []
    for k in range(self.k):
      size = (self.height >> k, self.width >> k, self.channels)
      downs = max(1, min(mc.downsamples, int(np.log2(min(size[:2]))) - 1))
      ins = self.channels * (1 if k == self.k - 1 else 2)  # h_k (and u(x_{k+1}))
      encoder = vae.conv_encoder(mc.hidden, downs, 2 * self.latent_sizes[k], seeds, f"encoder{k}")
      encoder.build((None, size[0], size[1], ins))
      decoder = vae.deconv_decoder(mc.hidden, downs, size, seeds, f"decoder{k}")
      decoder.build((None, sum(self.latent_sizes[k:])))  # z_k, ..., z_{K-1}
      self.encoders.append(encoder)
      self.decoders.append(decoder)
      if k < self.k - 1 and self.learned_prior:  # M_k = (R_k, S_k): width n_{k+1} -> n_k
        mlp = lambda name: keras.Sequential([
            keras.layers.Dense(mc.prior_hidden, activation="relu", kernel_initializer=seeds.glorot()),
            keras.layers.Dense(self.latent_sizes[k], kernel_initializer=seeds.glorot())],
            name=name)
        r, s = mlp(f"R{k}"), mlp(f"S{k}")
        r.build((None, self.latent_sizes[k + 1]))
        s.build((None, self.latent_sizes[k + 1]))
        self.priors.append((r, s))

  # -- levels -----------------------------------------------------------------------------

  def level_posterior(self, k, h, upsampled=None):
    """Returns q_k(z_k | h_k, u(x_{k+1})): MultivariateNormalDiag [B] x [latent_sizes[k]]."""
    x = h if upsampled is None else tf.concat([h, upsampled], -1)
    return distributions.diagonal_gaussian(self.encoders[k](x))

  def level_prior(self, k, coarser_posterior):
    """Returns p(z_k): N(0, I) at the coarsest level, without M, or before any coarser
    posterior is known; else eq. 13 from the coarser level's re-encoding."""
    if k == self.k - 1 or not self.learned_prior:
      return vae.standard_normal(self.latent_sizes[k])
    r, s = self.priors[k]
    mu, sigma = (tf.stop_gradient(t) for t in (coarser_posterior.mean(), coarser_posterior.stddev()))
    return distributions.pyramid_prior(r(mu), s(sigma))

  def encode_pyramid(self, x, first=0, top=None):
    """Returns (h, q): the pyramid [h_first, ..., h_{K-1}] of x [B, H/2^first, W/2^first, C]
    (the [0, 1) scale; level `first` of an image) and {k: q_k(z_k | h_k, u(x_{k+1}))} for
    the levels k >= `top` (default `first`), each from the true coarser image."""
    h = decompose(x, self.k - first)
    truth = reconstruct_pyramid(h)  # the true composed images x_k (b_k)
    q = {k: self.level_posterior(k, h[k - first], None if k == self.k - 1 else
                                 upsample(truth[k - first + 1]))
         for k in range(first if top is None else top, self.k)}
    return h, q

  def pyramid_terms(self, images, seeds, eps=None, top=None):
    """Returns the coarse-to-fine pass over the pyramid of uint8 images [B, H, W, C]:
    dict of lists indexed by level (finest first): "h" (true h_k), "h_hat" (decoded),
    "x_hat" (composed), "posterior", "prior", "z", "kl" [B], "reconstruction" [B]
    (the MSE term, nats up to a constant), all for levels >= `top` (default 0).

    z_k = mean + stddev * eps_k, eps from each row's seed unless given (as `_noise`).
    """
    top = 0 if top is None else top
    # Static sizes: the pyramid's filters need the channel count (an export's input has none).
    h, posteriors = self.encode_pyramid(self.pixels.network_input(images), top=top)
    if eps is None:
      eps = self._noise(seeds)
    out = {key: [None] * self.k for key in
           ("h", "h_hat", "x_hat", "posterior", "prior", "z", "kl", "reconstruction")}
    out["h"] = h
    latents = []  # z_{K-1}, ..., z_k (coarsest first)
    reencoded = None  # q_{k+1} of the decoded level k+1
    for k in reversed(range(top, self.k)):
      q = posteriors[k]
      z = q.mean() + q.stddev() * eps[self.k - 1 - k]
      latents.append(z)
      h_hat = self.decoders[k](tf.concat(latents, -1))
      x_hat = h_hat if k == self.k - 1 else h_hat + upsample(out["x_hat"][k + 1])
      prior = self.level_prior(k, reencoded)
      if self.learned_prior and k > 0:  # re-encode the generated level for the finer prior
        reencoded = self.level_posterior(
            k, h_hat, None if k == self.k - 1 else upsample(out["x_hat"][k + 1]))
      out["h_hat"][k], out["x_hat"][k], out["posterior"][k], out["prior"][k], out["z"][k] = (
          h_hat, x_hat, q, prior, z)
      out["kl"][k] = tfd.kl_divergence(q, prior)
      out["reconstruction"][k] = -tf.reduce_sum(tf.square(h[k] - h_hat), [1, 2, 3]) / (
          2 * self.pixels.sigma ** 2) * (4.0 ** k if self.area_weighted else 1.0)
    return out

  # -- the VAE's model API on the pyramid -----------------------------------------------------

  def scale(self, images):
    """Returns float32 [B, H, W, C]: the bin centres (k + 0.5) / levels of uint8 images."""
    return self.pixels.scale(images)

  def posterior(self, images):
    """Returns every level's posterior as one MultivariateNormalDiag over the concatenated
    latents [B, latent_size = sum of latent_sizes], coarsest level first."""
    _, posteriors = self.encode_pyramid(self.pixels.network_input(images))
    qs = [posteriors[k] for k in reversed(range(self.k))]
    return tfd.MultivariateNormalDiag(loc=tf.concat([q.mean() for q in qs], -1),
                                      scale_diag=tf.concat([q.stddev() for q in qs], -1))

  def output_mean(self, z):
    """Returns x'_0 [B, H, W, C] decoded from given latents [B, latent_size] (coarsest first)."""
    levels = self._split(tf.cast(z, tf.float32))  # [z_{K-1}, ..., z_0]
    x_hat = None
    for k in reversed(range(self.k)):
      h_hat = self.decoders[k](tf.concat(levels[:self.k - k], -1))
      x_hat = h_hat if x_hat is None else h_hat + upsample(x_hat)
    return x_hat

  decoder_mean = output_mean  # the image likelihood's mean is the composed image

  def encode(self, images):
    """Returns {"mean", "stddev"}: float32 [B, latent_size] each, every level's posterior."""
    return vae.posterior_moments(self, images)

  def decode(self, latents):
    """Returns uint8 [B, H, W, C]: the composed image x'_0 for latents [B, latent_size]."""
    return vae.decoded_images(self, latents)

  def reconstruct(self, images, seeds):
    """Returns uint8 [B, H, W, C]: decode(z), z drawn from q(z | x) with row b's seed."""
    return vae.reconstructed_images(self, images, seeds)

  @eager.graph_when_eager
  def log_prob(self, images):
    """Returns float32 [B]: the ELBO of each image in nats, one sample with fixed seeds."""
    return vae.fixed_seed_elbo(self, images)

  def call(self, images):
    return self.log_prob(images)

  def _split(self, z):
    """Returns [z_{K-1}, ..., z_0]: latents [B, latent_size] (coarsest first) split by level,
    z_k [B, latent_sizes[k]]."""
    return tf.split(z, self.latent_sizes[::-1], -1)

  def _noise(self, seeds):
    """Returns [eps_{K-1}, ..., eps_0]: float32 [B, latent_sizes[k]] per level (coarsest
    first), row b from seeds[b] alone."""
    return self._split(layers.per_example_normal(seeds, [self.latent_size]))

  def _sample_levels(self, eps, start, x_hat, latents, reencoded):
    """Returns x'_0: levels start-1 .. 0 drawn from the learned prior (noise `eps`, as
    `_noise`), given the composed image x'_start, the latents z_{K-1..start} (coarsest
    first) and the re-encoding of level `start`."""
    for k in reversed(range(start)):
      prior = self.level_prior(k, reencoded)
      latents = latents + [prior.mean() + prior.stddev() * eps[self.k - 1 - k]]
      h_hat = self.decoders[k](tf.concat(latents, -1))
      up = upsample(x_hat)
      if self.learned_prior and k > 0:
        reencoded = self.level_posterior(k, h_hat, up)
      x_hat = h_hat + up
    return x_hat

  @eager.graph_when_eager
  def sample(self, seeds):
    """Returns uint8 [B, H, W, C]: the composed mean image of a draw from the hierarchical prior."""
    eps = self._noise(seeds)
    z = eps[0]  # the coarsest level: N(0, I)
    h_hat = self.decoders[self.k - 1](z)
    reencoded = self.level_posterior(self.k - 1, h_hat) if self.learned_prior else None
    return self.pixels.to_images(self._sample_levels(eps, self.k - 1, h_hat, [z], reencoded))

  def coarse_sizes(self):
    """Returns {j: (H / 2^j, W / 2^j)} for the levels j >= 1 a coarse image may replace."""
    return {j: (self.height >> j, self.width >> j) for j in range(1, self.k)}

  def sample_from_coarse(self, coarse, seeds):
    """Returns (uint8 [B, H, W, C], x'_j): images whose level j is the uint8 `coarse`
    [B, H / 2^j, W / 2^j, C] (j from its size), finer levels drawn from the learned prior.

    The coarse image's own pyramid gives z_j..z_{K-1} (posterior means) and the
    re-encoding of level j; x'_j is the coarse image itself (returned for checking).
    """
    size = coarse.shape[1]
    j = {hw[0]: level for level, hw in self.coarse_sizes().items()}[size]
    x = self.pixels.scale(coarse)
    _, posteriors = self.encode_pyramid(x, first=j)  # the coarse image is level j
    latents = [posteriors[k].mean() for k in reversed(range(j, self.k))]  # coarsest first
    x_hat = self._sample_levels(self._noise(seeds), j, x, latents,
                                posteriors[j] if self.learned_prior else None)
    return self.pixels.to_images(x_hat), x

  # -- losses and metrics -----------------------------------------------------------------

  def elbo_terms(self, images, seeds):
    """Returns (E_q log p(x | z) [B], sum_k KL_k [B]) nats: the image's likelihood around
    the composed x'_0 and the hierarchical prior's KL (a bound on the image)."""
    terms = self.pyramid_terms(images, seeds)
    log_px = self.pixels.distribution(terms["x_hat"][0]).log_prob(self.pixels.observed(images, seeds))
    return log_px, tf.add_n(terms["kl"])

  def importance_weighted(self, images, seeds, samples):
    """Returns float32 [B]: log mean_s p(x | z_s) p(z_s) / q(z_s | x) over `samples` draws
    of all levels' latents, nats; p(z) is the hierarchical prior (one pass per draw)."""
    noise = layers.per_example_normal(seeds, [samples, self.latent_size])
    x = self.pixels.observed(images, seeds)
    log_w = []
    for s in range(samples):
      terms = self.pyramid_terms(images, None, eps=self._split(noise[:, s]))
      log_w.append(self.pixels.distribution(terms["x_hat"][0]).log_prob(x) + tf.add_n(
          [p.log_prob(z) - q.log_prob(z) for p, q, z in
           zip(terms["prior"], terms["posterior"], terms["z"])]))
    return tf.reduce_logsumexp(tf.stack(log_w), 0) - np.log(samples)

  def eval_terms(self, images, seeds):
    """Returns (ELBO [B] nats, dimensions [B]); for the Gaussian likelihood the ELBO of
    the discrete image it bounds."""
    return vae.discrete_elbo_terms(self, images, seeds)

  def eval_extras(self, images, seeds):
    """Returns per-image [B] metrics of the composed reconstruction at the posterior means:
    "reconstruction_rmse" (0..255 scale) and "sharpness" (`vae.posterior_mean_metrics`)."""
    del seeds  # at the posterior means
    return vae.posterior_mean_metrics(self, images)

  def trainable_for(self, part):
    """Returns the variables stage `part` trains: all, prior (the M networks), level<k>."""
    if part in (None, "all"):
      return self.trainable_variables
    if part == "prior":
      return [v for r, s in self.priors for v in r.trainable_variables + s.trainable_variables]
    if part.startswith("level") and part[5:].isdigit() and int(part[5:]) < self.k:
      k = int(part[5:])
      nets = [self.encoders[k], self.decoders[k]] + (list(self.priors[k]) if k < len(self.priors) else [])
      return [v for net in nets for v in net.trainable_variables]
    raise ValueError(f"unknown LapCVAE training part {part!r}; valid: {PART_HELP}")

  def train_loss(self, images, seeds, part=None):
    """Returns (per-example loss [B], terms) per image dimension: eq. 12 summed over the
    levels `part` trains (all levels for "all" and "prior"), plus the stop-gradient
    image-likelihood term that fits the discretised likelihood's sigma."""
    top = int(part[5:]) if part and part.startswith("level") else 0
    terms = self.pyramid_terms(images, seeds, top=top)
    levels = [top] if part and part.startswith("level") else range(self.k)
    loss = tf.add_n([self.kl_weights[k] * terms["kl"][k] - terms["reconstruction"][k] for k in levels])
    out = {f"kl{k}": terms["kl"][k] for k in levels}
    if top == 0 and not self.continuous:
      sigma_fit = -self.pixels.distribution(tf.stop_gradient(terms["x_hat"][0])).log_prob(
          self.pixels.observed(images, seeds))
      loss += sigma_fit
      out["image_nll"] = sigma_fit
    return loss / units.dims_per_image(images), out
