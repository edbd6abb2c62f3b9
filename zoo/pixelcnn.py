r"""Gated PixelCNN (van den Oord et al. 2016, `shared/papers/gated_pixelcnn.txt`).

  p(x | h) = prod_i p(x_i | x_<i, h),  pixels in raster order, channels R -> G -> B

Each sub-pixel is a `levels`-way softmax (256 for 8-bit data, 2 for binarised digits),
a TFP `Categorical`, so `log_prob` is a probability and bits/dim is the metric (or, with
`config.model.output="logistic_mixture"`, PixelCNN++'s mixture of discretised logistics
per pixel: see "Output heads" below).

The network (Figure 2), for each of `layers` gated blocks (the ungated baseline is below):

  vertical:   v_pre = conv_{ceil(n/2) x n}(v) (+ V h)          v' = tanh(v_pre_f) * sigm(v_pre_g)
              (the link below reads v_pre with its conditioning term)
  horizontal: h_pre = conv_{1 x ceil(n/2)}(h) + 1x1(shift_down(v_pre)) (+ V h)
              h'    = h + 1x1(tanh(h_pre_f) * sigm(h_pre_g))   (no residual in the first block)

then ReLU, a 1x1 conv to `output_hidden`, ReLU, a 1x1 conv to C * levels logits.

Causality is geometry, present from the first call: the vertical conv sees the rows at
and above the current one, and only its down-shifted pre-activations reach the
horizontal stack, which sees the current row up to the current pixel (its current
tap masked per channel group). There is no blind spot: the vertical stack's receptive
field is a full rectangle.

Channels (section 2): every feature map is split into C contiguous groups (R, G, B);
every weight that touches the *current* pixel is masked so that group c reads groups
< c in the first block ("A") and <= c after ("B"): the current tap of each horizontal
conv, the horizontal 1x1s and the output 1x1s. The vertical stack and the link only
carry rows above, which every group may read. Logits of channel c come from group c.

Conditioning (section 2.3), `config.model.conditional`:
  * "" (none), "class" (h = one-hot label, a per-layer bias, eq. 4), or
    "autoencoder" (section 2.4: h = a conv encoder's m = `code_size` code of the image,
    trained end to end with the decoder);
  * `config.model.spatial=True` (with a conditional) adds eq. 5: a deconvolution network
    maps h to a map s [H, W, spatial_features], added through unmasked 1x1 convs.

The ungated baseline (`config.model.gated=False`): the same blocks with the gate
replaced by a ReLU on `hidden` (= p) pre-activations, v' = relu(v_pre),
h' = h + 1x1(relu(h_pre)), so every conv, the link and the conditioning produce p
features, not 2p. The paper's words for what the gate replaced (section 2.1): "we
replaced the rectified linear units between the masked convolutions in the original
pixelCNN with the following gated activation unit" (eq. 2). Its own comparison (Table 1,
CIFAR-10 test bits/dim: PixelCNN 3.14, Gated PixelCNN 3.03) changes at least two things,
the gate and the blind spot; ours keeps the two stacks (no blind spot), the shifted
convolutions, the residual horizontal stack and the R -> G -> B masks, so it measures
the gate alone. At equal `hidden` it has about half the block parameters; match them with
a larger `hidden` (`configs/pixelcnn.py`). What it tests is the conclusion's claim: "we
use a gating mechanism which improves performance and convergence speed" (section 4).

Choices the paper leaves open: pixels are scaled to [-1, 1]; pixels outside the image
are zeros in that scale (zero padding); the vertical conv spans ceil(n/2) rows (the
paper's shift trick), so after the down-shift a pixel sees ceil(n/2) rows above per
block; the first block uses a larger kernel (`first_kernel`, 7 as in PixelCNN), the
rest `kernel` (3); the link v -> h has no bias (the horizontal conv has one).

Output heads, `config.model.output`:
  * "softmax" (the paper's, the default): a `levels`-way softmax per sub-pixel, R -> G -> B
    as above.
  * "logistic_mixture" (not in the paper; PixelCNN++, Salimans et al. 2017, section 2.2):
    per pixel, a mixture of `config.model.mixtures` discretised logistics over the levels
    with linear coupling of the channels (G's means move with R, B's with R and G), a
    `zoo.distributions.DiscretizedLogisticMixture`. The whole pixel is predicted at
    once, so every mask treats the pixel's channels as one group: no feature sees any
    channel of the current pixel (the network's R -> G -> B masking is replaced by the
    distribution's coupling). Per pixel the head emits K logits, C x K means, C x K log
    scales (floored at -7) and C (C - 1) / 2 x K coefficients (tanh), 10 K for RGB where
    the softmax emits 768. `pixel_log_prob` gives each sub-pixel's factor
    log p(x_c | x_<c, earlier pixels) (the mixture weighted by its posterior given the
    pixel's earlier channels); they sum to `log_prob`. The cached sampler draws a pixel
    per horizontal pass instead of one per channel.

Options beyond the paper (off by default; README, "differs from the papers"):
  * `config.model.context=L`: `Context`, a causal L-resolution summary c of the rows
    above every pixel (PixelCNN++'s up stream), enters every block as eq. 5's spatial
    term (1x1(c) added to both stacks' pre-activations). Image sides must be multiples
    of 2^(L - 1), so the model is tied to its size (`fixed_size`). It does not combine
    with `config.model.spatial`.
  * `config.model.weight_norm=True`: every kernel (blocks, context, head) is applied as
    g v / ||v|| (`Normed`), g and the biases set by `initialize` on the first batch
    (the loop runs it before step 0) so that every term is zero-mean, unit-variance.
  * `config.model.gate="linear"`: the gate is f * sigmoid(g) (PixelCNN++'s gated resnet)
    instead of eq. 2's tanh(f) * sigmoid(g): the features are no longer bounded to
    (-1, 1).
  * `config.model.vertical_residual=True`: the vertical stack is residual like the
    horizontal one (v' = v + gate(...), from the second block on). The paper tried it
    and left it out (section 2.2: "it did not improve the results in our initial
    experiments"); with the context, weight norm and the linear gate it learned
    faster in our screen (README, "differs from the papers").
  All four were added to race PixelCNN++ (`benchmarks/pixelcnn_vs_tfp.py`, issue 18).

Sampling (`sample`) is cached (Ramachandran et al. 2017): one `tf.while_loop` over rows
and one over columns; the vertical stack is computed once per finished row, and each
new sub-pixel costs one horizontal-stack position per block. Gumbel-max noise is drawn
per image from its own seed row, so `sample_naive` (the whole network recomputed per
sub-pixel) draws the same image.

Train: python -m training.run --model=pixelcnn --data=digits
"""
import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from zoo import contract
from zoo import distributions
from zoo import eager
from zoo import layers
from zoo import portable
from zoo import units

tfd = tfp.distributions

