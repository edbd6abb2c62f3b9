"""The spatial LSTM (RIDE eq. 6, `shared/papers/ride.txt`) and RIDE's stack of them.

`SpatialLSTM` is one layer, computed by an anti-diagonal wavefront (unrolled, with a
hand-written backward pass, when the grid's size is static in a graph; one
`tf.while_loop` otherwise); `Stack` is the network of `zoo.ride`: layers of spatial
LSTMs over the whitened neighbourhoods, the context an MCGSM reads
(`mcgsm.Model(config, context=Stack(...))`), with the one-cell step that sampling uses.
"""
import keras
import numpy as np
import tensorflow as tf


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


class Stack(keras.layers.Layer):
  """RIDE's spatial LSTM layers: the context network of an MCGSM (`zoo.mcgsm.Model`).

  It maps whitened neighbourhoods x_hat [B, H, W, D] to the top layer's hidden states
  h [B, H, W, U]; layer l > 1 reads the hidden states of layer l - 1. The MCGSM uses
  `units` (U), the call, and in its wavefront sampler `initial_state` and `step`, which
  carry each layer's states along a row buffer, so that a sampled pixel costs one cell
  update per layer.
  """

  def __init__(self, input_dim, units, depth, extended=False, seed=0, **kwargs):
    super().__init__(**kwargs)
    self.units, self.depth = units, depth
    # One attribute per layer, not a list: Keras 3 keeps a list of layers out of
    # tf.train.Checkpoint, which would silently drop their weights.
    for k in range(depth):  # layer k draws its weights from seeds seed + 10 k, ...
      layer = SpatialLSTM(units, extended=extended, seed=seed + 10 * k, name=f"slstm_{k}")
      layer.build((None, None, None, input_dim if k == 0 else units))
      setattr(self, f"slstm_{k}", layer)

  @property
  def slstms(self):
    """Returns the SpatialLSTM layers, the lowest first."""
    return [getattr(self, f"slstm_{k}") for k in range(self.depth)]

  def call(self, x_hat):
    """Returns the top layer's hidden states float32 [B, H, W, U] for x_hat [B, H, W, D]."""
    h = x_hat
    for layer in self.slstms:
      h, _ = layer(h)
    return h

  def initial_state(self, batch, rows, lag):
    """Returns per layer (h, c) [lag, B, R, U], zeros: the states of a sampler's last
    `lag` steps, one cell per row and step, oldest first (`mcgsm.Model.ancestral`)."""
    zeros = tf.zeros([lag, batch, rows, self.units])
    return tuple((zeros, zeros) for _ in self.slstms)

  def step(self, x_hat, state, valid):
    """Returns (top hidden states [B, R, U], new state): one step of the sampler's wavefront.

    x_hat [B, R, D] holds one whitened neighbourhood per row; at step t row i holds pixel
    (i, t - lag i): its left neighbour is row i of the previous step, its upper neighbour
    row i - 1 of the step lag before (the oldest in `state`, as `initial_state`). Cells
    off the image (`valid` bool [R] unset) get zero states, the SLSTM's border value.
    """
    keep = tf.cast(valid, tf.float32)[None, :, None]
    down = lambda s: tf.pad(s[:, :-1], [[0, 0], [1, 0], [0, 0]])  # row i gets row i - 1
    flat = lambda s: tf.reshape(s, [-1, s.shape[-1]])
    new_state, inputs = [], x_hat
    for layer, (hs, cs) in zip(self.slstms, state):
      h, c = layer.cell(flat(layer.input_projection(inputs)), flat(hs[-1]), flat(cs[-1]),
                        flat(down(hs[0])), flat(down(cs[0])))
      h, c = tf.reshape(h, tf.shape(hs[-1])) * keep, tf.reshape(c, tf.shape(cs[-1])) * keep
      new_state.append((tf.concat([hs[1:], h[None]], 0), tf.concat([cs[1:], c[None]], 0)))
      inputs = h
    return inputs, tuple(new_state)
