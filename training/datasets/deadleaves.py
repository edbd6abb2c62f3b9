"""Dead-leaves images: a TFDS builder for 1,000 grey 256x256 images, 900 train / 100 test.

The dead-leaves model (Matheron 1968; Lee, Mumford & Huang, "Occlusion models for natural
images: a statistical study of a scale-invariant dead leaves model", IJCV 2001) is the
test case of the RIDE paper, section 3.3: opaque disks with uniform centres, radius density
proportional to r^-3 on [R_MIN, R_MAX] = [2, 64] px, and an i.i.d. uniform grey level in
0..255 per disk, falling on top of each other until the image is covered.

How an image is rendered (`render`):

* Disks are painted front to back: each disk fills only the pixels that no earlier disk
  covers, so the first disk drawn is the one on top. This is the same picture as painting
  back to front with overwrites, but it can stop as soon as every pixel is set.
* Centres are uniform over the image grown by R_MAX on every side, so a disk can reach the
  border from outside; this is exactly the stationary (infinite-plane) model seen through
  a 256x256 window. Disks that miss the image cost nothing beyond their draw.
* Radii come from the inverse CDF of the r^-3 density (`sample_radii`). A pixel (y, x)
  (integer coordinates) is inside a disk when (y - cy)^2 + (x - cx)^2 <= r^2.
* Disks are drawn in chunks of CHUNK; a chunk is rasterised at once as horizontal spans
  (one per disk row), and disks whose bounding box holds no uncovered pixel (tested in
  O(1) with a summed-area table) are skipped, so the many small disks that arrive after
  most of the image is covered cost almost nothing.

Image i is rendered from `np.random.default_rng([SEED, i])`: the set is reproducible and
each image is independent of the order (or process) in which images are generated.
Train is images 0..899, test is 900..999. The papers' own 1,000 images (Theis et al. 2012)
are not public, so rates on this set are comparable with RIDE's Table 3 only in kind.

Rendering all 1,000 images takes about 8 s on one core of the 2-core dev machine (10 s
of CPU while other jobs shared it), and the whole build (render, PNG-encode, write,
statistics) 11-15 s. Build it with

    python -m training.datasets.deadleaves --data_dir=/tmp/tfds

or let `training.data.load_images("deadleaves", ...)` build it on first use. The TFDS CLI,
`tfds build training/datasets/deadleaves.py --data_dir=/tmp/tfds` (same as
`python -m tensorflow_datasets.scripts.cli.main build ...`), builds the same files, but in
TFDS 4.9.10 it starts only where apache-beam and mlcroissant are installed (it imports
them at start-up even for `build`); its build code itself was checked on this file.
"""

import io

import numpy as np
import PIL.Image
import tensorflow_datasets as tfds

SEED = 20151203  # fixes the whole data set; changing it would need a new VERSION
SIZE = 256
R_MIN = 2.0  # px; smaller disks add many draws but mostly single-pixel detail
R_MAX = 64.0  # px; a quarter of the image, so long-range structure exists but no disk fills it
NUM_TRAIN = 900
NUM_TEST = 100
CHUNK = 2048  # disks drawn per vectorised step; part of the definition of the stream


def sample_radii(rng, n, r_min=R_MIN, r_max=R_MAX):
  """Returns float64 [n] radii with density proportional to r^-3 on [r_min, r_max].

  CDF F(r) = (r_min^-2 - r^-2) / (r_min^-2 - r_max^-2), inverted at uniform u.
  """
  a, b = r_min**-2.0, r_max**-2.0
  u = rng.random(n)
  return (a - u * (a - b)) ** -0.5


def _spans(cy, cx, r, size):
  """Returns (disk, row, x0, x1) int arrays, one entry per image row a disk covers.

  x0..x1 (inclusive) are clipped to the image; rows with an empty span are dropped.
  """
  y_lo = np.maximum(np.ceil(cy - r), 0).astype(np.int64)
  y_hi = np.minimum(np.floor(cy + r), size - 1).astype(np.int64)
  rows = np.maximum(y_hi - y_lo + 1, 0)
  disk = np.repeat(np.arange(len(r)), rows)  # [S]
  # Row index within each disk's run: position minus the start of the run.
  starts = np.cumsum(rows) - rows
  y = y_lo[disk] + np.arange(len(disk)) - np.repeat(starts, rows)  # [S]
  half = np.sqrt(np.maximum(r[disk] ** 2 - (y - cy[disk]) ** 2, 0.0))
  x0 = np.maximum(np.ceil(cx[disk] - half), 0).astype(np.int64)
  x1 = np.minimum(np.floor(cx[disk] + half), size - 1).astype(np.int64)
  keep = x1 >= x0
  return disk[keep], y[keep], x0[keep], x1[keep]


