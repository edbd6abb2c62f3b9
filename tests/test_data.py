"""Tests for the dead-leaves generator and builder and for training/data.py pipelines.

The full dead-leaves set is built once into a module temp dir (about 15 s); the public
TFDS sets run on `tfds.testing.mock_data`, so nothing is downloaded.
"""

import functools
import os
import shutil
import tempfile
from unittest import mock

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from training import data
from training.datasets import deadleaves

_DATA_DIR = None  # the module's TFDS data_dir, holding the built dead-leaves set


def setUpModule():
  global _DATA_DIR
  _DATA_DIR = tempfile.mkdtemp(prefix="genzoo-test-data-")
  deadleaves.Deadleaves(data_dir=_DATA_DIR).download_and_prepare()


def tearDownModule():
  shutil.rmtree(_DATA_DIR, ignore_errors=True)


def _paint_back_to_front(rng, size, r_min, r_max, chunk, num_chunks):
  """Returns uint8 [size, size]: the same disk stream as `render`, painted naively."""
  disks = []
  for _ in range(num_chunks):  # same draw order as render: radii, cy, cx, levels per chunk
    r = deadleaves.sample_radii(rng, chunk, r_min, r_max)
    cy = rng.uniform(-r_max, size + r_max, chunk)
    cx = rng.uniform(-r_max, size + r_max, chunk)
    level = rng.integers(0, 256, chunk, dtype=np.uint8)
    disks += list(zip(r, cy, cx, level))
  y, x = np.mgrid[:size, :size]
  image = np.zeros((size, size), np.uint8)
  for r, cy, cx, level in reversed(disks):  # the last drawn is at the back
    image[(y - cy) ** 2 + (x - cx) ** 2 <= r**2] = level
  return image


class RenderTest(tf.test.TestCase):

  def test_render_is_uint8_and_covers_every_pixel(self):
    grey, owner = deadleaves.render_with_owner(np.random.default_rng(0))
    self.assertEqual(grey.dtype, np.uint8)
    self.assertEqual(grey.shape, (deadleaves.SIZE, deadleaves.SIZE))
    self.assertGreaterEqual(owner.min(), 0)  # -1 marks a pixel no disk covers
    self.assertGreater(len(np.unique(owner)), 100)  # many disks, not one big one

  def test_render_is_deterministic_for_a_seed_and_differs_across_seeds(self):
    a = deadleaves.render(np.random.default_rng([1, 2]))
    self.assertAllEqual(a, deadleaves.render(np.random.default_rng([1, 2])))
    self.assertGreater(np.mean(a != deadleaves.render(np.random.default_rng([1, 3]))), 0.5)

  def test_front_to_back_fill_equals_back_to_front_painting(self):
    size, r_min, r_max, chunk = 32, 1.0, 8.0, 64
    _, owner = deadleaves.render_with_owner(np.random.default_rng(7), size, r_min, r_max, chunk)
    grey = deadleaves.render(np.random.default_rng(7), size, r_min, r_max, chunk)
    # Any number of chunks at least as many as render drew paints the same picture:
    # the extra disks lie behind a fully covered image.
    num_chunks = owner.max() // chunk + 3
    expected = _paint_back_to_front(np.random.default_rng(7), size, r_min, r_max, chunk, num_chunks)
    self.assertAllEqual(grey, expected)

  def test_radii_follow_inverse_cube_density(self):
    r_min, r_max = 2.0, 64.0
    radii = deadleaves.sample_radii(np.random.default_rng(0), 200_000, r_min, r_max)
    self.assertBetween(radii.min(), r_min, r_max)
    self.assertBetween(radii.max(), r_min, r_max)
    # CDF of p(r) ~ r^-3 on [r_min, r_max]; median = sqrt(2) r_min when r_max >> r_min.
    cdf = lambda r: (r_min**-2 - r**-2) / (r_min**-2 - r_max**-2)
    for r in (2.5, 2.0 * np.sqrt(2.0), 4.0, 8.0, 32.0):
      self.assertAllClose(np.mean(radii <= r), cdf(r), atol=0.005)


class DeadleavesBuilderTest(tf.test.TestCase):

  def test_builder_has_900_train_and_100_test_grey_256_images(self):
    builder = tfds.builder("deadleaves", data_dir=_DATA_DIR)
    self.assertEqual(builder.info.splits["train"].num_examples, 900)
    self.assertEqual(builder.info.splits["test"].num_examples, 100)
    self.assertEqual(builder.info.features["image"].shape, (256, 256, 1))
    self.assertIsNone(builder.info.supervised_keys)

  def test_stored_test_split_is_images_900_to_999_of_the_seed(self):
    stored = list(data.load_images("deadleaves", "test", _DATA_DIR).as_numpy_iterator())
    rendered = [deadleaves.image(i) for i in range(900, 1000)]
    # TFDS stores examples in its own (fixed) order, so compare as sets of images.
    self.assertEqual(sorted(x.tobytes() for x in stored), sorted(x.tobytes() for x in rendered))


  def test_building_twice_writes_identical_files(self):
    contents = []
    with mock.patch.object(deadleaves, "NUM_TRAIN", 3), mock.patch.object(deadleaves, "NUM_TEST", 2):
      for run in ("a", "b"):
        builder = deadleaves.Deadleaves(data_dir=os.path.join(self.get_temp_dir(), run))
        builder.download_and_prepare()
        files = sorted(tf.io.gfile.glob(os.path.join(builder.data_dir, "*.tfrecord*")))
        contents.append([open(f, "rb").read() for f in files])
    self.assertLen(contents[0], 2)  # train and test
    self.assertEqual(contents[0], contents[1])


class TrainBatchesTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    # Decode the 900 training images once for the whole class, not once per pipeline.
    cls.enterClassContext(mock.patch.object(data, "_in_memory", functools.cache(data._in_memory)))

  def _batches(self, n, **kwargs):
    args = dict(patch_size=32, global_batch_size=4, seed=0, data_dir=_DATA_DIR) | kwargs
    return [b.numpy() for b in data.train_batches("deadleaves", **args).take(n)]

  def test_batches_have_the_requested_shape_and_dtype(self):
    (batch,) = self._batches(1, global_batch_size=3)
    self.assertEqual(batch.shape, (3, 32, 32, 1))
    self.assertEqual(batch.dtype, np.uint8)
    (whole,) = self._batches(1, patch_size=None, global_batch_size=2)
    self.assertEqual(whole.shape, (2, 256, 256, 1))

  def test_same_seed_and_step_give_the_same_batch_and_other_seeds_differ(self):
    first, again, other = self._batches(3), self._batches(3), self._batches(3, seed=1)
    self.assertAllEqual(np.stack(first), np.stack(again))
    self.assertNotAllEqual(np.stack(first), np.stack(other))
    self.assertNotAllEqual(first[0], first[1])  # steps differ too

  def test_resuming_at_step_k_reproduces_batch_k(self):
    uninterrupted = self._batches(5)
    resumed = self._batches(2, start_step=3)
    self.assertAllEqual(resumed[0], uninterrupted[3])
    self.assertAllEqual(resumed[1], uninterrupted[4])

  def test_patch_larger_than_the_image_raises(self):
    with self.assertRaisesRegex(data.DataError, "valid: 1..256"):
      data.train_batches("deadleaves", patch_size=300, global_batch_size=1, seed=0,
                         data_dir=_DATA_DIR)


class EvalPatchesTest(tf.test.TestCase):

  def test_patches_tile_every_test_image_in_order(self):
    patches = np.stack(list(data.eval_patches("deadleaves", patch_size=64,
                                              data_dir=_DATA_DIR).as_numpy_iterator()))
    self.assertEqual(patches.shape, (100 * (256 // 64) ** 2, 64, 64, 1))
    first = next(data.load_images("deadleaves", "test", _DATA_DIR).as_numpy_iterator())
    tiles = patches[:16].reshape(4, 4, 64, 64, 1).transpose(0, 2, 1, 3, 4)  # [4, 64, 4, 64, 1]
    self.assertAllEqual(tiles.reshape(256, 256, 1), first)

  def test_remainders_narrower_than_a_patch_are_dropped(self):
    patches = data.eval_patches("deadleaves", patch_size=100, data_dir=_DATA_DIR)
    self.assertEqual(sum(1 for _ in patches.take(10)), 4 + 4 + 2)  # 2x2 per image


class MockedTfdsTest(tf.test.TestCase):
  """Public datasets through `tfds.testing.mock_data`: random images of the real shapes."""

  def test_mnist_gives_grey_28_images_batches_and_patches(self):
    with tfds.testing.mock_data(num_examples=6):
      self.assertEqual(data.image_shape("mnist"), (28, 28, 1))
      image = next(iter(data.load_images("mnist", "train")))
      self.assertEqual((image.shape, image.dtype), ((28, 28, 1), tf.uint8))
      batch = next(iter(data.train_batches("mnist", patch_size=None, global_batch_size=4, seed=0)))
      self.assertEqual(batch.shape, (4, 28, 28, 1))
      patches = list(data.eval_patches("mnist", patch_size=14))
      self.assertLen(patches, 6 * 4)

  def test_tfds_prefix_loads_any_image_dataset(self):
    with tfds.testing.mock_data(num_examples=5):
      self.assertEqual(data.image_shape("tfds:cifar10"), (32, 32, 3))
      batch = next(iter(data.train_batches("tfds:cifar10", patch_size=16, global_batch_size=8,
                                           seed=3)))
      self.assertEqual((batch.shape, batch.dtype), ((8, 16, 16, 3), tf.uint8))

  def test_celeb_a_is_cropped_to_64_and_streams_when_too_big_for_memory(self):
    with tfds.testing.mock_data(num_examples=4), mock.patch.object(data, "_IN_MEMORY_BYTES", -1):
      self.assertEqual(data.image_shape("celeb_a"), (64, 64, 3))
      self.assertEqual(next(iter(data.load_images("celeb_a", "test"))).shape, (64, 64, 3))
      batches = data.train_batches("celeb_a", patch_size=None, global_batch_size=3, seed=0)
      self.assertEqual([b.shape for b in batches.take(2)], [(3, 64, 64, 3)] * 2)


class NameTest(tf.test.TestCase):

  def test_unknown_names_raise_one_line_listing_the_valid_names(self):
    for name in ("foo", "", "MNIST", "tfds:no_such_dataset", "tfds:"):
      with self.assertRaises(data.DataError) as raised:
        data.check_name(name)
      message = str(raised.exception)
      self.assertNotIn("\n", message)
      for valid in data.DATASETS + ("tfds:<name>",):
        self.assertIn(valid, message)

  def test_valid_names_pass_without_touching_disk(self):
    missing = os.path.join(self.get_temp_dir(), "never_created")
    for name in data.DATASETS + ("tfds:mnist", "tfds:deadleaves"):
      data.check_name(name)
      data.image_shape(name, data_dir=missing)
    self.assertFalse(os.path.exists(missing))

  def test_every_public_function_rejects_unknown_names(self):
    with self.assertRaises(data.DataError):
      data.load_images("foo", "train")
    with self.assertRaises(data.DataError):
      data.train_batches("foo", patch_size=8, global_batch_size=1, seed=0)
    with self.assertRaises(data.DataError):
      data.eval_patches("foo")


if __name__ == "__main__":
  tf.test.main()
