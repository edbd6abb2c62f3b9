r"""Trains a model of the zoo on a dataset: one command, resumable.

  python -m training.run --model=mcgsm --data=deadleaves [--workdir=runs/mcgsm-deadleaves]
      [--strategy=auto|multi_worker|default] [--config=configs/mcgsm.py] [--config.train.steps=500]

Bad input (unknown model, data or config key, unusable workdir, values out of range,
patches larger than the images, stray arguments, multi_worker without TF_CONFIG) ends
with one line on stderr naming what was wrong and what is allowed, exit code 2, and
nothing written.
Faults during training end with one line and keep every checkpoint already written: a
non-finite loss or a failed write exits 1; SIGTERM (preemption) or Ctrl-C (SIGINT) saves
a checkpoint after the current step and exits 143 or 130 (a second Ctrl-C stops at once);
rerunning the same command resumes (`--deterministic`: exactly).
"""
import json
import os
import sys

from absl import flags
from ml_collections import config_flags

from export import cli
from export.cli import fail
import zoo

STRATEGIES = ("auto", "multi_worker", "default")
USAGE = "python -m training.run --model=NAME --data=NAME [--workdir=DIR] [--config.x.y=v]"

flags.DEFINE_string("model", None, f"model: {', '.join(zoo.NAMES)}")
flags.DEFINE_string("data", None, "dataset name (see training/data.py)")
flags.DEFINE_string("workdir", None, "run directory (default runs/<model>-<data>)")
flags.DEFINE_enum("strategy", "auto", STRATEGIES, "tf.distribute strategy")
flags.DEFINE_string("data_dir", None, "TFDS data dir (default: TFDS's own)")
flags.DEFINE_bool("export", True, "export a SavedModel at the end")
flags.DEFINE_bool("deterministic", False,
                  "TensorFlow op determinism: a run killed and rerun ends with the weights of "
                  "an uninterrupted one (some ops are slower)")


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


def define_flags(argv):
  """Defines the flags; the config file's default follows --model and --data."""
  model = _flag_value(argv, "model")
  data = _flag_value(argv, "data") or ""
  if model is None:
    fail(f"--model is required; valid: {', '.join(zoo.NAMES)}")
  if model not in zoo.NAMES:
    fail(f"unknown model {model!r}; valid: {', '.join(zoo.NAMES)}")
  with cli.quiet_stderr():  # the data module imports TensorFlow
    from training import data as data_lib  # pylint: disable=g-import-not-at-top
  try:
    data_lib.check_name(data)
  except data_lib.DataError as e:
    fail(str(e))
  try:  # the overrides are applied here, while the default config is parsed
    config_flags.DEFINE_config_file("config", f"{_config_path(model)}:{data}",
                                    "config file; --config.x.y=v overrides a field")
  except (AttributeError, KeyError) as e:
    given = [a.split("=", 1)[0][2:] for a in argv if a.startswith("--config.")]
    key = cli.first_line(e).strip("\"'")
    fail(f"unknown config key {key!r} in {', '.join(given)}; "
         f"valid: {', '.join(_config_keys(model, data))}")
  except (ValueError, TypeError) as e:
    fail(f"bad config value: {cli.first_line(e)}")


def _config_keys(model, data):
  """Returns the overridable keys of configs/<model>.py, as `config.section.field`."""
  import importlib  # pylint: disable=g-import-not-at-top
  config = importlib.import_module(f"configs.{model}").get_config(data)
  return [f"config.{section}.{field}" for section, fields in config.items()
          for field in fields]


