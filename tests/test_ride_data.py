"""Tests for the RIDE data sets: the textures and BSDS300 builders and their pipelines.

Textures build offline from scikit-image (about a second for all three). BSDS300 is built
from a tiny fake BSDS300-images.tgz (random JPEGs in the official layout) put in the manual
dir, and also run through `tfds.testing.mock_data`; nothing is downloaded.
"""

import io
import os
import shutil
import tarfile
import tempfile
from unittest import mock

import ml_collections
import numpy as np
import PIL.Image
import skimage.data
import tensorflow as tf
import tensorflow_datasets as tfds

from training import data
from training.datasets import bsds300
from training.datasets import textures

_DATA_DIR = None  # the module's TFDS data_dir: all textures and a fake bsds300
# The fake archive: BSDS ids and (height, width) per split, in the official mixed
# orientations; in id order the train images are 25, 300, 1000, so 1000 validates.
_FAKE_TRAIN = {300: (40, 24), 1000: (24, 40), 25: (24, 40)}
_FAKE_TEST = {8: (40, 24), 7: (24, 40)}
_FAKE_JPEGS = {}  # id -> the JPEG bytes in the archive


def _fake_archive(path):
  """Writes a BSDS300-images.tgz of random RGB JPEGs to `path`, recording their bytes."""
  rng = np.random.default_rng(0)
  with tarfile.open(path, "w:gz") as tar:
    for split, images in (("train", _FAKE_TRAIN), ("test", _FAKE_TEST)):
      for iid, shape in images.items():
        buffer = io.BytesIO()
        PIL.Image.fromarray(rng.integers(0, 256, shape + (3,), np.uint8)).save(buffer, "jpeg")
        _FAKE_JPEGS[iid] = buffer.getvalue()
        info = tarfile.TarInfo(f"BSDS300/images/{split}/{iid}.jpg")
        info.size = len(_FAKE_JPEGS[iid])
        tar.addfile(info, io.BytesIO(_FAKE_JPEGS[iid]))


def setUpModule():
  global _DATA_DIR
  _DATA_DIR = tempfile.mkdtemp(prefix="genzoo-test-ride-data-")
  for name in textures.TEXTURES:
    textures.Textures(config=name, data_dir=_DATA_DIR).download_and_prepare()
  manual = os.path.join(_DATA_DIR, "downloads", "manual")
  os.makedirs(manual)
  _fake_archive(os.path.join(manual, bsds300.ARCHIVE))
  bsds300.Bsds300(data_dir=_DATA_DIR).download_and_prepare()


def tearDownModule():
  shutil.rmtree(_DATA_DIR, ignore_errors=True)


def _examples(builder, split):
  return list(builder.as_dataset(split=split, shuffle_files=False).as_numpy_iterator())


class TexturesBuilderTest(tf.test.TestCase):

  def test_each_texture_has_15_train_and_1_test_grey_128_region(self):
    for name in textures.TEXTURES:
      builder = tfds.builder(f"textures/{name}", data_dir=_DATA_DIR)
      self.assertEqual(builder.info.splits["train"].num_examples, 15)
      self.assertEqual(builder.info.splits["test"].num_examples, 1)
      self.assertEqual(builder.info.features["image"].shape, (128, 128, 1))
      self.assertEqual(data.image_shape(f"textures/{name}", _DATA_DIR), (128, 128, 1))

  def test_regions_tile_the_scikit_image_texture_exactly(self):
    for name in textures.TEXTURES:
      builder = textures.Textures(config=name, data_dir=_DATA_DIR)
      examples = _examples(builder, "train") + _examples(builder, "test")
      grid = np.zeros((4, 4, 128, 128), np.uint8)
      self.assertCountEqual([ex["region"] for ex in examples], range(16))
      for ex in examples:
        grid[divmod(ex["region"], 4)] = ex["image"][:, :, 0]
      whole = grid.transpose(0, 2, 1, 3).reshape(512, 512)  # [row, y, col, x] -> [Y, X]
      self.assertAllEqual(whole, getattr(skimage.data, name)())

  def test_test_region_is_the_bottom_right_one_and_not_in_train(self):
    for name in textures.TEXTURES:
      builder = textures.Textures(config=name, data_dir=_DATA_DIR)
      (test,) = _examples(builder, "test")
      self.assertEqual(test["region"], 15)
      self.assertAllEqual(test["image"][:, :, 0], getattr(skimage.data, name)()[384:, 384:])
      train = {ex["image"].tobytes() for ex in _examples(builder, "train")}
      self.assertLen(train, 15)
      self.assertNotIn(test["image"].tobytes(), train)

  def test_plain_textures_name_loads_brick(self):
    (image,) = list(data.load_images("textures", "test", _DATA_DIR).as_numpy_iterator())
    self.assertAllEqual(image[:, :, 0], skimage.data.brick()[384:, 384:])


