"""Blocks shared by two or more models: causal neighbourhoods and conditional whitening."""
import keras
import numpy as np
import tensorflow as tf


def per_example_uniform(seeds, shape, minval=0.0, maxval=1.0):
  """Returns float32 [B, *shape] uniform noise, row b drawn from `seeds[b]` alone.

  `seeds` int [B, 2]. Keying each example by its own seed makes a sample independent
  of the rest of its batch, and a training step identical however the global batch is
  split across replicas. The numbers are those of TF's own kernels, which the exported
  (XLA-free) functions use: under XLA on CPU the same seed draws other numbers.
  """
  return tf.map_fn(
      lambda s: tf.random.stateless_uniform(shape, s, minval=minval, maxval=maxval),
      tf.cast(seeds, tf.int64), fn_output_signature=tf.float32)


def per_example_normal(seeds, shape):
  """Returns float32 [B, *shape] standard normal noise, row b drawn from `seeds[b]` alone."""
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


def skew(grid):
  """Returns [B, H, W+H-1, F]: row i of grid [B, H, W, F] shifted right by i.

  Cell (i, j) lands in column i + j, so an anti-diagonal of the grid becomes a column.
  """
  b, h, w, f = [tf.shape(grid)[k] for k in range(4)]
  flat = tf.reshape(tf.pad(grid, [[0, 0], [0, 0], [0, h], [0, 0]]), [b, h * (w + h), f])
  return tf.reshape(flat[:, :h * (w + h - 1)], [b, h, w + h - 1, f])


def unskew(skewed, width):
  """Returns [B, H, W, F]: the inverse of `skew` for a grid of `width` columns."""
  b, h, d, f = [tf.shape(skewed)[k] for k in range(4)]
  flat = tf.pad(tf.reshape(skewed, [b, h * d, f]), [[0, 0], [0, h], [0, 0]])  # [B, H*(W+H), F]
  return tf.reshape(flat, [b, h, d + 1, f])[:, :, :width]


def diagonal_order(height, width):
  """Returns (order, ranges): the raster indices of an H x W grid's cells in anti-diagonal
  order (int [H*W]), and each diagonal d's row range (lo, hi), cell (i, d - i) for i in it.
  """
  order, ranges = [], []
  for d in range(height + width - 1):
    lo, hi = max(0, d - width + 1), min(d, height - 1)
    ranges.append((lo, hi))
    order += [i * width + d - i for i in range(lo, hi + 1)]
  return np.array(order), ranges


def permute(x, perm):
  """Returns tf.gather(x, perm) for a permutation `perm` of x's first axis, whose gradient
  is the inverse permutation (a gather) rather than tf.gather's scatter-add."""
  inverse = np.argsort(perm)

  @tf.custom_gradient
  def forward(x):
    return tf.gather(x, perm), lambda dy: tf.gather(dy, inverse)

  return forward(x)


