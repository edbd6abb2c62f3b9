"""The lfw_faces builder and its pipelines: 32x32 uint8 faces, 90 train / 10 test, no labels."""
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from training import data
from training.datasets import lfw_faces

_DATA_DIR = None


def setUpModule():
  global _DATA_DIR
  _DATA_DIR = tempfile.mkdtemp(prefix="genzoo-test-lfw-faces-")
  lfw_faces.LfwFaces(data_dir=_DATA_DIR).download_and_prepare()


def tearDownModule():
  shutil.rmtree(_DATA_DIR, ignore_errors=True)


def split_images(split):
  """Returns uint8 [N, 32, 32, 1]: the images of a split, read back from TFDS."""
  return np.stack(list(data.load_images("lfw_faces", split, _DATA_DIR).as_numpy_iterator()))


class LfwFacesBuilderTest(tf.test.TestCase):

  def test_splits_hold_90_train_and_10_test_faces(self):
    builder = lfw_faces.LfwFaces(data_dir=_DATA_DIR)
    self.assertEqual(builder.info.splits["train"].num_examples, 90)
    self.assertEqual(builder.info.splits["test"].num_examples, 10)
    self.assertEqual(split_images("train").shape, (90, 32, 32, 1))
    self.assertEqual(split_images("test").shape, (10, 32, 32, 1))

  def test_no_test_face_is_also_a_train_face(self):
    index = lfw_faces.split_indices()
    self.assertEmpty(set(index["train"]) & set(index["test"]))
    self.assertEqual(sorted(set(index["train"]) | set(index["test"])), list(range(100)))
    train = {image.tobytes() for image in split_images("train")}
    test = [image.tobytes() for image in split_images("test")]
    self.assertLen(set(test), 10)
    self.assertEmpty(train & set(test))

  def test_stored_faces_are_the_resized_skimage_faces(self):
    faces = lfw_faces.faces()
    self.assertEqual(faces.shape, (100, 32, 32, 1))
    self.assertEqual(faces.dtype, np.uint8)
    self.assertAllEqual(faces, lfw_faces.faces())  # deterministic resampling
    # TFDS stores a split in its own (key-hashed) order: compare as multisets.
    for split, indices in lfw_faces.split_indices().items():
      self.assertEqual(sorted(image.tobytes() for image in split_images(split)),
                       sorted(image.tobytes() for image in faces[indices]))

  def test_pixels_are_uint8_using_most_of_0_to_255(self):
    images = split_images("train")
    self.assertEqual(images.dtype, np.uint8)
    self.assertLessEqual(images.min(), 10)
    self.assertGreaterEqual(images.max(), 245)
    self.assertGreater(len(np.unique(images)), 200)  # grey levels, not a few quantised steps

  def test_building_twice_writes_identical_files(self):
    other = lfw_faces.LfwFaces(data_dir=os.path.join(self.get_temp_dir(), "again"))
    other.download_and_prepare()
    contents = []
    for directory in (lfw_faces.LfwFaces(data_dir=_DATA_DIR).data_dir, other.data_dir):
      files = sorted(tf.io.gfile.glob(os.path.join(directory, "*.tfrecord*")))
      contents.append([open(f, "rb").read() for f in files])
    self.assertLen(contents[0], 2)  # train and test
    self.assertEqual(contents[0], contents[1])


class LfwFacesPipelineTest(tf.test.TestCase):

  def test_image_shape_is_32x32x1_without_building(self):
    missing = os.path.join(self.get_temp_dir(), "never_created")
    self.assertEqual(data.image_shape("lfw_faces", missing), (32, 32, 1))
    self.assertFalse(os.path.exists(missing))
    self.assertIn("lfw_faces", data.DATASETS)
    data.check_name("lfw_faces")

  def test_train_batches_yield_the_global_batch_of_train_faces(self):
    train = {image.tobytes() for image in split_images("train")}
    flipped = {image[:, ::-1].tobytes() for image in split_images("train")}
    batches = data.train_batches("lfw_faces", patch_size=0, global_batch_size=12, seed=3,
                                 data_dir=_DATA_DIR)
    for batch in batches.take(2):
      self.assertEqual(batch.shape, (12, 32, 32, 1))
      self.assertEqual(batch.dtype, tf.uint8)
      for image in batch.numpy():  # a train face, possibly flipped left/right
        self.assertIn(image.tobytes(), train | flipped)

  def test_faces_are_flipped_left_right_only(self):
    self.assertEqual(data._FLIPS["lfw_faces"], (True, False))  # pylint: disable=protected-access
    train = {image.tobytes() for image in split_images("train")}
    batch = next(iter(data.train_batches("lfw_faces", patch_size=0, global_batch_size=64,
                                         seed=0, data_dir=_DATA_DIR)))
    self.assertTrue(any(image.tobytes() not in train for image in batch.numpy()))
    unflipped = next(iter(data.train_batches("lfw_faces", patch_size=0, global_batch_size=64,
                                             seed=0, data_dir=_DATA_DIR, flips=False)))
    self.assertTrue(all(image.tobytes() in train for image in unflipped.numpy()))

  def test_eval_patches_cut_each_test_face_into_16_patches(self):
    patches = list(data.eval_patches("lfw_faces", patch_size=8, data_dir=_DATA_DIR)
                   .as_numpy_iterator())
    self.assertLen(patches, 10 * 16)
    self.assertEqual(patches[0].shape, (8, 8, 1))

  def test_asking_labels_of_faces_is_one_clear_line(self):
    for call in (lambda: data.load_images("lfw_faces", "test", _DATA_DIR, labels=True),
                 lambda: data.train_batches("lfw_faces", patch_size=0, global_batch_size=2,
                                            seed=0, data_dir=_DATA_DIR, labels=True),
                 lambda: data.eval_patches("lfw_faces", patch_size=8, data_dir=_DATA_DIR,
                                           labels=True)):
      with self.assertRaisesRegex(data.DataError, r"^dataset 'lfw_faces' has no class labels; "
                                                  r"labelled datasets: digits, mnist") as caught:
        call()
      self.assertNotIn("\n", str(caught.exception))
    self.assertEqual(data.num_classes("lfw_faces", _DATA_DIR), 0)


if __name__ == "__main__":
  tf.test.main()
