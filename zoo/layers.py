"""Blocks shared by two or more models: seeded initialisers, per-example noise, causal
neighbourhoods, conditional whitening and the MCGSM's parameters."""
import keras
import numpy as np
import tensorflow as tf

from zoo import portable


class Seeds:
  """Seeds for a model's initialisers, handed out in order: first, first + 1, ... < stop.

  Seeded initialisers make every build of a config start from the same weights
  (replicas, strategies and tests compare runs); a model takes the 1000 seeds of its
  config.model.seed (`of_model`).
  """

  def __init__(self, first, stop):
    self._seeds = iter(range(first, stop))

  @classmethod
  def of_model(cls, seed, offset=0):
    """Returns the seeds 1000 seed + offset, ..., 1000 seed + 999."""
    return cls(1000 * seed + offset, 1000 * seed + 1000)

  def next(self):
    """Returns the next seed, an int."""
    return next(self._seeds)

  def glorot(self):
    """Returns a keras.initializers.GlorotUniform seeded with the next seed."""
    return keras.initializers.GlorotUniform(seed=self.next())


def per_example_uniform(seeds, shape, minval=0.0, maxval=1.0):
  """Returns float32 [B, *shape] uniform noise, row b drawn from `seeds[b]` alone.

  `seeds` int [B, 2]. Keying each example by its own seed makes a sample independent
  of the rest of its batch, and a training step identical however the global batch is
  split across replicas. The numbers are those of TF's own kernels, which the exported
  (XLA-free) functions use: under XLA on CPU the same seed draws other numbers.
  """
  if portable.active():  # the same numbers from TFLite's builtin ops
    return portable.uniform_rows(seeds, shape, minval, maxval)
  return tf.map_fn(
      lambda s: tf.random.stateless_uniform(shape, s, minval=minval, maxval=maxval),
      tf.cast(seeds, tf.int64), fn_output_signature=tf.float32)


def per_example_normal(seeds, shape):
  """Returns float32 [B, *shape] standard normal noise, row b drawn from `seeds[b]` alone."""
  if portable.active():  # the same numbers (up to the runtime's last bits) from TFLite's builtins
    return portable.normal_rows(seeds, shape)
  return tf.map_fn(lambda s: tf.random.stateless_normal(shape, s),
                   tf.cast(seeds, tf.int64), fn_output_signature=tf.float32)


def neighbourhood_offsets(width):
  """Returns the (row, col) offsets of a causal neighbourhood, in raster order.

  Width w (odd) gives the w pixels of each of the w // 2 rows above, centred on the
  pixel, plus the w // 2 pixels to its left: 12 offsets for the default w = 5.
  """
  if width < 3 or width % 2 == 0:
    raise ValueError(f"neighbourhood width must be odd and >= 3, got {width}")
  r = width // 2
  above = [(di, dj) for di in range(-r, 0) for dj in range(-r, r + 1)]
  left = [(0, dj) for dj in range(-r, 0)]
  return above + left


def causal_neighbourhood(images, width, pad_value):
  """Returns every pixel's causal neighbourhood: float [B, H, W, D], D = len(offsets).

  Pixels outside the image take `pad_value`, so each conditional is defined at the
  border and the image density stays normalised.

  Args:
    images: float [B, H, W, 1].
    width: odd neighbourhood width.
    pad_value: scalar float.
  """
  r = width // 2
  h, w = tf.shape(images)[1], tf.shape(images)[2]
  padded = tf.pad(images[..., 0], [[0, 0], [r, 0], [r, r]], constant_values=pad_value)  # [B, H+r, W+2r]
  columns = [padded[:, r + di:r + di + h, r + dj:r + dj + w]
             for di, dj in neighbourhood_offsets(width)]
  return tf.stack(columns, axis=-1)  # [B, H, W, D]


def interior_mask(height, width, neighbourhood_width, central=False):
  """Returns float32 [H, W]: 1 where a pixel's whole causal neighbourhood is inside.

  The RIDE evaluation protocol scores only these pixels. `central`: only pixels whose
  neighbourhood is inside under every flip/rotation too (also r = width // 2 from the
  bottom), the pixels RIDE's ensembles score.
  """
  r = neighbourhood_width // 2
  mask = np.zeros([height, width], np.float32)
  mask[r:height - r if central else height, r:width - r] = 1.0
  return tf.constant(mask)


