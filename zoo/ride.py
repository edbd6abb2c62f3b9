"""RIDE: recurrent image density estimator (Theis & Bethge 2015, `shared/papers/ride.txt`).

Spatial LSTM layers read each pixel's whitened causal neighbourhood and feed their top
hidden state into a factorised MCGSM:

  p(image) = prod_ij p(y_ij | x_<ij) = prod_ij MCGSM(y_hat_ij | h_ij) |W|      (paper, eq. 6)
  h_ij = SLSTM_L(... SLSTM_1(x_hat) ...)_ij,   x_hat = conditionally whitened neighbourhood

so a pixel's prediction can use the whole region above and to the left of it while the
likelihood stays exact. The model is composed, not derived by hooks: `zoo.mcgsm.Model`
takes an optional context network, and `Model` here is a thin subclass whose __init__
builds RIDE's SLSTM stack (`zoo.slstm.Stack`, each layer a `zoo.slstm.SpatialLSTM`
computed by a wavefront over anti-diagonals) and passes it as that context; the
MCGSM's likelihood, training parts (`part="mcgsm"`, `trainable_for`) and sampler are
the MCGSM's own.

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
from zoo import contract
from zoo import layers
from zoo import mcgsm
from zoo import slstm

METRIC = mcgsm.METRIC
MCGSM_INPUTS = ("hidden", "both")  # config.model.mcgsm_input: the paper's, ours


class Model(mcgsm.Model):
  """RIDE as a Keras model: the MCGSM with the spatial-LSTM stack as its context; see the
  module docstring. Its __init__ only builds the stack and hands it over."""

  capabilities = mcgsm.Model.capabilities | {contract.PARTS}

  def __init__(self, config, **kwargs):
    mc = config.model
    mcgsm_input = mc.get("mcgsm_input", "both")
    if mcgsm_input not in MCGSM_INPUTS:
      raise ValueError(f"config.model.mcgsm_input={mcgsm_input!r}; valid: hidden (the paper's "
                       "MCGSM reads the top SLSTM state), both ([neighbourhood, state])")
    stack = slstm.Stack(len(layers.neighbourhood_offsets(mc.neighbourhood)), mc.hidden, mc.layers,
                        extended=mc.extended, seed=mc.seed, name="slstm")
    super().__init__(config, context=stack, neighbourhood_input=mcgsm_input == "both", **kwargs)
