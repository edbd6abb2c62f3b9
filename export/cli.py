"""What the command-line entry points share (`training.run`, `training.sample`, `export.run`):
one-line usage errors and quiet start-up. It lives in `export/`, the lower of the two
packages (zoo <- export <- training), so both can use it."""
import contextlib
import os
import sys
import tempfile

from absl import flags

USAGE_ERROR = 2


def fail(message):
  """Prints `error: message` as one line on stderr and exits with the usage-error code."""
  print(f"error: {message}", file=sys.stderr)
  sys.exit(USAGE_ERROR)


def first_line(error):
  """Returns the first line of an exception's message (or its type name)."""
  text = str(error).strip()
  return text.splitlines()[0] if text else type(error).__name__


HELP_FLAGS = ("-h", "--help", "--helpshort", "--helpfull")


def main_module_help(usage):
  """Returns the usage line and the main module's flags with their help and defaults."""
  return f"usage: {usage}\n\n{flags.FLAGS.main_module_help()}"


def flags_parser(usage, define=None, errors=(flags.Error,), help_text=None):
  """Returns an absl `flags_parser` that turns a flag error into one line and exit 2.

  `define(argv)`, if given, defines flags that depend on other flags' values first (and
  may return argv rewritten).
  -h / --help prints `help_text(argv)` (default: the usage and the module's flags) and
  exits 0.
  """
  def parse(argv):
    if any(arg in HELP_FLAGS for arg in argv[1:]):
      print((help_text or (lambda argv: main_module_help(usage)))(argv))
      sys.exit(0)
    try:
      if define is not None:
        argv = define(argv) or argv
      return flags.FLAGS(argv)
    except errors as e:
      fail(f"bad flag: {first_line(e)}; usage: {usage}")
  return parse


def run(main, parser):
  """Parses the flags with `parser`, then runs `main(argv)` and exits with its result.

  Quiet by default: TensorFlow's and TFDS's own log lines (oneDNN, dataset buffers,
  graph passes) are hidden unless --tf_logs is given or TF_CPP_MIN_LOG_LEVEL is set, so a
  run prints its progress and its result, and an error its one line.
  `absl.app.run` is not used: in TF 2.21 it makes TensorFlow probe for CUDA before
  `main` starts, and that probe's log line would precede a one-line usage error.
  """
  flags.DEFINE_bool("tf_logs", False, "show TensorFlow's and TFDS's own log lines",
                    module_name=sys.argv[0])
  quiet = not any(arg in ("--tf_logs", "--tf_logs=true") for arg in sys.argv[1:])
  if quiet:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # read when TensorFlow is imported
  argv = parser(sys.argv)
  if quiet:
    from absl import logging  # pylint: disable=g-import-not-at-top
    logging.set_verbosity(logging.ERROR)
  sys.exit(main(argv))


def is_url(path):
  """Returns True for a path on one of TensorFlow's other filesystems (gs://, hdfs://,
  ram://, ...); export/storage.py reads and writes them, `check_filesystem` checks them."""
  return "://" in path and not path.startswith("file://")


def check_writable_dir(path, flag):
  """Fails unless `path` is, or can be created as, a writable directory. Creates nothing.

  A URL (`is_url`) is not checked here: that needs TensorFlow, which the entry points
  import only after the flags are checked (`check_filesystem` then)."""
  if is_url(path):
    return
  path = path[len("file://"):] if path.startswith("file://") else path
  full = os.path.abspath(path)
  if os.path.exists(full) and not os.path.isdir(full):
    fail(f"--{flag}={path} is a file; give a directory (existing or new)")
  parent = full
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
    fail(f"--{flag}={path} is not writable ({parent} is not a writable directory); "
         "give a directory you can write to")


@contextlib.contextmanager
def quiet_stderr(show_on_error=True):
  """Hides C-level writes to stderr in the block (TensorFlow's start-up logging).

  TF 2.21 logs through absl C++ logging, which ignores TF_CPP_MIN_LOG_LEVEL before its
  own initialisation, so oneDNN and CUDA notices would bury a one-line usage error.
  If the block raises, what it wrote is shown after all, unless `show_on_error` is False
  (the TFLite converter's diagnostics, which the export's manifest sums up).
  """
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as sink:
    os.dup2(sink.fileno(), 2)
    try:
      yield
    except BaseException:
      os.dup2(saved, 2)
      if show_on_error:
        sink.seek(0)
        sys.stderr.write(sink.read().decode(errors="replace"))
      raise
    finally:
      os.dup2(saved, 2)
      os.close(saved)


def check_filesystem(path, flag):
  """Fails unless TensorFlow can reach the filesystem of `path` (a URL: gs://, ram://, ...;
  a local path passes). Imports TensorFlow: call it after the cheap checks."""
  from export import storage  # pylint: disable=g-import-not-at-top  (TensorFlow)
  problem = storage.check_filesystem(path)
  if problem:
    fail(f"--{flag}={path}: {problem}")
