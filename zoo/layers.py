"""Blocks shared by two or more models: causal neighbourhoods and conditional whitening."""
import keras
import numpy as np
import tensorflow as tf


def per_example_uniform(seeds, shape, minval=0.0, maxval=1.0):
  """Returns float32 [B, *shape] uniform noise, row b drawn from `seeds[b]` alone.

  `seeds` int [B, 2]. Keying each example by its own seed makes a sample independent
  of the rest of its batch, and a training step identical however the global batch is
  split across replicas.
  """
  return tf.map_fn(
      lambda s: tf.random.stateless_uniform(shape, s, minval=minval, maxval=maxval),
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


def interior_mask(height, width, neighbourhood_width):
  """Returns float32 [H, W]: 1 where a pixel's whole causal neighbourhood is inside.

  The RIDE evaluation protocol scores only these pixels.
  """
  r = neighbourhood_width // 2
  mask = np.zeros([height, width], np.float32)
  mask[r:, r:width - r] = 1.0
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
