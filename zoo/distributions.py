"""Likelihoods: tensors a model returns -> `tfp.distributions` objects.

Every density in the zoo is composed here from TFP's own building blocks
(`MixtureSameFamily`, `TransformedDistribution`, ...), never from hand-written
log-sum-exps, so that `log_prob`, `sample`, `cdf` and friends come from TFP. The one
exception is the TFLite export's trace (`zoo.portable`), whose discretised Gaussian
computes the same `log_prob` without TFP's Erfc.
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