def diagonal_recurrence(ranges, units, extended):
  """Returns f(x, w_x, b, w_h [, w_c]) -> (h, c): the spatial-LSTM recurrence over the
  anti-diagonals of a grid, with a hand-written backward pass (tf.custom_gradient).

  `ranges` are the diagonals' row ranges (`diagonal_order`); x float32 [N, B, F] holds
  the inputs of the N = H * W cells in diagonal order, w_x [F, 5U] and b [5U] their
  affine map; w_h (and w_c for the extended layer) [2U, 5U] are the recurrent weights
  of the left and upper neighbours, stacked. Returns h, c float32 [N, B, U] in diagonal
  order.

  Diagonal d holds rows lo..hi, [n, B, .] cell-major; padded with one zero row at each
  end, the previous diagonal (rows lo'..hi') holds every left neighbour (i, j-1) at row
  i and every upper one (i-1, j) at row i-1, zero where the neighbour is outside the
  grid. Each diagonal gathers its neighbours' states side by side, [n, B, 2U], and makes
  one matmul with the stacked weights. The backward pass walks the diagonals in reverse
  with the gates and neighbour states kept from the forward pass, sends each cell's
  gradient back to its two neighbours with one matmul and two pads per diagonal, and
  sums the weights' gradients diagonal by diagonal, never concatenating the per-cell
  gradients of all cells (under XLA on CPU that copy and one tall matmul cost more
  than the small matmuls; `benchmarks.slstm_speed`).
  """
  u = units
  counts = [hi - lo + 1 for lo, hi in ranges]
  starts = np.concatenate([[0], np.cumsum(counts)]).astype(int)
  pad = lambda s: tf.pad(s, [[1, 1], [0, 0], [0, 0]])  # rows lo'-1 .. hi'+1
  matmul = lambda s, w: tf.einsum("nbu,uv->nbv", s, w)

  def neighbours(d):
    """Returns the slices of diagonal d's left and upper neighbours in the padded d - 1."""
    (lo, hi), lo_prev = ranges[d], ranges[d - 1][0]
    return slice(lo - lo_prev + 1, hi - lo_prev + 2), slice(lo - lo_prev, hi - lo_prev + 1)

  def recurrence(x, w_x, bias, *weights):
    xs = [x[starts[d]:starts[d + 1]] for d in range(len(ranges))]  # [n, B, F] each
    hs, cs, gates, states = [], [], [], []  # states: neighbours' (h, c) per diagonal
    for d in range(len(ranges)):
      z = matmul(xs[d], w_x) + bias  # [n, B, 5U]
      if d == 0:
        g, o, i = tf.tanh(z[..., :u]), tf.sigmoid(z[..., u:2 * u]), tf.sigmoid(z[..., 2 * u:3 * u])
        c = g * i
        gates.append((g, o, i, None, None))
      else:
        left, up = neighbours(d)
        h_prev, c_prev = pad(hs[-1]), pad(cs[-1])  # [n'+2, B, U]
        nb = (tf.concat([h_prev[left], h_prev[up]], -1), tf.concat([c_prev[left], c_prev[up]], -1))
        states.append(nb)  # h_left | h_up, c_left | c_up: [n, B, 2U] each
        z += matmul(nb[0], weights[0])
        if extended:
          z += matmul(nb[1], weights[1])
        z_g, z_o, z_i, z_r, z_c = tf.split(z, 5, axis=-1)
        g, o, i, f_r, f_c = (tf.tanh(z_g), tf.sigmoid(z_o), tf.sigmoid(z_i), tf.sigmoid(z_r),
                             tf.sigmoid(z_c))
        c = g * i + nb[1][..., :u] * f_c + nb[1][..., u:] * f_r
        gates.append((g, o, i, f_r, f_c))
      hs.append(tf.tanh(c * o))
      cs.append(c)
    h_all, c_all = tf.concat(hs, 0), tf.concat(cs, 0)

    def backward(dh_all, dc_all):
      dh_all = tf.zeros_like(h_all) if dh_all is None else tf.convert_to_tensor(dh_all)
      dc_all = tf.zeros_like(c_all) if dc_all is None else tf.convert_to_tensor(dc_all)
      dzs = [None] * len(ranges)
      back = None  # [n, B, 2U]: d(h, c) that diagonal d + 1 sends back to diagonal d
      for d in reversed(range(len(ranges))):
        dh = dh_all[starts[d]:starts[d + 1]]
        dc = dc_all[starts[d]:starts[d + 1]]
        if back is not None:
          dh, dc = dh + back[..., :u], dc + back[..., u:]
        g, o, i, f_r, f_c = gates[d]
        h, c = hs[d], cs[d]
        dt = dh * (1.0 - h * h)  # through h = tanh(c o)
        dc = dc + dt * o
        dz_gates = [dc * i * (1.0 - g * g), dt * c * o * (1.0 - o), dc * g * i * (1.0 - i)]
        if d == 0:
          zeros = tf.zeros_like(dc)
          dzs[d] = tf.concat(dz_gates + [zeros, zeros], -1)
          break
        nb = states[d - 1]
        dzs[d] = dz = tf.concat(dz_gates + [dc * nb[1][..., u:] * f_r * (1.0 - f_r),
                                            dc * nb[1][..., :u] * f_c * (1.0 - f_c)], -1)
        dnb_h = matmul(dz, tf.transpose(weights[0]))  # [n, B, 2U]: d h_left | d h_up
        dc_left, dc_up = dc * f_c, dc * f_r
        if extended:
          dnb_c = matmul(dz, tf.transpose(weights[1]))
          dc_left, dc_up = dc_left + dnb_c[..., :u], dc_up + dnb_c[..., u:]
        left, up = neighbours(d)
        rows = counts[d - 1] + 2
        scatter = lambda s, v: tf.pad(v, [[s.start, rows - s.stop], [0, 0], [0, 0]])
        back = (scatter(left, tf.concat([dnb_h[..., :u], dc_left], -1))
                + scatter(up, tf.concat([dnb_h[..., u:], dc_up], -1)))[1:-1]
      outer = lambda pairs: tf.add_n([tf.einsum("nbu,nbv->uv", a, dz) for a, dz in pairs])
      d_weights = [outer([(nb[k], dzs[d + 1]) for d, nb in enumerate(states)])
                   for k in range(len(weights))]
      dx = tf.concat([matmul(dz, tf.transpose(w_x)) for dz in dzs], 0)
      d_bias = tf.add_n([tf.reduce_sum(dz, [0, 1]) for dz in dzs])
      return (dx, outer(zip(xs, dzs)), d_bias, *d_weights)

    return (h_all, c_all), backward

  return tf.custom_gradient(recurrence)


