"""The run directory: what a run writes, how it resumes, and how it stops cleanly.

Layout (`export.workdir` reads it back): run.json (model, data, and the config changes of
resumed runs), config.json, lock, checkpoints/ (the latest three; checkpoints/best/ with
early stopping), tensorboard/, samples.png, metrics.json, export/<version>/. JSON files
are written whole or not at all (a temporary file and a rename); a failed write becomes
one line and loses nothing already written. The workdir may be a URL of any TensorFlow
filesystem (gs://, hdfs://, ram://: export/storage.py); there the lock is only a note.

One run per workdir (`Lock`), and a rerun must be the same run (`check_resume`): a
workdir is never trained by two processes at once nor by two different configs.
"""
import datetime
import fcntl
import hashlib
import os
import signal
import socket
import threading

import numpy as np
import tensorflow as tf

from export import cli
from export import storage
from export import trained as trained_run


class TrainingStopped(RuntimeError):
  """Training stopped early, with the message as one line: `exit_code` 1 for a fault
  (non-finite loss, a write that failed), 143 after SIGTERM and 130 after SIGINT (Ctrl-C;
  both with the checkpoint saved)."""

  def __init__(self, message, exit_code=1):
    super().__init__(message)
    self.exit_code = exit_code


class Refused(ValueError):
  """The workdir cannot take this run (busy, another run's, another config); one line,
  raised before anything is written."""


# Config keys a rerun may change (a prefix ending in "." covers a section): how long to
# train, how often to log and checkpoint, how to evaluate, sample and export. Every other
# key shapes the weights, the optimizer state or the data, so a checkpoint of one config
# means nothing to another.
MUTABLE_KEYS = ("train.steps", "train.checkpoint_every", "train.log_every", "train.sample_every",
                "train.skip_nonfinite", "train.jit", "eval.", "sample.", "export.")
_RUN_FILES = ("run.json", "config.json")
_LOCK = "lock"


class _Absent:
  """A key one of two configs lacks."""

  def __repr__(self):
    return "(absent)"


_ABSENT = _Absent()


def _flatten(tree, prefix=""):
  """Returns {"section.field": value} of a nested dict (a config as JSON)."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def _mutable(key):
  return any(key == m or (m.endswith(".") and key.startswith(m)) for m in MUTABLE_KEYS)


def _read_json(path):
  try:
    return storage.read_json(path)
  except (*storage.ERRORS, ValueError) as e:
    raise Refused(f"cannot read {path} ({e}); move the workdir away or give another --workdir") from e


def check_resume(workdir, run, config):
  """Returns {key: (stored, requested)} of the config changes a rerun in `workdir` makes
  (all in MUTABLE_KEYS); {} for a new or empty workdir. Reads only.

  `run` is run.json's {"model", "data"}, `config` the requested config as JSON. Refused
  when the workdir holds something other than a run, another model's or dataset's run,
  or a config that differs in a key outside MUTABLE_KEYS.
  """
  if not storage.isdir(workdir) or not set(storage.listdir(workdir)) - {_LOCK}:
    return {}
  if not storage.isfile(os.path.join(workdir, "run.json")):
    raise Refused(f"--workdir={workdir} is not empty and holds no run (no run.json); give a new "
                  "or empty directory")
  stored_run = _read_json(os.path.join(workdir, "run.json"))
  if (stored_run.get("model"), stored_run.get("data")) != (run["model"], run["data"]):
    raise Refused(f"--workdir={workdir} holds a run of {stored_run.get('model')} on "
                  f"{stored_run.get('data')}, not {run['model']} on {run['data']}; give another "
                  "--workdir")
  stored = _flatten(_read_json(os.path.join(workdir, "config.json")))
  requested = _flatten(config)
  changed = {key: (stored.get(key, _ABSENT), requested.get(key, _ABSENT))
             for key in sorted(set(stored) | set(requested))
             if stored.get(key, _ABSENT) != requested.get(key, _ABSENT)}
  trained = trained_run.checkpoint_step(workdir)
  if trained > requested.get("train.steps", 0):
    raise Refused(f"--workdir={workdir} holds a run trained for {trained} steps, more than "
                  f"config.train.steps={requested.get('train.steps')}; ask for at least {trained}, "
                  "or give a new --workdir")
  refused = [key for key in changed if not _mutable(key)]
  if refused:
    shown = "; ".join(f"config.{k}: {changed[k][0]!r} -> {changed[k][1]!r}" for k in refused[:6])
    raise Refused(f"--workdir={workdir} holds a run with another config ({shown}"
                  f"{'; ...' if len(refused) > 6 else ''}); a rerun may change only "
                  f"{', '.join('config.' + k + ('*' if k.endswith('.') else '') for k in MUTABLE_KEYS)}"
                  "; give a new --workdir to train this config")
  return changed


def finished_metrics(workdir, steps):
  """Returns metrics.json of the run in `workdir` if it finished after `steps` steps, else None."""
  path = os.path.join(workdir, "metrics.json")
  if not storage.isfile(path):
    return None
  metrics = _read_json(path)
  return metrics if metrics.get("steps") == steps else None


def record_run(workdir, run, config, changed, step):
  """Writes run.json and config.json; a rerun's config changes go into run.json's "reruns"
  (at which step, when, from what to what), so the workdir tells its own history."""
  path = os.path.join(workdir, "run.json")
  previous = _read_json(path) if storage.isfile(path) else {}
  reruns = previous.get("reruns", [])
  if changed:
    reruns.append({"step": step, "time": datetime.datetime.now().isoformat(timespec="seconds"),
                   "changed": {f"config.{k}": [None if x is _ABSENT else x for x in v]
                               for k, v in changed.items()}})
  write_json(path, dict(run, **({"reruns": reruns} if reruns else {})))
  write_json(os.path.join(workdir, "config.json"), config)


class Lock:
  """One run per workdir: an exclusive flock on <workdir>/lock for the life of the process.

  The OS releases it when the process ends however it ends, so a SIGKILLed run never
  blocks its rerun. The file holds the holder's PID and host, for the message a second
  run gets (Refused, before it writes anything else).

  Off a local disk (a workdir URL: gs://, hdfs://, ram://) there are no file locks, so
  the lock degrades to a note: the file still names the holder, and a run that finds
  another holder's note says so in one line and goes on (the note of a crashed run
  looks the same as a live one's; keeping two runs apart is then the user's job).
  """

  def __init__(self, workdir):
    self.path = os.path.join(workdir, _LOCK)
    self.fd = None
    self.holder = f"{os.getpid()} {socket.gethostname()}"

  def __enter__(self):
    if not storage.is_local(self.path):
      return self._note()
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      holder = os.read(self.fd, 200).decode(errors="replace").split()
      os.close(self.fd)
      raise Refused(f"--workdir={os.path.dirname(self.path)} is in use by another run "
                    f"({_who(holder)}); wait for it to end, or give another --workdir") from None
    os.ftruncate(self.fd, 0)
    os.write(self.fd, f"{self.holder}\n".encode())
    return self

  def _note(self):
    """The lock off a local disk: reads and reports another holder's note, writes ours."""
    if storage.isfile(self.path):
      try:
        holder = storage.read_bytes(self.path).decode(errors="replace").split()
      except storage.ERRORS:
        holder = []
      if holder:
        print(f"note: {self.path} names {_who(holder)}, which did not release it: a crashed run, "
              "or one still running (this filesystem has no file locks, so genzoo cannot tell); "
              "going on", flush=True)
    storage.makedirs(os.path.dirname(self.path))
    storage.write_bytes(self.path, f"{self.holder}\n".encode())
    return self

  def __exit__(self, *exc):
    if self.fd is None:  # the note: removed, so the next run finds the workdir free
      storage.remove(self.path)
      return
    fcntl.flock(self.fd, fcntl.LOCK_UN)
    os.close(self.fd)