class ResolveTest(tf.test.TestCase):

  def test_textures_resolves_to_the_configured_texture(self):
    grass = ml_collections.ConfigDict({"patch_size": 32, "texture": "grass"})
    self.assertEqual(data.resolve("textures", grass), "textures/grass")
    self.assertEqual(data.resolve("textures", {"texture": "gravel"}), "textures/gravel")
    self.assertEqual(data.resolve("textures", ml_collections.ConfigDict()), "textures/brick")
    self.assertEqual(data.resolve("textures", None), "textures/brick")

  def test_other_names_are_returned_unchanged(self):
    grass = ml_collections.ConfigDict({"texture": "grass"})
    for name in ("deadleaves", "bsds300", "mnist", "tfds:cifar10", "textures/gravel"):
      self.assertEqual(data.resolve(name, grass), name)

  def test_unknown_texture_raises_one_line_listing_the_valid_ones(self):
    for resolve in (lambda: data.resolve("textures", {"texture": "wood"}),
                    lambda: data.check_name("textures/wood"),
                    lambda: data.image_shape("textures/wood")):
      with self.assertRaises(data.DataError) as raised:
        resolve()
      message = str(raised.exception)
      self.assertNotIn("\n", message)
      self.assertIn("'wood'", message)
      for valid in ("brick", "grass", "gravel"):
        self.assertIn(valid, message)

  def test_new_names_pass_check_name_and_have_shapes_without_touching_disk(self):
    missing = os.path.join(self.get_temp_dir(), "never_created")
    for name in ("textures", "textures/grass", "bsds300"):
      data.check_name(name)
    self.assertEqual(data.image_shape("textures", missing), (128, 128, 1))
    self.assertEqual(data.image_shape("textures/gravel", missing), (128, 128, 1))
    self.assertEqual(data.image_shape("bsds300", missing), (None, None, 1))
    self.assertFalse(os.path.exists(missing))


class TextureBatchesTest(tf.test.TestCase):

  def _batches(self, n, **kwargs):
    args = dict(patch_size=32, global_batch_size=4, seed=0, data_dir=_DATA_DIR) | kwargs
    return np.stack([b.numpy() for b in data.train_batches("textures/brick", **args).take(n)])

  def test_batches_have_the_requested_shape_and_dtype(self):
    batches = self._batches(2, global_batch_size=3)
    self.assertEqual(batches.shape, (2, 3, 32, 32, 1))
    self.assertEqual(batches.dtype, np.uint8)

  def test_batches_are_a_function_of_seed_and_step(self):
    first, again, other = self._batches(4), self._batches(4), self._batches(4, seed=1)
    self.assertAllEqual(first, again)
    self.assertNotAllEqual(first, other)
    self.assertNotAllEqual(first[0], first[1])
    self.assertAllEqual(self._batches(2, start_step=2), first[2:])

  def test_whole_region_batches_are_unflipped_train_regions(self):
    builder = textures.Textures(config="brick", data_dir=_DATA_DIR)
    train = {ex["image"].tobytes() for ex in _examples(builder, "train")}
    for image in self._batches(3, patch_size=None, global_batch_size=8).reshape(-1, 128, 128, 1):
      self.assertIn(image.tobytes(), train)  # flips=True, but textures are never flipped


class Bsds300BuilderTest(tf.test.TestCase):

  def test_last_tenth_of_train_ids_validates_and_test_is_kept(self):
    builder = bsds300.Bsds300(data_dir=_DATA_DIR)
    ids = {split: sorted(int(ex["id"]) for ex in _examples(builder, split))
           for split in ("train", "validation", "test")}
    self.assertEqual(ids, {"train": [25, 300], "validation": [1000], "test": [7, 8]})

  def test_images_are_601_grey_uint8_at_native_size(self):
    builder = bsds300.Bsds300(data_dir=_DATA_DIR)
    for split in ("train", "validation", "test"):
      for ex in _examples(builder, split):
        iid = int(ex["id"])
        expected = np.asarray(PIL.Image.open(io.BytesIO(_FAKE_JPEGS[iid])).convert("L"))
        self.assertEqual(ex["image"].dtype, np.uint8)
        self.assertEqual(ex["image"].shape, {**_FAKE_TRAIN, **_FAKE_TEST}[iid] + (1,))
        self.assertAllEqual(ex["image"][:, :, 0], expected)

  def test_grey_is_itu_601_luma_rounded(self):
    colours = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 200, 30]]], np.uint8)
    path = os.path.join(self.get_temp_dir(), "colours.png")
    PIL.Image.fromarray(colours).save(path)
    pixels = bsds300.grey(tfds.core.Path(path))
    expected = np.round(colours.astype(np.float64) @ [0.299, 0.587, 0.114])
    self.assertAllEqual(pixels[0, :, 0], expected[0])  # 76, 150, 29, 124

  def test_extracted_folder_in_the_manual_dir_builds_the_same(self):
    data_dir = self.get_temp_dir()
    manual = os.path.join(data_dir, "downloads", "manual")
    os.makedirs(manual)
    with tarfile.open(os.path.join(_DATA_DIR, "downloads", "manual", bsds300.ARCHIVE)) as tar:
      tar.extractall(manual, filter="data")
    builder = bsds300.Bsds300(data_dir=data_dir)
    builder.download_and_prepare()
    reference = bsds300.Bsds300(data_dir=_DATA_DIR)
    for split in ("train", "validation", "test"):
      mine = sorted((ex["id"], ex["image"].tobytes()) for ex in _examples(builder, split))
      theirs = sorted((ex["id"], ex["image"].tobytes()) for ex in _examples(reference, split))
      self.assertEqual(mine, theirs)

  def test_a_failed_build_says_where_to_put_the_archive(self):
    data_dir = self.get_temp_dir()
    offline = mock.patch.object(bsds300.Bsds300, "_split_generators",
                                side_effect=ConnectionError("no network"))
    with offline, self.assertRaises(data.DataError) as raised:
      data.load_images("bsds300", "train", data_dir)
    message = str(raised.exception)
    self.assertNotIn("\n", message)
    self.assertIn("no network", message)
    self.assertIn(f"BSDS300-images.tgz from {bsds300.URL}", message)
    self.assertIn(os.path.join(data_dir, "downloads", "manual"), message)


