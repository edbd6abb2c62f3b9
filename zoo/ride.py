"""RIDE: recurrent image density estimator (Theis & Bethge 2015, `shared/papers/ride.txt`).

Spatial LSTM layers read each pixel's whitened causal neighbourhood and feed their top
hidden state into a factorised MCGSM:

  p(image) = prod_ij p(y_ij | x_<ij) = prod_ij MCGSM(y_hat_ij | h_ij) |W|      (paper, eq. 6)
  h_ij = SLSTM_L(... SLSTM_1(x_hat) ...)_ij,   x_hat = conditionally whitened neighbourhood

so a pixel's prediction can use the whole region above and to the left of it while the
likelihood stays exact. `zoo/mcgsm.py` is the MCGSM this extends; the SLSTM is
`zoo.layers.SpatialLSTM` (wavefront over anti-diagonals).

The MCGSM's input (`config.model.mcgsm_input`):
  * "hidden" (the paper, and the `paper` preset): the MCGSM reads only h_ij, as in the
    paper's p(x_ij | x_<ij) = p(x_ij | h_ij) and the authors' code (an MCGSM with
    dim_in = num_hiddens). The conditional whitening's y_hat = W(y - C_yx C_xx^-1/2 x_hat
    - m_y) is the "shortcut connection from the pixel neighborhood to the predicted pixel"
    that section 3 mentions; it is there in both forms.
  * "both" (our default): the MCGSM reads [x_hat, h_ij]. Its weights on h start at zero,
    so an untrained RIDE is exactly the MCGSM and a first training stage (`part="mcgsm"`,
    our choice: neither the paper nor the authors' code has one) trains that MCGSM alone
    without running the SLSTM. The README's "differs from the papers" table gives the
    measurement behind the default.

Other choices the paper leaves open:
  * layer l > 1 reads the hidden states of layer l - 1; the "extended" SLSTM also reads
    the neighbouring memory cells (Table 3, row 5);
  * sampling carries each layer's states along a row buffer, so a pixel costs one cell
    update per layer and one MCGSM draw.

Train: python -m training.run --model=ride --data=deadleaves
"""
import tensorflow as tf

from zoo import contract
from zoo import layers
from zoo import mcgsm

METRIC = mcgsm.METRIC
MCGSM_INPUTS = ("hidden", "both")  # config.model.mcgsm_input: the paper's, ours


class Model(mcgsm.Model):
  """RIDE as a Keras model; see the module docstring."""

  capabilities = mcgsm.Model.capabilities | {contract.PARTS}

  def __init__(self, config, **kwargs):
    mc = config.model
    mcgsm_input = mc.get("mcgsm_input", "both")
    if mcgsm_input not in MCGSM_INPUTS:
      raise ValueError(f"config.model.mcgsm_input={mcgsm_input!r}; valid: hidden (the paper's "
                       "MCGSM reads the top SLSTM state), both ([neighbourhood, state])")
    super().__init__(config, context_dim=mc.hidden, neighbourhood_input=mcgsm_input == "both",
                     **kwargs)
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
      if not self.neighbourhood_input:
        raise ValueError("a training stage 'mcgsm' needs config.model.mcgsm_input=both: with "
                         "mcgsm_input=hidden the MCGSM reads only the SLSTM; use 'all' stages")
      return tf.zeros(tf.concat([tf.shape(x_hat)[:-1], [self.slstms[-1].units]], 0))
    h = x_hat
    for slstm in self.slstms:
      h, _ = slstm(h)
    return h

  def trainable_for(self, part):
    """Returns the variables a training stage updates: "mcgsm" (no SLSTM) or "all"."""
    return list(self.head.trainable_variables) if part == "mcgsm" else self.trainable_variables

  # -- sampling: the SLSTM states travel along the wavefront -------------------------

  def _sample_state(self, batch, rows):
    """Returns per layer (h, c) [lag, B, R, U]: the states of the last lag = r + 1 steps
    of `ancestral`, one cell per row and step, oldest first."""
    zeros = tf.zeros([self.width // 2 + 1, batch, rows, self.slstms[0].units])
    return tuple((zeros, zeros) for _ in self.slstms)

  def _sample_context(self, x_hat, state, valid):
    """Returns (top hidden states [B, R, U], new state) for one step of `ancestral`.

    At step t row i holds pixel (i, t - lag i): its left neighbour is row i of the
    previous step, its upper neighbour row i - 1 of the step lag before. Cells off the
    image (`valid` bool [R] unset) get zero states, the SLSTM's border value.
    """
    keep = tf.cast(valid, tf.float32)[None, :, None]
    down = lambda s: tf.pad(s[:, :-1], [[0, 0], [1, 0], [0, 0]])  # row i gets row i - 1
    flat = lambda s: tf.reshape(s, [-1, s.shape[-1]])
    new_state, inputs = [], x_hat
    for slstm, (hs, cs) in zip(self.slstms, state):
      h, c = slstm.cell(flat(slstm.input_projection(inputs)), flat(hs[-1]), flat(cs[-1]),
                        flat(down(hs[0])), flat(down(cs[0])))
      h, c = tf.reshape(h, tf.shape(hs[-1])) * keep, tf.reshape(c, tf.shape(cs[-1])) * keep
      new_state.append((tf.concat([hs[1:], h[None]], 0), tf.concat([cs[1:], c[None]], 0)))
      inputs = h
    return inputs, tuple(new_state)
