"""Pictures: readable image grids, PNG files, a run's sample grid and its model's figure.

Every picture goes through `draw`: tiles enlarged by whole-pixel repetition (no
smoothing: pixels stay pixels) until the picture is at least MIN_SIDE px on its short
side (MAX_SIDE caps the long one), with SEPARATOR px of SEPARATOR_VALUE between tiles.
Values of models with fewer than 256 levels are spread over 0..255 (`displayed`).

Figures (`FIGURES`): each model declares the one it is about as `model.figure`
(zoo/contract.py); `figure_rows` draws it from the held-out data with fixed seeds:
  * "classes": one row of samples per class (class-conditional PixelCNN);
  * "reconstructions": test images, and beneath each its reconstruction (PixelCNN
    auto-encoder: a sample given the image's code; VAEs: the decoding of a posterior
    sample);
  * "partial_sampling": LapCVAE's Figure 7: per test image and coarse level, the image
    then several images drawn keeping its levels from that one up;
  * "stages": the multi-stage VAE's images of every stage, side by side, per sample;
  * "reconstructions_and_samples": test images, their VAE-style reconstructions, and
    samples (GVAE);
  * "inpainting": samples beside test patches, both centre-cropped to one size, then a
    test patch, the patch with its missing centre as a checkerboard, and the patch
    inpainted (MCGSM, RIDE; `config.inpaint`'s sweeps, as the export's inpaint).
"""
import math

import numpy as np
import tensorflow as tf

from training import batches as batches_lib
from zoo import contract

MIN_SIDE = 512  # px: a picture's short side, once enlarged
MAX_SIDE = 4096  # px: no enlargement makes the long side larger than this
SEPARATOR = 2  # px between tiles (and around them), not enlarged
SEPARATOR_VALUE = 255


def scale_for(tile_shape, rows, columns, min_side=MIN_SIDE, max_side=MAX_SIDE, pad=SEPARATOR):
  """Returns the whole factor k >= 1 by which tiles [h, w] are enlarged so that a grid of
  `rows` x `columns` of them is at least `min_side` px on its short side (the largest k
  that keeps the long side within `max_side`, if that comes first)."""
  h, w = tile_shape
  size = lambda k: (rows * (h * k + pad) + pad, columns * (w * k + pad) + pad)
  k = 1
  while min(size(k)) < min_side and max(size(k + 1)) <= max_side:
    k += 1
  return k


def draw(rows, min_side=MIN_SIDE, pad=SEPARATOR):
  """Returns uint8 [H', W', C]: the one drawing of every picture.

  `rows`: a list of rows, each a list of uint8 tiles [h, w, C] of one shape (a row may
  be shorter than the longest: the rest of it stays separator-coloured). Each tile is
  enlarged k times by repetition (`scale_for`) and framed by `pad` px of SEPARATOR_VALUE.
  """
  tiles = [np.asarray(t) for row in rows for t in row]
  if not tiles:
    raise ValueError("nothing to draw")
  h, w, c = tiles[0].shape
  if any(t.shape != (h, w, c) for t in tiles):
    shapes = sorted({t.shape for t in tiles})
    raise ValueError(f"tiles of one picture must share a shape; got {shapes}")
  columns = max(len(row) for row in rows)
  k = scale_for((h, w), len(rows), columns, min_side, pad=pad)
  out = np.full([len(rows) * (h * k + pad) + pad, columns * (w * k + pad) + pad, c],
                SEPARATOR_VALUE, np.uint8)
  for i, row in enumerate(rows):
    for j, tile in enumerate(row):
      top, left = pad + i * (h * k + pad), pad + j * (w * k + pad)
      out[top:top + h * k, left:left + w * k] = np.repeat(np.repeat(tile, k, 0), k, 1)
  return out


def grid(images, columns=None, min_side=MIN_SIDE):
  """Returns uint8 [H', W', C]: images uint8 [N, H, W, C] in rows of `columns` (default: a
  near-square grid), enlarged as `draw` does."""
  images = np.asarray(images)
  columns = columns or math.ceil(math.sqrt(len(images)))
  return draw([list(images[k:k + columns]) for k in range(0, len(images), columns)], min_side)


