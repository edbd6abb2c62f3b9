"""Faults inject and nothing is lost: SIGKILL (exact resume), SIGTERM, a non-finite loss,
a corrupt checkpoint, a full disk, and an export killed half-way."""
import concurrent.futures
import contextlib
import io
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from unittest import mock

import numpy as np
import tensorflow as tf

from export import saved_model
from training import images as images_lib
from training import loop
from training import rundir
from zoo import mcgsm

from tests.conftest import tiny_run_config
from tests.test_training import ROOT
from tests.test_training import TINY as TINY_FLAGS
from tests.test_training import TINY_XLA as TINY_XLA_FLAGS
from tests.test_training import run_cli as run
from tests.test_training import user_env as env

TINY = ["--model=mcgsm", "--data=deadleaves", "--strategy=default", "--export=false", *TINY_FLAGS]
TINY_XLA = [*TINY[:4], *TINY_XLA_FLAGS]  # the MCGSM's default: XLA-compiled


def start(args, **kwargs):
  return subprocess.Popen([sys.executable, "-m", "training.run", *args], cwd=ROOT, env=env(),
                          **kwargs)


def latest_step(workdir):
  path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  return int(path.rsplit("-", 1)[1]) if path else 0


def checkpoint_arrays(path):
  """Returns {name: array} of a checkpoint's model and optimizer variables."""
  reader = tf.train.load_checkpoint(path)
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
          if "VARIABLE_VALUE" in name}


