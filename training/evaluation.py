"""Test metrics in the papers' units, ensembles, sample quality, and early stopping.

`evaluate` scores the held-out patches with the model's `eval_terms` (the metric named
by the model module's METRIC, converted by `zoo.units.METRICS`), adds the model's
EXTRAS, the quality of its samples (config.eval.sample_quality) and its ENSEMBLE
(config.eval.ensemble > 1). `EarlyStopping` scores the validation split after each stage.
"""
import os

import numpy as np
import tensorflow as tf

from export import storage
from training import batches as batches_lib
from training import rundir
from zoo import contract
from zoo import metrics as metrics_lib
from zoo import units


def evaluate(model, config, source, metric, split="test"):
  """Returns {metric: value, ...} on the held-out patches of `source` (a batches.Source),
  in the paper's units; `metric` is a key of zoo.units.METRICS (the model module's METRIC).

  split="validation" (early stopping) gives the model's metric alone.
  """
  labels = contract.LABEL in contract.conditioning(model, from_data=True)
  patches = batches_lib.eval_dataset(config, source, split, labels).batch(config.eval.batch_size)
  terms = tf.function(model.eval_terms)
  # Other per-example metrics of the model (e.g. a VAE's reconstruction error): mean and std.
  extras = (tf.function(model.eval_extras) if contract.has(model, contract.EXTRAS)
            else lambda *args, **kwargs: {})
  nats, dims, count, extra = 0.0, 0.0, 0, {}
  for i, (batch, *label) in enumerate(patches):
    seeds = batches_lib.eval_seeds(config, i, tf.shape(batch)[0])
    cond = {contract.LABEL: label[0]} if label else {}
    n, d = terms(batch, seeds, **cond)
    nats, dims, count = nats + float(tf.reduce_sum(n)), dims + float(tf.reduce_sum(d)), count + len(n)
    for name, values in extras(batch, seeds, **cond).items():
      extra.setdefault(name, []).append(values.numpy())
  to_units, _ = units.METRICS[metric]
  result = {metric: float(to_units(nats, dims)), "test_patches": count,
            "test_patch_size": config.eval.patch_size}
  if split != "test":
    return {metric: result[metric]}
  for name, values in extra.items():
    values = np.concatenate(values)
    result.update({name: float(values.mean()), f"{name}_std": float(values.std())})
  quality = config.eval.get("sample_quality", 0)
  if quality and not contract.conditioning(model):
    result.update(sample_quality(model, config, patches.unbatch(), quality))
  members = config.eval.get("ensemble", 1)
  if members > 1 and contract.has(model, contract.ENSEMBLE):
    result.update(ensemble(model, config, patches, metric, members))
  return result


def sample_quality(model, config, patches, num):
  """Returns `zoo.metrics.sample_quality` of min(num, test images) samples (seeds
  (config.eval.seed, k)) against as many held-out images: MMD^2 and MS-SSIM diversity."""
  held_out = np.concatenate([batch.numpy() for batch, *_ in patches.take(num).batch(256)])
  num = len(held_out)
  sampler = tf.function(model.sample)
  seeds = np.stack([np.full(num, config.eval.seed), np.arange(num)], 1).astype(np.int64)
  samples = np.concatenate([sampler(tf.constant(seeds[k:k + 256])).numpy() for k in range(0, num, 256)])
  to_255 = 255.0 / (config.model.get("levels", 256) - 1)
  return metrics_lib.sample_quality(samples * to_255, held_out * to_255)


def ensemble(model, config, patches, metric, members):
  """Returns the ensemble's metric and the single model's, both on the patches' central
  pixels (`ensemble_terms`); `patches` are batches of (images,)."""
  to_units, _ = units.METRICS[metric]
  of_ensemble = tf.function(lambda x, s: model.ensemble_terms(x, s, members))
  of_single = tf.function(lambda x, s: model.ensemble_terms(x, s, 1))
  sums = np.zeros(3)  # ensemble nats, single nats, pixels
  for i, (batch,) in enumerate(patches):  # models with ensembles take no label
    seeds = batches_lib.eval_seeds(config, i, tf.shape(batch)[0])
    (n_ens, d), (n_one, _) = of_ensemble(batch, seeds), of_single(batch, seeds)
    sums += [float(tf.reduce_sum(n_ens)), float(tf.reduce_sum(n_one)), float(tf.reduce_sum(d))]
  return {f"{metric}_central": float(to_units(sums[1], sums[2])),
          f"{metric}_ensemble{members}_central": float(to_units(sums[0], sums[2]))}


class EarlyStopping:
  """config.train.early_stopping (RIDE section 3; the authors' train.py): the validation
  metric before training and after every stage; when a stage makes it worse, the best
  stage's weights come back and training stops.

  The state (best score, the last stage checked, stopped) is <write_dir>/early_stopping.json
  and the best weights checkpoints/best/, so a resumed run takes the same decisions; on
  stopping, the best weights are also saved as the latest checkpoint, which is what
  `export.run` and `training.sample` load.
  """

  def __init__(self, model, config, source, metric, write_dir):
    self.score = lambda: evaluate(model, config, source, metric, "validation")[metric]
    self.metric = metric
    _, self.higher_is_better = units.METRICS[metric]
    self.path = os.path.join(write_dir, "early_stopping.json")
    self.weights = contract.checkpoint(model)
    self.prefix = os.path.join(write_dir, "checkpoints", "best", "weights")
    self.state = None
    if storage.exists(self.path):
      self.state = storage.read_json(self.path)

  def start(self):
    """Scores the untrained model (a new run); a DataError here if there is no validation split."""
    if self.state is None:
      score = self.score()
      print(f"validation {self.metric} before training: {score:.4f}", flush=True)
      self._keep(score, 0)

  @property
  def stopped(self):
    return bool(self.state and self.state["stopped"])

  def needs_check(self, stage_end):
    return self.state["checked"] < stage_end

  def after_stage(self, step, manager):
    """Returns True if training stops here (the best weights then are in the model)."""
    score = self.score()
    best = self.state["best"]
    if (score > best) if self.higher_is_better else (score < best):
      print(f"validation {self.metric} after step {step}: {score:.4f} (best so far)", flush=True)
      self._keep(score, step)
      return False
    print(f"validation {self.metric} after step {step}: {score:.4f}, not better than "
          f"{best:.4f} (step {self.state['step']}): early stop with those weights", flush=True)
    self.weights.read(self.prefix).assert_existing_objects_matched()
    rundir.save_checkpoint(manager, step)
    self.state.update(checked=step, stopped=True, stopped_score=score)
    rundir.write_json(self.path, self.state)
    return True

  def _keep(self, score, step):
    self.weights.write(self.prefix)
    self.state = dict(best=score, step=step, checked=step, stopped=False)
    rundir.write_json(self.path, self.state)
