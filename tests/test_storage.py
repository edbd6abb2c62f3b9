"""Runs and exports on TensorFlow's other filesystems (export/storage.py): a whole short
run, its samples and its export on `ram://` (in memory, this process), the export loaded
back from there; crashes between writing and publishing; the model card; the
evaluation metrics in TensorBoard."""
import os
import subprocess
import sys
from unittest import mock
import uuid

import numpy as np
import tensorflow as tf
from tensorflow.core.util import event_pb2

from export import saved_model
from export import storage
from export import trained
from training import images as images_lib
from training import loop
from training import rundir
from tests.conftest import tiny_model
from tests.conftest import tiny_run_config


def dead_pid():
  """Returns the PID of a process that has ended (so none runs with it now)."""
  child = subprocess.Popen([sys.executable, "-c", "pass"])
  child.wait()
  return child.pid


def summaries(tensorboard_dir):
  """Returns {(tag, step): value} of the summaries in a run's TensorBoard files (a float
  for a scalar, the list of encoded strings for an image)."""
  found = {}
  for path in tf.io.gfile.glob(os.path.join(tensorboard_dir, "events.out.tfevents.*")):
    for record in tf.data.TFRecordDataset(path):
      event = event_pb2.Event.FromString(record.numpy())
      for value in event.summary.value:
        array = tf.make_ndarray(value.tensor)
        found[(value.tag, event.step)] = float(array) if array.ndim == 0 else list(array)
  return found


def eval_scalars(tensorboard_dir):
  """Returns {(tag, step): value} of the `eval/` scalars in a run's TensorBoard files."""
  return {key: value for key, value in summaries(tensorboard_dir).items()
          if key[0].startswith("eval/")}


