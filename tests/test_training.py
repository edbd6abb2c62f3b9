"""The training loop and the command: strategies agree, runs resume, bad input is refused."""
import concurrent.futures
import json
import importlib
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from export import trained
from tests.conftest import mirrored_strategy
from training import data as data_lib
from training import images as images_lib
from training import loop
from training import steps
from zoo import contract

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Tiny model, tiny run: the CLI tests measure behaviour, not quality.
TINY = ["--config.model.components=2", "--config.model.scales=2", "--config.model.features=4",
        "--config.train.batch_size=4", "--config.data.patch_size=8", "--config.eval.max_patches=4",
        "--config.eval.batch_size=4", "--config.sample.size=8", "--config.sample.margin=2",
        "--config.sample.num=2", "--config.train.init_batches=1", "--config.train.log_every=1",
        # No figure.png: its inpainting adds seconds to every run (tests/test_images.py and
        # the ram:// run in tests/test_storage.py draw it).
        "--config.sample.figure=false",
        # Op by op: XLA's compile would add seconds to every process. TINY_XLA keeps the
        # default (the SIGKILL resume and the two-worker run check training under XLA).
        "--config.train.jit=false"]
TINY_XLA = TINY[:-1]


def user_env():
  """Returns the environment a user's shell would have (the test runner sets TF logging)."""
  return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def run_cli(args, timeout=300, env=None, **kwargs):
  """Runs `python -m training.run args` (from the repo root unless `cwd` is given) in a
  user's environment (or `env`); returns the CompletedProcess."""
  kwargs.setdefault("cwd", ROOT)
  return subprocess.run([sys.executable, "-m", "training.run", *args], env=env or user_env(),
                        capture_output=True, text=True, timeout=timeout, **kwargs)


class StrategyTest(tf.test.TestCase):

  def check_two_replicas_match_one(self, model_name, config, batches):
    results = {}
    strategies = (("default", tf.distribute.get_strategy()), ("mirrored", mirrored_strategy()))
    for name, strategy in strategies:
      model, optimizers, _ = steps.build(model_name, config, strategy)
      if contract.has(model, contract.INITIALIZE):
        model.initialize(batches[0]["images"])
      step = steps.make_train_step(model, optimizers, strategy, global_batch_size=8)
      ds = tf.data.Dataset.from_tensor_slices({k: tf.stack([b[k] for b in batches]) for k in batches[0]})
      losses = [float(step(batch)) for batch in strategy.experimental_distribute_dataset(ds)]
      results[name] = (losses, [v.numpy() for v in model.trainable_variables], strategy, model)
    self.assertEqual(results["mirrored"][2].num_replicas_in_sync, 2)
    self.assertAllClose(results["default"][0], results["mirrored"][0], rtol=1e-5)
    tf.keras.utils.set_random_seed(0)
    initial = steps.build(model_name, config)[0].trainable_variables
    for a, b in zip(results["default"][1], results["mirrored"][1]):
      self.assertAllClose(a, b, rtol=1e-4, atol=1e-6)
    # The step moved the parameters, so the comparison above is not vacuous.
    self.assertTrue(any(np.abs(a - v0.numpy()).max() > 1e-4
                        for v0, a in zip(initial, results["default"][1])))
    return {name: result[3] for name, result in results.items()}  # the two trained models

  def test_two_replicas_match_one_replica_with_batch_norm(self):
    # Batch norm's statistics are the global batch's (synchronised), so the split does not
    # matter, for the weights nor for the moving averages that evaluation uses.
    rng = np.random.default_rng(0)
    batches = [{"images": tf.constant(rng.integers(0, 256, [8, 8, 8, 1]), tf.uint8),
                "seeds": tf.constant(rng.integers(0, 2**40, [8, 2]), tf.int64)} for _ in range(2)]
    for name, overrides in (("msvae", dict(batch_norm=True)), ("gvae", dict(encoder="paper"))):
      with self.subTest(model=name):
        config = importlib.import_module(f"configs.{name}").get_config("tiny")
        config.data.image_shape = (8, 8, 1)
        config.model.update(overrides)
        models = self.check_two_replicas_match_one(name, config, batches)
        moving = {k: [v.numpy() for v in m.non_trainable_variables if "moving" in v.path]
                  for k, m in models.items()}
        self.assertNotEmpty(moving["default"])
        for a, b in zip(moving["default"], moving["mirrored"]):
          self.assertAllClose(a, b, rtol=1e-5, atol=1e-6)


