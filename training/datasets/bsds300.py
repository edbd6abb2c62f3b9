"""BSDS300: a TFDS builder for the Berkeley Segmentation Dataset's 300 images, in grey.

The RIDE paper (section 3.2) follows the protocol of Uria et al. (RNADE, 2013): the RGB
images are turned to grey, the 200 training images are split into 180 for training and 20
for validation, and the 100 test images are kept for testing. This builder stores exactly
that, as uint8 images of their native size (481x321 or 321x481):

* Grey = ITU-R 601-2 luma, as PIL's `convert("L")` computes it in integer arithmetic:
  L = (19595 R + 38470 G + 7471 B + 2^15) >> 16, i.e. 0.299 R + 0.587 G + 0.114 B rounded
  to the nearest integer (the coefficients of MATLAB's rgb2gray; note that
  skimage.color.rgb2gray uses the ITU-R 709 ones, 0.2125 / 0.7154 / 0.0721, instead).
  JPEGs are decoded by PIL.
* Splits, with images in ascending order of their numeric BSDS id: `train` = all of
  images/train but the last ceil(N / 10), `validation` = those last ceil(N / 10) (20 of the
  official 200; the exact 20 of Uria et al. are not published), `test` = images/test (100).
  The ceil keeps a validation image in tiny archives (the tests use 3 train images).
* Features: `image` uint8 [H, W, 1] and `id` (the BSDS image id, e.g. "100075").

Dequantisation (uniform noise, then /256) and patch extraction are the model's and the
input pipeline's business, not the builder's: the stored pixels are the integers.

The builder reads the official archive BSDS300-images.tgz, from
`<data_dir>/downloads/manual/` if it is there (or the extracted `BSDS300/` folder), else
from the Berkeley web site. Build it with

    python -m training.datasets.bsds300 --data_dir=/tmp/tfds
"""

import math

import numpy as np
import PIL.Image
import tensorflow_datasets as tfds

URL = "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/bsds/BSDS300-images.tgz"
ARCHIVE = "BSDS300-images.tgz"
# What in the manual dir spares the download: the extracted folder or the archive.
MANUAL_PATHS = (("BSDS300", "images"), (ARCHIVE,))
VALIDATION_FRACTION = 10  # the last ceil(N / 10) training images validate


def grey(path):
  """Returns the image file at `path` (an epath.Path) in ITU-R 601 grey, uint8 [H, W, 1]."""
  with path.open("rb") as f:
    image = PIL.Image.open(f).convert("RGB").convert("L")  # RGB first: any mode in, 601 luma out
    return np.asarray(image)[:, :, None]


def _sorted_images(folder):
  """Returns the *.jpg files in `folder` in ascending order of their numeric id."""
  def order(path):
    return (0, int(path.stem), "") if path.stem.isdigit() else (1, 0, path.stem)
  return sorted(folder.glob("*.jpg"), key=order)


class Bsds300(tfds.core.GeneratorBasedBuilder):
  """BSDS300 in grey at native size: 180 train / 20 validation / 100 test images."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      f"Download {ARCHIVE} from {URL} and put it (or the BSDS300/ folder it holds) in "
      "<data_dir>/downloads/manual/."
  )
  # As in deadleaves: `tfds build` imports this file as a top-level module.
  pkg_dir_path = tfds.core.Path(__file__).parent

  def _info(self):
    return self.dataset_info_from_configs(
        description=(
            "The 300 images of the Berkeley Segmentation Dataset in ITU-R 601 grey "
            "(PIL convert('L')), uint8 at native size; the 200 training images in id order "
            "split into 180 train and 20 validation, 100 test (Uria et al. 2013)."
        ),
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 1)),
            "id": tfds.features.Text(doc="BSDS image id, the file name without .jpg"),
        }),
        supervised_keys=None,
        homepage="https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/bsds/",
        citation="""@inproceedings{martin2001database,
  title={A Database of Human Segmented Natural Images and its Application to Evaluating
         Segmentation Algorithms and Measuring Ecological Statistics},
  author={Martin, David and Fowlkes, Charless and Tal, Doron and Malik, Jitendra},
  booktitle={Proc. 8th Int'l Conf. Computer Vision}, volume={2}, pages={416--423}, year={2001}}""",
    )

  def _split_generators(self, dl_manager):
    images = self._images_dir(dl_manager)
    train = _sorted_images(images / "train")
    test = _sorted_images(images / "test")
    if not train or not test:
      raise FileNotFoundError(f"no train or test *.jpg under {images}; "
                              + self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    held_out = math.ceil(len(train) / VALIDATION_FRACTION)
    return {
        "train": self._generate_examples(train[:-held_out]),
        "validation": self._generate_examples(train[-held_out:]),
        "test": self._generate_examples(test),
    }

  def _images_dir(self, dl_manager):
    """Returns BSDS300/images from the manual dir if it holds the data, else downloads it."""
    try:
      manual = dl_manager.manual_dir
    except AssertionError:  # no manual dir, or an empty one
      manual = None
    if manual is not None and (manual / "BSDS300" / "images").exists():
      return manual / "BSDS300" / "images"
    if manual is not None and (manual / ARCHIVE).exists():
      return dl_manager.extract(manual / ARCHIVE) / "BSDS300" / "images"
    return dl_manager.download_and_extract(URL) / "BSDS300" / "images"

  def _generate_examples(self, paths):
    for path in paths:
      yield path.stem, {"image": grey(path), "id": path.stem}


if __name__ == "__main__":
  from training.datasets import command  # pylint: disable=g-import-not-at-top
  command.main(lambda data_dir: [Bsds300(data_dir=data_dir)])
