"""LFW faces: a TFDS builder for the 100 small grey faces bundled with scikit-image.

`skimage.data.lfw_subset()` ships inside the scikit-image wheel, so nothing is downloaded:
200 grey 25x25 crops from Labeled Faces in the Wild, floats in [0, 1], the first 100 of
them faces and the other 100 non-faces (background patches, for detector demos). This set
keeps only the faces.

Each face is upsampled from 25x25 to 32x32, a power of two so that Laplacian pyramids
(32/16/8/4) and 2x2 poolings divide it evenly, with `skimage.transform.resize(order=1,
mode="reflect", anti_aliasing=False)`: bilinear interpolation, deterministic, and with no
pre-filter because upsampling cannot alias (a Gaussian pre-filter would only blur). Each
value v in [0, 1] then becomes round(v * 255) clipped to 0..255.

* Features: `image` uint8 [32, 32, 1]. No labels.
* Splits: a fixed permutation (numpy default_rng(0)) of the 100 faces; the first 10 are
  `test`, the other 90 `train`.

Build it with

    python -m training.datasets.lfw_faces --data_dir=/tmp/tfds

(about a second) or let `training.data.load_images("lfw_faces", ...)` build it on first use.
"""

import numpy as np
import tensorflow_datasets as tfds

SOURCE_SIZE = 25  # as bundled with scikit-image
SIZE = 32
NUM_FACES = 100  # lfw_subset() holds NUM_FACES faces, then NUM_FACES non-faces
TEST_SIZE = 10
SEED = 0


def faces():
  """Returns the faces of `skimage.data.lfw_subset()` as uint8 [100, 32, 32, 1] on 0..255."""
  import skimage.data  # pylint: disable=g-import-not-at-top  (only building needs it)
  import skimage.transform  # pylint: disable=g-import-not-at-top
  subset = np.asarray(skimage.data.lfw_subset(), np.float64)
  expected = (2 * NUM_FACES, SOURCE_SIZE, SOURCE_SIZE)
  if subset.shape != expected or subset.min() < 0 or subset.max() > 1:
    raise ValueError(f"skimage.data.lfw_subset() gave {subset.shape} images in "
                     f"[{subset.min()}, {subset.max()}]; this builder expects {expected} "
                     "values in [0, 1], the first 100 faces")
  resized = np.stack([
      skimage.transform.resize(face, (SIZE, SIZE), order=1, mode="reflect", anti_aliasing=False)
      for face in subset[:NUM_FACES]])  # [100, 32, 32]
  return np.clip(np.round(resized * 255.0), 0, 255).astype(np.uint8)[..., None]  # [100, 32, 32, 1]


def split_indices():
  """Returns {"train": int [90], "test": int [10]}: indices into `faces()`."""
  order = np.random.default_rng(SEED).permutation(NUM_FACES)
  return {"train": np.sort(order[TEST_SIZE:]), "test": np.sort(order[:TEST_SIZE])}


class LfwFaces(tfds.core.GeneratorBasedBuilder):
  """scikit-image's 100 LFW faces as uint8 32x32 grey images, 90 train / 10 test."""

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
        }),
        supervised_keys=None,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # bundled with scikit-image
    return {split: self._generate_examples(indices) for split, indices in split_indices().items()}

  def _generate_examples(self, indices):
    images = faces()
    for k in indices:
      yield int(k), {"image": images[k]}


if __name__ == "__main__":
  from training.datasets import command  # pylint: disable=g-import-not-at-top
  command.main(lambda data_dir: [LfwFaces(data_dir=data_dir)])