class ResumeTest(tf.test.TestCase):

  def test_killed_twice_ends_as_an_uninterrupted_run(self):
    # Op determinism and a data order that is a function of (seed, step): a run killed
    # with SIGKILL at two random steps and rerun ends bit for bit where one that was
    # never interrupted ends.
    # Under XLA, as the MCGSM trains by default.
    args = [*TINY_XLA, "--deterministic", "--config.train.steps=30",
            "--config.train.checkpoint_every=4"]
    straight = os.path.join(self.get_temp_dir(), "straight")
    # The uninterrupted run goes alongside (each process is mostly a start-up on 2 cores).
    done = start([*args, f"--workdir={straight}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                 text=True)

    workdir = os.path.join(self.get_temp_dir(), "killed")
    rng = np.random.default_rng(7)
    kills = sorted(rng.choice(np.arange(4, 28, 4), 2, replace=False))
    for kill_after in kills:  # kill once a checkpoint at or beyond this step exists
      proc = start([*args, f"--workdir={workdir}"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
      deadline = time.time() + 240
      while time.time() < deadline and proc.poll() is None and latest_step(workdir) < kill_after:
        time.sleep(0.02)
      self.assertIsNone(proc.poll(), "the run ended before it could be killed")
      os.kill(proc.pid, signal.SIGKILL)
      proc.wait()
      self.assertLess(latest_step(workdir), 30)
    killed_at = latest_step(workdir)
    _, stderr = done.communicate(timeout=300)
    self.assertEqual(done.returncode, 0, stderr[-2000:])
    resumed = run([*args, f"--workdir={workdir}"])
    self.assertEqual(resumed.returncode, 0, resumed.stderr[-2000:])
    self.assertIn("resuming from", resumed.stdout)
    self.assertIn(f"at step {killed_at}", resumed.stdout)

    with open(os.path.join(straight, "metrics.json")) as f, \
         open(os.path.join(workdir, "metrics.json")) as g:
      self.assertEqual(json.load(f), json.load(g))
    a = checkpoint_arrays(tf.train.latest_checkpoint(os.path.join(straight, "checkpoints")))
    b = checkpoint_arrays(tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")))
    self.assertEqual(a.keys(), b.keys())
    self.assertNotEmpty(a)
    for name in a:
      self.assertAllEqual(a[name], b[name], msg=name)

    # The resumed run serves the sampling command.
    grid = os.path.join(self.get_temp_dir(), "grid.png")
    sampled = subprocess.run([sys.executable, "-m", "training.sample", f"--workdir={workdir}",
                              "--num=4", f"--out={grid}"], cwd=ROOT, capture_output=True, text=True)
    self.assertEqual(sampled.returncode, 0, sampled.stderr[-2000:])
    png = tf.io.decode_png(tf.io.read_file(grid)).numpy()
    k, pad = images_lib.scale_for((8, 8), 2, 2), images_lib.SEPARATOR  # 2x2 of 8x8, enlarged
    self.assertEqual(png.shape, (2 * (8 * k + pad) + pad, 2 * (8 * k + pad) + pad, 1))

  def check_signal_saves_a_checkpoint(self, signum, name, exit_code):
    workdir = os.path.join(self.get_temp_dir(), name)
    args = [*TINY, f"--workdir={workdir}", "--config.train.steps=100000",
            "--config.train.checkpoint_every=100000", "--config.train.log_every=1"]
    proc = start(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # wait until training runs
      if line.startswith("step 3/"):
        break
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    self.assertEqual(proc.returncode, exit_code, stderr[-2000:])
    last = stderr.strip().splitlines()[-1]
    self.assertRegex(last, rf"^{name} at step \d+: checkpoint saved in .*; rerun the same command")
    saved = int(last.split()[3].rstrip(":"))
    self.assertEqual(latest_step(workdir), saved)
    return args, saved

  def test_sigterm_and_ctrl_c_save_a_checkpoint_and_exit_143_and_130(self):
    # The two runs go side by side (each is mostly a start-up on 2 cores).
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
      sigterm = pool.submit(self.check_signal_saves_a_checkpoint, signal.SIGTERM, "SIGTERM", 143)
      sigint = pool.submit(self.check_signal_saves_a_checkpoint, signal.SIGINT, "SIGINT", 130)
      args, saved = sigterm.result()
      sigint.result()
    rerun = run([*args[:-3], f"--config.train.steps={saved + 2}"])
    self.assertEqual(rerun.returncode, 0, rerun.stderr[-2000:])
    self.assertIn(f"at step {saved}", rerun.stdout)


class PreemptionTest(tf.test.TestCase):

  def test_first_ctrl_c_is_noted_a_second_interrupts_and_handlers_come_back(self):
    before = signal.getsignal(signal.SIGINT)
    with rundir.Preemption() as preemption:
      os.kill(os.getpid(), signal.SIGINT)
      self.assertTrue(preemption.received)
      self.assertEqual(preemption.stop(7, "ckpts").exit_code, 130)
      with self.assertRaises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
    self.assertIs(signal.getsignal(signal.SIGINT), before)


class NonFiniteTest(tf.test.TestCase):

  def train_with_nan_at(self, call, config, workdir):
    """Runs loop.train with the training loss made NaN at its `call`-th evaluation."""
    calls = tf.Variable(0)
    original = mcgsm.Model.train_loss

    def poisoned(model, images, seeds, **kwargs):
      loss, terms = original(model, images, seeds, **kwargs)
      calls.assign_add(1)
      return loss * tf.where(calls == call, float("nan"), 1.0), terms

    with mock.patch.object(mcgsm.Model, "train_loss", poisoned):
      return loop.train("mcgsm", "deadleaves", config, workdir, tf.distribute.get_strategy(),
                        export=False)

  def test_stops_naming_the_step_and_keeps_the_last_good_checkpoint(self):
    workdir = os.path.join(self.get_temp_dir(), "nan")
    with self.assertRaisesRegex(rundir.TrainingStopped, r"non-finite loss \(nan\) at step 7;.*ckpt-6"):
      self.train_with_nan_at(7, tiny_run_config(steps=10, checkpoint_every=2), workdir)
    self.assertEqual(latest_step(workdir), 6)
    self.assertFalse(os.path.exists(os.path.join(workdir, "metrics.json")))
    for name, value in checkpoint_arrays(tf.train.latest_checkpoint(
        os.path.join(workdir, "checkpoints"))).items():
      self.assertTrue(np.all(np.isfinite(value)), name)

  def test_skip_undoes_the_step_exactly_and_goes_on(self):
    # NaN at the last step: with skip_nonfinite the final weights are those after step 9.
    config = tiny_run_config(steps=10, checkpoint_every=1, skip_nonfinite=True)
    skipped = os.path.join(self.get_temp_dir(), "skipped")
    metrics = self.train_with_nan_at(10, config, skipped)
    self.assertEqual(metrics["skipped_steps"], 1)
    self.assertEqual(metrics["steps"], 10)
    self.assertTrue(np.isfinite(metrics["bit_per_px_rate"]))
    clean = os.path.join(self.get_temp_dir(), "clean")
    loop.train("mcgsm", "deadleaves", tiny_run_config(steps=10, checkpoint_every=1), clean,
               tf.distribute.get_strategy(), export=False)
    after = checkpoint_arrays(os.path.join(skipped, "checkpoints", "ckpt-10"))
    before = checkpoint_arrays(os.path.join(clean, "checkpoints", "ckpt-9"))
    model_vars = [n for n in after if n.startswith(("model/", "weights/"))]  # contract.checkpoint
    self.assertNotEmpty(model_vars)
    for name in model_vars:
      self.assertAllEqual(after[name], before[name], msg=name)


class CheckpointAndDiskTest(tf.test.TestCase):

  def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(self):
    workdir = os.path.join(self.get_temp_dir(), "corrupt")
    loop.train("mcgsm", "deadleaves", tiny_run_config(steps=6, checkpoint_every=2), workdir,
               tf.distribute.get_strategy(), export=False)
    data = os.path.join(workdir, "checkpoints", "ckpt-6.data-00000-of-00001")
    with open(data, "r+b") as f:
      f.truncate(os.path.getsize(data) // 2)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
      metrics = loop.train("mcgsm", "deadleaves", tiny_run_config(steps=8, checkpoint_every=2), workdir,
                           tf.distribute.get_strategy(), export=False)
    self.assertIn("ckpt-6 is unreadable", out.getvalue())
    self.assertIn("resuming from " + os.path.join(workdir, "checkpoints", "ckpt-4") + " at step 4",
                  out.getvalue())
    self.assertEqual(metrics["steps"], 8)

  def test_no_readable_checkpoint_is_one_line(self):
    workdir = os.path.join(self.get_temp_dir(), "unreadable")
    loop.train("mcgsm", "deadleaves", tiny_run_config(steps=2, checkpoint_every=1), workdir,
               tf.distribute.get_strategy(), export=False)
    for name in os.listdir(os.path.join(workdir, "checkpoints")):
      if name.endswith(".index"):
        with open(os.path.join(workdir, "checkpoints", name), "wb") as f:
          f.write(b"garbage")
    with self.assertRaisesRegex(rundir.TrainingStopped, "no checkpoint in .* reads back"):
      loop.train("mcgsm", "deadleaves", tiny_run_config(steps=4, checkpoint_every=1), workdir,
                 tf.distribute.get_strategy(), export=False)

  def test_full_disk_is_one_line_and_keeps_what_was_written(self):
    workdir = os.path.join(self.get_temp_dir(), "full")
    args = [*TINY, f"--workdir={workdir}", "--config.model.features=256",
            "--config.train.checkpoint_every=2", "--config.train.log_every=1000",
            "--export=false"]  # its subject is the checkpoints and JSON files
    first = run([*args, "--config.train.steps=2"])
    self.assertEqual(first.returncode, 0, first.stderr[-2000:])
    size = os.path.getsize(os.path.join(workdir, "checkpoints", "ckpt-2.data-00000-of-00001"))
    with open(os.path.join(workdir, "metrics.json"), "rb") as f:
      metrics = f.read()
    limit = size // 2  # files may not grow past this: the next checkpoint cannot be written
    self.assertGreater(limit, 8192, "the checkpoint is too small to tell it from other files")
    full = run([*args, "--config.train.steps=4"],
               preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    self.assertEqual(full.returncode, 1, full.stderr[-2000:])
    last = full.stderr.strip().splitlines()[-1]
    self.assertRegex(last, r"^error: could not write the checkpoint of step 4 in .*checkpoints: ")
    self.assertIn("earlier checkpoints are intact", last)
    self.assertEqual(latest_step(workdir), 2)
    tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")))
    with open(os.path.join(workdir, "metrics.json"), "rb") as f:
      self.assertEqual(f.read(), metrics)
    with open(os.path.join(workdir, "config.json")) as f:  # rewritten whole (the new steps)
      self.assertEqual(json.load(f)["train"]["steps"], 4)
    again = run([*args, "--config.train.steps=4"])  # with space again, it resumes
    self.assertEqual(again.returncode, 0, again.stderr[-2000:])
    self.assertIn("at step 2", again.stdout)


KILLED_EXPORT = textwrap.dedent("""
    import os, signal, sys
    from unittest import mock
    import numpy as np, tensorflow as tf
    from configs import mcgsm as mcgsm_config
    from export import saved_model
    from zoo import mcgsm
    config = mcgsm_config.get_config()
    config.model.update(components=2, scales=2, features=4)
    config.sample.update(size=8, margin=2)
    model = mcgsm.Model(config)
    model.initialize(tf.constant(np.random.RandomState(0).randint(0, 256, [4, 16, 16, 1]), tf.uint8))
    export_dir = sys.argv[1]
    if not os.path.exists(export_dir):
      saved_model.export(model, config, export_dir)  # version 1, whole
    with mock.patch.object(saved_model, "replay_warmup",
                           side_effect=lambda path: os.kill(os.getpid(), signal.SIGKILL)):
      saved_model.export(model, config, export_dir)  # killed after writing, before publishing
""")


class ExportCrashTest(tf.test.TestCase):

  def test_export_killed_midway_publishes_nothing_and_the_next_takes_the_next_number(self):
    export_dir = os.path.join(self.get_temp_dir(), "export")
    killed = subprocess.run([sys.executable, "-c", KILLED_EXPORT, export_dir], cwd=ROOT, env=env(),
                            capture_output=True, text=True, timeout=300)
    self.assertEqual(killed.returncode, -signal.SIGKILL, killed.stderr[-2000:])
    names = sorted(os.listdir(export_dir))  # ".tmp-..." sorts first
    self.assertLen(names, 2)
    self.assertEqual(names[1], "1")
    self.assertRegex(names[0], r"^\.tmp-2-\d+$")  # the abandoned write, not a version
    self.assertEqual(saved_model.versions(export_dir), [1])
    with open(os.path.join(export_dir, "1", "saved_model.pb"), "rb") as f:
      first = f.read()

    config = tiny_run_config()
    config.sample.update(size=8, margin=2)
    model = mcgsm.Model(config)
    model.initialize(tf.constant(np.random.RandomState(0).randint(0, 256, [4, 16, 16, 1]), tf.uint8))
    self.assertEqual(saved_model.export(model, config, export_dir), os.path.join(export_dir, "2"))
    self.assertEqual(sorted(os.listdir(export_dir)), ["1", "2"])  # the abandoned dir is gone
    with open(os.path.join(export_dir, "1", "saved_model.pb"), "rb") as f:
      self.assertEqual(f.read(), first)


if __name__ == "__main__":
  tf.test.main()
