"""The one place where nats become the papers' units (works on numbers and tensors)."""
import math

import numpy as np
import tensorflow as tf

LN2 = math.log(2.0)


def dims_per_image(images):
  """Returns H * W * C, the number of values in one image of `images` [B, H, W, C]: a
  Python float when the shape is static, else a float32 scalar tensor."""
  shape = tf.TensorShape(images.shape)[1:]
  if shape.is_fully_defined():
    return float(np.prod(shape))
  return tf.cast(tf.reduce_prod(tf.shape(images)[1:]), tf.float32)


def bits_per_dim(log_prob_nats, dims):
  """Returns -log2 p / dims: bits/dim of a discrete model (lower is better)."""
  return -log_prob_nats / (dims * LN2)


def rate_bits_per_pixel(log_prob_nats, dims):
  """Returns log2 p / pixels: RIDE's log-likelihood rate of a density on [0, 1) (higher is better).

  For 8-bit data dequantised with uniform noise u and divided by 256, its expectation over
  u is a lower bound on 8 - (discrete bits/px) of the model's quantised distribution
  P(x) = integral of p over x's bin: E_u log2 p((x + u) / 256) <= log2 P(x) + 8 (Jensen),
  as in RIDE and Theis et al. 2016; equal only when p is flat within each bin.
  """
  return log_prob_nats / (dims * LN2)


def discrete_bits_per_dim(log_prob_nats, dims, levels, continuous):
  """Returns bits/dim comparable across models: for a density on [0, 1)^D each of the
  `levels` bins has width 1 / levels, which adds log2(levels) bits per dimension."""
  bits = bits_per_dim(log_prob_nats, dims)
  return bits + math.log2(levels) if continuous else bits


def discrete_log_prob(log_prob_nats, dims, levels, continuous):
  """Returns the log-probability of the discrete image, nats, that a model's log p bounds:
  for a density on [0, 1)^D (`continuous`) each of the `levels` bins has width 1 / levels,
  which takes D log(levels) off (a lower bound for uniformly dequantised images, as
  `rate_bits_per_pixel` says); a discrete model's log p is returned as it is."""
  return log_prob_nats - dims * math.log(levels) if continuous else log_prob_nats


# metric name -> (conversion from (nats, dims), True if higher is better)
METRICS = {
    "bits_per_dim": (bits_per_dim, False),
    "bit_per_px_rate": (rate_bits_per_pixel, True),
}
