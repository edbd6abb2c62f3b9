"""The one place where nats become the papers' units."""
import math

import numpy as np


def bits_per_dim(log_prob_nats, dims):
  """Returns -log2 p / dims: bits/dim of a discrete model (lower is better)."""
  return -np.asarray(log_prob_nats) / (np.asarray(dims) * math.log(2.0))


def rate_bits_per_pixel(log_prob_nats, dims):
  """Returns log2 p / pixels: RIDE's log-likelihood rate of a density on [0, 1) (higher is better).

  For 8-bit data dequantised with uniform noise and divided by 256, this equals
  8 - (discrete bits/px).
  """
  return np.asarray(log_prob_nats) / (np.asarray(dims) * math.log(2.0))


# metric name -> (conversion from (nats, dims), True if higher is better)
METRICS = {
    "bits_per_dim": (bits_per_dim, False),
    "bit_per_px_rate": (rate_bits_per_pixel, True),
}
