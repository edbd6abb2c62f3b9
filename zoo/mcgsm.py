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
import tensorflow_probability as tfp

from zoo import contract
from zoo import distributions
from zoo import eager
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


# The 8 flips/rotations of a square image [B, H, W, C]: rotations by k * 90 degrees,
# each with and without a transpose. The identity comes first.
DIHEDRAL = [
    (lambda x, k=k, t=t: tf.image.rot90(tf.transpose(x, [0, 2, 1, 3]) if t else x, k))
    for t in (False, True) for k in range(4)
]


class Model(keras.Model):
  """The factorised MCGSM as a Keras model; see the module docstring.

  An optional `context` network of the whitened neighbourhoods adds its states to the
  MCGSM's inputs: RIDE (`zoo/ride.py`) is this model with its spatial-LSTM stack
  (`zoo.slstm.Stack`) as the context. What the model needs of a context: `units` (the
  width U of its states), calling it on x_hat [B, H, W, D] -> states [B, H, W, U], and
  for sampling `initial_state(batch, rows, lag)` and `step(x_hat [B, R, D], state,
  valid [R])` -> (states [B, R, U], new state).
  """

  channels = 1  # grey images
  levels = LEVELS
  continuous = True  # log_prob is a density on [0, 1); a discrete model's is a probability
  fixed_size = None  # any image size
  conditional_inputs = ()
  capabilities = frozenset({contract.PIXELS, contract.ENSEMBLE, contract.INPAINT,
                            contract.FINETUNE, contract.INITIALIZE})
  figure = "inpainting"  # samples beside test patches; a patch inpainted

  def __init__(self, config, context=None, neighbourhood_input=True, **kwargs):
    """The context's states reach the MCGSM next to the whitened neighbourhood, or in its
    place when `neighbourhood_input` is false."""
    super().__init__(**kwargs)
    mc = config.model
    self.width = mc.neighbourhood
    self.offsets = layers.neighbourhood_offsets(self.width)
    self.sample_size = config.sample.size
    self.margin = config.sample.margin
    dim = len(self.offsets)
    context_dim = 0 if context is None else context.units
    self.neighbourhood_input = neighbourhood_input or context is None
    self.whitening = layers.ConditionalWhitening(dim, name="whitening")
    # Added context inputs start with zero weights while the neighbourhood is read too, so
    # that such a model starts as the plain MCGSM.
    inputs, zero = (dim + context_dim, context_dim) if self.neighbourhood_input else (context_dim, 0)
    self.head = layers.MCGSMHead(inputs, mc.components, mc.scales, mc.features,
                                 seed=mc.seed, zero_inputs=zero, name="mcgsm")
    self.context = context

  # -- the conditional distribution -------------------------------------------------

  def _context(self, x_hat, part="all"):
    """Returns the context's states [B, H, W, U] for x_hat [B, H, W, D], None without one.

    part="mcgsm" (a training stage of the MCGSM alone, `trainable_for`) returns zeros
    without running the context: while the MCGSM's weights on its states are zero (the
    first stage), that is the same model, much faster.
    """
    if self.context is None:
      return None
    if part == "mcgsm":
      if not self.neighbourhood_input:
        raise ValueError("a training stage 'mcgsm' needs config.model.mcgsm_input=both: with "
                         "mcgsm_input=hidden the MCGSM reads only the SLSTM; use 'all' stages")
      return tf.zeros(tf.concat([tf.shape(x_hat)[:-1], [self.context.units]], 0))
    return self.context(x_hat)

  def _head_inputs(self, x_hat, context):
    """Returns the MCGSM's inputs [..., D_in]: x_hat [..., D] and/or context [..., U]."""
    if context is None:
      return x_hat
    return tf.concat([x_hat, context], -1) if self.neighbourhood_input else context

  def _distribution(self, x_hat, y_shift, context=None):
    """Returns p(y | x) with batch shape [...] for x_hat [..., D], y_shift [...], context [..., U]."""
    z = self._head_inputs(x_hat, context)
    batch_shape = tf.shape(z)[:-1]
    gate, loc, log_precision = self.head(tf.reshape(z, [-1, z.shape[-1]]))  # [P, M] each
    unflat = lambda t: tf.reshape(t, tf.concat([batch_shape, tf.shape(t)[-1:]], 0))  # [..., M]
    return distributions.unwhitened(
        distributions.mcgsm(unflat(gate), unflat(loc), unflat(log_precision)),
        y_shift, tf.exp(-self.whitening.log_w))

  def conditional(self, x, context=None):
    """Returns p(y | x) for neighbourhoods x [..., D] as a TFP distribution, batch [...]."""
    x_hat, y_shift = self.whitening(x)
    return self._distribution(x_hat, y_shift, context)

  # -- model API --------------------------------------------------------------------

  @eager.graph_when_eager
  def pixel_log_prob(self, images, noise=None, **options):
    """Returns float32 [B, H, W, 1]: each pixel's conditional log-density, nats.

    `images` uint8 [B, H, W, 1]; `noise` (optional) float [B, H, W, 1] in [0, 1)
    dequantises them, 1/2 is used otherwise. `options` (part) go to `_context`.
    """
    y = dequantise(images, noise)  # [B, H, W, 1]
    x = layers.causal_neighbourhood(y, self.width, self.whitening.mean_y)  # [B, H, W, D]
    x_hat, y_shift = self.whitening(x)
    dist = self._distribution(x_hat, y_shift, self._context(x_hat, **options))
    return tf.expand_dims(dist.log_prob(y[..., 0]), -1)  # (TFLite lacks new_axis slices)

  def call(self, images):
    return self.pixel_log_prob(images)

  @eager.graph_when_eager
  def log_prob(self, images, noise=None):
    """Returns float32 [B]: log-density of each whole image on [0, 1)^(H*W), nats."""
    return tf.reduce_sum(self.pixel_log_prob(images, noise), axis=[1, 2, 3])

  def eval_terms(self, images, seeds, **options):
    """Returns (log-density of the scored pixels [B] nats, number scored [B]).

    The RIDE protocol: uniform dequantisation noise (keyed per image by `seeds`
    int [B, 2]), and only pixels whose whole neighbourhood lies inside the image.
    """
    noise = layers.per_example_uniform(seeds, tf.shape(images)[1:])
    lp = self.pixel_log_prob(images, noise, **options)[..., 0]  # [B, H, W]
    mask = layers.interior_mask(images.shape[1], images.shape[2], self.width)
    return tf.reduce_sum(lp * mask, axis=[1, 2]), tf.fill(tf.shape(lp)[:1], tf.reduce_sum(mask))

  def ensemble_terms(self, images, seeds, members=8, transforms=None):
    """Returns (log-likelihood of each patch's central pixels under the ensemble [B] nats,
    number of central pixels [B]).

    RIDE section 3.1: (1/K) sum_k p(T_k x) |det T_k| over the first K = `members` of the
    8 flips/rotations of the square patch (permutations: |det T_k| = 1). As in the
    authors' `experiments/ensemble.py` ("make sure the same pixels are evaluated with
    every transformation"), each member scores the same pixels: the central ones, whose
    causal neighbourhood lies inside the patch under all 8 transforms (at least
    width // 2 from every border; `layers.interior_mask(..., central=True)`), i.e. each
    member's conditional log-likelihood of those pixels given the rest of its causal
    past, mixed over members. `members=1` is the single model on the same pixels, so
    the two are comparable, and no member is scored on a border conditional that
    training never fits. `transforms` overrides the list of T_k (tests).
    """
    transforms = (transforms or DIHEDRAL)[:members]
    noise = layers.per_example_uniform(seeds, tf.shape(images)[1:])
    central = layers.interior_mask(images.shape[1], images.shape[2], self.width, central=True)
    # The central mask is the same in every member's frame: sum its pixels there.
    members_log_prob = tf.stack([
        tf.reduce_sum(self.pixel_log_prob(t(images), t(noise))[..., 0] * central, [1, 2])
        for t in transforms])  # [K, B]
    mixture = tf.reduce_logsumexp(members_log_prob, 0) - tf.math.log(float(len(transforms)))
    return mixture, tf.fill(tf.shape(mixture), tf.reduce_sum(central))

  def finetune(self, images, seeds, iterations, **options):
    """L-BFGS on the MCGSM's parameters, the whitening and any context held fixed.

    RIDE section 3: "the MCGSM of RIDE was finetuned using L-BFGS" between stages.
    images uint8 [B, H, W, 1] (a large fixed batch), seeds int [B, 2] for the
    dequantisation noise. Returns (loss before, loss after), nats per scored pixel.
    """
    noise = layers.per_example_uniform(seeds, tf.shape(images)[1:])
    y = dequantise(images, noise)  # [B, H, W, 1]
    x = layers.causal_neighbourhood(y, self.width, self.whitening.mean_y)
    x_hat, y_shift = self.whitening(x)
    context = self._context(x_hat, **options)
    keep = tf.broadcast_to(layers.interior_mask(images.shape[1], images.shape[2], self.width) > 0,
                           tf.shape(y)[:3])
    # Only scored pixels, as [P, ...]: the context is computed once and held fixed.
    x_hat, y_shift, y = [tf.boolean_mask(t, keep) for t in (x_hat, y_shift, y[..., 0])]
    context = None if context is None else tf.stop_gradient(tf.boolean_mask(context, keep))
    variables = self.head.trainable_variables
    sizes = [int(np.prod(v.shape)) for v in variables]

    def assign(vector):
      for v, part in zip(variables, tf.split(vector, sizes)):
        v.assign(tf.reshape(part, v.shape))

    def loss_and_gradient(vector):
      assign(vector)
      with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(self._distribution(x_hat, y_shift, context).log_prob(y))
      grads = tape.gradient(loss, variables)
      return loss, tf.concat([tf.reshape(g, [-1]) for g in grads], 0)

    start = tf.concat([tf.reshape(v, [-1]) for v in variables], 0)
    before, _ = loss_and_gradient(start)
    result = tfp.optimizer.lbfgs_minimize(loss_and_gradient, start, max_iterations=iterations)
    # Keep the optimiser's answer only if it is finite and better.
    better = tf.logical_and(tf.math.is_finite(result.objective_value), result.objective_value < before)
    final = tf.where(better, result.position, start)
    after, _ = loss_and_gradient(final)
    return before, after

  def train_loss(self, images, seeds, **options):
    """Returns (per-example loss [B], terms): negative log-density per scored pixel, nats.

    (`loss` is taken by keras.Model.) `seeds` int [B, 2] key each image's noise.
    """
    nats, count = self.eval_terms(images, seeds, **options)
    return -nats / count, {"nats_per_pixel": nats / count}

  def trainable_for(self, part):
    """Returns the variables a training stage updates: "mcgsm" (the MCGSM's, not the
    context's) or "all". A model with a context declares the capability (`zoo.ride`)."""
    return list(self.head.trainable_variables) if part == "mcgsm" else self.trainable_variables

  def initialize(self, images, seed=(0, 0)):
    """Fits the conditional whitening on a batch of training images uint8 [B, H, W, 1]."""
    noise = tf.random.stateless_uniform(tf.shape(images), seed)
    y = dequantise(images, noise)
    x = layers.causal_neighbourhood(y, self.width, 0.0)
    mask = layers.interior_mask(images.shape[1], images.shape[2], self.width) > 0
    keep = tf.broadcast_to(mask, tf.shape(y)[:3])
    self.whitening.fit(tf.boolean_mask(x, keep).numpy(), tf.boolean_mask(y[..., 0], keep).numpy())

  # -- sampling ---------------------------------------------------------------------

  def ancestral(self, y, draw, noise):
    """Returns float32 [B, H, W]: y with the pixels where `draw` is set sampled anew.

    Ancestral sampling: each pixel with `draw` set is drawn from p(y_ij | y_<ij) given
    everything before it in raster order, the others keep their value; the context's
    states (RIDE's spatial LSTMs) travel along (`context.step`). y: float [B, H, W]
    intensities in [0, 1); draw: bool [B, H, W]; noise: float [B, H*W, 2] uniform in
    (0, 1), one pair per pixel, indexed in raster order.

    Computed by a sloped wavefront in one `tf.while_loop`: with r = width // 2, pixel
    (i, j) is drawn at step t = (r + 1) i + j. Everything it depends on — its
    neighbourhood (rows i - r..i, columns j - r..j + r) and the SLSTM states left of
    and above it — was drawn at an earlier step, so each step draws one pixel of every
    row at once: (r + 1)(H - 1) + W steps instead of H * W (23x fewer for a 64x64
    sample with margins), the same draws as a pixel-by-pixel raster loop. The last
    (r + 1) r + r steps' values are kept, row-major with one column per step, so a
    pixel's neighbourhood is one gather from them.
    """
    r = self.width // 2
    lag = r + 1  # pixel (i, j) is drawn at step lag * i + j
    kept = lag * r + r  # steps of values a neighbourhood reaches back
    batch, rows, cols = tf.shape(y)[0], tf.shape(y)[1], tf.shape(y)[2]
    row = tf.range(rows)
    window = tf.constant([(di + r) * kept + kept + lag * di + dj for di, dj in self.offsets])
    where = row[:, None] * kept + window[None]  # [R, D] in the kept values [B, (R + r) * kept]
    mean = self.whitening.mean_y
    y_flat, draw_flat = tf.reshape(y, [batch, -1]), tf.reshape(draw, [batch, -1])

    def step(t, recent, state, values):
      j = t - lag * row  # [R] each row's column at this step
      valid = (j >= 0) & (j < cols)
      raster = row * cols + tf.clip_by_value(j, 0, cols - 1)  # [R]
      x = tf.gather(tf.reshape(recent, [batch, -1]), where, axis=1)  # [B, R, D]
      x_hat, y_shift = self.whitening(tf.reshape(x, [-1, len(self.offsets)]))  # [B*R, D], [B*R]
      context = None
      if self.context is not None:
        context, state = self.context.step(tf.reshape(x_hat, [batch, rows, -1]), state, valid)
        context = tf.reshape(context, [-1, context.shape[-1]])  # [B*R, U]
      z = self._head_inputs(x_hat, context)
      gate, loc, log_precision = self.head(z)  # [B*R, M]
      u = tf.reshape(tf.gather(noise, raster, axis=1), [-1, 2])  # [B*R, 2]
      cdf = tf.cumsum(tf.nn.softmax(gate), axis=-1)
      k = tf.minimum(tf.reduce_sum(tf.cast(cdf < u[:, :1] * cdf[:, -1:], tf.int32), -1),
                     tf.shape(gate)[-1] - 1)  # [B*R] sampled (c, s)
      pick = lambda p: tf.gather(p, k, batch_dims=1)
      y_hat = pick(loc) + tf.exp(-0.5 * pick(log_precision)) * tf.math.ndtri(u[:, 1])
      drawn = tf.clip_by_value(y_shift + y_hat * tf.exp(-self.whitening.log_w), 0.0, 1.0 - 1e-6)
      drawn = tf.reshape(drawn, [batch, rows])
      value = tf.where(tf.gather(draw_flat, raster, axis=1), drawn, tf.gather(y_flat, raster, axis=1))
      value = tf.where(valid[None], value, mean)  # off the image: the border value
      column = tf.pad(value, [[0, 0], [r, 0]], constant_values=mean)[:, :, None]  # [B, R + r, 1]
      return t + 1, tf.concat([recent[:, :, 1:], column], 2), state, values.write(t, value)

    steps = lag * (rows - 1) + cols
    recent = tf.fill([batch, rows + r, kept], mean)
    state = () if self.context is None else self.context.initial_state(batch, rows, lag)
    _, _, _, values = tf.while_loop(
        lambda t, *_: t < steps, step,
        [tf.constant(0), recent, state, tf.TensorArray(tf.float32, steps)])
    by_step = tf.reshape(tf.transpose(values.stack(), [1, 0, 2]), [batch, -1])  # [B, T * R]
    at = (lag * row[:, None] + tf.range(cols)[None]) * rows + row[:, None]  # [R, C]: (i, j)'s step, row
    return tf.reshape(tf.gather(by_step, tf.reshape(at, [-1]), axis=1), [batch, rows, cols])

  @eager.graph_when_eager
  def sample(self, seeds):
    """Returns uint8 [B, S, S, 1] samples, S = config.sample.size; one per seed row.

    Ancestral sampling with a margin of config.sample.margin pixels above and at both
    sides, cropped away. All randomness is drawn up front per row from `seeds` int64
    [B, 2] with stateless ops, so a row's image depends only on its own seed.
    """
    m, size = self.margin, self.sample_size
    rows, cols = size + m, size + 2 * m
    batch = tf.shape(seeds)[0]
    noise = layers.per_example_uniform(seeds, [rows * cols, 2], 1e-6, 1 - 1e-6)  # [B, T, 2]
    y = self.ancestral(tf.zeros([batch, rows, cols]), tf.ones([batch, rows, cols], tf.bool), noise)
    return quantise(y[:, m:, m:m + size])[..., None]
