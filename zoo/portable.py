"""TFLite-portable versions of the few TensorFlow ops a model's signatures need that
TFLite's builtin op set lacks; the TFLite export traces the models with them.

  with portable.ops():
    images = model.sample(seeds)   # no StatelessRandom*, Erf or SparseSoftmax* ops

Inside `ops()`, `layers.per_example_normal` / `per_example_uniform` draw with
`normal_rows` / `uniform_rows` below, which compute TF's own stateless random numbers
(Philox-4x32-10 with TF's seed scrambling, then TF's uint32-to-float and Box-Muller
transforms) from int64 MUL, ADD, FLOOR_MOD, CAST and int32 BITWISE_XOR alone. The uint32
bits are TF's exactly; the floats are those of TF's kernels up to the last bit of sin,
cos and log, which each runtime computes its own way (uniforms are exact, normals within
4e-6). Outside `ops()` nothing changes: the SavedModel keeps TF's own kernels.

Inside `ops()` too, `distributions.discretized_gaussian` is `DiscretizedGaussian` below
(`log_ndtr` instead of TFP's Erf/Erfc), and the Gated PixelCNN's log_prob picks from
its log softmax (`pixelcnn.log_softmax_at`) instead of TFP's Categorical
(SparseSoftmaxCrossEntropyWithLogits).
"""
import contextlib
import math

import tensorflow as tf
from tensorflow.python.framework import tensor_util  # pylint: disable=g-direct-tensorflow-import

_ACTIVE = []

# Philox-4x32-10 (Salmon et al. 2011) as TF's kernels run it: the round multipliers,
# the key increments, and the key TF's stateless ops scramble the seed with.
_M0, _M1 = 0xD2511F53, 0xCD9E8D57
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_SEED_KEY = (0x3EC8F720, 0x02461E29)
_ROUNDS = 10
_TWO_16, _TWO_32 = 2 ** 16, 2 ** 32


@contextlib.contextmanager
def ops():
  """Within it, the model code traces the portable versions of the ops above."""
  _ACTIVE.append(True)
  try:
    yield
  finally:
    _ACTIVE.pop()


def active():
  """Returns whether the model code is being traced inside `ops()`."""
  return bool(_ACTIVE)


# -- uint32 arithmetic in int64 tensors (values 0 .. 2^32 - 1) ----------------------------

def _exact_div(multiple, bits):
  """Returns multiple / 2^bits for an int64 multiple of 2^bits whose quotient lies within
  +-2^24: exact in float32 (TFLite has no int64 FLOOR_DIV or shift)."""
  return tf.cast(tf.cast(multiple, tf.float32) * (2.0 ** -bits), tf.int64)


def _shift_right(x, bits):
  """Returns x // 2^bits for int64 x >= 0 whose quotient is below 2^24."""
  return _exact_div(x - tf.math.floormod(x, 2 ** bits), bits)


def _mul_hi_lo(m, x):
  """Returns (hi, lo): the upper and lower 32 bits of m * x, for a constant m and
  int64 x in [0, 2^32). x is split in 16-bit halves so that no product passes 2^48."""
  x_lo = tf.math.floormod(x, _TWO_16)
  x_hi = _shift_right(x, 16)
  p1, p2 = m * x_lo, m * x_hi  # m * x = p1 + p2 * 2^16, each below 2^48
  low = tf.math.floormod(p1, _TWO_32) + tf.math.floormod(p2, _TWO_16) * _TWO_16  # < 2^33
  p2_over_16 = (_shift_right(p2, 32) * _TWO_16
                + _shift_right(tf.math.floormod(p2, _TWO_32), 16))
  hi = _shift_right(p1, 32) + p2_over_16 + _shift_right(low, 32)
  return hi, tf.math.floormod(low, _TWO_32)


def _xor(a, b):
  """Returns a ^ b of int64 values in [0, 2^32), as int32 XORs of 16-bit halves (TFLite's
  BITWISE_XOR takes 32-bit integers; halves need no wrap-around casts)."""
  def half_xor(x, y):
    return tf.cast(tf.bitwise.bitwise_xor(tf.cast(x, tf.int32), tf.cast(y, tf.int32)), tf.int64)
  low = half_xor(tf.math.floormod(a, _TWO_16), tf.math.floormod(b, _TWO_16))
  high = half_xor(_shift_right(a, 16), _shift_right(b, 16))
  return high * _TWO_16 + low


