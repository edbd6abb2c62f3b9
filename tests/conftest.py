"""Test-session set-up: two logical CPU devices, so MirroredStrategy has 2 replicas.

Logical devices must be configured before TensorFlow initialises its runtime, so this
runs when pytest imports the test package, before any test module.
"""
import tensorflow as tf

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

_MIRRORED = []


def mirrored_strategy():
  """Returns the one MirroredStrategy over the two logical CPUs of this test process: two
  instances in one process can hand out clashing collective instance keys."""
  if not _MIRRORED:
    _MIRRORED.append(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
  return _MIRRORED[0]


# -- tiny models of every registry entry: the contract tests and the export tests ----------

import importlib  # pylint: disable=g-import-not-at-top,wrong-import-position

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

import zoo  # pylint: disable=g-import-not-at-top,wrong-import-position
from zoo import contract  # pylint: disable=g-import-not-at-top,wrong-import-position

# Models with conditioning or other forms are also checked in those variants:
# (registry name, variant name) -> config.model overrides.
VARIANTS = {"pixelcnn": {"Class": dict(conditional="class", spatial=True),
                         "Autoencoder": dict(conditional="autoencoder"),
                         "Mixture": dict(output="logistic_mixture", mixtures=2)},
            "vae": {"Gaussian": dict(likelihood="gaussian")},  # log_prob dequantises
            # Batch norm: the export must use (and hold) the moving averages.
            "msvae": {"Paper": dict(batch_norm=True, downsamples=3, likelihood="gaussian")},
            "gvae": {"Paper": dict(encoder="paper", penalty_on="prior_and_reconstruction")}}


def registry_variants():
  """Returns [(model name, variant, overrides)]: every registry model, plain and in its VARIANTS."""
  return [(name, variant, overrides) for name in zoo.NAMES
          for variant, overrides in [("", {}), *VARIANTS.get(name, {}).items()]]


def tiny_config(name="mcgsm", image_shape=(8, 10, 1), **model_overrides):
  """Returns model `name`'s "tiny" config: small enough to build and export in seconds."""
  config = importlib.import_module(f"configs.{name}").get_config("tiny")
  config.inpaint = dict(sweeps=2)  # the exported inpaint's options come from the config
  # What the training loop adds from the data (models that need it read it): the test
  # images' size, and 3 classes for class-conditional models.
  config.data.image_shape = image_shape
  config.data.num_classes = 3
  config.model.update(model_overrides)
  return config


def tiny_model(config, name="mcgsm"):
  """Returns an untrained model whose data-dependent parts are fitted on random images."""
  model = zoo.get(name).Model(config)
  if contract.has(model, contract.INITIALIZE):
    model.initialize(tf.constant(np.random.RandomState(0).randint(0, 256, [4, 16, 16, 1]), tf.uint8))
  return model


def tiny_run_config(**train):
  """Returns a config for short training runs of a tiny MCGSM (the loop's tests), with
  config.train fields overridden by `train`."""
  config = importlib.import_module("configs.mcgsm").get_config()
  config.model.update(components=2, scales=2, features=4)
  config.train.update(batch_size=4, init_batches=1, log_every=1, **train)
  config.data.update(patch_size=8)
  config.eval.update(max_patches=4, batch_size=4)
  config.sample.update(size=8, margin=2, num=2, figure=False)  # figure: tests/test_images.py
  return config
