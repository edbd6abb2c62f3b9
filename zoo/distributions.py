"""Likelihoods: tensors a model returns -> `tfp.distributions` objects.

Every density in the zoo is composed here from TFP's own building blocks
(`MixtureSameFamily`, `TransformedDistribution`, ...), never from hand-written
log-sum-exps, so that `log_prob`, `sample`, `cdf` and friends come from TFP. Two
exceptions: the TFLite export's trace (`zoo.portable`), whose discretised Gaussian
computes the same `log_prob` without TFP's Erfc; and PixelCNN++'s discretised logistic
mixture with its RGB coupling (`DiscretizedLogisticMixture`), which TFP has only inside
`tfd.PixelCNN`'s private code: here it is a `tfd.Distribution` of its own.
"""
import tensorflow as tf
import tensorflow_probability as tfp

from zoo import portable

tfd = tfp.distributions
tfb = tfp.bijectors


def mcgsm(gate_logits, loc, log_precision):
  """Returns the MCGSM conditional p(y | x): a mixture over (c, s) of Normals.

  RIDE eqs. 3-5: the gate p(c, s | x) is a softmax over `gate_logits`, and expert
  (c, s) is N(y; a_c^T x, exp(-alpha_cs)). The (component, scale) pairs are
  flattened into one mixture axis of size M = C * S.

  Args:
    gate_logits: float [..., M] unnormalised log p(c, s | x).
    loc: float [..., M] expert means a_c^T x (broadcast over scales).
    log_precision: float [..., M] expert log precisions.

  Returns:
    A scalar-event `tfd.MixtureSameFamily` with batch shape [...].
  """
  return tfd.MixtureSameFamily(
      mixture_distribution=tfd.Categorical(logits=gate_logits),
      components_distribution=tfd.Normal(loc=loc, scale=tf.exp(-0.5 * log_precision)))


def unwhitened(whitened_dist, shift, scale):
  """Returns the density of y = shift + scale * y_hat when y_hat ~ `whitened_dist`.

  Conditional whitening (RIDE eq. 7) maps a pixel y to y_hat = W (y - shift); the
  density of y is p(y_hat) |W|, which `TransformedDistribution` adds as the
  log-Jacobian. `scale` = 1 / W.
  """
  return tfd.TransformedDistribution(
      whitened_dist, tfb.Chain([tfb.Shift(shift), tfb.Scale(scale)]))


def softplus_gaussian(loc, raw_scale):
  """Returns N(loc, diag(sigma^2)), sigma = softplus(raw_scale) + 1e-4 (positive, away
  from zero): a `tfd.MultivariateNormalDiag` with event [D], whose KL to another such
  Gaussian is analytic."""
  return tfd.MultivariateNormalDiag(loc=loc, scale_diag=tf.nn.softplus(raw_scale) + 1e-4)


def diagonal_gaussian(params):
  """Returns a VAE posterior `softplus_gaussian(mu, s)` from params [..., 2D] = [mu, s]."""
  return softplus_gaussian(*tf.split(params, 2, axis=-1))


def discretized_gaussian(mean, sigma, levels):
  """Returns p(x) over integer images x in [0, levels): N(mean, sigma^2) integrated over bins.

  `mean` float [B, H, W, C] and `sigma` (broadcasting) live on the [0, 1) scale, where
  value k owns the bin [k / L, (k + 1) / L); the first and last bins take the tails.
  TFP's `QuantizedDistribution` gives Y = ceil(X) the mass of (Y - 1, Y], so X is the
  Gaussian in units of bins, shifted down by one. Event shape [H, W, C].
  """
  if portable.active():  # the same probabilities without the Erfc op (TFLite)
    return portable.DiscretizedGaussian(mean * levels - 1.0, sigma * levels, levels)
  x = tfd.Normal(loc=mean * levels - 1.0, scale=sigma * levels)
  return tfd.Independent(tfd.QuantizedDistribution(x, low=0.0, high=levels - 1.0),
                         reinterpreted_batch_ndims=3)


def pyramid_prior(loc, raw_scale):
  """Returns LapCVAE's learned prior N(R_k(mu'), S_k(sigma')) (eq. 13) from the outputs of
  its MLPs M_k: loc = R_k(mu') [B, D], raw_scale = S_k(sigma') [B, D] made positive as in
  `softplus_gaussian`. An image-dependent Gaussian: over images, a mixture of Gaussians."""
  return softplus_gaussian(loc, raw_scale)


def _softplus(x):
  """softplus(x) = log(1 + e^x); from TFLite builtin ops when `portable.active()`."""
  if portable.active():
    return tf.nn.relu(x) + tf.math.log(1.0 + tf.exp(-tf.abs(x)))
  return tf.nn.softplus(x)