def _philox(counter, key):
  """Returns the 4 uint32 words (int64 tensors) of Philox-4x32-10 of `counter` (4 words)
  under `key` (2 words); every word broadcasts against the others. The rounds run in a
  while loop (TFLite's WHILE), which keeps the converted graph small."""
  def round_(i, c0, c1, c2, c3):
    i64 = tf.cast(i, tf.int64)  # the key of round i: key + i * (W0, W1), mod 2^32
    k0 = tf.math.floormod(key[0] + i64 * _W0, _TWO_32)
    k1 = tf.math.floormod(key[1] + i64 * _W1, _TWO_32)
    hi0, lo0 = _mul_hi_lo(_M0, c0)
    hi1, lo1 = _mul_hi_lo(_M1, c2)
    return i + 1, _xor(_xor(hi1, c1), k0), lo1, _xor(_xor(hi0, c3), k1), lo0

  zero = sum(0 * w for w in (*counter, *key))  # broadcast by arithmetic: static shapes stay
  words = [w + zero for w in counter]
  _, *words = tf.while_loop(lambda i, *_: i < _ROUNDS, round_, [tf.constant(0), *words])
  return tuple(words)


def _words(value):
  """Returns (low, high): the uint32 words of int64 `value` read as uint64 (two's
  complement), as TF's seed scrambling reads a seed."""
  low = tf.math.floormod(value, _TWO_32)
  upper = value - low  # q * 2^32, q the signed high word: split q in 16-bit halves
  q_low = tf.math.floormod(upper, 2 ** 48)  # (q mod 2^16) * 2^32
  high = _exact_div(upper - q_low, 48) * _TWO_16 + _exact_div(q_low, 32)
  return low, tf.math.floormod(high, _TWO_32)


def random_bits(seeds, count):
  """Returns int64 [B, count]: the uint32 words TF's stateless ops draw for row b's seed
  `seeds[b]` (the same bits as `tf.random.stateless_uniform([count], seeds[b],
  dtype=tf.uint32, minval=None, maxval=None)`)."""
  seeds = tf.cast(seeds, tf.int64)
  s0_lo, s0_hi = _words(seeds[:, 0])
  s1_lo, s1_hi = _words(seeds[:, 1])
  # TF's seed scrambling: one Philox call on (seed0, seed1) under a fixed key gives the
  # key (its first two words) and the high half of the counter (its last two).
  fixed_key = tuple(tf.constant(k, tf.int64) for k in _SEED_KEY)
  mix = [w[:, None] for w in _philox((s0_lo, s0_hi, s1_lo, s1_hi), fixed_key)]  # [B, 1]
  calls = (count + 3) // 4  # each call gives 4 words; the counter's low word counts calls
  step = tf.range(calls, dtype=tf.int64)[None, :]  # [1, calls]
  words = _philox((step, tf.zeros_like(step), mix[2], mix[3]), (mix[0], mix[1]))
  return tf.reshape(tf.stack(words, -1), [-1, calls * 4])[:, :count]


def _unit_floats(bits):
  """Returns float32 in [0, 1) from uint32 words as TF does: the low 23 bits as a mantissa."""
  return tf.cast(tf.math.floormod(bits, 2 ** 23), tf.float32) * (2.0 ** -23)


def _static(shape):
  """Returns `shape` (a list of ints and scalar tensors, or a shape tensor, known when
  traced) as a list of ints."""
  if isinstance(shape, tf.Tensor):  # e.g. tf.shape(images)[1:] of fixed-size images
    known = tensor_util.constant_value_as_shape(shape)
    value = known.as_list() if known.is_fully_defined() else None
  else:
    value = [tf.get_static_value(d) if isinstance(d, tf.Tensor) else d for d in shape]
    value = None if any(d is None for d in value) else value
  if value is None:
    raise ValueError("its random draws' shape is only known when it runs; the portable "
                     "random ops need one known when traced")
  return [int(d) for d in value]