def _windows(image, patch):
  """Returns the set of bytes of every P x P window of [H, W, 1] `image`, in all 4 flips."""
  found = set()
  for flipped in (image, image[::-1], image[:, ::-1], image[::-1, ::-1]):
    for top in range(flipped.shape[0] - patch + 1):
      for left in range(flipped.shape[1] - patch + 1):
        found.add(np.ascontiguousarray(flipped[top:top + patch, left:left + patch]).tobytes())
  return found


class Bsds300PipelineTest(tf.test.TestCase):

  def _batches(self, n, **kwargs):
    args = dict(patch_size=16, global_batch_size=8, seed=0, data_dir=_DATA_DIR) | kwargs
    return np.stack([b.numpy() for b in data.train_batches("bsds300", **args).take(n)])

  def test_patches_of_varying_size_images_lie_inside_one_train_image(self):
    batches = self._batches(5)
    self.assertEqual(batches.shape, (5, 8, 16, 16, 1))
    train = list(data.load_images("bsds300", "train", _DATA_DIR).as_numpy_iterator())
    windows = set().union(*(_windows(image, 16) for image in train))  # padding is never cut
    for patch in batches.reshape(-1, 16, 16, 1):
      self.assertIn(patch.tobytes(), windows)

  def test_batches_are_a_function_of_seed_and_step(self):
    first = self._batches(4)
    self.assertAllEqual(first, self._batches(4))
    self.assertNotAllEqual(first, self._batches(4, seed=1))
    self.assertAllEqual(self._batches(2, start_step=2), first[2:])

  def test_patch_larger_than_the_smallest_side_or_whole_images_raise(self):
    for patch in (25, None):
      with self.assertRaisesRegex(data.DataError, r"valid patch_size: 1\.\.24$"):
        data.train_batches("bsds300", patch_size=patch, global_batch_size=1, seed=0,
                           data_dir=_DATA_DIR)

  def test_eval_patches_cut_every_image_without_overlap(self):
    for split, patch in (("test", 8), ("validation", 7), ("test", 64)):
      images = list(data.load_images("bsds300", split, _DATA_DIR).as_numpy_iterator())
      patches = list(data.eval_patches("bsds300", patch_size=patch, split=split,
                                       data_dir=_DATA_DIR).as_numpy_iterator())
      self.assertLen(patches, sum((x.shape[0] // patch) * (x.shape[1] // patch) for x in images))
      if patches:
        self.assertAllEqual(patches[0], images[0][:patch, :patch])


class Bsds300MockedTest(tf.test.TestCase):
  """bsds300 through `tfds.testing.mock_data`: random images of random size (5..49 px)."""

  def test_splits_batches_and_patches(self):
    with tfds.testing.mock_data(num_examples=6):
      self.assertEqual(data.image_shape("bsds300"), (None, None, 1))
      images = list(data.load_images("bsds300", "validation").as_numpy_iterator())
      self.assertLen(images, 6)
      self.assertEqual({(str(x.dtype), x.shape[2]) for x in images}, {("uint8", 1)})
      batch = next(iter(data.train_batches("bsds300", patch_size=4, global_batch_size=5, seed=0)))
      self.assertEqual((batch.shape, batch.dtype), ((5, 4, 4, 1), tf.uint8))
      images = list(data.load_images("bsds300", "test").as_numpy_iterator())
      patches = list(data.eval_patches("bsds300", patch_size=4))
      self.assertLen(patches, sum((x.shape[0] // 4) * (x.shape[1] // 4) for x in images))


if __name__ == "__main__":
  tf.test.main()
