"""Inpainting by Metropolis within Gibbs under RIDE or the MCGSM (RIDE section 3.4).

Missing pixels (mask 0) are sampled from the posterior p(missing | known), which is
the model's joint density p(image) with the known pixels held fixed:

  1. initialisation: the missing pixels are drawn by ancestral sampling (every missing
     pixel from p(y_ij | y_<ij), known pixels kept) `candidates` times, and each image
     keeps the candidate with the largest joint log-density;
  2. `sweeps` sweeps of Metropolis within Gibbs over overlapping `block` x `block`
     regions: a block's missing pixels are proposed anew by ancestral sampling given
     the current image, and the proposal is accepted with probability (RIDE eq. 9)

       alpha = min(1, p(x') / p(x) * q(x_B | x_<B) / q(x'_B | x_<B)),

     with p approximated, as in the paper, by the model applied to a `window` x
     `window` crop around the block (19 x 19 by default). The proposal q is the same
     windowed model's ancestral conditionals, so the drawn pixels' factors cancel and
     pixels before the first drawn one in raster order do not change: log alpha is
     the sum, over the window pixels after the first drawn pixel that were not drawn,
     of log p'(pixel | its past) - log p(pixel | its past) (`log_alpha`). With that
     proposal the chain leaves the windowed posterior of each block invariant (exactly,
     but for `ancestral` clipping draws to [0, 1), where the densities put little mass).

Choices the paper leaves open:
  * block positions: a grid with stride `block - 2` in each direction (2 pixels of
    overlap), the last block flush with the bottom/right border, so every pixel is
    covered; a sweep visits, in raster order of the grid, every block that holds a
    missing pixel of any image of the batch (for the other images that step changes
    nothing, so an image's result does not depend on the rest of the batch);
  * the window is centred on the block and shifted inside the image at the borders
    (smaller images use the whole image); the proposal is drawn on the window's rows
    down to the block's last row, so that RIDE's spatial-LSTM states are those of
    the windowed model whose density scores the proposal;
  * the paper's random flips between sweeps are left out: the model is not symmetric,
    so a flipped image has another density and the flips would change the target
    (only a flip-symmetric ensemble could use them);
  * intensities are continuous in [0, 1) throughout (known pixels dequantised with
    +1/2, `zoo.mcgsm.dequantise`) and the result is quantised once at the end.

Every random number is a stateless draw keyed by (the image's seed row, sweep, block
index) (`_keys`), so an image's result depends only on its own seed and inputs, and
the whole procedure is one graph of `tf.while_loop`s that exports for TF Serving.

  out = tf.function(lambda im, m, s: inpaint(model, im, m, s, sweeps=10))(images, mask, seeds)

Cost: a block update samples ancestrally over about 12 x 19 window pixels (one
`tf.while_loop` step per pixel of every row at once: `ancestral`'s wavefront) and scores
two 19 x 19 windows. With the tiny RIDE config on 2 CPU cores, a 32 x 32 image with a
12 x 12 hole (36 blocks) takes about 0.04 s to initialise and 0.43 s per sweep (the
MCGSM: 0.02 s and 0.30 s).
"""
import tensorflow as tf

from zoo import layers
from zoo import mcgsm

INIT_STAGE = 0  # key stage of the initial candidates; sweep s uses stage 1 + s
EPS = 1e-6  # ancestral noise lies in [EPS, 1 - EPS]: ndtri stays finite


def pixel_log_density(model, y):
  """Returns float32 [B, H, W]: each pixel's conditional log-density, nats.

  The float-canvas counterpart of `model.pixel_log_prob`, for intensities
  y float [B, H, W] in [0, 1) that need not lie on the dequantisation grid.
  """
  y = y[..., None]  # [B, H, W, 1]
  x = layers.causal_neighbourhood(y, model.width, model.whitening.mean_y)  # [B, H, W, D]
  x_hat, y_shift = model.whitening(x)
  dist = model._distribution(x_hat, y_shift, model._context(x_hat))  # pylint: disable=protected-access
  return dist.log_prob(y[..., 0])


def _keys(seeds, stage, index):
  """Returns int64 [B, 2]: row b's stateless seed for draw (stage, index), from seeds[b] alone.

  `stage`, `index`: int scalars or [B].
  """
  seeds = tf.cast(seeds, tf.int64)
  batch = tf.shape(seeds)[:1]
  data = tf.stack([tf.broadcast_to(tf.cast(stage, tf.int64), batch),
                   tf.broadcast_to(tf.cast(index, tf.int64), batch)], 1)  # [B, 2]
  fold = lambda args: tf.random.fold_in(tf.random.fold_in(args[0], args[1][0]), args[1][1])
  return tf.map_fn(fold, (seeds, data), fn_output_signature=tf.int64)


def block_starts(size, block, stride):
  """Returns int32 [K]: starts of `block`-wide blocks every `stride` covering [0, size).

  The last block is flush with the end; `block` <= `size`.
  """
  count = (tf.maximum(size - block, 0) + stride - 1) // stride + 1
  return tf.minimum(tf.range(count) * stride, size - block)