def uniform_rows(seeds, shape, minval=0.0, maxval=1.0):
  """Returns float32 [B, *shape]: `tf.random.stateless_uniform(shape, seeds[b], minval,
  maxval)` for each row b, from builtin TFLite ops (bit-exact)."""
  shape = _static(shape)
  count = math.prod(shape)
  u = _unit_floats(random_bits(seeds, count))
  return tf.reshape(u * (maxval - minval) + minval, [-1, *shape])


def normal_rows(seeds, shape):
  """Returns float32 [B, *shape]: `tf.random.stateless_normal(shape, seeds[b])` for each
  row b: TF's Box-Muller on pairs of words (the last bits of log, sin and cos are the
  runtime's)."""
  shape = _static(shape)
  count = math.prod(shape)
  u = _unit_floats(random_bits(seeds, count + count % 2))
  u1 = tf.maximum(u[:, 0::2], 1.0e-7)
  angle = (2.0 * math.pi) * u[:, 1::2]
  radius = tf.sqrt(-2.0 * tf.math.log(u1))
  z = tf.reshape(tf.stack([tf.sin(angle) * radius, tf.cos(angle) * radius], -1), [-1, count + count % 2])
  return tf.reshape(z[:, :count], [-1, *shape])


# -- the discretised Gaussian without Erf/Erfc ---------------------------------------------

# erfc(x) = t exp(-x^2 + P(t)), t = 1 / (1 + x / 2), for x >= 0: the Chebyshev fit of
# Press et al., Numerical Recipes (2nd ed., 6.2, erfcc), relative error below 1.2e-7
# everywhere, so that its logarithm stays accurate far into the tails.
_ERFC_P = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807,
           -1.13520398, 1.48851587, -0.82215223, 0.17087277)


def _log_erfc_positive(x):
  """Returns log erfc(x) for float32 x >= 0."""
  t = 1.0 / (1.0 + 0.5 * x)
  poly = tf.zeros_like(x) + _ERFC_P[-1]
  for c in reversed(_ERFC_P[:-1]):
    poly = poly * t + c
  return tf.math.log(t) - x * x + poly


def log_ndtr(z):
  """Returns log Phi(z), the standard normal's log CDF, from builtin TFLite ops
  (TFP's `log_ndtr` needs Erf and Erfc); within about 1e-6 relative of it."""
  # Phi(z) = erfc(-z / sqrt 2) / 2: for z <= 0 the tail itself, for z > 0 one minus it.
  x = tf.abs(z) * (1.0 / math.sqrt(2.0))
  log_tail = _log_erfc_positive(x) - math.log(2.0)  # log Phi(-|z|)
  return tf.where(z <= 0.0, log_tail, tf.math.log1p(-tf.exp(log_tail)))


def _log_diff_exp(big, small):
  """Returns log(exp(big) - exp(small)) for big >= small."""
  return big + tf.math.log1p(-tf.exp(small - big))


class DiscretizedGaussian:
  """`distributions.discretized_gaussian` for portable traces: the same probabilities
  (N(loc, scale^2) integrated over the bins (k - 1, k], the first and last bins taking the
  tails), with `log_ndtr` above instead of TFP's Erfc. Only `log_prob` (summed over the
  last `event_ndims` axes) is provided; it takes the CDF's side of the bin left of the
  median and the survival function's right of it, as TFP does."""

  def __init__(self, loc, scale, levels, event_ndims=3):
    self.loc, self.scale, self.levels, self.event_ndims = loc, scale, levels, event_ndims

  def log_prob(self, values):
    k = tf.cast(values, tf.float32)
    upper = (k - self.loc) / self.scale  # standardised ends of the bin (k - 1, k]
    lower = (k - 1.0 - self.loc) / self.scale
    left = upper <= 0.0  # the bin lies left of the median: difference of CDFs
    interior = tf.where(
        left, _log_diff_exp(log_ndtr(upper), log_ndtr(lower)),
        _log_diff_exp(log_ndtr(-lower), log_ndtr(-upper)))
    log_p = tf.where(k <= 0.0, log_ndtr(upper),  # everything below the first bin's top
                     tf.where(k >= self.levels - 1, log_ndtr(-lower), interior))
    return tf.reduce_sum(log_p, list(range(-self.event_ndims, 0)))