def displayed(images, levels):
  """Returns uint8 images with values in [0, levels) spread over 0..255 (x 255 / (levels - 1),
  exact for levels dividing 256); 256 levels come back as they are."""
  images = np.asarray(images)
  if levels >= 256:
    return images.astype(np.uint8)
  return (images.astype(np.int32) * 255 // (levels - 1)).astype(np.uint8)


def write_png(path, image):
  """Writes uint8 [H, W, C] to `path` as PNG (a local path or any TensorFlow filesystem's URL)."""
  tf.io.write_file(path, tf.io.encode_png(image))


def sample_conditioning(model, config, source=None):
  """Returns the conditioning of config.sample.num samples: {} for an unconditional model,
  label k % num_classes for sample k of a class-conditional one, and for an auto-encoder
  the codes of the first test images of `source` (a batches.Source)."""
  names, num = contract.conditioning(model), config.sample.num
  if contract.LABEL in names:
    return {contract.LABEL: tf.range(num, dtype=tf.int32) % model.num_classes}
  if contract.CODE in names:
    if source is None:
      raise ValueError("an auto-encoder's samples need test images to encode: pass a source")
    (images,) = next(iter(batches_lib.eval_dataset(config, source).batch(num)))
    reps = -(-num // int(images.shape[0]))
    return {contract.CODE: tf.repeat(model.encode(images), reps, axis=0)[:num]}
  return {}


class SampleGrid:
  """A run's grid of config.sample.num samples, sample k drawn with the seed
  (config.sample.seed, k), so every grid of a run shows the same seeds; the sampler is
  traced once. `cond`: `sample_conditioning`'s dict (labels or codes), if any."""

  def __init__(self, model, config, cond=None):
    self.sampler = tf.function(model.sample)
    self.levels = model.levels
    self.cond = cond or {}
    num = config.sample.num
    self.seeds = tf.cast(tf.stack([tf.fill([num], config.sample.seed), tf.range(num)], axis=1),
                         tf.int64)

  def draw(self):
    """Returns uint8 [H', W', C]: the samples in a grid, enlarged to be readable."""
    return grid(displayed(self.sampler(self.seeds, **self.cond).numpy(), self.levels))

  def summarize(self, writer, step):
    """Draws the grid and writes it to TensorBoard as `samples` at `step`."""
    with writer.as_default():
      tf.summary.image("samples", self.draw()[None], step=step)


def run_samples(workdir, num, seed):
  """Returns uint8 [H', W', C]: a grid of `num` samples (seeds (seed, k)) of the trained
  run in `workdir` (a local path or a URL of TensorFlow's filesystems)."""
  from export import trained  # pylint: disable=g-import-not-at-top  (the zoo's models)
  _, config, model = trained.restore(workdir)
  _, data_name, _ = trained.read_run(workdir)
  config.sample.update(num=num, seed=seed)
  # Labels or codes, if the model is conditional (an auto-encoder encodes test images).
  cond = sample_conditioning(model, config, batches_lib.Source(data_name))
  return SampleGrid(model, config, cond).draw()


# -- the figure each model is about ---------------------------------------------------------

FIGURES = tuple(contract.FIGURE_PROMISES)  # every figure a model may declare
FIGURE_COLUMNS = 8  # tiles per row of a figure (samples per class, test images, ...)


def _seeds(seed, count, offset=0):
  """Returns int64 [count, 2]: the seed rows (seed, offset + k)."""
  return tf.constant([[seed, offset + k] for k in range(count)], tf.int64)


def _test_images(config, source, count):
  """Returns uint8 [count, H, W, C]: the first `count` held-out images (fewer if the split
  has fewer), the same every time."""
  (images,) = next(iter(batches_lib.eval_dataset(config, source).batch(count)))
  return images


def _centre(images, size):
  """Returns the central size x size crop of images [N, H, W, C]."""
  top, left = (images.shape[1] - size) // 2, (images.shape[2] - size) // 2
  return images[:, top:top + size, left:left + size]


def _classes(model, config, source, seed):
  n = FIGURE_COLUMNS
  sample = tf.function(model.sample)
  return [list(sample(_seeds(seed, n, c * n), label=tf.fill([n], c)).numpy())
          for c in range(model.num_classes)]


def _reconstructions(model, config, source, seed):
  images = _test_images(config, source, FIGURE_COLUMNS)
  if contract.has(model, contract.DECODE):  # a latent-variable model: decode(z ~ q(z | x))
    rebuilt = tf.function(model.reconstruct)(images, _seeds(seed, len(images)))
  else:  # an auto-encoding PixelCNN: a sample given the image's code
    rebuilt = tf.function(lambda x, s: model.sample(s, code=model.encode(x)))(
        images, _seeds(seed, len(images)))
  return [list(images.numpy()), list(rebuilt.numpy())]


def _partial_sampling(model, config, source, seed, images=3, samples=5):
  """LapCVAE's Figure 7: per test image and coarse level j (coarsest first), the image
  then `samples` images that keep its levels from j up."""
  rows = []
  resample = tf.function(lambda coarse, seeds: model.sample_from_coarse(coarse, seeds)[0])
  for image in _test_images(config, source, images):
    for j, (h, w) in sorted(model.coarse_sizes().items(), reverse=True):
      coarse = tf.cast(tf.round(tf.image.resize(tf.cast(image[None], tf.float32), (h, w), "area")),
                       tf.uint8)
      drawn = resample(tf.repeat(coarse, samples, 0), _seeds(seed, samples, 100 * j))
      rows.append([image.numpy(), *drawn.numpy()])
  return rows


def _stages(model, config, source, seed, samples=6):
  """One row per sample: the image of every stage, first to last."""
  from zoo import layers  # pylint: disable=g-import-not-at-top
  latents = layers.per_example_normal(_seeds(seed, samples), [model.latent_size])
  stages = [s.numpy() for s in tf.function(model.stage_images)(latents)]
  return [[stage[k] for stage in stages] for k in range(samples)]


def _reconstructions_and_samples(model, config, source, seed):
  test, rebuilt = _reconstructions(model, config, source, seed)
  samples = tf.function(model.sample)(_seeds(seed, FIGURE_COLUMNS, 1000))
  return [test, rebuilt, list(samples.numpy())]


def _inpainting(model, config, source, seed, examples=2):
  """Samples beside test patches of their size; then, per example, a test patch, the patch
  with its missing centre square shown as a checkerboard, and the patch inpainted."""
  from export import saved_model  # pylint: disable=g-import-not-at-top  (its inpaint options)
  from zoo import inpaint  # pylint: disable=g-import-not-at-top
  samples = tf.function(model.sample)(_seeds(seed, FIGURE_COLUMNS)).numpy()
  patches = _test_images(config, source, FIGURE_COLUMNS).numpy()
  size = min(samples.shape[1], samples.shape[2], patches.shape[1], patches.shape[2])
  samples, patches = _centre(samples, size), _centre(patches, size)  # at the same scale
  mask = np.ones(patches[:examples].shape, np.uint8)
  hole = size // 3
  mask[:, hole:size - hole, hole:size - hole] = 0
  options = saved_model.inpaint_options(config)  # what the export's inpaint signature uses
  filled = tf.function(lambda y, m, s: inpaint.inpaint(model, y, m, s, **options))(
      tf.constant(patches[:examples]), tf.constant(mask), _seeds(seed, examples, 2000)).numpy()
  # The missing pixels as a black and white checkerboard, unlike any image content.
  rows, cols = np.indices(patches.shape[1:3])
  checks = (((rows + cols) % 2) * (model.levels - 1)).astype(np.uint8)[None, :, :, None]
  shown = np.where(mask == 1, patches[:examples], checks)
  return [list(samples), list(patches),
          *[[patches[k], shown[k], filled[k]] for k in range(examples)]]


_FIGURE_ROWS = {"classes": _classes, "reconstructions": _reconstructions,
                "partial_sampling": _partial_sampling, "stages": _stages,
                "reconstructions_and_samples": _reconstructions_and_samples,
                "inpainting": _inpainting}


def figure_rows(model, config, source, seed=0):
  """Returns the rows of tiles (uint8 [h, w, C], values in [0, levels)) of `model.figure`,
  drawn from the held-out images of `source` with seeds (seed, k); None if the model
  declares no figure."""
  if model.figure is None:
    return None
  return _FIGURE_ROWS[model.figure](model, config, source, seed)


def draw_figure(model, config, source, seed=0):
  """Returns uint8 [H', W', C]: `model.figure` drawn (`figure_rows`, then `draw_rows`), or None."""
  rows = figure_rows(model, config, source, seed)
  return None if rows is None else draw_rows(rows, model.levels)


def draw_rows(rows, levels):
  """Returns uint8 [H', W', C]: rows of tiles with values in [0, levels), as shown (`displayed`)
  and drawn (`draw`)."""
  return draw([[displayed(t, levels) for t in row] for row in rows])
