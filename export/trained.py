"""Reads a training run's workdir: which model on which data, its config, its weights.

A workdir written by `python -m training.run` holds run.json ({"model", "data"}),
config.json and checkpoints/ (tf.train.Checkpoint with the model as `model`). Reading
one needs only the zoo, not `training/`, so the exporter and any other tool can load a
trained model.
"""
import os

import ml_collections
import tensorflow as tf

import zoo
from export import storage
from zoo import contract


def read_run(workdir):
  """Returns (model name, data name, config) of the run in `workdir`."""
  run = storage.read_json(os.path.join(workdir, "run.json"))
  config = ml_collections.ConfigDict(storage.read_json(os.path.join(workdir, "config.json")))
  return run["model"], run["data"], config


def checkpoint_step(workdir):
  """Returns the training step of the run's latest checkpoint (0 without one)."""
  latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  return int(latest.rsplit("-", 1)[1]) if latest else 0


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


def run_card(workdir):
  """Returns what a model card says of the run in `workdir` (saved_model.model_card's
  `run`): model, data, config, the latest checkpoint's step, and the metrics of
  metrics.json when they were measured at that step (else none, and a note why)."""
  model_name, data_name, config = read_run(workdir)
  steps = checkpoint_step(workdir)
  path = os.path.join(workdir, "metrics.json")
  metrics = storage.read_json(path) if storage.isfile(path) else {}
  card = {"model": model_name, "data": data_name, "config": config.to_dict(), "steps": steps,
          "metric": zoo.get(model_name).METRIC, "metrics": None}
  if metrics.get("steps") == steps:
    card["metrics"] = {k: v for k, v in metrics.items() if k not in ("export", "finished")}
  else:
    card["metrics_note"] = (f"not evaluated at step {steps}: metrics.json "
                            + (f"is of step {metrics.get('steps')}" if metrics else "is absent"))
  return card