class SpatialLSTM(keras.layers.Layer):
  """A spatial LSTM layer (RIDE eq. 6), computed by anti-diagonal wavefront.

    [g o i f_r f_c] = [tanh sigma sigma sigma sigma](A [x_ij; h_i,j-1; h_i-1,j] + b)
    c_ij = g i + c_i,j-1 f_c + c_i-1,j f_r,      h_ij = tanh(c_ij o)

  (tanh after the output gate, as in the authors' code). States outside the grid are
  zero. With `extended`, the memory cells c_i,j-1 and c_i-1,j are inputs of the affine
  map too (RIDE Table 3, "extended").

  Every cell on the anti-diagonal i + j = d depends only on diagonal d - 1, so an H x W
  grid takes H + W - 1 batched steps of one `tf.while_loop`: in the skewed layout
  (`skew`) the diagonal is a column, the left neighbour is the same row of the previous
  column and the upper neighbour the row above it.
  """

  def __init__(self, units, extended=False, seed=0, **kwargs):
    super().__init__(**kwargs)
    self.units, self.extended, self.seed = units, extended, seed

  def build(self, input_shape):
    f, u = input_shape[-1], self.units
    init = lambda fan_in, i: keras.initializers.RandomNormal(stddev=fan_in ** -0.5, seed=self.seed + i)
    self.w_x = self.add_weight(shape=(f, 5 * u), initializer=init(f, 0), name="w_x")
    self.w_h = self.add_weight(shape=(2 * u, 5 * u), initializer=init(2 * u, 1), name="w_h")
    if self.extended:
      self.w_c = self.add_weight(shape=(2 * u, 5 * u), initializer=init(2 * u, 2), name="w_c")
    self.bias = self.add_weight(shape=(5 * u,), initializer="zeros", name="bias")

  def input_projection(self, x):
    """Returns A_x x + b: float [..., 5U] for inputs x [..., F] (the non-recurrent part)."""
    flat = tf.reshape(x, [-1, tf.shape(x)[-1]]) @ self.w_x + self.bias
    return tf.reshape(flat, tf.concat([tf.shape(x)[:-1], [5 * self.units]], 0))

  def cell(self, projected, h_left, c_left, h_up, c_up):
    """Returns (h, c) [N, U] of cells with projected inputs [N, 5U] and neighbour states [N, U]."""
    z = projected + tf.concat([h_left, h_up], -1) @ self.w_h
    if self.extended:
      z += tf.concat([c_left, c_up], -1) @ self.w_c
    g, o, i, f_r, f_c = tf.split(z, 5, axis=-1)
    c = tf.tanh(g) * tf.sigmoid(i) + c_left * tf.sigmoid(f_c) + c_up * tf.sigmoid(f_r)
    return tf.tanh(c * tf.sigmoid(o)), c

  def call(self, x):
    """Returns (h, c): float32 [B, H, W, U] hidden and memory states for inputs x [B, H, W, F].

    With static H and W inside a graph (training patches) the H + W - 1 diagonals are
    unrolled, each computing only its own cells: XLA then compiles the whole grid
    (`python -m benchmarks.slstm_speed` compares it with a raster-order loop).
    Otherwise (sizes known only at run time, e.g. an export's log_prob) one
    `tf.while_loop` steps over the diagonals of a skewed grid.
    """
    if x.shape[1] is not None and x.shape[2] is not None and not tf.executing_eagerly():
      return self._unrolled(x)
    return self._loop(x)

  def _unrolled(self, x):
    """`call` for static H, W: the recurrence over the diagonals, with its hand-written
    backward pass (`diagonal_recurrence`), on cells in diagonal order."""
    height, width, u = x.shape[1], x.shape[2], self.units
    b = tf.shape(x)[0]
    order, ranges = diagonal_order(height, width)
    cells = tf.transpose(tf.reshape(x, [b, height * width, x.shape[-1]]), [1, 0, 2])  # [H*W, B, F]
    weights = [self.w_h, self.w_c] if self.extended else [self.w_h]
    h, c = diagonal_recurrence(ranges, u, self.extended)(permute(cells, order), self.w_x, self.bias,
                                                         *weights)
    raster = lambda states: tf.transpose(  # [B, H, W, U]
        tf.reshape(permute(states, np.argsort(order)), [height, width, b, u]), [2, 0, 1, 3])
    return raster(h), raster(c)

  def _loop(self, x):
    """`call` by one `tf.while_loop` over the diagonals of the skewed grid (any sizes)."""
    b, h, w = [x.shape[k] if x.shape[k] is not None else tf.shape(x)[k] for k in range(3)]
    u = self.units
    projected = tf.transpose(skew(self.input_projection(x)), [2, 0, 1, 3])  # [W+H-1, B, H, 5U]
    valid = tf.transpose(skew(tf.ones([1, h, w, 1])), [2, 0, 1, 3])  # [W+H-1, 1, H, 1]
    steps = w + h - 1
    down = lambda s: tf.pad(s[:, :-1], [[0, 0], [1, 0], [0, 0]])  # row i gets row i-1

    def step(d, h_prev, c_prev, hs, cs):
      flat = lambda s: tf.reshape(s, [b * h, u])
      h_new, c_new = self.cell(tf.reshape(projected[d], [b * h, 5 * u]),
                               flat(h_prev), flat(c_prev), flat(down(h_prev)), flat(down(c_prev)))
      h_new = tf.reshape(h_new, tf.shape(h_prev)) * valid[d]  # cells off the grid stay zero
      c_new = tf.reshape(c_new, tf.shape(c_prev)) * valid[d]
      return d + 1, h_new, c_new, hs.write(d, h_new), cs.write(d, c_new)

    zeros = tf.zeros([b, h, u])
    arrays = [tf.TensorArray(tf.float32, size=steps) for _ in range(2)]
    # maximum_iterations lets XLA size the TensorArrays; eager while_loop mis-handles it.
    _, _, _, hs, cs = tf.while_loop(lambda d, *_: d < steps, step, [0, zeros, zeros, *arrays],
                                    maximum_iterations=None if tf.executing_eagerly() else steps)
    out = lambda a: unskew(tf.transpose(a.stack(), [1, 2, 0, 3]), w)  # [B, H, W, U]
    return out(hs), out(cs)
