"""Photos: a TFDS builder for nine grey natural photographs bundled with scikit-image.

RIDE's natural-image results (section 3.2) are on BSDS300, which needs a download; this set
puts the same kind of data in reach offline: the natural photographs that ship inside the
scikit-image wheel (`skimage.data`, loaded without network or pooch), in grey at native
size, split by image so no pixel of a held-out image is trained on.

| name | source | H x W | split | 64x64 patches |
| --- | --- | --- | --- | --- |
| astronaut | `astronaut()`, colour: Eileen Collins, NASA portrait | 512 x 512 | train | 64 |
| coins | `coins()`: Greek coins from Pompeii | 303 x 384 | train | 24 |
| moon | `moon()`: the lunar surface, low contrast | 512 x 512 | train | 64 |
| motorcycle_left | `stereo_motorcycle()[0]`, colour: Middlebury stereo, left view | 500 x 741 | train | 77 |
| motorcycle_right | `stereo_motorcycle()[1]`, colour: the same scene, right view | 500 x 741 | train | 77 |
| chelsea | `chelsea()`, colour: a cat's face | 300 x 451 | validation | 28 |
| camera | `camera()`: a man with a camera on a lawn | 512 x 512 | test | 64 |
| coffee | `coffee()`, colour: a cup of coffee on a table | 400 x 600 | test | 54 |
| rocket | `rocket()`, colour: a rocket on its launch pad at night | 427 x 640 | test | 60 |

So `train` holds 5 images (4 scenes: both stereo views stay in train, since they show one
scene), `validation` 1 and `test` 3, whose non-overlapping 64x64 patches (RIDE's test
protocol, `training.data.eval_patches(patch_size=64)`) number 178. The test images hold
about a third of all pixels, as BSDS300's 100 test images do of its 300.

Left out: `cat()` (the same image as `chelsea()`); `brick()`, `grass()`, `gravel()` (the
`textures` dataset's photographs); `clock()` (a deliberately motion-blurred, mostly flat
deblurring test image); `hubble_deep_field()` (an astronomical deep field, mostly black
sky); text pages (`page`, `text`), drawings and synthetic images (`horse`, `logo`,
`checkerboard`, `colorwheel`, `shepp_logan_phantom`, `binary_blobs`), microscopy and
medical images (`cell`, `immunohistochemistry`, `microaneurysms`, `retina`), the faces of
`lfw_subset` (the `lfw_faces` dataset), and every image that scikit-image fetches over the
network (`eagle`, `lily`, `kidney`, `brain`, `skin`, `cells3d`, ...).

* Grey: colour images go through `skimage.color.rgb2gray` (ITU-R 709 luma, floats in
  [0, 1]), each value v becoming round(v * 255); grey images are kept as their uint8
  pixels.
* Features: `image` uint8 [H, W, 1] (sizes vary, so image_shape is (None, None, 1) as for
  bsds300) and `name` (the first column above).

Build it with

    python -m training.datasets.photos --data_dir=/tmp/tfds

(about a second) or let `training.data.load_images("photos", ...)` build it on first use.
"""

import numpy as np
import tensorflow_datasets as tfds

# (name, skimage.data function, index into its tuple or None, (height, width), split)
IMAGES = (
    ("astronaut", "astronaut", None, (512, 512), "train"),
    ("coins", "coins", None, (303, 384), "train"),
    ("moon", "moon", None, (512, 512), "train"),
    ("motorcycle_left", "stereo_motorcycle", 0, (500, 741), "train"),
    ("motorcycle_right", "stereo_motorcycle", 1, (500, 741), "train"),
    ("chelsea", "chelsea", None, (300, 451), "validation"),
    ("camera", "camera", None, (512, 512), "test"),
    ("coffee", "coffee", None, (400, 600), "test"),
    ("rocket", "rocket", None, (427, 640), "test"),
)
SPLITS = ("train", "validation", "test")


def photo(name):
  """Returns the photograph `name` (a name in IMAGES) in grey, uint8 [H, W, 1] on 0..255."""
  entries = {entry[0]: entry for entry in IMAGES}
  if name not in entries:
    raise ValueError(f"unknown photo {name!r}; valid: {', '.join(entries)}")
  _, function, index, size, _ = entries[name]
  import skimage.color  # pylint: disable=g-import-not-at-top  (only building needs it)
  import skimage.data  # pylint: disable=g-import-not-at-top
  pixels = getattr(skimage.data, function)()
  pixels = np.asarray(pixels if index is None else pixels[index])
  if pixels.shape[:2] != size or pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
    raise ValueError(f"skimage.data.{function}() gave {pixels.dtype} {pixels.shape}; this "
                     f"builder expects uint8 {size}, grey or RGB")
  if pixels.ndim == 3:
    pixels = np.round(skimage.color.rgb2gray(pixels) * 255.0)  # [H, W] floats 0..255
  return np.clip(pixels, 0, 255).astype(np.uint8)[..., None]  # [H, W, 1]


def split_names():
  """Returns {"train": [5 names], "validation": [1], "test": [3]} in IMAGES order."""
  return {split: [entry[0] for entry in IMAGES if entry[4] == split] for split in SPLITS}


class Photos(tfds.core.GeneratorBasedBuilder):
  """scikit-image's natural photographs in grey, native size: 5 train / 1 validation / 3 test."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  # As in deadleaves: `tfds build` imports this file as a top-level module.
  pkg_dir_path = tfds.core.Path(__file__).parent

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 1)),
            "name": tfds.features.Text(doc="the photo's name in training.datasets.photos.IMAGES"),
        }),
        supervised_keys=None,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # bundled with scikit-image
    return {split: self._generate_examples(names) for split, names in split_names().items()}

  def _generate_examples(self, names):
    for name in names:
      yield name, {"image": photo(name), "name": name}


if __name__ == "__main__":
  from training.datasets import command  # pylint: disable=g-import-not-at-top
  command.main(lambda data_dir: [Photos(data_dir=data_dir)])