def check_tf_config(strategy):
  """Fails unless --strategy=multi_worker comes with a TF_CONFIG naming a cluster and this
  task (MultiWorkerMirroredStrategy would otherwise train alone, or fail deep inside TF)."""
  if strategy != "multi_worker":
    return
  text = os.environ.get("TF_CONFIG")
  if not text:
    fail("--strategy=multi_worker needs TF_CONFIG (JSON with 'cluster' and 'task'); set it on "
         "every worker, or use --strategy=auto on one machine")
  try:
    tf_config = json.loads(text)
  except ValueError as e:
    fail(f"TF_CONFIG is not valid JSON ({e}); give {{\"cluster\": {{...}}, \"task\": {{\"type\": "
         "\"worker\", \"index\": 0}}")
  if not isinstance(tf_config, dict) or not {"cluster", "task"} <= set(tf_config):
    fail("TF_CONFIG must have 'cluster' and 'task' (e.g. {\"cluster\": {\"worker\": [...]}, "
         "\"task\": {\"type\": \"worker\", \"index\": 0}})")


def help_text(argv):
  """Returns --help's text: the usage, the models and data sets, and with --model the flags
  and that model's config keys."""
  model = _flag_value(argv, "model")
  with cli.quiet_stderr():  # the data module imports TensorFlow
    from training import data as data_lib  # pylint: disable=g-import-not-at-top
  lines = [f"usage: {USAGE}", "", f"models: {', '.join(zoo.NAMES)}",
           f"data: {', '.join(data_lib.DATASETS)}, or tfds:<name>"]
  if model not in zoo.NAMES:
    return "\n".join(lines + ["", flags.FLAGS.main_module_help(), "",
                               "python -m training.run --model=NAME --help adds that model's "
                               "config keys"])
  keys = _config_keys(model, _flag_value(argv, "data") or "")
  return "\n".join(lines + ["", flags.FLAGS.main_module_help(), "  --config: config file "
                             f"(default configs/{model}.py); --config.x.y=v overrides a field", "",
                             f"config keys of {model}:", *("  " + k for k in keys)])


def main(argv):
  if len(argv) > 1:
    fail(f"unexpected arguments {' '.join(argv[1:])}; usage: {USAGE}")
  f = flags.FLAGS
  check_tf_config(f.strategy)
  workdir = f.workdir or os.path.join("runs", f"{f.model}-{f.data.replace(':', '_')}")
  cli.check_writable_dir(workdir, "workdir")
  from training import data as data_lib  # pylint: disable=g-import-not-at-top
  from training import loop, rundir, steps  # pylint: disable=g-import-not-at-top  (TF: keep --help fast)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  # Device start-up notices (cuInit) would bury a one-line config error. The strategy is
  # made first: MultiWorkerMirroredStrategy must configure collectives before any device
  # is initialised.
  if f.deterministic:
    tf.config.experimental.enable_op_determinism()
  with cli.quiet_stderr():
    strategy = loop.make_strategy(f.strategy)
    tf.config.list_logical_devices()
  try:
    metrics = loop.train(f.model, f.data, f.config, workdir, strategy,
                         data_dir=f.data_dir, export=f.export)
  except (steps.ConfigError, data_lib.DataError) as e:
    fail(str(e))
  except rundir.TrainingStopped as e:
    print(f"error: {e}" if e.exit_code not in (130, 143) else str(e), file=sys.stderr)
    return e.exit_code
  except KeyboardInterrupt:  # Ctrl-C outside the training steps, or twice
    print(f"interrupted; rerun the same command to resume from the last checkpoint in {workdir}",
          file=sys.stderr)
    return 130
  module = zoo.get(f.model)
  print(f"{f.model} on {f.data}: {module.METRIC} = {metrics[module.METRIC]:.4f} "
        f"after {metrics['steps']} steps; weights sha256 {metrics['weights_sha256'][:16]}; "
        f"workdir {workdir}"
        + (f"; export {metrics['export']}" if "export" in metrics else ""))


if __name__ == "__main__":
  # config_flags reports a bad override as AttributeError/KeyError/ValueError/TypeError.
  cli.run(main, cli.flags_parser(
      USAGE, define_flags, (flags.Error, AttributeError, KeyError, ValueError, TypeError),
      help_text=help_text))
