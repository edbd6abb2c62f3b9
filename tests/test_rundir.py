"""The run directory holds one run: a rerun is the same run, one process at a time, a
finished run is left alone, and input that cannot work is refused before anything is
written (in the workdir or in TFDS's data dir)."""
import concurrent.futures
import importlib
import json
import os
import signal
import subprocess
import sys
import time

import tensorflow as tf
import tensorflow_datasets as tfds

from export import saved_model
from tests.test_training import ROOT
from tests.test_training import TINY
from tests.test_training import run_cli
from tests.test_training import user_env
from training import data as data_lib
from training import loop
from training import rundir

# A proxy nobody listens on: the download of any data set fails at once, whatever the
# machine's network, and nothing can be fetched by accident.
OFFLINE = {"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"}


def tree(path):
  """Returns {relative path: (size, mtime_ns)} of everything under `path` ({} if absent)."""
  found = {}
  for directory, subdirs, files in os.walk(path):
    for name in subdirs + files:
      full = os.path.join(directory, name)
      stat = os.stat(full)
      found[os.path.relpath(full, path)] = (stat.st_size if name in files else 0, stat.st_mtime_ns)
  return found


def cli_config(model, data, args):
  """Returns the config `training.run` makes of `args` with the default config file:
  configs/<model>.py's get_config(data) with every --config.section.field=value applied."""
  config = importlib.import_module(f"configs.{model}").get_config(data)
  for arg in args:
    if arg.startswith("--config."):
      key, value = arg[len("--config."):].split("=", 1)
      section, field = key.split(".")
      current = config[section][field]
      config[section][field] = (value.lower() == "true" if isinstance(current, bool)
                                else type(current)(value))
  return config


def one_line(result):
  lines = result.stderr.strip().splitlines()
  return lines[0] if len(lines) == 1 else f"not one line: {result.stderr[-2000:]}"


