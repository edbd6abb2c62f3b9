r"""Trains a model of the zoo on a dataset: one command, resumable.

  python -m training.run --model=mcgsm --data=deadleaves [--workdir=runs/mcgsm-deadleaves]
      [--strategy=auto|multi_worker|default] [--config=configs/mcgsm.py] [--config.train.steps=500]

Bad input (unknown model, data or config key, a config file that is missing, broken or
another model's, unusable workdir or data_dir, values out of range, patches larger than
the images, stray arguments, multi_worker without TF_CONFIG, a data set that needs a
download on a machine that cannot reach it) ends with one line on stderr naming what was
wrong and what is allowed, exit code 2, and nothing written.
The workdir holds one run: a second process on it, another model's run, or a config
that differs in more than steps, logging, evaluation, sampling and export are refused
the same way; a rerun of a finished run says so and exits 0 (--export exports it again).
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
from training import names
import zoo

STRATEGIES = ("auto", "multi_worker", "default")
USAGE = "python -m training.run --model=NAME --data=NAME [--workdir=DIR] [--config.x.y=v]"

flags.DEFINE_string("model", None, f"model: {', '.join(zoo.NAMES)}")
flags.DEFINE_string("data", None, "dataset name (see training/data.py)")
flags.DEFINE_string("workdir", None, "run directory (default runs/<model>-<data>)")
flags.DEFINE_enum("strategy", "auto", STRATEGIES, "tf.distribute strategy")
flags.DEFINE_string("data_dir", None, "TFDS data dir (default: TFDS's own)")
flags.DEFINE_bool("export", True, "export a SavedModel at the end; rerunning a finished run "
                  "exports it again only when --export is given")
flags.DEFINE_bool("show_config", False, "print the resolved config (the config file with the "
                  "--config.x.y overrides) and exit; writes nothing")
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


def _configs_dir():
  """Returns the directory of the config files shipped with the package."""
  import configs  # pylint: disable=g-import-not-at-top
  return os.path.dirname(configs.__file__)


def _load_config_file(path, arg):
  """Returns get_config(arg) (get_config() when arg is None) of the config file `path`."""
  import importlib.machinery  # pylint: disable=g-import-not-at-top
  import importlib.util  # pylint: disable=g-import-not-at-top
  loader = importlib.machinery.SourceFileLoader("genzoo_config_file", path)  # any file name
  module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
  loader.exec_module(module)
  return module.get_config() if arg is None else module.get_config(arg)


def _keys(config):
  """Returns a config's keys as "section.field", in the config's order."""
  return [f"{section}.{field}" for section, fields in config.items() for field in fields]


def _model_keys(model):
  """Returns (the keys every config of `model` has, every key one may have)."""
  import importlib  # pylint: disable=g-import-not-at-top
  get_config = importlib.import_module(f"configs.{model}").get_config
  variants = [set(_keys(get_config(arg))) for arg in ("",) + names.DATASETS]
  return set.intersection(*variants), set.union(*variants)


def check_config_file(argv, model):
  """Returns argv with --config's file found, after failing (one line) unless it loads and
  configures `model`.

  A relative configs/<name>.py that is not there (a command from the README run outside
  the checkout) means the file shipped with the package.
  """
  value = _flag_value(argv, "config")
  if value is None:
    return argv
  path, arg = value.split(":", 1) if ":" in value else (value, None)
  shipped = os.path.join(_configs_dir(), os.path.basename(path))
  if (not os.path.isfile(path) and not os.path.isabs(path)
      and os.path.basename(os.path.dirname(os.path.normpath(path))) == "configs"
      and os.path.isfile(shipped)):
    found = shipped + (f":{arg}" if arg is not None else "")
    argv = [f"--config={found}" if a == f"--config={value}" else
            found if a == value and i and argv[i - 1] == "--config" else a
            for i, a in enumerate(argv)]
    path = shipped
  if not os.path.isfile(path):
    shipped_files = sorted(n for n in os.listdir(_configs_dir()) if n.endswith(".py") and n[0] != "_")
    fail(f"--config={value}: no such file {path}; give a config file, e.g. "
         f"--config=configs/{model}.py (shipped: {', '.join(shipped_files)})")
  try:
    with cli.quiet_stderr():
      config = _load_config_file(path, arg)
  except Exception as e:  # pylint: disable=broad-except  (whatever the user's file raises)
    fail(f"cannot load --config={value}: {type(e).__name__}: {cli.first_line(e)}")
  required, allowed = _model_keys(model)
  try:
    keys = set(_keys(config))
  except (AttributeError, TypeError):
    fail(f"--config={value}: get_config() must return a ConfigDict of sections "
         f"(data, model, train, ...), as configs/{model}.py does")
  missing, extra = sorted(required - keys), sorted(keys - allowed)
  if missing or extra:
    wrong = (f"lacks {', '.join('config.' + k for k in missing[:5])}" if missing else
             f"has keys {model} does not take: {', '.join('config.' + k for k in extra[:5])}")
    fail(f"--config={value} does not configure {model}: it {wrong}"
         f"{', ...' if len(missing or extra) > 5 else ''} (another model's file? {model}'s is "
         f"configs/{model}.py)")
  return argv


def define_flags(argv):
  """Defines the flags; the config file's default follows --model and --data. Returns
  argv with --config's file found (check_config_file)."""
  model = _flag_value(argv, "model")
  data = _flag_value(argv, "data") or ""
  if model is None:
    fail(f"--model is required; valid: {', '.join(zoo.NAMES)}")
  if model not in zoo.NAMES:
    fail(f"unknown model {model!r}; valid: {', '.join(zoo.NAMES)}")
  try:
    names.check_name(data)  # without TensorFlow: a wrong name fails at once
  except names.DataError as e:
    fail(str(e))
  argv = check_config_file(argv, model)
  try:  # the overrides are applied here, while the default config is parsed
    config_flags.DEFINE_config_file("config", os.path.join(_configs_dir(), f"{model}.py:{data}"),
                                    "config file; --config.x.y=v overrides a field")
  except (AttributeError, KeyError) as e:
    given = [a.split("=", 1)[0][2:] for a in argv if a.startswith("--config.")]
    key = cli.first_line(e).strip("\"'")
    fail(f"unknown config key {key!r} in {', '.join(given)}; "
         f"valid: {', '.join(_config_keys(model, data))}")
  except (ValueError, TypeError) as e:
    fail(f"bad config value: {cli.first_line(e)}")
  return argv


