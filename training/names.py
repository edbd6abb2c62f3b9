"""Data set names, checked without TensorFlow: the command line refuses a wrong --data
in a fraction of a second (`training.data` imports TensorFlow and TFDS, which takes
seconds). `training.data` re-exports everything here."""

DATASETS = ("deadleaves", "textures", "bsds300", "photos", "digits", "mnist5k", "lfw_faces",
            "mnist", "fashion_mnist", "cifar10", "celeb_a")
TEXTURES = ("brick", "grass", "gravel")  # names of the functions in skimage.data
_TFDS_PREFIX = "tfds:"
_TEXTURES_PREFIX = "textures/"
_VALID_TEXTURES = ", ".join(TEXTURES)
_VALID = ", ".join(DATASETS) + ", or tfds:<name>"


class DataError(ValueError):
  """A dataset name, split or size the user asked for does not exist; message is one line."""


def resolve(name, data_config=None):
  """Returns the dataset name every other function here takes for `--data=name`.

  "textures" becomes "textures/<data_config.texture>" (default brick); any other name is
  returned unchanged. Call it once per run and use the result everywhere.
  """
  if name != "textures":
    return name
  texture = data_config.get("texture", None) if data_config is not None else None
  name = _TEXTURES_PREFIX + (texture or TEXTURES[0])
  check_name(name)
  return name


def check_name(name):
  """Returns None if `name` is a dataset this module can load, else raises DataError.

  Besides DATASETS and tfds:<name>, takes the resolved texture names textures/<texture>.
  Reads only TFDS's in-memory registry, never the disk.
  """
  if name in DATASETS:
    return
  if isinstance(name, str) and name.startswith(_TEXTURES_PREFIX):
    texture = name[len(_TEXTURES_PREFIX):]
    if texture in TEXTURES:
      return
    raise DataError(f"unknown texture {texture!r} in {name!r}; valid: {_VALID_TEXTURES} "
                    "(e.g. --config.data.texture=grass)")
  if isinstance(name, str) and name.startswith(_TFDS_PREFIX):
    spec = name[len(_TFDS_PREFIX):]
    base = spec.split("/")[0].split(":")[0]
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (only tfds: names need it)
    try:
      tfds.builder_cls(base)
      return
    except ValueError:  # DatasetNotFoundError, or a malformed name
      raise DataError(f"unknown TFDS dataset {spec!r} in {name!r}; valid: {_VALID} "
                      "(<name> as listed by tfds.list_builders(), e.g. tfds:svhn_cropped)") from None
  raise DataError(f"unknown dataset {name!r}; valid: {_VALID}")