def _missing_per_block(missing, tops, lefts, bh, bw):
  """Returns int32 [B, Kt * Kl]: each image's missing pixels in each block, raster order."""
  count = tf.cast(missing, tf.int32)
  table = tf.pad(tf.cumsum(tf.cumsum(count, 1), 2), [[0, 0], [1, 0], [1, 0]])  # [B, H+1, W+1]
  rows = lambda r: tf.gather(table, r, axis=1)  # [B, Kt, W+1]
  cols = lambda t, c: tf.gather(t, c, axis=2)  # [B, Kt, Kl]
  low, high = rows(tops), rows(tops + bh)
  per_block = (cols(high, lefts + bw) - cols(low, lefts + bw)
               - cols(high, lefts) + cols(low, lefts))  # [B, Kt, Kl]
  return tf.reshape(per_block, [tf.shape(missing)[0], -1])


def log_alpha(model, current, proposal, drawn):
  """Returns float32 [B]: log of eq. 9's acceptance ratio, under `model` on these windows.

  current, proposal: float [B, h, w] windows that differ only where `drawn` (bool
  [B, h, w]) is set, `proposal` drawn there by `model.ancestral` on the window. The
  drawn pixels' conditionals cancel against the proposal density and earlier pixels
  are unchanged, so this is the sum over the pixels after the first drawn one (raster
  order) that were not drawn of log p(proposal pixel) - log p(current pixel).
  """
  batch = tf.shape(current)[0]
  # Two calls of one shape, not one on the stacked pair: a row's value may depend on its
  # place in the batch in the last bit, and an unchanged window must give exactly 0.
  diff = pixel_log_density(model, proposal) - pixel_log_density(model, current)  # [B, h, w]
  diff = tf.reshape(diff, [batch, -1])  # [B, h*w]
  flat = tf.reshape(drawn, [batch, -1])
  first = tf.argmax(tf.cast(flat, tf.int32), axis=1, output_type=tf.int32)  # [B], 0 if none
  after = tf.logical_and(tf.range(tf.shape(flat)[1])[None] > first[:, None], tf.logical_not(flat))
  return tf.reduce_sum(tf.where(after, diff, 0.0), axis=1)


def _unknown_batch(y):
  """Returns y [B, ...] with its static batch size erased.

  `model.ancestral` builds RIDE's sampling state from tf.shape(y)[0], which keeps a
  static batch size that its per-pixel inputs lose when the other dims are dynamic
  (window crops); the while_loop then rejects the state. Dynamic everywhere agrees.
  """
  return tf.reshape(y, tf.concat([[-1], tf.shape(y)[1:]], 0))


