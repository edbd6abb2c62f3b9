"""Digits: a TFDS builder for the 1,797 8x8 handwritten digits bundled with scikit-learn.

`sklearn.datasets.load_digits()` (the UCI optical-recognition digits: 8x8 blocks of
counts 0..16) ships inside the scikit-learn wheel, so nothing is downloaded. The zoo's
images are uint8 on the 0..255 scale, so each count v becomes round(v * 255 / 16) (17
distinct grey levels).

* Features: `image` uint8 [8, 8, 1], `label` ClassLabel(10).
* Splits: a fixed permutation (numpy default_rng(0)) of the 1,797 digits; the first
  300 are `test`, the other 1,497 `train`.

Build it with

    python -m training.datasets.digits --data_dir=/tmp/tfds

(about a second) or let `training.data.load_images("digits", ...)` build it on first use.
"""

import numpy as np
import tensorflow_datasets as tfds

SIZE = 8
NUM_DIGITS = 1797  # as bundled with scikit-learn
TEST_SIZE = 300
SEED = 0


def digits():
  """Returns (images uint8 [1797, 8, 8, 1] on 0..255, labels int64 [1797]) in sklearn's order."""
  import sklearn.datasets  # pylint: disable=g-import-not-at-top  (only building needs it)
  bunch = sklearn.datasets.load_digits()
  if bunch.images.shape != (NUM_DIGITS, SIZE, SIZE) or bunch.images.max() > 16:
    raise ValueError(f"sklearn.datasets.load_digits() gave {bunch.images.shape} images up to "
                     f"{bunch.images.max()}; this builder expects ({NUM_DIGITS}, {SIZE}, {SIZE}) "
                     "counts 0..16")
  images = np.round(bunch.images * 255.0 / 16.0).astype(np.uint8)[..., None]  # [N, 8, 8, 1]
  return images, bunch.target.astype(np.int64)


def split_indices():
  """Returns {"train": int [1497], "test": int [300]}: indices into `digits()`."""
  order = np.random.default_rng(SEED).permutation(NUM_DIGITS)
  return {"train": np.sort(order[TEST_SIZE:]), "test": np.sort(order[:TEST_SIZE])}


class Digits(tfds.core.GeneratorBasedBuilder):
  """scikit-learn's 8x8 digits as uint8 0..255 images with labels, 1,497 train / 300 test."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  # As in deadleaves: `tfds build` imports this file as a top-level module.
  pkg_dir_path = tfds.core.Path(__file__).parent

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(SIZE, SIZE, 1)),
            "label": tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # bundled with scikit-learn
    return {split: self._generate_examples(indices) for split, indices in split_indices().items()}

  def _generate_examples(self, indices):
    images, labels = digits()
    for k in indices:
      yield int(k), {"image": images[k], "label": int(labels[k])}


if __name__ == "__main__":
  from training.datasets import command  # pylint: disable=g-import-not-at-top
  command.main(lambda data_dir: [Digits(data_dir=data_dir)])
