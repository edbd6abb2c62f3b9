"""The run directory: what a run writes, how it resumes, and how it stops cleanly.

Layout (`export.workdir` reads it back): run.json (model, data), config.json,
checkpoints/ (the latest three; checkpoints/best/ with early stopping), tensorboard/,
samples.png, metrics.json, export/<version>/. JSON files are written whole or not at
all (a temporary file and a rename); a failed write becomes one line and loses nothing
already written.
"""
import hashlib
import json
import os
import signal
import threading

import numpy as np
import tensorflow as tf

from export import cli


class TrainingStopped(RuntimeError):
  """Training stopped early, with the message as one line: `exit_code` 1 for a fault
  (non-finite loss, a write that failed), 143 after SIGTERM and 130 after SIGINT (Ctrl-C;
  both with the checkpoint saved)."""

  def __init__(self, message, exit_code=1):
    super().__init__(message)
    self.exit_code = exit_code


def write_json(path, payload):
  """Writes `payload` to `path` through a temporary file and a rename, so a failed write
  (disk full) leaves the previous file whole; the failure becomes one line."""
  tmp = f"{path}.tmp-{os.getpid()}"
  try:
    with open(tmp, "w") as f:
      json.dump(payload, f, indent=2)
    os.replace(tmp, path)
  except OSError as e:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise TrainingStopped(f"could not write {path}: {e.strerror or e}; free space or give "
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