class ConditionalWhitening(keras.layers.Layer):
  """Conditional whitening of a pixel y given its neighbourhood x (RIDE eq. 7).

    x_hat = C_xx^(-1/2) (x - m_x)
    y_hat = W (y - m_y - C_yx C_xx^(-1) (x - m_x)),   W = (C_yy - C_yx C_xx^(-1) C_xy)^(-1/2)

  The statistics are fitted once on training data (`fit`) and stored as
  non-trainable weights, so checkpoints and exports carry them. The density of y is
  the density of y_hat times |W|; `zoo.distributions.unwhitened` adds that term.
  """

  def __init__(self, dim, **kwargs):
    super().__init__(**kwargs)
    self.dim = dim
    zeros, eye = keras.initializers.Zeros(), keras.initializers.Identity()
    self.mean_x = self.add_weight(shape=(dim,), initializer=zeros, trainable=False, name="mean_x")
    self.mean_y = self.add_weight(shape=(), initializer=zeros, trainable=False, name="mean_y")
    self.whiten_x = self.add_weight(shape=(dim, dim), initializer=eye, trainable=False, name="whiten_x")
    self.regression = self.add_weight(shape=(dim,), initializer=zeros, trainable=False, name="regression")
    self.log_w = self.add_weight(shape=(), initializer=zeros, trainable=False, name="log_w")

  def fit(self, x, y, eps=1e-6):
    """Sets the statistics from samples x [N, D], y [N] (numpy or tensors)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m_x, m_y = x.mean(0), y.mean()
    joint = np.cov(np.concatenate([x, y[:, None]], 1), rowvar=False)
    c_xx = joint[:-1, :-1] + eps * np.eye(self.dim)
    c_yx, c_yy = joint[-1, :-1], joint[-1, -1]
    vals, vecs = np.linalg.eigh(c_xx)
    regression = np.linalg.solve(c_xx, c_yx)
    residual_var = max(c_yy - c_yx @ regression, eps)
    self.mean_x.assign(m_x.astype(np.float32))
    self.mean_y.assign(np.float32(m_y))
    self.whiten_x.assign((vecs @ np.diag(vals ** -0.5) @ vecs.T).astype(np.float32))
    self.regression.assign(regression.astype(np.float32))
    self.log_w.assign(np.float32(-0.5 * np.log(residual_var)))

  def call(self, x):
    """Returns (x_hat [P, D], y_shift [P]): whitened inputs and y's predicted mean.

    x: [P, D]. y_hat = exp(log_w) * (y - y_shift).
    """
    centred = x - self.mean_x
    x_hat = centred @ self.whiten_x  # whiten_x is symmetric
    y_shift = self.mean_y + tf.linalg.matvec(centred, self.regression)
    return x_hat, y_shift


class MCGSMHead(keras.layers.Layer):
  """Parameters of a factorised MCGSM (RIDE eqs. 3-5) from its inputs.

  For inputs z [P, D_in] (whitened neighbourhood, and for RIDE the SLSTM state):
    gate_cs  = eta_cs + w_c^T z - 1/2 exp(alpha_cs) sum_n beta_cn^2 (b_n^T z)^2
    loc_c    = a_c^T z
    log precision_cs = alpha_cs + 2 log l_c
  Gate and expert share alpha_cs as in the authors' code; l_c is its per-component
  precision factor. The last `zero_inputs` input dimensions start with zero weights, so
  that a model adding inputs (RIDE) starts as the plain MCGSM does.
  """

  def __init__(self, input_dim, components, scales, features, seed=0, zero_inputs=0, **kwargs):
    super().__init__(**kwargs)
    c, s, n, d = components, scales, features, input_dim
    self.components, self.scales = c, s
    rng = np.random.default_rng(seed)
    live = d - zero_inputs
    const = lambda value: keras.initializers.Constant(np.asarray(value, np.float32))
    def pad(w, axis):  # zero weights for the added inputs
      shape = list(w.shape)
      shape[axis] = zero_inputs
      return np.concatenate([w, np.zeros(shape)], axis=axis)
    self.priors = self.add_weight(shape=(c, s), initializer="zeros", name="priors")
    # Spread the scales so that each (c, s) starts with a different precision.
    self.log_scales = self.add_weight(
        shape=(c, s), initializer=const(np.tile(np.linspace(-1.0, 2.0, s), (c, 1))), name="log_scales")
    self.beta = self.add_weight(shape=(c, n), initializer=const(rng.normal(0, 0.5, (c, n))), name="beta")
    self.features = self.add_weight(
        shape=(d, n), initializer=const(pad(rng.normal(0, live ** -0.5, (live, n)), 0)), name="features")
    self.predictors = self.add_weight(
        shape=(c, d), initializer=const(pad(rng.normal(0, 0.1, (c, live)), 1)), name="predictors")
    self.linear_features = self.add_weight(shape=(c, d), initializer="zeros", name="linear_features")
    self.log_cholesky = self.add_weight(shape=(c,), initializer="zeros", name="log_cholesky")

  def call(self, z):
    """Returns (gate_logits, loc, log_precision), each float32 [P, C*S], for z [P, D_in]."""
    # Plain matmuls on [P, D]: einsum with an ellipsis has a ~40x slower gradient on CPU.
    energy = tf.square(z @ self.features) @ tf.transpose(tf.square(self.beta))  # [P, C]
    linear = z @ tf.transpose(self.linear_features)  # [P, C]
    gate = (self.priors + linear[:, :, None]
            - 0.5 * tf.exp(self.log_scales) * energy[:, :, None])  # [P, C, S]
    loc = (z @ tf.transpose(self.predictors))[:, :, None]  # [P, C, 1]
    log_precision = self.log_scales + 2.0 * self.log_cholesky[:, None]  # [C, S]
    loc, log_precision = [tf.broadcast_to(t, tf.shape(gate)) for t in (loc, log_precision)]
    m = self.components * self.scales
    return tuple(tf.reshape(t, [-1, m]) for t in (gate, loc, log_precision))  # [P, M] each