class RamRunTest(tf.test.TestCase):
  """One tiny MCGSM run with its workdir and export dir on ram://."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.workdir = f"ram://runs-{uuid.uuid4().hex}/mcgsm"
    cls.config = tiny_run_config(steps=3, checkpoint_every=2, jit=False)
    cls.config.sample.figure = True  # the MCGSM's figure (an inpainting) to ram:// too
    cls.metrics = loop.train("mcgsm", "deadleaves", cls.config, cls.workdir,
                             tf.distribute.get_strategy())

  def test_the_run_writes_everything_to_the_url(self):
    names = set(storage.listdir(self.workdir))
    self.assertContainsSubset({"run.json", "config.json", "checkpoints", "tensorboard",
                               "samples.png", "figure.png", "metrics.json", "export"}, names)
    self.assertNotIn("lock", names)  # the note of who holds the workdir is gone after the run
    self.assertEqual(storage.read_json(os.path.join(self.workdir, "metrics.json"))["steps"], 3)
    self.assertEqual(tf.train.latest_checkpoint(os.path.join(self.workdir, "checkpoints")),
                     os.path.join(self.workdir, "checkpoints", "ckpt-3"))
    self.assertFalse(any(name.startswith(".tmp") or ".tmp-" in name for name in names))

  def test_the_export_loads_from_the_url_and_samples(self):
    version = self.metrics["export"]
    self.assertEqual(version, os.path.join(self.workdir, "export", "1"))
    self.assertEqual(saved_model.versions(os.path.join(self.workdir, "export")), [1])
    loaded = tf.saved_model.load(version)
    images = loaded.signatures["sample"](seed=tf.constant([[0, 0], [0, 1]], tf.int64))["images"]
    self.assertEqual(images.shape, (2, 8, 8, 1))
    self.assertEqual(images.dtype, tf.uint8)
    scores = loaded.signatures["log_prob"](images=images)
    self.assertAllEqual(tf.math.is_finite(scores["log_prob"]), [True, True])
    self.assertContainsSubset({"sample", "log_prob"}, saved_model.replay_warmup(version))  # as TF Serving

  def test_the_model_card_says_what_the_export_is(self):
    card = saved_model.read_model_card(self.metrics["export"])
    self.assertEqual(card["format"], saved_model.MODEL_CARD_FORMAT)
    self.assertEqual((card["model"], card["data"], card["steps"]), ("mcgsm", "deadleaves", 3))
    self.assertEqual(card["metric"], "bit_per_px_rate")
    self.assertEqual(card["metrics"]["bit_per_px_rate"], self.metrics["bit_per_px_rate"])
    self.assertEqual(card["metrics"]["weights_sha256"], self.metrics["weights_sha256"])
    self.assertEqual(card["config"]["model"]["components"], 2)
    loaded = tf.saved_model.load(self.metrics["export"])
    self.assertEqual(set(card["signatures"]), set(loaded.signatures))
    self.assertEqual(card["signatures"]["sample"]["inputs"]["seed"], {"dtype": "int64", "shape": [-1, 2]})
    self.assertEqual(card["signatures"]["log_prob"]["inputs"]["images"]["dtype"], "uint8")
    self.assertIn("log_prob", card["signatures"]["log_prob"]["outputs"])
    self.assertEqual(card["code"]["genzoo"], "0.1.0")
    self.assertEqual(card["tensorflow"], tf.__version__)
    self.assertRegex(card["exported"], r"^\d{4}-\d\d-\d\dT")
    if os.path.isdir(os.path.join(os.path.dirname(os.path.dirname(__file__)), ".git")):
      self.assertRegex(card["code"]["git_revision"], r"^[0-9a-f]{40}$")

  def test_the_evaluation_metrics_reach_tensorboard(self):
    scalars = eval_scalars(os.path.join(self.workdir, "tensorboard"))
    self.assertIn(("eval/bit_per_px_rate", 3), scalars)
    self.assertAllClose(scalars[("eval/bit_per_px_rate", 3)], self.metrics["bit_per_px_rate"])
    self.assertIn(("eval/final_train_loss", 3), scalars)
    self.assertFalse(any("sha256" in tag or tag == "eval/steps" for tag, _ in scalars))

  def test_the_figure_is_in_the_workdir_and_in_tensorboard(self):
    figure = tf.io.decode_png(storage.read_bytes(os.path.join(self.workdir, "figure.png")))
    self.assertGreaterEqual(min(figure.shape[:2]), 512)
    # A TensorBoard image is [width, height, PNG bytes...]: the same picture.
    image = summaries(os.path.join(self.workdir, "tensorboard"))[("figure", 3)]
    self.assertEqual([int(image[0]), int(image[1])], [figure.shape[1], figure.shape[0]])
    self.assertAllEqual(tf.io.decode_png(image[2]), figure)

  def test_a_rerun_finds_the_finished_run_and_sampling_reads_the_url(self):
    again = loop.train("mcgsm", "deadleaves", self.config, self.workdir, tf.distribute.get_strategy())
    self.assertTrue(again["finished"])
    out = os.path.join(self.workdir, "grid.png")
    images_lib.write_png(out, images_lib.run_samples(self.workdir, 3, 0))
    grid = tf.io.decode_png(storage.read_bytes(out))
    self.assertEqual(grid.shape[-1], 1)
    self.assertGreater(int(tf.reduce_max(grid)), 0)

  def test_export_run_writes_a_card_from_the_workdir(self):
    card = trained.run_card(self.workdir)
    self.assertEqual(card["steps"], 3)
    self.assertEqual(card["metrics"]["bit_per_px_rate"], self.metrics["bit_per_px_rate"])


class RamResumeTest(tf.test.TestCase):

  def test_a_rerun_with_more_steps_resumes_from_the_url_and_records_the_change(self):
    workdir = f"ram://resume-{uuid.uuid4().hex}/mcgsm"
    strategy = tf.distribute.get_strategy()
    loop.train("mcgsm", "deadleaves", tiny_run_config(steps=2, checkpoint_every=1, jit=False),
               workdir, strategy, export=False)
    with mock.patch("builtins.print") as printed:
      metrics = loop.train("mcgsm", "deadleaves",
                           tiny_run_config(steps=3, checkpoint_every=1, jit=False), workdir,
                           strategy, export=False)
    said = " ".join(str(c.args[0]) for c in printed.call_args_list if c.args)
    self.assertIn(f"resuming from {workdir}/checkpoints/ckpt-2 at step 2", said)
    self.assertEqual(metrics["steps"], 3)
    run = storage.read_json(os.path.join(workdir, "run.json"))
    self.assertEqual(run["reruns"][-1]["changed"], {"config.train.steps": [2, 3]})
    self.assertEqual(storage.read_json(os.path.join(workdir, "metrics.json"))["steps"], 3)


class RamPublishTest(tf.test.TestCase):
  """Publishing off a local disk: copied file by file, saved_model.pb last."""

  def setUp(self):
    super().setUp()
    self.export_dir = f"ram://exports-{uuid.uuid4().hex}/mcgsm"
    self.config = tiny_run_config()
    self.config.sample.update(size=8, margin=2)
    self.model = tiny_model(self.config)

  def test_a_failed_copy_publishes_nothing_and_leaves_nothing(self):
    self.assertEqual(saved_model.export(self.model, self.config, self.export_dir),
                     os.path.join(self.export_dir, "1"))
    before = storage.read_bytes(os.path.join(self.export_dir, "1", "saved_model.pb"))
    copied = []
    real_copy = tf.io.gfile.copy

    def failing_copy(src, dst, overwrite=False):
      if len(copied) == 3:
        raise tf.errors.UnavailableError(None, None, "connection reset")
      copied.append(dst)
      real_copy(src, dst, overwrite=overwrite)

    with mock.patch.object(tf.io.gfile, "copy", side_effect=failing_copy):
      with self.assertRaises(tf.errors.UnavailableError):
        saved_model.export(self.model, self.config, self.export_dir)
    self.assertLen(copied, 3)
    self.assertTrue(all("/2/" in path for path in copied))  # it got as far as version 2
    self.assertFalse(any(path.endswith("saved_model.pb") for path in copied))  # the pb comes last
    self.assertEqual(storage.listdir(self.export_dir), ["1"])
    self.assertEqual(storage.read_bytes(os.path.join(self.export_dir, "1", "saved_model.pb")), before)

  def test_what_a_killed_export_left_is_cleaned_up_by_the_next(self):
    first = saved_model.export(self.model, self.config, self.export_dir)
    pid = dead_pid()
    marker = lambda version: storage.join(self.export_dir, saved_model._marker_name(version, pid))  # pylint: disable=protected-access
    # A process killed while copying version 2: its verified temporary dir, its marker,
    # and a version 2 that has everything but saved_model.pb.
    tmp = storage.join(self.export_dir, saved_model._tmp_name(self.export_dir, 2, pid))  # pylint: disable=protected-access
    storage.copy_tree(first, tmp)
    partial = storage.join(self.export_dir, "2")
    storage.copy_tree(first, partial)
    storage.remove(storage.join(partial, "saved_model.pb"))
    storage.write_bytes(marker(2), b"")
    # One killed after its last copy, before removing its marker: version 1 is whole.
    storage.write_bytes(marker(1), b"")
    # What another host's export left cannot be judged from here: it stays.
    other = storage.join(self.export_dir, f".tmp-7-elsewhere-{pid}")
    storage.copy_tree(first, other)
    self.assertEqual(saved_model.versions(self.export_dir), [1, 2])

    self.assertEqual(saved_model.export(self.model, self.config, self.export_dir), partial)
    self.assertEqual(sorted(storage.listdir(self.export_dir)),
                     sorted(["1", "2", os.path.basename(other)]))
    for version in (first, partial):
      self.assertTrue(storage.isfile(storage.join(version, "saved_model.pb")))
      tf.saved_model.load(version)


class RamWorkdirTest(tf.test.TestCase):

  def test_json_writes_are_whole_or_not_at_all(self):
    path = f"ram://json-{uuid.uuid4().hex}/metrics.json"
    storage.makedirs(os.path.dirname(path))
    rundir.write_json(path, {"a": 1})
    with mock.patch.object(tf.io.gfile, "rename",
                           side_effect=tf.errors.ResourceExhaustedError(None, None, "quota")):
      with self.assertRaisesRegex(rundir.TrainingStopped, f"could not write {path}: quota"):
        rundir.write_json(path, {"a": 2})
    self.assertEqual(storage.read_json(path), {"a": 1})
    self.assertEqual(storage.listdir(os.path.dirname(path)), ["metrics.json"])

  def test_without_file_locks_a_stale_holder_is_named_and_the_run_goes_on(self):
    workdir = f"ram://lock-{uuid.uuid4().hex}/run"
    storage.makedirs(workdir)
    storage.write_bytes(os.path.join(workdir, "lock"), b"4242 otherhost\n")
    with mock.patch("builtins.print") as printed:
      with rundir.Lock(workdir):
        holder = storage.read_bytes(os.path.join(workdir, "lock")).decode().split()
        self.assertEqual(holder[0], str(os.getpid()))
    said = " ".join(str(c.args[0]) for c in printed.call_args_list)
    self.assertIn("PID 4242 on otherhost", said)
    self.assertIn("no file locks", said)
    self.assertFalse(storage.exists(os.path.join(workdir, "lock")))

  def test_the_commands_refuse_a_filesystem_tensorflow_lacks_in_one_line(self):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-m", "training.run", "--model=mcgsm",
                             "--data=deadleaves", "--workdir=nosuchfs://bucket/run"],
                            cwd=root, env=env, capture_output=True, text=True, timeout=300)
    self.assertEqual(result.returncode, 2, result.stderr[-2000:])
    self.assertEqual(result.stderr.strip(), "error: --workdir=nosuchfs://bucket/run: TensorFlow has "
                     "no filesystem for nosuchfs:// (s3:// and others need `pip install "
                     "tensorflow-io` and `import tensorflow_io`); give a local path or one of "
                     "gs://, hdfs://, ram://")

  def test_a_filesystem_tensorflow_lacks_is_one_line(self):
    problem = storage.check_filesystem("nosuchfs://bucket/run")
    self.assertIn("no filesystem for nosuchfs://", problem)
    self.assertNotIn("\n", problem)
    self.assertIsNone(storage.check_filesystem("ram://anything"))
    self.assertIsNone(storage.check_filesystem(self.get_temp_dir()))


if __name__ == "__main__":
  tf.test.main()
