"""The digits builder and labelled pipelines: labels travel with their own images."""
import os
import shutil
import tempfile
from unittest import mock

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from training import data
from training.datasets import digits

_DATA_DIR = None


def setUpModule():
  global _DATA_DIR
  _DATA_DIR = tempfile.mkdtemp(prefix="genzoo-test-digits-")
  digits.Digits(data_dir=_DATA_DIR).download_and_prepare()


def tearDownModule():
  shutil.rmtree(_DATA_DIR, ignore_errors=True)


def split_arrays(split, name="digits"):
  """Returns (images uint8 [N, H, W, C], labels int64 [N]) of a split, read back from TFDS."""
  pairs = list(data.load_images(name, split, _DATA_DIR, labels=True).as_numpy_iterator())
  return np.stack([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def labels_by_image(images, labels):
  """Returns {image bytes: set of labels stored with that image} (a digit could repeat)."""
  lookup = {}
  for image, label in zip(images, labels):
    lookup.setdefault(image.tobytes(), set()).add(label)
  return lookup


class DigitsBuilderTest(tf.test.TestCase):

  def test_splits_hold_1497_train_and_300_test_labelled_digits(self):
    builder = digits.Digits(data_dir=_DATA_DIR)
    self.assertEqual(builder.info.splits["train"].num_examples, 1497)
    self.assertEqual(builder.info.splits["test"].num_examples, 300)
    images, labels = split_arrays("test")
    self.assertEqual(images.shape, (300, 8, 8, 1))
    self.assertEqual(images.dtype, np.uint8)
    self.assertEqual(set(labels), set(range(10)))

  def test_pixels_are_the_sklearn_counts_scaled_to_255(self):
    raw, raw_labels = digits.digits()
    allowed = set(np.round(np.arange(17) * 255 / 16).astype(np.uint8))
    images, labels = split_arrays("train")
    self.assertTrue(set(np.unique(images)) <= allowed)
    self.assertEqual(images.max(), 255)
    # Every stored (image, label) is one of sklearn's, and the two splits are disjoint.
    source = {im.tobytes(): lab for im, lab in zip(raw, raw_labels)}
    for image, label in zip(images, labels):
      self.assertEqual(source[image.tobytes()], label)
    test_images, _ = split_arrays("test")
    index = digits.split_indices()
    self.assertEmpty(set(index["train"]) & set(index["test"]))
    # TFDS stores a split in its own (key-hashed) order: compare as multisets.
    self.assertEqual(sorted(im.tobytes() for im in test_images),
                     sorted(im.tobytes() for im in raw[index["test"]]))

  def test_building_twice_writes_identical_files(self):
    other = digits.Digits(data_dir=os.path.join(self.get_temp_dir(), "again"))
    other.download_and_prepare()
    contents = []
    for directory in (digits.Digits(data_dir=_DATA_DIR).data_dir, other.data_dir):
      files = sorted(tf.io.gfile.glob(os.path.join(directory, "*.tfrecord*")))
      contents.append([open(f, "rb").read() for f in files])
    self.assertLen(contents[0], 2)  # train and test
    self.assertEqual(contents[0], contents[1])

  def test_num_classes_reads_metadata(self):
    self.assertEqual(data.num_classes("digits", _DATA_DIR), 10)
    self.assertEqual(data.num_classes("deadleaves"), 0)
    self.assertEqual(data.num_classes("cifar10"), 10)


class LabelledPipelineTest(tf.test.TestCase):

  def test_train_batch_labels_belong_to_their_images(self):
    lookup = labels_by_image(*split_arrays("train"))
    ds = data.train_batches("digits", patch_size=0, global_batch_size=16, seed=5,
                            data_dir=_DATA_DIR, labels=True)
    plain = data.train_batches("digits", patch_size=0, global_batch_size=16, seed=5,
                               data_dir=_DATA_DIR)
    for (batch, batch_labels), same in zip(ds.take(3), plain.take(3)):
      self.assertAllEqual(batch, same)  # labels=True changes nothing about the images
      self.assertEqual(batch_labels.dtype, tf.int64)
      for image, label in zip(batch.numpy(), batch_labels.numpy()):
        self.assertIn(label, lookup[image.tobytes()])

  def test_eval_patches_carry_the_label_of_their_image(self):
    images, labels = split_arrays("test")
    patches = list(data.eval_patches("digits", patch_size=4, data_dir=_DATA_DIR, labels=True)
                   .take(8).as_numpy_iterator())
    for k, (patch, label) in enumerate(patches):  # 4 patches per 8x8 image, row-major
      image, (row, col) = k // 4, divmod(k % 4, 2)
      self.assertEqual(label, labels[image])
      self.assertAllEqual(patch, images[image, 4 * row:4 * row + 4, 4 * col:4 * col + 4])

  def test_streamed_batches_keep_labels_with_images(self):
    lookup = labels_by_image(*split_arrays("train"))
    with mock.patch.object(data, "_IN_MEMORY_BYTES", -1):
      batch, batch_labels = next(iter(data.train_batches(
          "digits", patch_size=0, global_batch_size=8, seed=0, data_dir=_DATA_DIR, labels=True)))
    for image, label in zip(batch.numpy(), batch_labels.numpy()):
      self.assertIn(label, lookup[image.tobytes()])

  def test_mnist_labels_under_mock_data(self):
    with tfds.testing.mock_data(num_examples=6):  # random images and labels, the same each read
      self.assertEqual(data.num_classes("mnist"), 10)
      lookup = labels_by_image(*split_arrays("train", "mnist"))
      batch, labels = next(iter(data.train_batches("mnist", patch_size=0, global_batch_size=4,
                                                   seed=0, labels=True)))
      self.assertEqual(batch.shape, (4, 28, 28, 1))
      self.assertEqual(labels.dtype, tf.int64)
      self.assertEqual(labels.shape, (4,))
      for image, label in zip(batch.numpy(), labels.numpy()):
        self.assertIn(label, lookup[image.tobytes()])

  def test_asking_labels_of_an_unlabelled_set_is_one_clear_line(self):
    for call in (lambda: data.load_images("deadleaves", "test", labels=True),
                 lambda: data.train_batches("textures/brick", patch_size=0, global_batch_size=2,
                                            seed=0, labels=True)):
      with self.assertRaisesRegex(data.DataError, r"^dataset '\S+' has no class labels; "
                                                  r"labelled datasets: digits, mnist") as caught:
        call()  # raises before anything is built
      self.assertNotIn("\n", str(caught.exception))


if __name__ == "__main__":
  tf.test.main()
