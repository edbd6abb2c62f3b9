r"""Trains a model of the zoo on a dataset: one command, resumable.

  python -m training.run --model=mcgsm --data=deadleaves [--workdir=runs/mcgsm-deadleaves]
      [--strategy=auto|multi_worker|default] [--config=configs/mcgsm.py] [--config.train.steps=500]

Bad input (unknown model, data or config key, unusable workdir) ends with one line on
stderr naming what was wrong and what is allowed, exit code 2, and nothing written.
"""
import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

import zoo

USAGE_ERROR = 2
STRATEGIES = ("auto", "multi_worker", "default")


def fail(message):
  """Prints one line to stderr and exits with the usage-error code."""
  print(f"error: {message}", file=sys.stderr)
  sys.exit(USAGE_ERROR)


def _flag_value(argv, name):
  """Returns the value of --name=value or --name value in argv, else None."""
  for i, arg in enumerate(argv):
    if arg.startswith(f"--{name}="):
      return arg.split("=", 1)[1]
    if arg == f"--{name}" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _config_path(model):
  """Returns the path of configs/<model>.py shipped with the package."""
  import configs  # pylint: disable=g-import-not-at-top
  return os.path.join(os.path.dirname(configs.__file__), f"{model}.py")


def check_workdir(workdir):
  """Fails unless `workdir` is, or can be created as, a writable directory. Creates nothing."""
  path = os.path.abspath(workdir)
  if os.path.exists(path) and not os.path.isdir(path):
    fail(f"--workdir={workdir} is a file; give a directory (existing or new)")
  parent = path
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
    fail(f"--workdir={workdir} is not writable ({parent} is not a writable directory); "
         "give a directory you can write to")


def define_flags(argv):
  """Defines the flags; the config file's default follows --model and --data."""
  model = _flag_value(argv, "model")
  data = _flag_value(argv, "data") or ""
  if model is None:
    fail(f"--model is required; valid: {', '.join(zoo.NAMES)}")
  if model not in zoo.NAMES:
    fail(f"unknown model {model!r}; valid: {', '.join(zoo.NAMES)}")
  from training import data as data_lib  # pylint: disable=g-import-not-at-top
  try:
    data_lib.check_name(data)
  except data_lib.DataError as e:
    fail(str(e))
  flags.DEFINE_string("model", None, f"model: {', '.join(zoo.NAMES)}")
  flags.DEFINE_string("data", None, "dataset name (see training/data.py)")
  flags.DEFINE_string("workdir", None, "run directory (default runs/<model>-<data>)")
  flags.DEFINE_enum("strategy", "auto", STRATEGIES, "tf.distribute strategy")
  flags.DEFINE_string("data_dir", None, "TFDS data dir (default: TFDS's own)")
  flags.DEFINE_bool("export", True, "export a SavedModel at the end")
  config_flags.DEFINE_config_file("config", f"{_config_path(model)}:{data}",
                                  "config file; --config.x.y=v overrides a field")


def parse(argv):
  """absl flags parser that turns any flag error into one line and exit code 2."""
  define_flags(argv)
  try:
    return flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, ValueError, TypeError) as e:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    fail(f"bad flag: {first}")


def main(argv):
  del argv
  f = flags.FLAGS
  workdir = f.workdir or os.path.join("runs", f"{f.model}-{f.data.replace(':', '_')}")
  check_workdir(workdir)
  from training import loop  # pylint: disable=g-import-not-at-top  (imports TF: keep --help fast)
  metrics = loop.train(f.model, f.data, f.config, workdir, loop.make_strategy(f.strategy),
                       data_dir=f.data_dir, export=f.export)
  module = zoo.get(f.model)
  print(f"{f.model} on {f.data}: {module.METRIC} = {metrics[module.METRIC]:.4f} "
        f"after {metrics['steps']} steps; workdir {workdir}"
        + (f"; export {metrics['export']}" if "export" in metrics else ""))


if __name__ == "__main__":
  app.run(main, flags_parser=parse)