METRIC = "bits_per_dim"  # zoo.units.METRICS key reported for this model
CONDITIONALS = ("", "class", "autoencoder")
GATES = ("tanh", "linear")  # `config.model.gate`: eq. 2's tanh(f) * sigmoid(g), or f * sigmoid(g)
OUTPUTS = ("softmax", "logistic_mixture")  # `config.model.output`
MIN_LOG_SCALE = -7.0  # PixelCNN++'s floor on the logistics' log scales
COMPUTE_DTYPES = ("float32", "bfloat16")  # of the training loss (`config.train.compute_dtype`)


def group_of(units, groups):
  """Returns int [units]: the channel group (0..groups-1) of each of `units` features."""
  return np.arange(units) * groups // units


def group_mask(groups_in, groups_out, strict):
  """Returns float32 [I, O]: 1 where input group < (strict) or <= output group."""
  allowed = groups_in[:, None] < groups_out[None] if strict else groups_in[:, None] <= groups_out[None]
  return allowed.astype(np.float32)


def dense(x, kernel):
  """Returns x [..., I] @ kernel [I, O]: [..., O] (a reshape and one matmul).

  Not `tf.einsum("...i,io->...o")`: on CPU its gradient was 20x slower than the matmul's.
  """
  flat = tf.reshape(x, [-1, x.shape[-1]]) @ kernel
  return tf.reshape(flat, tf.concat([tf.shape(x)[:-1], [kernel.shape[-1]]], 0))


def gate(pre):
  """Returns tanh(f) * sigmoid(g) of pre [..., 2p] = [f, g] (eq. 2): [..., p]."""
  f, g = tf.split(pre, 2, axis=-1)
  return tf.tanh(f) * tf.sigmoid(g)


def linear_gate(pre):
  """Returns f * sigmoid(g) of pre [..., 2p] = [f, g] (PixelCNN++'s gate): [..., p]."""
  f, g = tf.split(pre, 2, axis=-1)
  return f * tf.sigmoid(g)


def log_softmax_at(logits, values):
  """Returns float32 [...]: log softmax(logits [..., L])[values] for int values [...]."""
  flat = tf.reshape(logits, [-1, logits.shape[-1]])
  picked = tf.gather(flat, tf.reshape(values, [-1]), batch_dims=1) - tf.reduce_logsumexp(flat, -1)
  return tf.reshape(picked, tf.shape(values))


# XLA-compiled copies for the training loss only: XLA fuses the elementwise ops and
# their gradients, measured on the CPU step (batch 32 of 32x32x3): the gates 1.3x
# (float32) to 1.8x (bfloat16) faster, the 256-way log softmax and its gradient 2.9x.
# `log_prob`, sampling and exports use the plain ops and never need XLA.
xla_gate = tf.function(gate, jit_compile=True)
xla_linear_gate = tf.function(linear_gate, jit_compile=True)
xla_log_softmax_at = tf.function(log_softmax_at, jit_compile=True)


def down_shift(x):
  """Returns x [B, H, W, C] moved one row down (zeros in row 0): row i holds row i - 1.

  A slice then a pad: the gradient of a strided slice (StridedSliceGrad) took 30 % of
  the CPU training step."""
  shape = tf.shape(x)
  upper = tf.slice(x, [0, 0, 0, 0], tf.concat([shape[:1], shape[1:2] - 1, shape[2:]], 0))
  return tf.pad(upper, [[0, 0], [1, 0], [0, 0], [0, 0]])


def weight_normalized(kernel, scale):
  """Returns g v / ||v|| of kernel v [..., O] and scale g [O], the norm over all axes but
  the last (Salimans & Kingma 2016)."""
  norm = tf.sqrt(tf.reduce_sum(tf.square(kernel), list(range(len(kernel.shape) - 1))) + 1e-12)
  return kernel * (scale / norm)


class Normed:
  """Kernels with optional weight normalisation (Salimans & Kingma 2016), for layers.

  With `weight_norm`, each kernel v [..., O] gets a scale g [O] (the layer's
  `<name>_scale`, 1 until `fit`) and is applied as g v / ||v||, the norm over all axes
  but the last (of the masked kernel, where it has a mask); data-dependent
  initialisation (`fit`) then sets g and the bias from one batch so that each term is
  zero-mean and unit-variance per channel, as PixelCNN++ initialises its network.
  """

  weight_norm = False

  def add_kernel(self, name, shape, initializer, mask=None):
    """Adds kernel `name` (and its scale with weight norm; `mask` a float array of `shape`)."""
    setattr(self, name, self.add_weight(shape=shape, initializer=initializer, name=name))
    if mask is not None:
      self.masks[name] = tf.constant(mask)
    if self.weight_norm:
      setattr(self, f"{name}_scale", self.add_weight(shape=shape[-1:], initializer="ones",
                                                     name=f"{name}_scale"))

  def weight(self, name):
    """Returns float32: kernel `name` as applied (masked; normalised and scaled)."""
    kernel = getattr(self, name)
    if name in self.masks:
      kernel = kernel * self.masks[name]
    if not self.weight_norm:
      return kernel
    return weight_normalized(kernel, getattr(self, f"{name}_scale"))

  def fit(self, name, term):
    """Returns (term, shift): `term` [..., O], computed with `weight(name)` and without
    bias, rescaled to unit variance per channel (the scale is divided to match); shift
    [O] is -mean / std, for the bias."""
    mean, variance = tf.nn.moments(term, list(range(len(term.shape) - 1)))
    inverse = tf.math.rsqrt(variance + 1e-6)
    scale = getattr(self, f"{name}_scale")
    scale.assign(scale * inverse)
    return term * inverse, -mean * inverse


