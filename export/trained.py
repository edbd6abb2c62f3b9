"""Reads a training run's workdir: which model on which data, its config, its weights.

A workdir written by `python -m training.run` holds run.json ({"model", "data"}),
config.json and checkpoints/ (tf.train.Checkpoint with the model as `model`). Reading
one needs only the zoo, not `training/`, so the exporter and any other tool can load a
trained model.
"""
import json
import os

import ml_collections
import tensorflow as tf

import zoo
from zoo import contract


def read_run(workdir):
  """Returns (model name, data name, config) of the run in `workdir`."""
  with open(os.path.join(workdir, "run.json")) as f:
    run = json.load(f)
  with open(os.path.join(workdir, "config.json")) as f:
    config = ml_collections.ConfigDict(json.load(f))
  return run["model"], run["data"], config


def restore(workdir):
  """Returns (model name, config, model) of a trained run, weights from its latest checkpoint.

  FileNotFoundError without a checkpoint; ValueError for a model name the zoo lacks.
  """
  model_name, _, config = read_run(workdir)
  model = zoo.get(model_name).Model(config)
  latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  if latest is None:
    raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints; train first")
  # Every model variable must be there; the optimizers' slots are left unread.
  contract.checkpoint(model).restore(latest).assert_existing_objects_matched().expect_partial()
  return model_name, config, model
