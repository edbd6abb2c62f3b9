"""Textures: a TFDS builder for three grey 512x512 textures, each cut into 16 regions.

The texture experiments of the RIDE paper (section 3.4) split each 640x640 Brodatz texture
into sixteen 160x160 regions, trained on 15 and kept one, chosen at random, for testing.
The Brodatz album is not freely distributable, so this set uses the three photographic
textures bundled with scikit-image (`skimage.data.brick`, `grass`, `gravel`: grey uint8
512x512, CC0 photographs) and the same 4x4 grid, giving 128x128 regions.

* One config per texture: `textures/brick`, `textures/grass`, `textures/gravel`.
* Region k (0..15) is row k // 4, column k % 4 of the grid: pixels
  [128 * (k // 4), 128 * (k // 4 + 1)) x [128 * (k % 4), 128 * (k % 4 + 1)).
* Split `train` holds regions 0..14, split `test` region 15 (the bottom-right one). RIDE drew
  the held-out region at random; a fixed one keeps the set reproducible and the same for
  every texture.
* Features: `image` uint8 [128, 128, 1] and `region` (k), so a user can put the regions
  back together (or find where the test region sits, e.g. for inpainting).

Nothing is downloaded: the images ship inside the scikit-image wheel. Build it with

    python -m training.datasets.textures --data_dir=/tmp/tfds

(all three configs, about a second) or let `training.data.load_images("textures/brick", ...)`
build one on first use.
"""

import numpy as np
import tensorflow_datasets as tfds

from training.names import TEXTURES  # names of the functions in skimage.data
SIZE = 512  # every bundled texture is SIZE x SIZE
GRID = 4  # regions per side, as in RIDE
REGION = SIZE // GRID  # 128
TEST_REGIONS = (GRID * GRID - 1,)  # the bottom-right region
TRAIN_REGIONS = tuple(k for k in range(GRID * GRID) if k not in TEST_REGIONS)


def texture(name):
  """Returns the scikit-image texture `name` (one of TEXTURES), uint8 [512, 512]."""
  if name not in TEXTURES:
    raise ValueError(f"unknown texture {name!r}; valid: {', '.join(TEXTURES)}")
  import skimage.data  # pylint: disable=g-import-not-at-top  (only building needs it)
  pixels = np.asarray(getattr(skimage.data, name)())
  if pixels.shape != (SIZE, SIZE) or pixels.dtype != np.uint8:
    raise ValueError(f"skimage.data.{name}() is {pixels.dtype} {pixels.shape}; "
                     f"this builder expects uint8 ({SIZE}, {SIZE})")
  return pixels


def region(pixels, k):
  """Returns region k (row-major in the 4x4 grid) of [512, 512] `pixels`, [128, 128, 1]."""
  row, col = divmod(k, GRID)
  return pixels[row * REGION:(row + 1) * REGION, col * REGION:(col + 1) * REGION, None]


class Textures(tfds.core.GeneratorBasedBuilder):
  """Grey 512x512 scikit-image textures in 128x128 regions, 15 train / 1 test (no download)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name=name, description=f"skimage.data.{name}()")
      for name in TEXTURES
  ]
  # As in deadleaves: `tfds build` imports this file as a top-level module.
  pkg_dir_path = tfds.core.Path(__file__).parent

  def _info(self):
    return self.dataset_info_from_configs(
        description=(
            f"The {self.builder_config.name} texture of scikit-image ({SIZE}x{SIZE} grey) "
            f"cut into a {GRID}x{GRID} grid of {REGION}x{REGION} regions, numbered "
            f"row-major; train: regions 0..{GRID * GRID - 2}, test: region "
            f"{TEST_REGIONS[0]} (bottom-right). Protocol of Theis & Bethge (2015), sec. 3.4."
        ),
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(REGION, REGION, 1)),
            "region": tfds.features.Scalar(dtype=np.int32,
                                           doc="row-major index in the 4x4 grid"),
        }),
        supervised_keys=None,
        homepage="https://scikit-image.org/docs/stable/api/skimage.data.html",
        citation="""@inproceedings{theis2015ride,
  title={Generative Image Modeling Using Spatial LSTMs},
  author={Theis, Lucas and Bethge, Matthias},
  booktitle={Advances in Neural Information Processing Systems 28}, year={2015}}""",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    pixels = texture(self.builder_config.name)
    return {
        "train": self._generate_examples(pixels, TRAIN_REGIONS),
        "test": self._generate_examples(pixels, TEST_REGIONS),
    }

  def _generate_examples(self, pixels, regions):
    for k in regions:
      yield k, {"image": region(pixels, k), "region": k}


if __name__ == "__main__":
  from absl import flags  # pylint: disable=g-import-not-at-top
  from training.datasets import command  # pylint: disable=g-import-not-at-top
  _TEXTURES = flags.DEFINE_list("textures", list(TEXTURES), "Configs to build.")
  command.main(lambda data_dir: [Textures(config=name, data_dir=data_dir)
                                 for name in _TEXTURES.value])