class Context(Normed, keras.layers.Layer):
  """A causal multi-resolution summary of the rows above each pixel (not in the paper).

  c = Context(x): [B, H, W, F], where row i of c depends on image rows < i only, at
  every column: PixelCNN++'s "up" stream (Salimans et al. 2017, section 2.4) as a
  small U-Net. The image is down-shifted, then `levels` resolutions (H, H/2, ...) each
  hold `blocks` gated residual units down and up,

      u' = u + 1x1(tanh(f) * sigmoid(g)),  [f, g] = conv_{2x3}(u) (rows i-1 and i),

  linked by PixelCNN++'s down-shifted stride-2 convolutions and transposed
  convolutions (2x3 kernels: a coarse row covers fine rows it does not see the bottom
  of, so every output row stays strictly below what it reads), with the down pass
  added back at each resolution on the way up. Every Gated PixelCNN block adds
  1x1(c) to its vertical and horizontal pre-activations, the paper's spatial
  conditioning (eq. 5) with s = c. Each unit at the coarsest level widens what a row
  sees by 2^(levels - 1) pixels to each side and upwards (on 8x8 images with 3 levels,
  row i sees every pixel of rows < 2 floor(i / 2): tests/test_pixelcnn.py), where a
  block of the paper's stacks adds ceil(n/2). Sampling recomputes c once per finished
  row, on the rows drawn so far.
  """

  def __init__(self, features, levels, blocks, seed=0, weight_norm=False, **kwargs):
    super().__init__(autocast=False, **kwargs)
    self.features, self.levels, self.blocks, self.seed = features, levels, blocks, seed
    self.weight_norm, self.masks = weight_norm, {}

  def build(self, input_shape):
    cin, f = input_shape[-1], self.features
    seeds, zeros = layers.Seeds(self.seed, self.seed + 1000), keras.initializers.Zeros()

    def add(name, shape):  # a kernel and its bias
      self.add_kernel(name, shape, seeds.glorot())
      setattr(self, f"{name}_bias", self.add_weight(shape=shape[-1:], initializer=zeros,
                                                    name=f"{name}_bias"))

    add("entry", (2, 3, cin, f))
    self.unit_count = 2 * self.levels * self.blocks - self.blocks  # down, up; the coarsest once
    for k in range(self.unit_count):
      add(f"unit{k}_conv", (2, 3, f, 2 * f))
      add(f"unit{k}_out", (f, f))
    for k in range(self.levels - 1):
      add(f"down{k}", (2, 3, f, f))
      add(f"up{k}", (2, 3, f, f))

  def _biased(self, name, term, fit):
    """Returns term + bias `name`; `fit`: first fits the scale and sets the bias (`Normed.fit`)."""
    bias = getattr(self, f"{name}_bias")
    if fit:
      term, shift = self.fit(name, term)
      bias.assign(shift)
    return tf.nn.bias_add(term, tf.cast(bias, term.dtype))

  def _conv(self, x, name, fit, stride=1):
    """Down-shifted 2x3 conv: output row i reads input rows i - 1 and i (x [B, H, W, C])."""
    x = tf.pad(x, [[0, 0], [1, 0], [1, 1], [0, 0]])
    return self._biased(name, tf.nn.conv2d(x, tf.cast(self.weight(name), x.dtype), stride, "VALID"),
                        fit)

  def _up(self, x, name, fit):
    """Down-shifted stride-2 transposed 2x3 conv: coarse row r feeds fine rows 2r, 2r + 1."""
    b, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    kernel = tf.cast(tf.transpose(self.weight(name), [0, 1, 3, 2]), x.dtype)  # [2, 3, out, in]
    y = tf.nn.conv2d_transpose(x, kernel, tf.stack([b, 2 * h + 1, 2 * w + 2, kernel.shape[2]]),
                               2, "VALID")
    # tf.slice, not y[:, :2h, 1:2w+1]: StridedSliceGrad took 2 % of the training step.
    y = tf.slice(y, [0, 0, 1, 0], tf.stack([b, 2 * h, 2 * w, kernel.shape[2]]))
    return self._biased(name, y, fit)

  def _unit(self, u, k, fused, fit):
    g = (xla_gate if fused else gate)(self._conv(u, f"unit{k}_conv", fit))
    return u + self._biased(f"unit{k}_out", dense(g, tf.cast(self.weight(f"unit{k}_out"), u.dtype)),
                            fit)

  def call(self, x, fused=False, fit=False):
    """Returns c [B, H, W, F] in x's dtype from scaled images x [B, H, W, C] (H and W
    multiples of 2^(levels - 1)); row i of c depends on rows < i of x only. `fit`:
    data-dependent initialisation on x as it goes (weight norm)."""
    u = down_shift(self._conv(x, "entry", fit))  # rows < i
    units, skips = iter(range(self.unit_count)), []
    for level in range(self.levels):
      for _ in range(self.blocks):
        u = self._unit(u, next(units), fused, fit)
      if level < self.levels - 1:
        skips.append(u)
        u = self._conv(u, f"down{level}", fit, stride=2)
    for level in reversed(range(self.levels - 1)):
      u = self._up(u, f"up{level}", fit) + skips[level]
      for _ in range(self.blocks):
        u = self._unit(u, next(units), fused, fit)
    return u


