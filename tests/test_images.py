"""Pictures (training/images.py): readable grids whose pixels are the images' own, and the
figure each model declares, with the layout it promises."""
import numpy as np
import tensorflow as tf

import zoo
from training import batches as batches_lib
from training import images
from tests.conftest import registry_variants
from tests.conftest import tiny_config
from tests.conftest import tiny_model


def tiles_of(picture, rows, columns, tile_shape, pad=images.SEPARATOR):
  """Returns [[tile]] cut out of a drawn picture, each tile shrunk back by taking every
  k-th pixel, and k (from the picture's size)."""
  h, w = tile_shape
  k = (picture.shape[0] - pad) // rows - pad
  k //= h
  cut = []
  for i in range(rows):
    row = []
    for j in range(columns):
      top, left = pad + i * (h * k + pad), pad + j * (w * k + pad)
      row.append(picture[top:top + h * k, left:left + w * k])
    cut.append(row)
  return cut, k


class DrawTest(tf.test.TestCase):

  def test_tiles_are_enlarged_by_exact_repetition_between_separators(self):
    rng = np.random.default_rng(0)
    rows = [[rng.integers(0, 256, [7, 5, 3], dtype=np.uint8) for _ in range(n)] for n in (4, 4, 2)]
    picture = images.draw(rows)
    k = images.scale_for((7, 5), 3, 4)
    pad = images.SEPARATOR
    self.assertEqual(picture.shape, (3 * (7 * k + pad) + pad, 4 * (5 * k + pad) + pad, 3))
    self.assertGreaterEqual(min(picture.shape[:2]), images.MIN_SIDE)
    self.assertGreater(k, 1)
    cut, _ = tiles_of(picture, 3, 4, (7, 5))
    for i, row in enumerate(rows):
      for j, tile in enumerate(row):
        self.assertAllEqual(cut[i][j], np.repeat(np.repeat(tile, k, 0), k, 1))
    self.assertTrue(np.all(cut[2][2] == images.SEPARATOR_VALUE))  # a short row's rest
    # Everything outside the tiles is separator.
    inside = np.zeros(picture.shape[:2], bool)
    for i in range(3):
      for j in range(len(rows[i])):
        top, left = pad + i * (7 * k + pad), pad + j * (5 * k + pad)
        inside[top:top + 7 * k, left:left + 5 * k] = True
    self.assertTrue(np.all(picture[~inside] == images.SEPARATOR_VALUE))

  def test_small_images_become_readable_and_large_ones_stay_as_they_are(self):
    digits = np.zeros([64, 8, 8, 1], np.uint8)
    self.assertGreaterEqual(min(images.grid(digits).shape[:2]), images.MIN_SIDE)  # was 37 px
    large = np.zeros([4, 300, 300, 1], np.uint8)
    self.assertEqual(images.scale_for((300, 300), 2, 2), 1)
    self.assertEqual(images.grid(large).shape, (2 * 302 + 2, 2 * 302 + 2, 1))
    # A long strip is capped: its long side stays within MAX_SIDE.
    strip = images.grid(np.zeros([40, 8, 8, 1], np.uint8), columns=40)
    self.assertLessEqual(max(strip.shape[:2]), images.MAX_SIDE)

  def test_tiles_of_one_picture_share_a_shape(self):
    with self.assertRaisesRegex(ValueError, "share a shape"):
      images.draw([[np.zeros([4, 4, 1], np.uint8), np.zeros([5, 4, 1], np.uint8)]])

  def test_fewer_levels_are_spread_over_the_byte(self):
    self.assertAllEqual(images.displayed(np.array([0, 1], np.uint8), 2), [0, 255])
    self.assertAllEqual(images.displayed(np.array([0, 1, 16], np.uint8), 17), [0, 15, 255])
    self.assertAllEqual(images.displayed(np.array([0, 7, 255], np.uint8), 256), [0, 7, 255])


