"""The photos builder and its pipelines: grey natural photographs split by image, 5/1/3."""
import functools
import os
import shutil
import tempfile

import numpy as np
import skimage.color
import skimage.data
import tensorflow as tf

from configs import mcgsm as mcgsm_config
from training import data
from training import loop
from training.datasets import photos

_DATA_DIR = None


def setUpModule():
  global _DATA_DIR
  _DATA_DIR = tempfile.mkdtemp(prefix="genzoo-test-photos-")
  photos.Photos(data_dir=_DATA_DIR).download_and_prepare()


def tearDownModule():
  shutil.rmtree(_DATA_DIR, ignore_errors=True)


@functools.lru_cache(maxsize=None)
def split_photos(split):
  """Returns {name: uint8 [H, W, 1]}: the images of a split, read back from TFDS."""
  builder = photos.Photos(data_dir=_DATA_DIR)
  return {example["name"].decode(): example["image"]
          for example in builder.as_dataset(split=split).as_numpy_iterator()}


def contains(image, patch):
  """Returns whether uint8 [P, P, C] `patch` is a block of uint8 [H, W, C] `image`."""
  p = patch.shape[0]
  rows = np.lib.stride_tricks.sliding_window_view(image[..., 0], p, axis=1)  # [H, W-P+1, P]
  hits = np.argwhere((rows == patch[0, :, 0]).all(-1))  # where the patch's first row fits
  return any(np.array_equal(image[r:r + p, c:c + p], patch) for r, c in hits)


class PhotosBuilderTest(tf.test.TestCase):

  def test_splits_hold_5_train_1_validation_and_3_test_photos(self):
    builder = photos.Photos(data_dir=_DATA_DIR)
    counts = {split: builder.info.splits[split].num_examples for split in photos.SPLITS}
    self.assertEqual(counts, {"train": 5, "validation": 1, "test": 3})
    self.assertEqual(set(split_photos("test")), {"camera", "coffee", "rocket"})
    self.assertEqual(set(split_photos("validation")), {"chelsea"})
    for image in split_photos("train").values():
      self.assertEqual(image.dtype, np.uint8)
      self.assertEqual(image.shape[2], 1)

  def test_no_pixel_of_a_held_out_photo_is_in_train(self):
    names = {split: set(split_photos(split)) for split in photos.SPLITS}
    self.assertEmpty(names["train"] & names["test"])
    self.assertEmpty(names["train"] & names["validation"])
    self.assertEmpty(names["validation"] & names["test"])
    self.assertLen(set.union(*names.values()), len(photos.IMAGES))
    # Both views of the stereo scene sit in one split.
    self.assertEqual({"motorcycle_left", "motorcycle_right"} & names["train"],
                     {"motorcycle_left", "motorcycle_right"})
    # Nor is a held-out photo's central 64x64 block anywhere in a train photo.
    train = list(split_photos("train").values())
    for split in ("validation", "test"):
      for name, image in split_photos(split).items():
        top, left = image.shape[0] // 2 - 32, image.shape[1] // 2 - 32
        block = image[top:top + 64, left:left + 64]
        self.assertFalse(any(contains(other, block) for other in train), name)

  def test_stored_photos_are_the_skimage_photos_in_grey(self):
    for split in photos.SPLITS:
      for name, image in split_photos(split).items():
        self.assertAllEqual(image, photos.photo(name), msg=name)
    size = {entry[0]: entry[3] for entry in photos.IMAGES}
    self.assertEqual(split_photos("test")["coffee"].shape, size["coffee"] + (1,))
    expected = np.round(skimage.color.rgb2gray(skimage.data.coffee()) * 255).astype(np.uint8)
    self.assertAllEqual(split_photos("test")["coffee"][..., 0], expected)  # colour -> 709 luma
    self.assertAllEqual(split_photos("test")["camera"][..., 0], skimage.data.camera())  # grey as is
    right = skimage.color.rgb2gray(skimage.data.stereo_motorcycle()[1])
    self.assertAllEqual(split_photos("train")["motorcycle_right"][..., 0],
                        np.round(right * 255).astype(np.uint8))

  def test_building_twice_writes_identical_files(self):
    other = photos.Photos(data_dir=os.path.join(self.get_temp_dir(), "again"))
    other.download_and_prepare()
    contents = []
    for directory in (photos.Photos(data_dir=_DATA_DIR).data_dir, other.data_dir):
      files = sorted(tf.io.gfile.glob(os.path.join(directory, "*.tfrecord*")))
      contents.append([open(f, "rb").read() for f in files])
    self.assertLen(contents[0], 3)  # train, validation and test
    self.assertEqual(contents[0], contents[1])

  def test_an_unexpected_image_is_one_line(self):
    with self.assertRaisesRegex(ValueError, r"^unknown photo 'cat'; valid: astronaut, ") as caught:
      photos.photo("cat")
    self.assertNotIn("\n", str(caught.exception))