class CommandTest(tf.test.TestCase):

  def test_bad_input_exits_2_with_one_line_and_writes_nothing(self):
    tmp = self.get_temp_dir()
    a_file = os.path.join(tmp, "a_file")
    with open(a_file, "w") as f:
      f.write("keep me")
    workdir = os.path.join(tmp, "never")
    cases = {
        "unknown model": (["--model=nope", "--data=deadleaves", f"--workdir={workdir}"], "mcgsm"),
        "unknown data": (["--model=mcgsm", "--data=nope", f"--workdir={workdir}"], "deadleaves"),
        "unknown config key": (["--model=mcgsm", "--data=deadleaves", f"--workdir={workdir}",
                                "--config.train.nope=1"], "nope"),
        "bad config value": (["--model=mcgsm", "--data=deadleaves", f"--workdir={workdir}",
                              "--config.train.steps=many"], "steps"),
        "a stray argument": (["--model=mcgsm", "--data=deadleaves", f"--workdir={workdir}",
                              "deadleaves"], "unexpected arguments deadleaves"),
        "multi_worker without TF_CONFIG": (["--model=mcgsm", "--data=deadleaves",
                                            f"--workdir={workdir}", "--strategy=multi_worker"],
                                           "needs TF_CONFIG"),
        "multi_worker with malformed TF_CONFIG": (
            ["--model=mcgsm", "--data=deadleaves", f"--workdir={workdir}",
             "--strategy=multi_worker"], "TF_CONFIG is not valid JSON", {"TF_CONFIG": "{cluster"}),
        "workdir is a file": (["--model=mcgsm", "--data=deadleaves", f"--workdir={a_file}"], "a_file"),
        "workdir under a file": (["--model=mcgsm", "--data=deadleaves",
                                  f"--workdir={a_file}/run"], "writable"),
        "data_dir is a file": (["--model=mcgsm", "--data=deadleaves", f"--workdir={workdir}",
                                f"--data_dir={a_file}"], f"--data_dir={a_file} is a file"),
        "no such config file": (["--model=mcgsm", "--data=deadleaves", f"--workdir={workdir}",
                                 f"--config={tmp}/nope.py"], "no such file"),
        "a config file that does not load": (["--model=mcgsm", "--data=deadleaves",
                                              f"--workdir={workdir}", f"--config={a_file}"],
                                             "cannot load --config"),
        "another model's config file": (
            ["--model=ride", "--data=deadleaves", f"--workdir={workdir}",
             f"--config={ROOT}/configs/mcgsm.py"], "does not configure ride: it lacks config."),
        # The README's relative configs/... path, outside the checkout: the packaged file
        # is found (the error is about the value, not the file).
        "configs/ path outside the checkout": (
            ["--model=mcgsm", "--data=deadleaves", f"--workdir={workdir}",
             "--config=configs/mcgsm.py:deadleaves", "--config.train.steps=0"],
            "config.train.steps=0 must be positive", {}, tmp),
    }

    def run_case(number, args, extra_env=None, cwd=ROOT):
      """Runs one case with a workdir and a TFDS data dir of its own; returns (result,
      workdir, data dir)."""
      own = os.path.join(tmp, f"case{number}")
      own_workdir, own_data_dir = os.path.join(own, "never"), os.path.join(own, "tfds")
      args = [a.replace(workdir, own_workdir) for a in args]
      if not any(a.startswith("--data_dir") for a in args):  # TFDS's data dir stays empty too
        args = args + [f"--data_dir={own_data_dir}"]
      result = run_cli(args, timeout=180, env=dict(user_env(), PYTHONPATH=ROOT, **(extra_env or {})),
                       cwd=cwd)
      return result, own_workdir, own_data_dir

    # Three at a time: each case is mostly a Python and TensorFlow start-up.
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
      runs = {name: pool.submit(run_case, i, args, *rest)  # rest: [environment[, cwd]]
              for i, (name, (args, _, *rest)) in enumerate(cases.items())}
    for name, (_, mentioned, *_) in cases.items():
      with self.subTest(name):
        result, own_workdir, own_data_dir = runs[name].result()
        self.assertEqual(result.returncode, 2, result.stderr[-2000:])
        self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
        self.assertIn(mentioned, result.stderr)
        self.assertFalse(os.path.exists(own_workdir))
        self.assertFalse(os.path.exists(own_data_dir))
    with open(a_file) as f:
      self.assertEqual(f.read(), "keep me")


  def test_flag_errors_come_before_tensorflow_is_imported(self):
    # A wrong model, data set, config key or workdir is refused at once: TensorFlow's
    # import (seconds) comes after the flags and the workdir are checked.
    code = ("import runpy, sys\n"
            "sys.argv = ['training.run'] + sys.argv[1:]\n"
            "try:\n  runpy.run_module('training.run', run_name='__main__')\n"
            "except SystemExit as e:\n  print(e.code, 'tensorflow' in sys.modules)\n")
    for args in (["--model=mcgsm", "--data=nope"], ["--model=ride", "--data=deadleaves",
                                                    "--config.train.nope=1"],
                 ["--model=mcgsm", "--data=digits", f"--workdir={os.devnull}/run"]):
      with self.subTest(" ".join(args)):
        result = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=user_env(),
                                capture_output=True, text=True, timeout=120)
        self.assertEqual(result.stdout.split(), ["2", "False"], result.stderr[-2000:])
        self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)

  def test_bad_config_values_are_refused_before_anything_is_written(self):
    # What the CLI turns into one line and exit status 2 (its translation is checked above
    # with "configs/ path outside the checkout"): the loop refuses these values with a
    # one-line ConfigError or DataError before it writes the workdir or the data dir.
    # In process: each case as a CLI start-up would cost about 10 s of TensorFlow start-up.
    cases = {
        "levels not dividing 256": ("pixelcnn", "digits", dict(model=dict(levels=3)),
                                    "must divide 256"),
        "class-conditional on unlabelled data": (
            "pixelcnn", "deadleaves", dict(model=dict(conditional="class")), "labelled dataset"),
        "no steps": ("mcgsm", "deadleaves", dict(train=dict(steps=0)),
                     "config.train.steps=0 must be positive"),
        "negative learning rate": ("mcgsm", "deadleaves", dict(train=dict(learning_rate=-0.1)),
                                   "must be positive"),
        "no batch": ("mcgsm", "deadleaves", dict(train=dict(batch_size=0)),
                     "config.train.batch_size=0 must be positive"),
        # RIDE's 64x64 evaluation patches in 32x32 faces: refused before training, not after.
        "evaluation patches larger than the images": (
            "mcgsm", "lfw_faces", {},
            "config.eval.patch_size asks for 64x64 patches but the images are 32x32"),
        "training patches larger than the images": (
            "ride", "digits", dict(eval=dict(patch_size=8)),
            "config.train.stages asks for 12x12 patches"),
    }
    for number, (name, (model, data, overrides, mentioned)) in enumerate(cases.items()):
      with self.subTest(name):
        config = importlib.import_module(f"configs.{model}").get_config(data)
        for section, fields in overrides.items():
          config[section].update(fields)
        own = os.path.join(self.get_temp_dir(), f"config_case{number}")
        workdir, data_dir = os.path.join(own, "never"), os.path.join(own, "tfds")
        with self.assertRaises((steps.ConfigError, data_lib.DataError)) as raised:
          loop.train(model, data, config, workdir, tf.distribute.get_strategy(), data_dir=data_dir)
        message = str(raised.exception)
        self.assertIn(mentioned, message)
        self.assertNotIn("\n", message)
        self.assertFalse(os.path.exists(workdir))
        self.assertFalse(os.path.exists(data_dir))

  def test_help_lists_the_flags_and_the_models_config_keys(self):
    result = run_cli(["--model=ride", "--help"], timeout=120)
    self.assertEqual(result.returncode, 0, result.stderr[-2000:])
    for wanted in ("usage: python -m training.run", "--workdir", "--strategy", "deadleaves",
                   "config.model.mcgsm_input", "config.train.steps"):
      self.assertIn(wanted, result.stdout)
    shown = run_cli(["--model=ride", "--data=deadleaves", "--config=configs/ride.py:paper",
                     "--config.train.steps=7", "--show_config", f"--workdir={self.get_temp_dir()}/w"],
                    timeout=120)
    self.assertEqual(shown.returncode, 0, shown.stderr[-2000:])
    self.assertIn("  steps: 7\n", shown.stdout)  # the override,
    self.assertIn("  mcgsm_input: hidden\n", shown.stdout)  # on the paper preset
    self.assertFalse(os.path.exists(f"{self.get_temp_dir()}/w"))
    for module in ("training.sample", "export.run"):
      with self.subTest(module):
        result = subprocess.run([sys.executable, "-m", module, "-h"], cwd=ROOT, env=user_env(),
                                capture_output=True, text=True, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertIn(f"usage: python -m {module}", result.stdout)
        self.assertIn("--workdir", result.stdout)


class PixelCNNTrainingTest(tf.test.TestCase):
  """The PixelCNN through the one loop: labels, requantised levels, samples, export."""

  def train(self, data_name, **model):
    config = importlib.import_module("configs.pixelcnn").get_config("tiny")
    config.model.update(model)
    config.train.update(steps=30, learning_rate=1e-2)
    config.sample.figure = True  # the tiny preset draws none; these runs check it
    workdir = os.path.join(self.get_temp_dir(), f"{data_name}-{len(os.listdir(self.get_temp_dir()))}")
    metrics = loop.train("pixelcnn", data_name, config, workdir, tf.distribute.get_strategy())
    return metrics, workdir

  def test_class_conditional_pixelcnn_learns_digits_and_exports_a_label_input(self):
    metrics, workdir = self.train("digits", conditional="class")
    # 30 steps take the 256-way softmax well below uniform (8 bits/dim): the 8x8 digits
    # use 17 grey levels, mostly 0.
    self.assertLess(metrics["bits_per_dim"], 6.0)
    self.assertEqual(metrics["test_patches"], 16)  # the tiny config's eval.max_patches
    loaded = tf.saved_model.load(metrics["export"])
    out = loaded.signatures["sample"](seed=tf.constant([[0, 1], [0, 2]], tf.int64),
                                      label=tf.constant([3, 7], tf.int32))
    self.assertEqual(out["images"].shape, (2, 8, 8, 1))
    png = tf.io.decode_png(tf.io.read_file(os.path.join(workdir, "samples.png"))).numpy()
    k = images_lib.scale_for((8, 8), 1, 2)  # 2 samples side by side, enlarged k times
    pad = images_lib.SEPARATOR
    self.assertEqual(png.shape, (8 * k + 2 * pad, 2 * (8 * k + pad) + pad, 1))
    self.assertGreaterEqual(png.shape[0], images_lib.MIN_SIDE)
    # Its figure: one row of samples per class, 10 digits.
    figure = tf.io.decode_png(tf.io.read_file(os.path.join(workdir, "figure.png"))).numpy()
    columns = images_lib.FIGURE_COLUMNS
    k = images_lib.scale_for((8, 8), 10, columns)
    self.assertEqual(figure.shape, (10 * (8 * k + pad) + pad, columns * (8 * k + pad) + pad, 1))

  def test_the_options_beyond_the_paper_train_through_the_loop_and_export(self):
    # The options beyond the paper (zoo.pixelcnn: Context, Normed, the linear gate, the
    # residual vertical stack): the loop runs the data-dependent initialisation before
    # the first step, and the export serves them.
    metrics, workdir = self.train("digits", output="logistic_mixture", mixtures=2, context=2,
                                  context_features=4, weight_norm=True, gate="linear",
                                  vertical_residual=True)
    self.assertLess(metrics["bits_per_dim"], 8.0)  # below uniform over 256 values
    model = trained.restore(workdir)[2]
    # Initialised: no scale is left at 1 (30 steps at 1e-2 would not move them this far).
    for scale in [v for v in model.trainable_variables if v.path.endswith("_scale")]:
      self.assertGreater(np.abs(scale.numpy() - 1.0).max(), 0.05, scale.path)
    loaded = tf.saved_model.load(metrics["export"])
    samples = loaded.signatures["sample"](seed=tf.constant([[0, 1], [0, 2]], tf.int64))["images"]
    scores = loaded.signatures["log_prob"](images=samples)
    self.assertEqual(samples.shape, (2, 8, 8, 1))
    self.assertAllClose(scores["log_prob"], model.log_prob(samples), rtol=1e-4)

  def test_binarised_mnist_under_mock_data(self):
    with tfds.testing.mock_data(num_examples=20):
      metrics, _ = self.train("mnist", levels=2, conditional="autoencoder")
    self.assertLess(metrics["bits_per_dim"], 1.0)  # a coin per pixel would be 1 bit/dim
    loaded = tf.saved_model.load(metrics["export"])
    images = tf.zeros([2, 28, 28, 1], tf.uint8)
    code = loaded.signatures["encode"](images=images)["code"]
    samples = loaded.signatures["sample"](seed=tf.constant([[0, 1], [0, 2]], tf.int64), code=code)
    self.assertTrue(set(np.unique(samples["images"].numpy())) <= {0, 1})


if __name__ == "__main__":
  tf.test.main()