def _window_start(start, block, window, size):
  """Returns the first row (column) of the `window` centred on a block, inside the image."""
  return tf.clip_by_value(start - (window - block) // 2, 0, size - window)


def _metropolis_step(model, y, missing, keys, top, left, block_shape, window_shape):
  """Returns (y [B, H, W], accepted bool [B]) after one Metropolis update of one block.

  The block's missing pixels are proposed by ancestral sampling on the window's rows
  down to the block's last row, and accepted with `log_alpha` on the whole window.
  """
  (bh, bw), (wh, ww) = block_shape, window_shape
  height, width = tf.shape(y)[1], tf.shape(y)[2]
  wt, wl = _window_start(top, bh, wh, height), _window_start(left, bw, ww, width)
  current = y[:, wt:wt + wh, wl:wl + ww]  # [B, wh, ww]
  i, j = tf.range(wt, wt + wh)[:, None], tf.range(wl, wl + ww)[None, :]
  in_block = (i >= top) & (i < top + bh) & (j >= left) & (j < left + bw)  # [wh, ww]
  drawn = in_block[None] & missing[:, wt:wt + wh, wl:wl + ww]  # [B, wh, ww]

  rows = top + bh - wt  # window rows the proposal needs
  noise = layers.per_example_uniform(keys, [wh * ww * 2 + 1], EPS, 1 - EPS)  # [B, 2 h w + 1]
  pixel_noise = tf.reshape(noise[:, :rows * ww * 2], [-1, rows * ww, 2])  # [B, rows*ww, 2]
  proposed = model.ancestral(_unknown_batch(current[:, :rows]), drawn[:, :rows], pixel_noise)
  proposal = tf.concat([proposed, current[:, rows:]], 1)  # [B, wh, ww]

  accepted = tf.logical_and(tf.reduce_any(drawn, [1, 2]),
                            tf.math.log(noise[:, -1]) < log_alpha(model, current, proposal, drawn))
  pads = [[0, 0], [wt, height - wt - wh], [wl, width - wl - ww]]
  change = tf.logical_and(accepted[:, None, None], tf.pad(drawn, pads))  # [B, H, W]
  return tf.where(change, tf.pad(proposal, pads), y), accepted


def _shapes(y, block, window):
  """Returns ((bh, bw), (wh, ww)): block and window sizes clipped to the image."""
  height, width = tf.shape(y)[1], tf.shape(y)[2]
  return ((tf.minimum(block, height), tf.minimum(block, width)),
          (tf.minimum(window, height), tf.minimum(window, width)))


def initialise(model, y, missing, seeds, candidates=5):
  """Returns float32 [B, H, W]: y with its missing pixels drawn by ancestral sampling.

  Each image keeps the best of `candidates` draws by joint log-density (the posterior
  density up to a constant, the known pixels being fixed). y: float [B, H, W] in
  [0, 1); missing: bool [B, H, W]; seeds: int [B, 2].
  """
  batch, height, width = tf.shape(y)[0], tf.shape(y)[1], tf.shape(y)[2]
  index = tf.repeat(tf.range(candidates), batch)  # [K*B], candidate-major
  keys = _keys(tf.tile(seeds, [candidates, 1]), INIT_STAGE, index)
  noise = layers.per_example_uniform(keys, [height * width, 2], EPS, 1 - EPS)  # [K*B, H*W, 2]
  drawn = model.ancestral(_unknown_batch(tf.tile(y, [candidates, 1, 1])),
                          tf.tile(missing, [candidates, 1, 1]), noise)  # [K*B, H, W]
  score = tf.reduce_sum(pixel_log_density(model, drawn), [1, 2])  # [K*B]
  best = tf.argmax(tf.reshape(score, [candidates, batch]), 0, output_type=tf.int32)  # [B]
  drawn = tf.transpose(tf.reshape(drawn, [candidates, batch, height, width]), [1, 0, 2, 3])
  return tf.gather(drawn, best, batch_dims=1)  # [B, H, W]


def metropolis_within_gibbs(model, y, missing, seeds, sweeps, block=5, window=19, stride=None,
                            first_sweep=0):
  """Returns (y float32 [B, H, W], acceptance rate float32 [B]) after `sweeps` sweeps.

  See the module docstring. y: float [B, H, W] in [0, 1); missing: bool [B, H, W],
  the pixels that may change; seeds: int [B, 2]; sweeps: int (Python or scalar
  tensor); stride: block grid stride, default block - 2; first_sweep: the key stage of
  the first sweep (a chain continued in several calls draws fresh noise).
  """
  if window < block:
    raise ValueError(f"the window ({window}) must hold the block ({block})")
  stride = stride or max(block - 2, 1)
  (bh, bw), (wh, ww) = _shapes(y, block, window)
  tops = block_starts(tf.shape(y)[1], bh, stride)
  lefts = block_starts(tf.shape(y)[2], bw, stride)
  has_missing = _missing_per_block(missing, tops, lefts, bh, bw) > 0  # [B, K]
  visits = tf.cast(tf.where(tf.reduce_any(has_missing, 0))[:, 0], tf.int32)  # [A] block indices
  count = tf.size(visits)
  steps = tf.cast(sweeps, tf.int32) * count

  def step(n, y, accepted):
    sweep, k = n // count, visits[n % count]
    keys = _keys(seeds, 1 + first_sweep + sweep, k)
    y, ok = _metropolis_step(model, y, missing, keys, tops[k // tf.size(lefts)],
                             lefts[k % tf.size(lefts)], (bh, bw), (wh, ww))
    return n + 1, y, accepted + tf.cast(ok, tf.int32)

  accepted = tf.zeros(tf.shape(y)[:1], tf.int32)
  _, y, accepted = tf.while_loop(lambda n, *_: n < steps, step, [tf.constant(0), y, accepted],
                                 shape_invariants=[tf.TensorShape([]), tf.TensorShape([None] * 3),
                                                   tf.TensorShape([None])])
  proposals = tf.cast(sweeps, tf.int32) * tf.reduce_sum(tf.cast(has_missing, tf.int32), 1)  # [B]
  return y, tf.cast(accepted, tf.float32) / tf.cast(tf.maximum(proposals, 1), tf.float32)


def inpaint(model, images, mask, seeds, sweeps, block=5, window=19, candidates=5, stride=None):
  """Returns uint8 [B, H, W, 1]: `images` with the pixels where mask == 0 sampled anew.

  RIDE section 3.4 (module docstring): the best of `candidates` ancestral draws, then
  `sweeps` Metropolis-within-Gibbs sweeps over `block` x `block` regions scored on
  `window` x `window` crops. images, mask: uint8 [B, H, W, 1] (mask 1 = known);
  seeds: int64 [B, 2], one per image, whose result depends on nothing else. Known
  pixels are returned unchanged. `model` is an MCGSM or RIDE (`ancestral`).
  """
  missing = tf.equal(mask[..., 0], 0)  # [B, H, W]
  y = mcgsm.dequantise(images)[..., 0]  # [B, H, W]
  y = initialise(model, y, missing, seeds, candidates)
  y, _ = metropolis_within_gibbs(model, y, missing, seeds, sweeps, block, window, stride)
  return tf.where(missing[..., None], mcgsm.quantise(y)[..., None], images)