class PhotosPipelineTest(tf.test.TestCase):

  def test_image_shape_varies_without_building(self):
    missing = os.path.join(self.get_temp_dir(), "never_created")
    self.assertEqual(data.image_shape("photos", missing), (None, None, 1))
    self.assertEqual(data.num_classes("photos", missing), 0)
    self.assertFalse(os.path.exists(missing))
    self.assertIn("photos", data.DATASETS)
    data.check_name("photos")

  def test_train_patches_are_blocks_of_train_photos(self):
    train = list(split_photos("train").values())
    batches = data.train_batches("photos", patch_size=16, global_batch_size=6, seed=1,
                                 data_dir=_DATA_DIR, flips=False)
    for batch in batches.take(2):
      self.assertEqual(batch.shape, (6, 16, 16, 1))
      self.assertEqual(batch.dtype, tf.uint8)
      for patch in batch.numpy():
        self.assertTrue(any(contains(image, patch) for image in train))

  def test_photos_are_flipped_left_right_and_up_down(self):
    self.assertEqual(data._FLIPS["photos"], (True, True))  # pylint: disable=protected-access
    kwargs = dict(patch_size=8, global_batch_size=64, seed=0, data_dir=_DATA_DIR)
    flipped = next(iter(data.train_batches("photos", **kwargs))).numpy()
    plain = next(iter(data.train_batches("photos", flips=False, **kwargs))).numpy()
    kinds = []  # flips draw their own keys: the crops are those of the unflipped batch
    for a, b in zip(flipped, plain):
      options = [b, b[:, ::-1], b[::-1], b[::-1, ::-1]]  # none, left/right, up/down, both
      kinds.append(next(k for k, o in enumerate(options) if np.array_equal(a, o)))
    self.assertEqual(set(kinds), {0, 1, 2, 3})

  def test_whole_photos_are_refused_in_one_line_as_their_sizes_vary(self):
    with self.assertRaisesRegex(data.DataError, r"vary in size down to 303 px") as caught:
      data.train_batches("photos", patch_size=0, global_batch_size=2, seed=0, data_dir=_DATA_DIR)
    self.assertNotIn("\n", str(caught.exception))

  def test_test_photos_give_178_patches_of_64x64(self):
    patches = list(data.eval_patches("photos", patch_size=64, data_dir=_DATA_DIR)
                   .as_numpy_iterator())
    self.assertLen(patches, 64 + 54 + 60)  # camera 8x8, coffee 6x9, rocket 6x10
    self.assertEqual(patches[0].shape, (64, 64, 1))
    validation = data.eval_patches("photos", patch_size=64, split="validation", data_dir=_DATA_DIR)
    self.assertLen(list(validation.as_numpy_iterator()), 4 * 7)  # chelsea, 300x451

  def test_asking_labels_of_photos_is_one_clear_line(self):
    with self.assertRaisesRegex(data.DataError, r"^dataset 'photos' has no class labels; "
                                                r"labelled datasets: digits, mnist5k, mnist"):
      data.train_batches("photos", patch_size=8, global_batch_size=2, seed=0, data_dir=_DATA_DIR,
                         labels=True)


class PhotosTrainingTest(tf.test.TestCase):

  def test_mcgsm_trains_on_photo_patches_and_scores_64x64_test_patches(self):
    config = mcgsm_config.get_config("tiny")
    config.train.update(steps=2, batch_size=4, init_batches=1)
    config.data.update(patch_size=8)
    config.eval.update(max_patches=4, batch_size=4)
    config.sample.update(num=2)
    metrics = loop.train("mcgsm", "photos", config, os.path.join(self.get_temp_dir(), "run"),
                         tf.distribute.get_strategy(), data_dir=_DATA_DIR, export=False)
    self.assertEqual(metrics["test_patches"], 4)
    self.assertEqual(metrics["test_patch_size"], 64)
    self.assertTrue(np.isfinite(metrics["bit_per_px_rate"]))


if __name__ == "__main__":
  tf.test.main()