class Block(Normed, keras.layers.Layer):
  """One block of Figure 2: vertical and horizontal stacks, link, residual, conditioning;
  gated (eq. 2) or, `gated=False`, the ReLU baseline.

  The weights are plain tensors so the full pass (`call`) and the cached sampler
  (`vertical_row`, `horizontal_pixel`) share them exactly. Shapes below: p = `hidden`,
  q = `pre`, the pre-activation width (2p gated, p ungated).
  """

  def __init__(self, hidden, kernel, groups, first, gated=True, cond_dim=0, spatial_dim=0,
               seed=0, weight_norm=False, gate="tanh", vertical_residual=False, **kwargs):
    super().__init__(autocast=False, **kwargs)  # computes in its inputs' dtype (`call`)
    self.weight_norm = weight_norm  # `Normed`
    self.seed = seed  # weight k of this block is drawn with seed + k
    self.hidden, self.kernel, self.groups, self.first = hidden, kernel, groups, first
    self.gated, self.gate = gated, gate  # gate: "tanh" (eq. 2) or "linear" (GATES)
    # The vertical stack adds its input back (`config.model.vertical_residual`); the
    # first block's input is the image, of another width.
    self.vertical_residual = vertical_residual and not first
    self.pre = 2 * hidden if gated else hidden  # pre-activation width: [f, g] halves, or p
    self.rows = (kernel + 1) // 2  # ceil(n/2): vertical rows, horizontal taps
    self.cond_dim, self.spatial_dim = cond_dim, spatial_dim

  def build(self, input_shape):
    cin, p, q, k = input_shape[-1], self.hidden, self.pre, self.kernel
    groups_in = group_of(cin, self.groups)
    groups_pre = np.tile(group_of(p, self.groups), q // p)  # gated: f and g halves alike
    seeds, zeros = layers.Seeds(self.seed, self.seed + 100), keras.initializers.Zeros()
    bias = lambda name, shape: self.add_weight(shape=shape, initializer=zeros, name=name)
    # Only the current pixel's tap (the last one) is masked; earlier pixels are all known.
    current = group_mask(groups_in, groups_pre, strict=self.first)  # [cin, q]
    h_mask = np.ones((1, self.rows, cin, q), np.float32)
    h_mask[0, -1] = current
    self.masks = {}
    self.add_kernel("v_kernel", (self.rows, k, cin, q), seeds.glorot())
    self.v_bias = bias("v_bias", (q,))
    self.add_kernel("h_kernel", (1, self.rows, cin, q), seeds.glorot(), mask=h_mask)
    self.h_bias = bias("h_bias", (q,))
    self.add_kernel("link", (q, q), seeds.glorot())
    self.add_kernel("out", (p, p), seeds.glorot(),
                    mask=group_mask(group_of(p, self.groups), group_of(p, self.groups), False))
    self.out_bias = bias("out_bias", (p,))
    for which in ("v", "h"):
      if self.cond_dim:
        self.add_kernel(f"cond_{which}", (self.cond_dim, q), seeds.glorot())
    for which in ("v", "h"):
      if self.spatial_dim:
        self.add_kernel(f"spatial_{which}", (self.spatial_dim, q), seeds.glorot())

  def nonlinearity(self, pre, fused=False):
    """Returns [..., p] of pre-activations [..., q]: the gate tanh(f) * sigmoid(g) (eq. 2)
    or, `gate="linear"`, f * sigmoid(g), XLA-compiled if `fused`; or ReLU (ungated; q = p)."""
    if not self.gated:
      return tf.nn.relu(pre)  # one elementwise op: nothing for XLA to fuse
    if self.gate == "linear":
      return (xla_linear_gate if fused else linear_gate)(pre)
    return (xla_gate if fused else gate)(pre)

  def _bias(self, cond, spatial, which, dtype=tf.float32):
    """Returns the conditioning term for stack `which` ("v"/"h"): [B, 1, 1, q], [B, H, W, q] or 0."""
    term = 0.0
    if self.cond_dim:
      term += tf.matmul(cond, tf.cast(self.weight(f"cond_{which}"), dtype))[:, None, None]  # eq. 4
    if self.spatial_dim and spatial is not None:  # (the context's map comes per row)
      term += dense(spatial, tf.cast(self.weight(f"spatial_{which}"), dtype))  # eq. 5
    return term

  def call(self, v, h, cond=None, spatial=None, fused=False):
    """Returns (v', h') [B, H, W, p] each from v, h [B, H, W, Cin]; cond [B, D], spatial [B, H, W, S].

    Computes in the inputs' dtype (float32, or bfloat16 for `Model.train_loss` under
    `config.train.compute_dtype`); the weights are float32 and cast. `fused`: the gates
    are XLA-compiled (`xla_gate`, for training; no effect ungated).
    Written for the CPU kernels' speed (each was a measured cost of the training step):
    the convs pad with tf.pad and convolve "VALID" (with explicit conv padding the
    gradients leave oneDNN's kernels and were 1.6x slower), biases go through `bias_add`
    (its gradient is one fused reduction, not a generic Sum), and the
    down-shift is a `tf.slice` then a pad (the gradient of a strided slice,
    StridedSliceGrad, took 30 % of the step).
    """
    r, dtype = self.kernel // 2, v.dtype
    w = lambda weight: tf.cast(weight, dtype)
    v_pre = tf.nn.bias_add(tf.nn.conv2d(tf.pad(v, [[0, 0], [self.rows - 1, 0], [r, r], [0, 0]]),
                                        w(self.weight("v_kernel")), 1, "VALID"), w(self.v_bias))  # [B, H, W, q]
    h_pre = tf.nn.bias_add(tf.nn.conv2d(tf.pad(h, [[0, 0], [0, 0], [self.rows - 1, 0], [0, 0]]),
                                        w(self.weight("h_kernel")), 1, "VALID"), w(self.h_bias))
    if self.cond_dim or self.spatial_dim:
      v_pre += self._bias(cond, spatial, "v", dtype)
      h_pre += self._bias(cond, spatial, "h", dtype)
    h_pre += dense(down_shift(v_pre), w(self.weight("link")))  # row i reads v_pre of row i - 1
    out = tf.nn.bias_add(dense(self.nonlinearity(h_pre, fused), w(self.weight("out"))),
                         w(self.out_bias))
    v_out = self.nonlinearity(v_pre, fused)
    return v + v_out if self.vertical_residual else v_out, out if self.first else h + out

  def initialize(self, v, h, cond=None, spatial=None, context=False):
    """Data-dependent initialisation (weight norm; `Normed.fit`) on one batch's inputs
    v, h [B, H, W, Cin] (cond, spatial as `call`); returns `call`'s (v', h') after it.

    Every term of a pre-activation computed from the image (the conv, the link, and the
    spatial term when it is the model's `Context`, `context=True`) gets unit variance
    per channel on its own, and the biases take their means away, as each of
    PixelCNN++'s layers is initialised; so does the residual 1x1. Conditioning terms
    keep scale 1: one batch need not show every label.
    """
    r = self.kernel // 2

    def fitted(terms, which, bias):
      total, shift = 0.0, 0.0
      for name, term in terms:
        term, s = self.fit(name, term)
        total, shift = total + term, shift + s
      bias.assign(shift)
      fixed = self._bias(cond, None if context else spatial, which) if which else 0.0
      return total + shift + fixed

    spatial_term = lambda which: ([(f"spatial_{which}", dense(spatial, self.weight(f"spatial_{which}")))]
                                  if context else [])
    v_pre = fitted([("v_kernel", tf.nn.conv2d(tf.pad(v, [[0, 0], [self.rows - 1, 0], [r, r], [0, 0]]),
                                              self.weight("v_kernel"), 1, "VALID"))]
                   + spatial_term("v"), "v", self.v_bias)
    h_pre = fitted([("h_kernel", tf.nn.conv2d(tf.pad(h, [[0, 0], [0, 0], [self.rows - 1, 0], [0, 0]]),
                                              self.weight("h_kernel"), 1, "VALID")),
                    ("link", dense(down_shift(v_pre), self.weight("link")))]
                   + spatial_term("h"), "h", self.h_bias)
    fitted([("out", dense(self.nonlinearity(h_pre), self.weight("out")))], None, self.out_bias)
    return self(v, h, cond, spatial)

  # -- the cached sampler's pieces ----------------------------------------------------

  def vertical_row(self, window, cond=None, spatial_row=None):
    """Returns (v' row [B, W, p], link term for the next row [B, W, q]).

    window: [B, rows, W, Cin], this block's vertical inputs of the last `rows` rows
    (zeros above the image); spatial_row: [B, W, S].
    """
    r = self.kernel // 2
    v_pre = tf.nn.conv2d(tf.pad(window, [[0, 0], [0, 0], [r, r], [0, 0]]),
                         self.weight("v_kernel"), 1, "VALID")[:, 0] + self.v_bias  # [B, W, q]
    if self.cond_dim:
      v_pre += tf.matmul(cond, self.weight("cond_v"))[:, None]
    if self.spatial_dim:
      v_pre += dense(spatial_row, self.weight("spatial_v"))
    v_out = self.nonlinearity(v_pre)
    if self.vertical_residual:
      v_out += window[:, -1]  # this row's input
    return v_out, dense(v_pre, self.weight("link"))

  def pixel_weights(self, cond=None, spatial=None):
    """Returns the horizontal stack's weights for `horizontal_pixel`, masked once per
    sample rather than once per sub-pixel: (kernel [rows * Cin, q], output kernel
    [p, p], bias [B, H, W, q] or [B, 1, 1, q] or [q]: h_bias + conditioning)."""
    kernel = tf.reshape(self.weight("h_kernel"), [-1, self.pre])
    return kernel, self.weight("out"), self.h_bias + self._bias(cond, spatial, "h")

  def horizontal_pixel(self, window, link, weights):
    """Returns h' [B, p] at one pixel.

    window: [B, rows, Cin], the horizontal inputs of this pixel and the rows - 1 before it
    (zeros left of the image); link: [B, q], this pixel's term from the row above plus
    its bias (`pixel_weights`); weights: (kernel, output kernel) of `pixel_weights`.
    """
    kernel, out_kernel = weights
    h_pre = tf.reshape(window, [tf.shape(window)[0], -1]) @ kernel + link
    out = self.nonlinearity(h_pre) @ out_kernel + self.out_bias
    return out if self.first else window[:, -1] + out


class Model(keras.Model):
  """The Gated PixelCNN as a Keras model; see the module docstring.

  Model API: `pixel_log_prob`, `log_prob`, `sample` (cached), `sample_naive`,
  `encode` (autoencoder), `eval_terms`, `train_loss`; conditioning inputs go by name:
  `label` int [B] (class) or `code` float [B, m] (autoencoder; `encode(images)` if absent).
  """

  continuous = False  # log_prob is a probability of the discrete image

  def __init__(self, config, **kwargs):
    super().__init__(**kwargs)
    mc = config.model
    self.height, self.width, self.channels = (int(d) for d in config.data.image_shape)
    self.levels = int(mc.levels)
    dtype = config.train.get("compute_dtype", "float32")
    if dtype not in COMPUTE_DTYPES:
      raise ValueError(f"unknown config.train.compute_dtype {dtype!r}; valid: "
                       f"{', '.join(repr(d) for d in COMPUTE_DTYPES)}")
    self.train_dtype = tf.as_dtype(dtype)
    # The training loss XLA-compiles its gates and log softmax, unless the whole gradient
    # is compiled already (`config.train.jit`): XLA functions nested in an XLA-compiled
    # step under a distribution strategy recompiled on every step.
    self.fused = not config.train.get("jit", False)
    self.output_kind = mc.get("output", "softmax")
    if self.output_kind not in OUTPUTS:
      raise ValueError(f"unknown config.model.output {self.output_kind!r}; "
                       f"valid: {', '.join(repr(o) for o in OUTPUTS)}")
    self.mixtures = int(mc.get("mixtures", 10))
    if self.output_kind == "logistic_mixture" and self.mixtures < 1:
      raise ValueError(f"config.model.mixtures={self.mixtures} must be positive")
    # The masks' channel groups: the softmax draws R, G, B one by one, so channel c's
    # features see channels < c of the current pixel; the mixture models the whole pixel
    # from the pixels before it (one group: nothing of the current pixel is seen).
    self.groups = self.channels if self.output_kind == "softmax" else 1
    self.conditional = mc.conditional
    if self.conditional not in CONDITIONALS:
      raise ValueError(f"unknown config.model.conditional {self.conditional!r}; "
                       f"valid: {', '.join(repr(c) for c in CONDITIONALS)}")
    if mc.hidden % self.groups:
      raise ValueError(f"config.model.hidden={mc.hidden} must be a multiple of the "
                       f"{self.channels} channels (one feature group per channel)")
    self.num_classes = int(config.data.get("num_classes", 0) or 0)
    if self.conditional == "class" and self.num_classes < 2:
      raise ValueError("config.model.conditional='class' needs a labelled dataset "
                       "(config.data.num_classes >= 2; e.g. --data=digits or mnist)")
    cond_dim = {"": 0, "class": self.num_classes, "autoencoder": mc.code_size}[self.conditional]
    self.conditional_inputs = {"": (), "class": ("label",), "autoencoder": ("code",)}[self.conditional]
    self.code_size = mc.code_size if self.conditional == "autoencoder" else 0
    # The figure: a row of samples per class, or test images above their reconstructions.
    self.figure = {"": None, "class": "classes", "autoencoder": "reconstructions"}[self.conditional]
    self.capabilities = frozenset({contract.PIXELS} |
                                  ({contract.ENCODE} if self.code_size else set()) |
                                  ({contract.INITIALIZE} if mc.get("weight_norm", False) else set()))
    spatial_dim = mc.spatial_features if (mc.spatial and cond_dim) else 0
    self.context_levels = int(mc.get("context", 0))
    self.weight_norm = bool(mc.get("weight_norm", False))
    if self.context_levels:
      if spatial_dim:
        raise ValueError("config.model.context does not combine with config.model.spatial "
                         "(both feed the blocks' spatial terms); turn one off")
      if self.context_levels < 0 or (self.height % 2 ** (self.context_levels - 1) or
                                     self.width % 2 ** (self.context_levels - 1)):
        raise ValueError(f"config.model.context={self.context_levels}: the image sides "
                         f"{self.height}x{self.width} must be multiples of 2^(context - 1)")
      self.context = Context(mc.context_features, self.context_levels, mc.context_blocks,
                             seed=10**6 + 1000 * mc.seed,  # apart from the blocks'
                             weight_norm=self.weight_norm, name="context")
    # eq. 5's map s, the encoder's dense layer and the context's resolutions have the
    # training images' size; otherwise the network is convolutional and scores images of
    # any size.
    self.fixed_size = ((self.height, self.width)
                       if (spatial_dim or self.code_size or self.context_levels) else None)
    # Seeded initialisers: every build of a config starts from the same weights (replicas,
    # strategies and tests compare runs).
    seeds = layers.Seeds.of_model(mc.seed)
    glorot = lambda: dict(kernel_initializer=seeds.glorot())
    if self.conditional == "autoencoder":
      self.encoder = keras.Sequential([
          keras.layers.Conv2D(mc.hidden, 3, strides=2, padding="same", activation="relu", **glorot()),
          keras.layers.Conv2D(2 * mc.hidden, 3, strides=2, padding="same", activation="relu",
                              **glorot()),
          keras.layers.Flatten(),
          keras.layers.Dense(mc.code_size, **glorot()),
      ], name="encoder")
    if spatial_dim:  # eq. 5's deconvolution network m(h): [D] -> [H, W, S]
      h4, w4 = -(-self.height // 4), -(-self.width // 4)
      self.deconv = keras.Sequential([
          keras.layers.Dense(h4 * w4 * spatial_dim, activation="relu", **glorot()),
          keras.layers.Reshape((h4, w4, spatial_dim)),
          keras.layers.Conv2DTranspose(spatial_dim, 3, strides=2, padding="same", activation="relu",
                                       **glorot()),
          keras.layers.Conv2DTranspose(spatial_dim, 3, strides=2, padding="same", **glorot()),
      ], name="deconv")
    self.gate = mc.get("gate", "tanh")
    if self.gate not in GATES:
      raise ValueError(f"unknown config.model.gate {self.gate!r}; "
                       f"valid: {', '.join(repr(g) for g in GATES)}")
    self.blocks = [
        Block(mc.hidden, mc.first_kernel if k == 0 else mc.kernel, self.groups,
              first=k == 0, gated=mc.get("gated", True), cond_dim=cond_dim,
              spatial_dim=spatial_dim or (mc.context_features if self.context_levels else 0),
              seed=1000 * mc.seed + 100 * (k + 1) + 10, weight_norm=self.weight_norm,
              gate=self.gate, vertical_residual=bool(mc.get("vertical_residual", False)),
              name=f"block{k}")
        for k in range(mc.layers)]
    c, k = self.channels, self.mixtures
    # Per pixel: C x levels logits, or the mixture's K logits, C x K means, C x K log
    # scales and C (C - 1) / 2 x K coupling coefficients.
    self.head_units = c * self.levels if self.output_kind == "softmax" else k * (1 + 2 * c + c * (c - 1) // 2)
    groups_hidden = group_of(mc.hidden, self.groups)
    groups_out = group_of(mc.output_hidden, self.groups)
    groups_logits = group_of(self.head_units, self.groups)  # channel c's logits
    self.head_masks = (tf.constant(group_mask(groups_hidden, groups_out, False)),
                       tf.constant(group_mask(groups_out, groups_logits, False)))
    self.head = [keras.layers.Dense(mc.output_hidden, name="head1", **glorot()),
                 keras.layers.Dense(self.head_units, name="head2", **glorot())]
    self.head[0].build((None, mc.hidden))  # used through their kernels (masked), never called
    self.head[1].build((None, mc.output_hidden))
    if self.weight_norm:  # the head's two kernels are normalised too (`head_kernels`)
      self.head_scales = [self.add_weight(shape=(units,), initializer="ones", name=f"head{k + 1}_scale")
                          for k, units in enumerate((mc.output_hidden, self.head_units))]
    # Build every weight now: checkpoints and exports see them before the first call.
    shape = (1, self.height, self.width, self.channels)
    self.outputs(tf.zeros(shape), *self._conditioning(tf.zeros(shape, tf.uint8),
                                                      label=tf.zeros([1], tf.int32)))

  # -- the network ----------------------------------------------------------------------

  def scale(self, images):
    """Returns float32 [B, H, W, C] in [-1, 1] of uint8 images with values in [0, levels)."""
    return tf.cast(images, tf.float32) * (2.0 / (self.levels - 1)) - 1.0

  def encode(self, images):
    """Returns float32 [B, m]: the autoencoder's code of uint8 images [B, H, W, C]."""
    # A static channel count: Keras compiles a conv with XLA when it cannot see one,
    # and exports must not need XLA.
    x = tf.ensure_shape(self.scale(images), [None, self.height, self.width, self.channels])
    return self.encoder(x)

  def _conditioning(self, images, label=None, code=None):
    """Returns (h [B, D] or None, spatial map s [B, H, W, S] or None) for the inputs given."""
    if self.conditional == "":
      return None, None
    if self.conditional == "class":
      if label is None:
        raise ValueError("this PixelCNN is class-conditional: pass label=int [B]")
      h = tf.one_hot(tf.cast(label, tf.int32), self.num_classes)
    else:
      h = self.encode(images) if code is None else tf.cast(code, tf.float32)
    if not hasattr(self, "deconv"):
      return h, None
    s = self.deconv(h)[:, :self.height, :self.width]  # [B, H, W, S]
    return h, s

  def head_kernels(self):
    """Returns the head's two kernels as applied: masked (and, with weight norm,
    normalised and scaled as `Normed.weight`)."""
    kernels = [layer.kernel * mask for layer, mask in zip(self.head, self.head_masks)]
    if not self.weight_norm:
      return kernels
    return [weight_normalized(kernel, scale) for kernel, scale in zip(kernels, self.head_scales)]

  def _head(self, h):
    """Returns the head's outputs [..., head_units] from the last horizontal features [..., p]."""
    (dense1, dense2), (kernel1, kernel2) = self.head, self.head_kernels()
    w = lambda weight: tf.cast(weight, h.dtype)
    out = tf.nn.bias_add(dense(tf.nn.relu(h), w(kernel1)), w(dense1.bias))
    return tf.nn.bias_add(dense(tf.nn.relu(out), w(kernel2)), w(dense2.bias))

  def initialize(self, images, label=None, code=None):
    """Data-dependent initialisation with `config.model.weight_norm` (PixelCNN++'s, on
    one batch of uint8 images before the first step): every normalised kernel's scale
    and its bias are set, layer by layer, so that each term is zero-mean and
    unit-variance per channel on `images` (`Block.initialize`, `Context`). A class-
    conditional model initialises with label 0 (conditioning terms keep scale 1)."""
    if not self.weight_norm:
      raise ValueError("initialize is the weight-normalised model's (config.model.weight_norm)")
    if self.conditional == "class" and label is None:
      label = tf.zeros(tf.shape(images)[:1], tf.int32)
    x = self.scale(images)
    cond, spatial = self._conditioning(images, label, code)
    if self.context_levels:
      spatial = self.context(x, fit=True)
    v = h = x
    for block in self.blocks:
      v, h = block.initialize(v, h, cond, spatial, context=bool(self.context_levels))
    (dense1, dense2), (kernel1, kernel2) = self.head, self.head_kernels()
    hidden = None
    for layer, kernel, scale, inputs in ((dense1, kernel1, self.head_scales[0], tf.nn.relu(h)),
                                         (dense2, kernel2, self.head_scales[1], None)):
      if inputs is None:
        inputs = tf.nn.relu(hidden)
      term = dense(inputs, kernel)
      mean, variance = tf.nn.moments(term, [0, 1, 2])
      inverse = tf.math.rsqrt(variance + 1e-6)
      scale.assign(scale * inverse)
      layer.bias.assign(-mean * inverse)
      hidden = (term - mean) * inverse

  def outputs(self, x, cond=None, spatial=None, dtype=tf.float32, fused=False):
    """Returns float32 [B, H, W, head_units] from scaled images x [B, H, W, C] (float, so
    tests can take gradients), the network computed in `dtype`; `fused`: XLA-compiled
    gates (training)."""
    cast = lambda t: None if t is None else tf.cast(t, dtype)
    v = h = cast(x)
    cond, spatial = cast(cond), cast(spatial)
    if self.context_levels:
      spatial = self.context(v, fused=fused)
    for block in self.blocks:
      v, h = block(v, h, cond, spatial, fused=fused)
    return tf.cast(self._head(h), tf.float32)

  def logits(self, x, cond=None, spatial=None, dtype=tf.float32, fused=False):
    """Returns float32 [B, H, W, C, levels]: the softmax head's logits (see `outputs`)."""
    if self.output_kind != "softmax":
      raise ValueError(f"logits are the softmax head's; this model's output is {self.output_kind!r}")
    logits = self.outputs(x, cond, spatial, dtype, fused)
    return tf.reshape(logits, tf.concat([tf.shape(x), [self.levels]], 0))

  def mixture(self, outputs):
    """Returns the logistic mixture head's per-pixel `DiscretizedLogisticMixture` (event
    [C]) from head outputs [..., head_units]: log scales floored at -7 and coupling
    coefficients squashed by tanh, as PixelCNN++ does."""
    c, k = self.channels, self.mixtures
    logits, loc, log_scale, coefficients = tf.split(
        outputs, [k, c * k, c * k, c * (c - 1) // 2 * k], axis=-1)
    rows = lambda t, n: tf.reshape(t, tf.concat([tf.shape(outputs)[:-1], [n, k]], 0))  # [..., n, K]
    return distributions.DiscretizedLogisticMixture(
        logits, rows(loc, c), tf.maximum(rows(log_scale, c), MIN_LOG_SCALE),
        tf.tanh(rows(coefficients, c * (c - 1) // 2)), self.levels)

  def _mixture_nats(self, outputs, images):
    """Returns float32 [B]: log p(images) under the mixture head's outputs [B, H, W, P]."""
    return tf.reduce_sum(self.mixture(outputs).log_prob(images), [1, 2])

  def distribution(self, images, label=None, code=None):
    """Returns p(x | h) with event shape [H, W, C]: tfd.Independent of a Categorical per
    sub-pixel (softmax) or of a `DiscretizedLogisticMixture` per pixel."""
    outputs = self.outputs(self.scale(images), *self._conditioning(images, label, code))
    if self.output_kind == "logistic_mixture":
      return tfd.Independent(self.mixture(outputs), reinterpreted_batch_ndims=2)
    logits = tf.reshape(outputs, tf.concat([tf.shape(images), [self.levels]], 0))
    return tfd.Independent(tfd.Categorical(logits=logits), reinterpreted_batch_ndims=3)

  # -- model API --------------------------------------------------------------------------

  @eager.graph_when_eager
  def pixel_log_prob(self, images, label=None, code=None):
    """Returns float32 [B, H, W, C]: log p(x_i | x_<i, h) of each sub-pixel, nats (the
    mixture's: each channel's factor given the earlier ones, through the posterior over
    its components)."""
    if self.output_kind == "logistic_mixture":
      return self.distribution(images, label, code).distribution.conditional_log_probs(images)
    if portable.active():  # the same values without SparseSoftmaxCrossEntropy (TFLite)
      logits = self.logits(self.scale(images), *self._conditioning(images, label, code))
      return log_softmax_at(logits, tf.cast(images, tf.int32))
    return self.distribution(images, label, code).distribution.log_prob(tf.cast(images, tf.int32))

  @eager.graph_when_eager
  def log_prob(self, images, label=None, code=None):
    """Returns float32 [B]: log p(x | h) of each image, nats."""
    if portable.active() and self.output_kind == "softmax":
      return tf.reduce_sum(self.pixel_log_prob(images, label, code), [1, 2, 3])
    return self.distribution(images, label, code).log_prob(tf.cast(images, tf.int32))

  def call(self, images, label=None, code=None):
    return self.log_prob(images, label, code)

  def eval_terms(self, images, seeds=None, label=None, code=None):
    """Returns (log p(x | h) [B] nats, dimensions H * W * C [B]); `seeds` unused (no noise)."""
    del seeds
    nats = self.log_prob(images, label, code)
    return nats, tf.fill(tf.shape(nats), units.dims_per_image(images))

  def train_loss(self, images, seeds=None, label=None, code=None):
    """Returns (per-example loss [B], terms): -log p(x | h) per dimension, nats.

    The network computes in `config.train.compute_dtype` (bfloat16: mixed precision, the
    weights stay float32) with XLA-compiled gates and log softmax (`self.fused`), the
    rest of the graph in TensorFlow's kernels (XLA's CPU convolutions were slower at
    32x32); `log_prob`, evaluation and sampling always compute in float32 without XLA.
    """
    del seeds  # no noise
    outputs = self.outputs(self.scale(images), *self._conditioning(images, label, code),
                           dtype=self.train_dtype, fused=self.fused)
    if self.output_kind == "logistic_mixture":
      nats = self._mixture_nats(outputs, images)  # XLA-compiled: no faster (measured)
    else:
      logits = tf.reshape(outputs, tf.concat([tf.shape(images), [self.levels]], 0))
      log_softmax = xla_log_softmax_at if self.fused else log_softmax_at
      nats = tf.reduce_sum(log_softmax(logits, tf.cast(images, tf.int32)), [1, 2, 3])
    dims = units.dims_per_image(images)
    return -nats / dims, {"nats_per_dim": nats / dims}

  # -- sampling -----------------------------------------------------------------------------

  def _noise(self, seeds):
    """Returns the sampling noise, row b drawn from seeds[b] alone: softmax, Gumbel noise
    float32 [B, H, W, C, levels]; mixture, (Gumbel [B, H, W, K] for the component,
    uniform in (0, 1) [B, H, W, C] for the logistics)."""
    if self.output_kind == "softmax":
      shape = [self.height, self.width, self.channels, self.levels]
      u = layers.per_example_uniform(seeds, shape, 1e-7, 1.0)
      return -tf.math.log(-tf.math.log(u))
    shape = [self.height, self.width, self.mixtures + self.channels]
    u = layers.per_example_uniform(seeds, shape, 1e-7, 1.0)
    component, logistic = tf.split(u, [self.mixtures, self.channels], axis=-1)
    return -tf.math.log(-tf.math.log(component)), logistic

  def _draw_pixel(self, outputs, noise, i, j):
    """Returns float32 [B, C]: the mixture head's draw of pixel (i, j) from its outputs
    [B, head_units] and `_noise`'s noise."""
    gumbel, uniform = noise
    return tf.cast(self.mixture(outputs).sample_from_noise(gumbel[:, i, j], uniform[:, i, j]),
                   tf.float32)

  def _check_batch(self, seeds, label, code):
    """Returns (h, spatial) for sampling `seeds` rows (images are not known yet)."""
    if self.conditional == "autoencoder" and code is None:
      raise ValueError("this PixelCNN auto-encoder samples given a code: pass code=float [B, m]")
    blank = tf.zeros([tf.shape(seeds)[0], self.height, self.width, self.channels], tf.uint8)
    return self._conditioning(blank, label, code)

  def sample_naive(self, seeds, label=None, code=None):
    """Returns uint8 [B, H, W, C]: ancestral samples recomputing the whole network for
    every sub-pixel (the reference the cached `sample` must equal)."""
    cond, spatial = self._check_batch(seeds, label, code)
    noise = self._noise(seeds)
    b = tf.shape(seeds)[0]
    if self.output_kind == "logistic_mixture":  # a whole pixel per step
      def pixel_step(t, canvas):
        i, j = t // self.width, t % self.width
        outputs = self.outputs(self.scale(canvas), cond, spatial)[:, i, j]  # [B, P]
        pixel = tf.cast(self._draw_pixel(outputs, noise, i, j), tf.uint8)  # [B, C]
        index = tf.stack([tf.range(b), tf.fill([b], i), tf.fill([b], j)], 1)
        return t + 1, tf.tensor_scatter_nd_update(canvas, index, pixel)

      canvas = tf.zeros([b, self.height, self.width, self.channels], tf.uint8)
      _, canvas = tf.while_loop(lambda t, _: t < self.height * self.width, pixel_step,
                                [tf.constant(0), canvas])
      return canvas
    gumbel = noise
    total = self.height * self.width * self.channels

    def step(t, canvas):
      i, j, c = t // (self.width * self.channels), (t // self.channels) % self.width, t % self.channels
      logits = self.logits(self.scale(canvas), cond, spatial)[:, i, j, c]  # [B, levels]
      value = tf.argmax(logits + gumbel[:, i, j, c], -1, output_type=tf.int32)
      index = tf.stack([tf.range(b), tf.fill([b], i), tf.fill([b], j), tf.fill([b], c)], 1)
      return t + 1, tf.tensor_scatter_nd_update(canvas, index, tf.cast(value, tf.uint8))

    canvas = tf.zeros([b, self.height, self.width, self.channels], tf.uint8)
    _, canvas = tf.while_loop(lambda t, _: t < total, step, [tf.constant(0), canvas])
    return canvas

  @eager.graph_when_eager
  def sample(self, seeds, label=None, code=None):
    """Returns uint8 [B, H, W, C] samples, one per seed row (int64 [B, 2]), cached.

    Rows: the vertical stack of row i - 1 is computed once (per block, from its last
    `rows` input rows), giving each block's link term for row i. Columns: each
    sub-pixel runs the horizontal stack at one position per block, from per-block
    buffers of the current row's inputs, then the head; channel c is drawn with the
    channels < c of the pixel already in place.
    """
    cond, spatial = self._check_batch(seeds, label, code)
    noise = self._noise(seeds)
    mixture = self.output_kind == "logistic_mixture"
    b = tf.shape(seeds)[0]
    height, width, channels, blocks = self.height, self.width, self.channels, self.blocks
    ins = [channels] + [block.hidden for block in blocks[:-1]]  # each block's input width

    weights = [block.pixel_weights(cond, spatial) for block in blocks]  # masked once
    (dense1, dense2), (head1, head2) = self.head, self.head_kernels()

    def column(i, j, canvas_row, biases, buffers):
      """Draws pixel (i, j): returns the new canvas row [B, W, C] and buffers."""
      onehot = tf.one_hot(j, width)[None, :, None]  # [1, W, 1]
      pixel_biases = [tf.gather(bias, j, axis=1) for bias in biases]  # [B, q] each
      pixel = tf.zeros([b, channels])
      # The softmax draws channel c given channels < c: one pass per channel. The
      # mixture's features do not see the current pixel: one pass draws it whole.
      for c in range(1 if mixture else channels):
        x = pixel * (2.0 / (self.levels - 1)) - 1.0  # channels >= c are masked out anyway
        feature, new_buffers = x, []
        for block, buffer, bias, (kernel, out_kernel, _) in zip(blocks, buffers, pixel_biases,
                                                                 weights):
          # buffer [B, W + rows - 1, Cin]: this block's inputs of the row, left-padded.
          # tf.slice keeps the window's static size, which XLA needs (a strided slice
          # with a loop-variable end has none).
          window = tf.concat([tf.slice(buffer, [0, j, 0], [-1, block.rows - 1, -1]),
                              feature[:, None]], 1)
          new_buffers.append(buffer + onehot_pad(block, j) * (feature[:, None] - buffer))
          feature = block.horizontal_pixel(window, bias, (kernel, out_kernel))
        hidden = tf.nn.relu(tf.nn.relu(feature) @ head1 + dense1.bias)
        outputs = hidden @ head2 + dense2.bias  # [B, head_units]
        if mixture:
          pixel = self._draw_pixel(outputs, noise, i, j)
          break
        logits = tf.reshape(outputs, [b, channels, self.levels])[:, c]
        value = tf.argmax(logits + noise[:, i, j, c], -1, output_type=tf.int32)  # [B]
        pixel += tf.one_hot(c, channels)[None] * tf.cast(value, tf.float32)[:, None]
      # Every feature at (i, j) ignores the pixel's last channel (the masks), so the last
      # pass left the buffers final, except block 0's raw input: store the whole pixel.
      x = pixel * (2.0 / (self.levels - 1)) - 1.0
      new_buffers[0] = buffers[0] + onehot_pad(blocks[0], j) * (x[:, None] - buffers[0])
      canvas_row += onehot * (pixel[:, None] - canvas_row)
      return canvas_row, new_buffers

    def onehot_pad(block, j):
      return tf.one_hot(j + block.rows - 1, width + block.rows - 1)[None, :, None]  # [1, W+r-1, 1]

    def row(i, canvas, rings, links):
      buffers = [tf.zeros([b, width + block.rows - 1, cin]) for block, cin in zip(blocks, ins)]
      canvas_row = tf.zeros([b, width, channels])
      # Each block's per-pixel bias for this row: the link from the row above, h_bias and
      # the conditioning, [B, W, q].
      biases, context_row = [], None
      if self.context_levels:  # row i's context from rows < i, in place (the canvas rolls)
        placed = tf.roll(canvas, i, axis=1) * (2.0 / (self.levels - 1)) - 1.0
        context_row = self.context(placed)[:, i]  # [B, W, F]
      for block, link, (_, _, bias) in zip(blocks, links, weights):  # bias [q], [B, 1, 1, q] or [B, H, W, q]
        if bias.shape.rank == 4:
          bias = bias[:, 0] if bias.shape[1] == 1 else tf.gather(bias, i, axis=1)
        if context_row is not None:
          bias += dense(context_row, block.weight("spatial_h"))
        biases.append(link + bias)

      def col_step(j, canvas_row, *buffers):
        canvas_row, buffers = column(i, j, canvas_row, biases, list(buffers))
        return (j + 1, canvas_row, *buffers)

      _, canvas_row, *_ = tf.while_loop(lambda j, *_: j < width, col_step,
                                        [tf.constant(0), canvas_row, *buffers])
      canvas = tf.concat([canvas[:, 1:], canvas_row[:, None]], 1)  # rolls row i in at the bottom
      # The finished row feeds the vertical stacks: their links serve row i + 1.
      feature, new_rings, new_links = canvas_row * (2.0 / (self.levels - 1)) - 1.0, [], []
      for block, ring in zip(blocks, rings):
        ring = tf.concat([ring[:, 1:], feature[:, None]], 1)  # [B, rows, W, Cin]
        feature, link = block.vertical_row(
            ring, cond, context_row if spatial is None else spatial[:, i])
        new_rings.append(ring)
        new_links.append(link)
      return i + 1, canvas, new_rings, new_links

    rings = [tf.zeros([b, block.rows, width, cin]) for block, cin in zip(blocks, ins)]
    links = [tf.zeros([b, width, block.pre]) for block in blocks]  # nothing above row 0
    canvas = tf.zeros([b, height, width, channels])
    _, canvas, _, _ = tf.while_loop(lambda i, *_: i < height, row,
                                    [tf.constant(0), canvas, rings, links])
    return tf.cast(canvas, tf.uint8)
