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
  # The optimizers' slots are in the checkpoint too; only the model's weights are read.
  tf.train.Checkpoint(model=model).restore(latest).expect_partial()
  return model_name, config, model