# figure -> (rows, tiles per row) of a tiny model of that family on 8x8 digits
def expected_layout(model, figure, test_images):
  n = images.FIGURE_COLUMNS
  if figure == "classes":
    return [n] * model.num_classes
  if figure == "reconstructions":  # as many test images as there are, up to n
    return [min(n, test_images)] * 2
  if figure == "partial_sampling":
    return [6] * (3 * len(model.coarse_sizes()))
  if figure == "stages":
    return [model.stages] * 6
  if figure == "reconstructions_and_samples":
    return [min(n, test_images)] * 2 + [n]
  if figure == "inpainting":
    return [n, test_images, 3, 3]
  raise AssertionError(figure)


# (model, variant) drawn by the figure test: every figure, and both ways to reconstruct.
FIGURE_CASES = {("pixelcnn", "Class"), ("pixelcnn", "Autoencoder"), ("vae", ""),
                ("lapcvae", ""), ("msvae", ""), ("gvae", ""), ("mcgsm", "")}


class FigureTest(tf.test.TestCase):
  """Every registry model's figure, on untrained tiny models of the 8x8 digits."""

  def test_every_declared_figure_has_its_layout_and_the_images_own_pixels(self):
    source = batches_lib.Source("digits")
    seen = set()
    # One model per figure and way of drawing it (RIDE's inpainting is the MCGSM's code,
    # and costs seconds more).
    for name, variant, overrides in registry_variants():
      if (name, variant) not in FIGURE_CASES:
        continue
      config = tiny_config(name, image_shape=(8, 8, 1), **overrides)
      config.data.num_classes = 10
      config.eval.update(patch_size=0, max_patches=4)
      if "size" in config.sample:
        config.sample.size = 8
      model = tiny_model(config, name)
      if model.figure is None:
        continue
      with self.subTest(model=name, variant=variant, figure=model.figure):
        seen.add(model.figure)
        rows = images.figure_rows(model, config, source, seed=0)
        self.assertEqual([len(row) for row in rows], expected_layout(model, model.figure, 4))
        shapes = {tile.shape for row in rows for tile in row}
        self.assertLen(shapes, 1)
        picture = images.draw_rows(rows, model.levels)
        self.assertGreaterEqual(min(picture.shape[:2]), images.MIN_SIDE)
        cut, k = tiles_of(picture, len(rows), max(len(r) for r in rows), shapes.pop()[:2])
        for i, row in enumerate(rows):
          for j, tile in enumerate(row):
            self.assertAllEqual(cut[i][j], np.repeat(np.repeat(
                images.displayed(tile, model.levels), k, 0), k, 1))
        if model.figure == "inpainting":  # known pixels come back unchanged
          size = rows[0][0].shape[0]
          known = np.ones(rows[0][0].shape, bool)
          known[size // 3:size - size // 3, size // 3:size - size // 3] = False
          for patch, masked, filled in rows[2:]:
            self.assertAllEqual(masked[known], patch[known])
            self.assertAllEqual(filled[known], patch[known])
            self.assertAllEqual(np.unique(masked[~known]), [0, model.levels - 1])  # checks
        if model.figure in ("reconstructions", "reconstructions_and_samples"):  # the first row: test images
          (test,) = next(iter(batches_lib.eval_dataset(config, source).batch(8)))
          self.assertAllEqual(np.stack(rows[0]), test)
    self.assertEqual(seen, set(images.FIGURES))  # every figure is drawn by some model

  def test_a_figure_is_drawn_the_same_twice(self):
    config = tiny_config("pixelcnn", image_shape=(8, 8, 1), conditional="class")
    config.data.num_classes = 10
    model = tiny_model(config, "pixelcnn")
    source = batches_lib.Source("digits")
    self.assertAllEqual(images.draw_figure(model, config, source, seed=3),
                        images.draw_figure(model, config, source, seed=3))
    self.assertEqual(model.figure, "classes")
    self.assertIsNone(zoo.get("pixelcnn").Model(tiny_config("pixelcnn", image_shape=(8, 8, 1))).figure)


if __name__ == "__main__":
  tf.test.main()