def render_with_owner(rng, size=SIZE, r_min=R_MIN, r_max=R_MAX, chunk=CHUNK):
  """Returns (grey uint8 [size, size], owner int64 [size, size]) of one dead-leaves image.

  owner[y, x] is the draw index of the disk seen at that pixel (0 = first drawn = on top);
  it is never -1 (the "unset" value) because drawing goes on until every pixel is covered.
  Arguments as for `render`.
  """
  owner = np.full(size * size, -1, np.int64)  # [size * size]
  grey = np.zeros(size * size, np.uint8)  # [size * size]
  lo, hi = -r_max, size + r_max  # centres may lie outside so disks reach in from every side
  drawn = 0
  while (unset := owner < 0).any():
    r = sample_radii(rng, chunk, r_min, r_max)
    cy = rng.uniform(lo, hi, chunk)
    cx = rng.uniform(lo, hi, chunk)
    level = rng.integers(0, 256, chunk, dtype=np.uint8)

    # Skip disks whose bounding box holds no unset pixel: summed-area table of the unset
    # mask, padded with a zero row/column so box sums need no edge cases.
    sat = np.zeros((size + 1, size + 1), np.int32)  # [size + 1, size + 1]
    np.cumsum(unset.reshape(size, size), 0, dtype=np.int32, out=sat[1:, 1:])
    np.cumsum(sat[1:, 1:], 1, out=sat[1:, 1:])
    y0 = np.clip(np.ceil(cy - r), 0, size).astype(np.int64)
    y1 = np.clip(np.floor(cy + r) + 1, 0, size).astype(np.int64)
    x0 = np.clip(np.ceil(cx - r), 0, size).astype(np.int64)
    x1 = np.clip(np.floor(cx + r) + 1, 0, size).astype(np.int64)
    hits = (y1 > y0) & (x1 > x0)
    hits &= (sat[y1, x1] - sat[y0, x1] - sat[y1, x0] + sat[y0, x0]) > 0
    ids = np.flatnonzero(hits)  # in draw order, so a smaller id is nearer the front

    disk, y, sx0, sx1 = _spans(cy[ids], cx[ids], r[ids], size)
    # Expand spans to pixels: [P] flat pixel indices, with the disk that covers each.
    lengths = sx1 - sx0 + 1
    starts = np.cumsum(lengths) - lengths
    pixel_disk = np.repeat(disk, lengths)
    pixel = np.repeat(y * size + sx0 - starts, lengths) + np.arange(len(pixel_disk))
    free = unset[pixel]
    pixel, pixel_disk = pixel[free], pixel_disk[free]
    # Front-most disk per unset pixel: the smallest disk index over the chunk.
    first = np.full(size * size, len(ids), np.int64)
    np.minimum.at(first, pixel, pixel_disk)
    new = np.flatnonzero(first < len(ids))
    grey[new] = level[ids[first[new]]]
    owner[new] = drawn + ids[first[new]]
    drawn += chunk
  return grey.reshape(size, size), owner.reshape(size, size)  # [size, size] each


def render(rng, size=SIZE, r_min=R_MIN, r_max=R_MAX, chunk=CHUNK):
  """Returns one dead-leaves image, uint8 [size, size], every pixel covered by some disk.

  Args:
    rng: a `np.random.Generator`; the image is a pure function of its state.
    size: image height and width in pixels.
    r_min, r_max: radius range in pixels; the density is proportional to r^-3.
    chunk: disks drawn per vectorised step (changing it changes the image).
  """
  return render_with_owner(rng, size, r_min, r_max, chunk)[0]


def image(index, seed=SEED, size=SIZE):
  """Returns image `index` of the data set, uint8 [size, size, 1]."""
  return render(np.random.default_rng([seed, index]), size)[:, :, None]


class Deadleaves(tfds.core.GeneratorBasedBuilder):
  """Dead-leaves images, grey 256x256, generated from a fixed seed (no download)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  # TFDS infers this folder from the module's package, which fails when `tfds build`
  # imports this file as a top-level module; there are no metadata files in it anyway.
  pkg_dir_path = tfds.core.Path(__file__).parent

  def _info(self):
    return self.dataset_info_from_configs(
        description=(
            "Dead-leaves images (Lee, Mumford & Huang 2001): opaque disks with uniform "
            f"centres, radius density r^-3 on [{R_MIN:g}, {R_MAX:g}] px, uniform grey "
            "level per disk, occluding until the image is covered. "
            f"Image i is rendered from numpy default_rng([{SEED}, i])."
        ),
        features=tfds.features.FeaturesDict(
            {"image": tfds.features.Image(shape=(SIZE, SIZE, 1))}
        ),
        supervised_keys=None,
        homepage="https://doi.org/10.1023/A:1011109015675",
        citation="""@article{lee2001occlusion,
  title={Occlusion models for natural images: A statistical study of a scale-invariant dead leaves model},
  author={Lee, Ann B and Mumford, David and Huang, Jinggang},
  journal={International Journal of Computer Vision},
  volume={41}, pages={35--59}, year={2001}}""",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    return {
        "train": self._generate_examples(range(0, NUM_TRAIN)),
        "test": self._generate_examples(range(NUM_TRAIN, NUM_TRAIN + NUM_TEST)),
    }

  def _generate_examples(self, indices):
    for i in indices:
      yield i, {"image": _png(image(i))}


def _png(pixels):
  """Returns PNG bytes of uint8 [H, W, 1] `pixels`, at zlib's fastest level.

  TFDS's own encoder (tf.image.encode_png at the default level) takes about 5x longer,
  half the build time, for files only ~15% smaller.
  """
  buffer = io.BytesIO()
  PIL.Image.fromarray(pixels[:, :, 0]).save(buffer, format="png", compress_level=1)
  return buffer.getvalue()


if __name__ == "__main__":
  from training.datasets import command  # pylint: disable=g-import-not-at-top
  command.main(lambda data_dir: [Deadleaves(data_dir=data_dir)])