def _log_one_minus_exp(x):
  """log(1 - e^-x) for x > 0 (expm1 keeps small x exact; TFLite: without it)."""
  if portable.active():
    return tf.math.log(1.0 - tf.exp(-x))
  return tf.math.log(-tf.math.expm1(-x))


class DiscretizedLogisticMixture(tfd.Distribution):
  r"""PixelCNN++'s pixel (Salimans et al. 2017, eqs. 2-3): C sub-pixels with values in
  {0, ..., L-1}, a mixture of K discretised logistics with linear coupling of the channels.

    p(x) = sum_k pi_k prod_c P(x_c | k, x_<c),
    P(x_c | k, x_<c) = sigma((y_c + b - m_ck) / s_ck) - sigma((y_c - b - m_ck) / s_ck),
    m_ck = loc_ck + sum_{c' < c} coefficient_{c c' k} y_c',

  where y = 2 x / (L - 1) - 1 is the value on [-1, 1], b = 1 / (L - 1) half a bin, and the
  first and last values take the tails (y_c - b -> -inf for x_c = 0, y_c + b -> +inf for
  x_c = L - 1), so the L probabilities of each channel sum to 1 exactly. For RGB the
  coefficients are PixelCNN++'s alpha (G on R), beta (B on R), gamma (B on G).

  Event shape [C] (one pixel), batch shape [...]; values int. Beyond `log_prob` and
  `sample`: `conditional_log_probs`, log p(x_c | x_<c) of each sub-pixel (the per-channel
  factors of the joint, through the mixture's posterior over k given x_<c), and
  `sample_from_noise`, ancestral sampling from given Gumbel and uniform noise (the
  PixelCNN's per-image seeds). Sampling draws a component, then each channel in turn as
  a continuous logistic rounded to the nearest value (clipped to the ends), with the
  coupling on the earlier channels' drawn *values*: exactly the discretised distribution
  above. (PixelCNN++'s own sampler couples on the unrounded draws.)

  The difference of sigmoids is computed as
  log(sigma(a) - sigma(b)) = log sigma(a) + log sigma(-b) + log(1 - e^-(a - b)),
  exact for every a > b (PixelCNN++ switches to the density at the bin's centre when the
  difference falls below 1e-5).
  """

  def __init__(self, logits, loc, log_scale, coefficients, levels, validate_args=False,
               allow_nan_stats=True, name="DiscretizedLogisticMixture"):
    """Args: logits [..., K] of pi; loc, log_scale [..., C, K]; coefficients
    [..., C (C - 1) / 2, K] in the order (1, 0), (2, 0), (2, 1), ... (RGB: alpha, beta,
    gamma); levels L."""
    parameters = dict(locals())
    with tf.name_scope(name):
      self._logits = tf.cast(logits, tf.float32)
      self._loc = tf.cast(loc, tf.float32)
      self._log_scale = tf.cast(log_scale, tf.float32)
      self._coefficients = tf.cast(coefficients, tf.float32)
      self._levels = int(levels)
      self._channels = int(self._loc.shape[-2])
      if self._coefficients.shape[-2] != self._channels * (self._channels - 1) // 2:
        raise ValueError(f"coefficients need C (C - 1) / 2 = "
                         f"{self._channels * (self._channels - 1) // 2} rows for C = "
                         f"{self._channels} channels, got {self._coefficients.shape[-2]}")
    super().__init__(dtype=tf.int32, reparameterization_type=tfd.NOT_REPARAMETERIZED,
                     validate_args=validate_args, allow_nan_stats=allow_nan_stats,
                     parameters=parameters, name=name)

  @classmethod
  def _parameter_properties(cls, dtype, num_classes=None):  # pylint: disable=unused-argument
    properties = tfp.util.ParameterProperties
    return dict(logits=properties(event_ndims=1), loc=properties(event_ndims=2),
                log_scale=properties(event_ndims=2), coefficients=properties(event_ndims=2),
                levels=properties(event_ndims=None, is_preferred=False))

  def _batch_shape(self):
    return self._logits.shape[:-1]

  def _batch_shape_tensor(self):
    return tf.shape(self._logits)[:-1]

  def _event_shape(self):
    return tf.TensorShape([self._channels])

  def _event_shape_tensor(self):
    return tf.constant([self._channels], tf.int32)

  def _scaled(self, values):
    """Returns float32 [...]: integer values on [-1, 1]."""
    return tf.cast(values, tf.float32) * (2.0 / (self._levels - 1)) - 1.0

  def _rows(self, t, axis, count=None):
    """Returns the `count` (default C) slices of t along `axis` as a list (tf.unstack:
    TFLite has no strided slice with an ellipsis)."""
    return tf.unstack(t, self._channels if count is None else count, axis=axis)

  def _means(self, scaled, c):
    """Returns [..., K]: channel c's component means given the earlier channels' scaled
    values, the list `scaled` of [...] (only channels < c are read)."""
    mean = self._rows(self._loc, -2)[c]
    coefficients = self._rows(self._coefficients, -2, self._channels * (self._channels - 1) // 2)
    for earlier in range(c):
      mean += coefficients[c * (c - 1) // 2 + earlier] * tf.expand_dims(scaled[earlier], -1)
    return mean

  def component_log_probs(self, values):
    """Returns float32 [..., C, K]: log P(x_c | k, x_<c) of integer values [..., C]."""
    values = tf.cast(values, tf.int32)
    x = self._rows(self._scaled(values), -1)  # C of [...]
    half = 1.0 / (self._levels - 1)
    per_channel = []
    for c, (value, log_scale) in enumerate(zip(self._rows(values, -1),
                                               self._rows(self._log_scale, -2))):
      centred = tf.expand_dims(x[c], -1) - self._means(x, c)  # [..., K]
      inverse_scale = tf.exp(-log_scale)
      upper, lower = inverse_scale * (centred + half), inverse_scale * (centred - half)
      log_cdf_upper = -_softplus(-upper)  # log sigma(upper): value 0 takes the lower tail
      log_survival_lower = -_softplus(lower)  # log (1 - sigma(lower)): L - 1 the upper tail
      inner = log_cdf_upper + log_survival_lower + _log_one_minus_exp(2.0 * half * inverse_scale)
      value = tf.expand_dims(value, -1)
      per_channel.append(tf.where(value <= 0, log_cdf_upper,
                                  tf.where(value >= self._levels - 1, log_survival_lower, inner)))
    return tf.stack(per_channel, -2)

  def _prefix_log_probs(self, values):
    """Returns C of float32 [...]: log p(x_0, ..., x_c) for each c (the joint of the
    first c + 1 channels)."""
    log_pi = tf.nn.log_softmax(self._logits)  # [..., K]
    joint, prefixes = log_pi, []
    for channel in self._rows(self.component_log_probs(values), -2):
      joint += channel
      prefixes.append(tf.reduce_logsumexp(joint, -1))
    return prefixes

  def _log_prob(self, values):
    return self._prefix_log_probs(values)[-1]

  def conditional_log_probs(self, values):
    """Returns float32 [..., C]: log p(x_c | x_<c) of each sub-pixel of integer values
    [..., C]; they sum to `log_prob` (the mixture's weights given x_<c are the posterior
    over components)."""
    prefixes = self._prefix_log_probs(values)
    return tf.stack([prefixes[0]] + [b - a for a, b in zip(prefixes, prefixes[1:])], -1)

  def sample_from_noise(self, gumbel, uniform):
    """Returns int32 [..., C]: a draw given Gumbel noise [..., K] (the component) and
    uniform noise in (0, 1) [..., C] (each channel's logistic)."""
    k = tf.argmax(self._logits + gumbel, -1, output_type=tf.int32)  # [...]
    pick = lambda t: tf.reduce_sum(t * tf.one_hot(k, tf.shape(t)[-1]), -1)
    scaled, values = [], []
    for c, (u, log_scale) in enumerate(zip(self._rows(uniform, -1),
                                           self._rows(self._log_scale, -2))):
      logistic = tf.math.log(u) - tf.math.log(1.0 - u)
      y = pick(self._means(scaled, c)) + tf.exp(pick(log_scale)) * logistic
      value = tf.clip_by_value(tf.round((y + 1.0) * ((self._levels - 1) / 2.0)), 0.0,
                               self._levels - 1.0)
      values.append(value)
      scaled.append(value * (2.0 / (self._levels - 1)) - 1.0)
    return tf.cast(tf.stack(values, -1), tf.int32)

  def _sample_n(self, n, seed=None):
    shape = tf.concat([[n], self._batch_shape_tensor()], 0)
    k_seed, u_seed = tfp.random.split_seed(seed, n=2)
    mixtures = tf.shape(self._logits)[-1]
    u = tf.random.stateless_uniform(tf.concat([shape, [mixtures]], 0), k_seed, 1e-7, 1.0)
    uniform = tf.random.stateless_uniform(tf.concat([shape, [self._channels]], 0), u_seed,
                                          1e-7, 1.0 - 1e-7)
    return self.sample_from_noise(-tf.math.log(-tf.math.log(u)), uniform)