class RerunTest(tf.test.TestCase):
  """One trained run, rerun the ways users rerun it."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.workdir = os.path.join(tf.compat.v1.test.get_temp_dir(), "rerun")
    cls.args = ["--model=mcgsm", "--data=deadleaves", f"--workdir={cls.workdir}",
                "--strategy=default", "--config.train.steps=4", "--config.train.checkpoint_every=2",
                *TINY]
    cls.first = run_cli(cls.args)

  def test_a_finished_run_is_left_alone_unless_an_export_is_asked_for(self):
    self.assertEqual(self.first.returncode, 0, self.first.stderr[-2000:])
    self.assertEqual(self.first.stderr, "")  # quiet: no TensorFlow log lines
    before = tree(self.workdir)
    again = run_cli(self.args)
    self.assertEqual(again.returncode, 0, again.stderr[-2000:])
    self.assertEqual(again.stderr, "")
    self.assertEqual(len(again.stdout.strip().splitlines()), 1, again.stdout)
    self.assertIn("already finished", again.stdout)
    self.assertIn("after 4 steps", again.stdout)
    # Not re-evaluated, no new export; only the lock names its latest holder.
    self.assertEqual(tree(self.workdir).keys(), before.keys())
    self.assertEqual({k: v for k, v in tree(self.workdir).items() if k != "lock"},
                     {k: v for k, v in before.items() if k != "lock"})
    forced = run_cli(self.args + ["--export"])
    self.assertEqual(forced.returncode, 0, forced.stderr[-2000:])
    self.assertIn(os.path.join(self.workdir, "export", "2"), forced.stdout)
    self.assertEqual(sorted(os.listdir(os.path.join(self.workdir, "export"))), ["1", "2"])

  def test_another_architecture_is_refused_and_the_run_stays_usable(self):
    before = tree(self.workdir)
    # Through the command (exit status 2, one line): another model's run.
    other = run_cli([a for a in self.args if not a.startswith("--model")] + ["--model=ride"],
                    timeout=180)
    self.assertEqual(other.returncode, 2, other.stderr[-2000:])
    self.assertIn("holds a run of mcgsm on deadleaves", one_line(other))
    # In process (what the command prints is the Refused's one line): changed settings.
    cases = {"architecture": (["--config.model.components=3"], "config.model.components: 2 -> 3"),
             "data": (["--config.data.flips=false"], "config.data.flips: True -> False"),
             "fewer steps than trained": (["--config.train.steps=2"], "trained for 4 steps")}
    for name, (extra, mentioned) in cases.items():
      with self.subTest(name):
        config = cli_config("mcgsm", "deadleaves", self.args + extra)
        with self.assertRaises(rundir.Refused) as refused:
          loop.train("mcgsm", "deadleaves", config, self.workdir, tf.distribute.get_strategy())
        self.assertIn(mentioned, str(refused.exception))
        self.assertNotIn("\n", str(refused.exception))
    self.assertEqual(tree(self.workdir), before)  # config.json untouched, nothing written
    exported = subprocess.run([sys.executable, "-m", "export.run", f"--workdir={self.workdir}",
                               f"--export_dir={os.path.join(self.get_temp_dir(), 'serving')}"],
                              cwd=ROOT, env=user_env(), capture_output=True, text=True, timeout=300)
    self.assertEqual(exported.returncode, 0, exported.stderr[-2000:])
    # Its model card carries the finished run's metrics (measured at the exported step).
    card = saved_model.read_model_card(exported.stdout.strip().splitlines()[-1])
    with open(os.path.join(self.workdir, "metrics.json")) as f:
      metrics = json.load(f)
    self.assertEqual(card["steps"], metrics["steps"])
    self.assertEqual(card["metrics"]["bit_per_px_rate"], metrics["bit_per_px_rate"])

  def test_z_more_steps_and_other_evaluation_are_recorded(self):
    result = run_cli(self.args + ["--config.train.steps=6", "--config.eval.max_patches=2",
                                  "--export=false"])
    self.assertEqual(result.returncode, 0, result.stderr[-2000:])
    self.assertIn("at step 4 with config.eval.max_patches, config.train.steps changed", result.stdout)
    with open(os.path.join(self.workdir, "run.json")) as f:
      reruns = json.load(f)["reruns"]
    self.assertEqual(reruns[-1]["step"], 4)
    self.assertEqual(reruns[-1]["changed"], {"config.eval.max_patches": [4, 2],
                                             "config.train.steps": [4, 6]})
    with open(os.path.join(self.workdir, "config.json")) as f:
      self.assertEqual(json.load(f)["train"]["steps"], 6)
    with open(os.path.join(self.workdir, "metrics.json")) as f:
      self.assertEqual(json.load(f)["steps"], 6)


class QuietTest(tf.test.TestCase):

  def test_errors_after_tensorflow_starts_are_still_one_line(self):
    # A workdir whose run.json names no model of the zoo: the other commands fail only
    # after TensorFlow has started, and TensorFlow's start-up lines must not show.
    workdir = os.path.join(self.get_temp_dir(), "strange")
    os.makedirs(os.path.join(workdir, "checkpoints"))
    for name, payload in (("run.json", {"model": "nope", "data": "deadleaves"}),
                          ("config.json", {})):
      with open(os.path.join(workdir, name), "w") as f:
        json.dump(payload, f)
    with open(os.path.join(workdir, "checkpoints", "checkpoint"), "w") as f:
      f.write('model_checkpoint_path: "ckpt-1"\n')
    out = os.path.join(self.get_temp_dir(), "out")
    commands = {"export.run": f"--export_dir={out}", "training.sample": f"--out={out}"}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:  # side by side
      results = {module: pool.submit(
          subprocess.run, [sys.executable, "-m", module, f"--workdir={workdir}", arg], cwd=ROOT,
          env=user_env(), capture_output=True, text=True, timeout=120)
                 for module, arg in commands.items()}
    for module in commands:
      with self.subTest(module):
        result = results[module].result()
        self.assertEqual(result.returncode, 2, result.stderr[-2000:])
        self.assertIn("cannot restore the run", one_line(result))
        self.assertIn("nope", result.stderr)
        self.assertFalse(os.path.exists(out))


class LockTest(tf.test.TestCase):

  def test_a_second_run_on_a_busy_workdir_is_refused_naming_the_holder(self):
    workdir = os.path.join(self.get_temp_dir(), "busy")
    with rundir.Lock(workdir):
      before = tree(workdir)
      result = run_cli(["--model=mcgsm", "--data=deadleaves", f"--workdir={workdir}", *TINY],
                       timeout=120)
      self.assertEqual(result.returncode, 2, result.stderr[-2000:])
      self.assertIn(f"in use by another run (PID {os.getpid()} on ", one_line(result))
      self.assertEqual(tree(workdir), before)
      with self.assertRaisesRegex(rundir.Refused, "in use"):  # also within one process
        with rundir.Lock(workdir):
          pass

  def test_a_killed_holder_never_blocks_the_rerun(self):
    workdir = os.path.join(self.get_temp_dir(), "killed")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from training import rundir\n"
         f"with rundir.Lock({workdir!r}):\n  print('locked', flush=True); time.sleep(600)"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
      self.assertEqual(holder.stdout.readline().strip(), "locked")
      with self.assertRaisesRegex(rundir.Refused, f"PID {holder.pid} on "):
        with rundir.Lock(workdir):
          pass
    finally:
      os.kill(holder.pid, signal.SIGKILL)
      holder.wait()
    with rundir.Lock(workdir):  # the OS released it with the process
      pass


class OfflineDataTest(tf.test.TestCase):

  def test_a_download_that_cannot_happen_fails_in_seconds_writing_nothing(self):
    tmp = self.get_temp_dir()
    data_dir, workdir = os.path.join(tmp, "tfds"), os.path.join(tmp, "never")
    os.makedirs(data_dir)
    datasets = ("mnist", "cifar10", "tfds:fashion_mnist")
    start = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
      runs = {data: pool.submit(run_cli, ["--model=pixelcnn", f"--data={data}",
                                          f"--workdir={workdir}", f"--data_dir={data_dir}"],
                                timeout=180, env=dict(user_env(), **OFFLINE)) for data in datasets}
    self.assertLess(time.time() - start, 90)  # TFDS's own retries take minutes for each
    for data in datasets:
      with self.subTest(data):
        result = runs[data].result()
        self.assertEqual(result.returncode, 2, result.stderr[-2000:])
        self.assertIn("cannot be downloaded here (127.0.0.1:9", one_line(result))
        self.assertIn("tfds build", result.stderr)
    self.assertFalse(os.path.exists(workdir))
    self.assertEqual(tree(data_dir), {})

  def test_a_failed_build_leaves_the_data_dir_as_it_was(self):

    class Broken(tfds.core.GeneratorBasedBuilder):
      """Writes part of its split, then fails, as an interrupted download would."""
      VERSION = tfds.core.Version("1.0.0")

      def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
            {"image": tfds.features.Image(shape=(4, 4, 1))}))

      def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

      def _generate_examples(self):
        yield 0, {"image": tf.zeros([4, 4, 1], tf.uint8).numpy()}
        raise ConnectionError("the network went away")

    data_dir = os.path.join(self.get_temp_dir(), "tfds")
    os.makedirs(os.path.join(data_dir, "kept"))
    before = tree(data_dir)
    with self.assertRaisesRegex(data_lib.DataError, "the network went away"):
      data_lib._prepare(Broken(data_dir=data_dir), "broken")  # pylint: disable=protected-access
    self.assertEqual(tree(data_dir), before)


if __name__ == "__main__":
  tf.test.main()
