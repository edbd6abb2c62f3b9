"""RIDE: recurrent image density estimator (Theis & Bethge 2015, `shared/papers/ride.txt`).

Spatial LSTM layers read each pixel's whitened causal neighbourhood and feed their top
hidden state, next to the neighbourhood itself, into a factorised MCGSM:

  p(image) = prod_ij p(y_ij | x_<ij) = prod_ij MCGSM(y_ij | x_hat_ij, h_ij)
  h_ij = SLSTM_L(... SLSTM_1(x_hat) ...)_ij,   x_hat = conditionally whitened neighbourhood

so a pixel's prediction can use the whole region above and to the left of it while the
likelihood stays exact. `zoo/mcgsm.py` is the MCGSM this extends; the SLSTM is
`zoo.layers.SpatialLSTM` (wavefront over anti-diagonals).

Choices the paper leaves open:
  * the whitened neighbourhood reaches the MCGSM directly as well as through the SLSTM
    (the "shortcut" of section 3), and the MCGSM's weights on the SLSTM state start at
    zero, so an untrained RIDE is exactly the MCGSM and the first training stage
    (`part="mcgsm"`) trains that MCGSM alone, without running the SLSTM;
  * layer l > 1 reads the hidden states of layer l - 1; the "extended" SLSTM also reads
    the neighbouring memory cells (Table 3, row 5);
  * sampling carries each layer's states along a row buffer, so a pixel costs one cell
    update per layer and one MCGSM draw.

Train: python -m training.run --model=ride --data=deadleaves
"""
import tensorflow as tf

from zoo import layers
from zoo import mcgsm

METRIC = mcgsm.METRIC


class Model(mcgsm.Model):
  """RIDE as a Keras model; see the module docstring."""

  def __init__(self, config, **kwargs):
    mc = config.model
    super().__init__(config, context_dim=mc.hidden, **kwargs)
    self.slstms = [layers.SpatialLSTM(mc.hidden, extended=mc.extended, seed=mc.seed + 10 * k,
                                      name=f"slstm_{k}") for k in range(mc.layers)]
    dim = len(self.offsets)
    for k, slstm in enumerate(self.slstms):
      slstm.build((None, None, None, dim if k == 0 else mc.hidden))

  def _context(self, x_hat, part="all"):
    """Returns the top SLSTM's hidden states [B, H, W, U] for x_hat [B, H, W, D].

    part="mcgsm" returns zeros without running the SLSTM: while the MCGSM's weights on
    the SLSTM state are zero (the first stage), that is the same model, much faster.
    """
    if part == "mcgsm":
      return tf.zeros(tf.concat([tf.shape(x_hat)[:-1], [self.slstms[-1].units]], 0))
    h = x_hat
    for slstm in self.slstms:
      h, _ = slstm(h)
    return h

  def trainable_for(self, part):
    """Returns the variables a training stage updates: "mcgsm" (no SLSTM) or "all"."""
    return list(self.head.trainable_variables) if part == "mcgsm" else self.trainable_variables

  # -- sampling: the SLSTM states travel in row buffers ------------------------------

  def _sample_state(self, batch, cols):
    """Returns per layer (h_row, c_row) [B, cols, U]: the latest state of each column."""
    zeros = tf.zeros([batch, cols, self.slstms[0].units])
    return tuple((zeros, zeros) for _ in self.slstms)

  def _sample_context(self, x_hat, state, j):
    """Returns (top hidden state [B, U], updated row buffers) for the pixel in column j.

    Before the update the row buffer holds, at column j, the state of the pixel above,
    and at column j - 1 that of the pixel to the left (zero at the left border).
    """
    cols = tf.shape(state[0][0])[1]
    at_j = tf.one_hot(j, cols)[None, :, None]  # [1, cols, 1]
    has_left = tf.cast(j > 0, tf.float32)
    new_state, inputs = [], x_hat
    for slstm, (h_row, c_row) in zip(self.slstms, state):
      left = lambda row: tf.gather(row, tf.maximum(j - 1, 0), axis=1) * has_left  # [B, U]
      up = lambda row: tf.gather(row, j, axis=1)
      h, c = slstm.cell(slstm.input_projection(inputs), left(h_row), left(c_row), up(h_row), up(c_row))
      new_state.append((h_row + at_j * (h[:, None] - h_row), c_row + at_j * (c[:, None] - c_row)))
      inputs = h
    return inputs, tuple(new_state)