def _config_keys(model, data):
  """Returns the overridable keys of configs/<model>.py, as `config.section.field`."""
  import importlib  # pylint: disable=g-import-not-at-top
  config = importlib.import_module(f"configs.{model}").get_config(data)
  return ["config." + key for key in _keys(config)]


def check_data_dir(data_dir):
  """Fails unless --data_dir is a directory, or a path where one can be made (TFDS makes
  it for the generated and bundled sets). Creates nothing."""
  if data_dir and os.path.exists(data_dir) and not os.path.isdir(data_dir):
    fail(f"--data_dir={data_dir} is a file; give TFDS's data directory (an existing one, or a "
         "new path for the generated and bundled sets), or leave it out for TFDS's default")
  if data_dir and not os.path.exists(data_dir):
    cli.check_writable_dir(data_dir, "data_dir")


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
  lines = [f"usage: {USAGE}", "", f"models: {', '.join(zoo.NAMES)}",
           f"data: {', '.join(names.DATASETS)}, or tfds:<name>"]
  if model not in zoo.NAMES:
    return "\n".join(lines + ["", flags.FLAGS.main_module_help(), "",
                               "python -m training.run --model=NAME --help adds that model's "
                               "config keys; --show_config prints a run's resolved config"])
  keys = _config_keys(model, _flag_value(argv, "data") or "")
  return "\n".join(lines + ["", flags.FLAGS.main_module_help(), "  --config: config file "
                             f"(default configs/{model}.py); --config.x.y=v overrides a field", "",
                             f"config keys of {model}:", *("  " + k for k in keys)])


def main(argv):
  if len(argv) > 1:
    fail(f"unexpected arguments {' '.join(argv[1:])}; usage: {USAGE}")
  f = flags.FLAGS
  if f.show_config:
    print(f.config, end="")
    return 0
  check_tf_config(f.strategy)
  workdir = f.workdir or os.path.join("runs", f"{f.model}-{f.data.replace(':', '_')}")
  cli.check_writable_dir(workdir, "workdir")
  check_data_dir(f.data_dir)
  with cli.quiet_stderr():  # TensorFlow's start-up notices would bury a one-line error
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
  cli.check_filesystem(workdir, "workdir")
  try:
    metrics = loop.train(f.model, f.data, f.config, workdir, strategy, data_dir=f.data_dir,
                         export=f.export, export_finished=f["export"].present and f.export)
  except (steps.ConfigError, data_lib.DataError, rundir.Refused) as e:
    fail(str(e))
  except rundir.TrainingStopped as e:
    print(f"error: {e}" if e.exit_code not in (130, 143) else str(e), file=sys.stderr)
    return e.exit_code
  except KeyboardInterrupt:  # Ctrl-C outside the training steps, or twice
    print(f"interrupted; rerun the same command to resume from the last checkpoint in {workdir}",
          file=sys.stderr)
    return 130
  module = zoo.get(f.model)
  if metrics.get("finished"):
    done = (f"after {metrics['steps']} steps ({module.METRIC} = {metrics[module.METRIC]:.4f})"
            if "steps" in metrics else "(the chief's workdir)")
    print(f"{f.model} on {f.data}: already finished in {workdir} {done}; nothing trained"
          + (f"; export {metrics['export']}" if "export" in metrics else
             "; --export exports it again, --config.train.steps=N trains on"))
    return 0
  print(f"{f.model} on {f.data}: {module.METRIC} = {metrics[module.METRIC]:.4f} "
        f"after {metrics['steps']} steps; weights sha256 {metrics['weights_sha256'][:16]}; "
        f"workdir {workdir}"
        + (f"; export {metrics['export']}" if "export" in metrics else ""))


if __name__ == "__main__":
  # config_flags reports a bad override as AttributeError/KeyError/ValueError/TypeError.
  cli.run(main, cli.flags_parser(
      USAGE, define_flags, (flags.Error, AttributeError, KeyError, ValueError, TypeError),
      help_text=help_text))