def _who(holder):
  return f"PID {holder[0]} on {holder[1]}" if len(holder) == 2 else "its PID not yet written"


def write_json(path, payload):
  """Writes `payload` to `path` whole or not at all (export/storage.py: a temporary file
  and a rename), so a failed write (disk full) leaves the previous file whole; the
  failure becomes one line."""
  try:
    storage.write_json(path, payload)
  except storage.ERRORS as e:
    reason = getattr(e, "strerror", None) or getattr(e, "message", None) or e
    raise TrainingStopped(f"could not write {path}: {cli.first_line(reason)}; free space or give "
                          "another --workdir") from e


def save_checkpoint(manager, step):
  """Saves a checkpoint; a failed write (disk full, file too large, unwritable) becomes
  one line, and the checkpoints already written stay as they were."""
  try:
    manager.save(checkpoint_number=step)
  except (tf.errors.OpError, OSError) as e:
    raise TrainingStopped(f"could not write the checkpoint of step {step} in {manager.directory}: "
                          f"{cli.first_line(e)}; free space or give another --workdir (earlier "
                          "checkpoints are intact: rerun to resume)") from e


def restore_latest_readable(checkpoint, manager):
  """Restores the newest checkpoint of `manager` that reads back; returns its path (or
  None without checkpoints). An unreadable one (truncated, corrupt) is reported and the
  previous one tried; TrainingStopped if none reads."""
  for path in reversed(manager.checkpoints):
    try:
      checkpoint.restore(path).assert_existing_objects_matched()
      return path
    except Exception as e:  # pylint: disable=broad-except  (OpError, IndexError, ValueError, ...)
      print(f"checkpoint {path} is unreadable ({cli.first_line(e)}); trying the one before it",
            flush=True)
  if manager.checkpoints:
    raise TrainingStopped(f"no checkpoint in {manager.directory} reads back; move that directory "
                          "away to start afresh")
  return None


class Preemption:
  """Notes SIGTERM (a scheduler's preemption) and SIGINT (Ctrl-C) so the loop can
  checkpoint and stop between steps; a second Ctrl-C interrupts at once. Restores the
  previous handlers on exit. A no-op outside the main thread."""

  SIGNALS = {signal.SIGTERM: ("SIGTERM", 143), signal.SIGINT: ("SIGINT", 130)}

  def __enter__(self):
    self.signal, self.previous = None, {}
    if threading.current_thread() is threading.main_thread():
      self.previous = {s: signal.signal(s, self._note) for s in self.SIGNALS}
    return self

  @property
  def received(self):
    return self.signal is not None

  def stop(self, step, directory):
    """Returns the TrainingStopped for the signal received at `step` (checkpoint saved)."""
    name, code = self.SIGNALS[self.signal]
    return TrainingStopped(f"{name} at step {step}: checkpoint saved in {directory}; rerun the "
                           "same command to resume", exit_code=code)

  def _note(self, signum, frame):
    del frame
    if signum == signal.SIGINT and self.signal == signal.SIGINT:
      raise KeyboardInterrupt  # a second Ctrl-C: stop now, without the checkpoint
    self.signal = signum

  def __exit__(self, *exc):
    for s, handler in self.previous.items():
      signal.signal(s, handler)


def weights_digest(model):
  """Returns the sha256 hex digest of the model's trainable weights (their bytes, in
  order): equal digests mean bit-identical weights (workers of one run, a resumed run)."""
  digest = hashlib.sha256()
  for variable in model.trainable_variables:
    digest.update(np.ascontiguousarray(variable.numpy()).tobytes())
  return digest.hexdigest()
