"""The command each builder module ends with: `python -m training.datasets.<name> --data_dir=DIR`.

It builds without the `tfds` CLI, which in TFDS 4.9.10 imports apache_beam and mlcroissant
at start-up even to build a plain generator dataset. It imports no builder, so that a
builder run as `__main__` is not registered twice.
"""
from absl import app
from absl import flags


def main(make_builders):
  """Builds each of `make_builders(data_dir)` (a list of TFDS builders) and prints its splits."""
  data_dir = flags.DEFINE_string("data_dir", None, "TFDS data_dir; default: TFDS's own.")

  def run(argv):
    del argv
    for builder in make_builders(data_dir.value):
      builder.download_and_prepare()
      config = f"/{builder.builder_config.name}" if builder.builder_config else ""
      print(f"{builder.name}{config} {builder.version} in {builder.data_dir}: "
            + ", ".join(f"{k} {v.num_examples}" for k, v in builder.info.splits.items()))

  app.run(run)
