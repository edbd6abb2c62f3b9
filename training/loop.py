"""The one training loop, used for every tf.distribute strategy.

Keras 3's `model.fit` breaks under MultiWorkerMirroredStrategy, so every model trains
here: `strategy.run` of one `tf.function` step, the loss averaged over the *global*
batch with `tf.nn.compute_average_loss`, and a `tf.train.CheckpointManager` in the
workdir so that rerunning the same command resumes where it stopped.

Workdir layout: run.json (model, data), config.json, checkpoints/, tensorboard/,
samples.png, metrics.json, export/<version>/.
"""
import functools
import hashlib
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import weakref

import keras
import ml_collections
import numpy as np
import tensorflow as tf

import zoo
from zoo import metrics as metrics_lib
from zoo import units
from training import cli
from training import data as data_lib
from training import images as images_lib


class Progress:
  """A one-line progress bar (redrawn on a terminal, one line per update in a log)."""

  def __init__(self, total, start):
    self.total, self.start, self.t0 = total, start, time.time()
    self.tty = sys.stdout.isatty()

  def update(self, step, loss, pixels_per_second):
    done = (step - self.start) / max(self.total - self.start, 1)
    eta = (time.time() - self.t0) * (1 - done) / max(done, 1e-9)
    bar = "#" * int(20 * step / self.total)
    line = (f"[{bar:<20}] step {step}/{self.total}  loss {loss:.4f}  "
            f"{pixels_per_second:,.0f} px/s  eta {eta:.0f}s")
    print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", flush=True)

  def close(self):
    if self.tty:
      print()


def make_strategy(name):
  """Returns the tf.distribute strategy for --strategy=auto|multi_worker|default."""
  if name == "auto":
    return tf.distribute.MirroredStrategy()  # all local GPUs, or the CPU
  if name == "multi_worker":
    return tf.distribute.MultiWorkerMirroredStrategy()  # reads TF_CONFIG
  if name == "default":
    return tf.distribute.get_strategy()
  raise ValueError(f"unknown strategy {name!r}; valid: auto, multi_worker, default")


def is_chief(strategy):
  """Returns True for the one process that writes checkpoints, summaries and exports."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return True
  return resolver.task_type == "chief" or (
      resolver.task_type == "worker" and resolver.task_id == 0
      and "chief" not in resolver.cluster_spec().as_dict())


class StagedCosine(keras.optimizers.schedules.LearningRateSchedule):
  """Cosine decay from `peak` to peak/10 over `total` steps, with a linear warm-up of
  `warmup` steps after each stage boundary in `restarts`.

  A new stage can start training weights that were frozen (RIDE's spatial LSTM, whose
  Adam moments are still zero): full-size first steps there throw a tuned MCGSM off.
  """

  def __init__(self, peak, total, restarts=(), warmup=0):
    self.peak, self.total, self.restarts, self.warmup = peak, max(total, 1), list(restarts), warmup

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    progress = tf.minimum(step / self.total, 1.0)
    rate = self.peak * (0.1 + 0.9 * 0.5 * (1.0 + tf.cos(math.pi * progress)))
    if self.warmup and self.restarts:
      since = step - tf.constant(self.restarts, tf.float32)  # [R]
      last = tf.reduce_min(tf.where(since >= 0, since, float("inf")))  # steps since the last one
      rate *= tf.minimum(1.0, (last + 1.0) / self.warmup)
    return rate

  def get_config(self):
    return dict(peak=self.peak, total=self.total, restarts=self.restarts, warmup=self.warmup)


class StagedConstant(keras.optimizers.schedules.LearningRateSchedule):
  """rates[k] throughout stage k (stages begin at `boundaries`, after the first): RIDE's
  authors lower the rate after each pass (1, 0.5, 0.1, ..., 5e-4 in their train.py)."""

  def __init__(self, rates, boundaries):
    self.rates, self.boundaries = list(rates), list(boundaries)

  def __call__(self, step):
    index = tf.reduce_sum(tf.cast(tf.cast(step, tf.int64) >= tf.constant(self.boundaries, tf.int64),
                                  tf.int32)) if self.boundaries else 0
    return tf.gather(tf.constant(self.rates, tf.float32), index)

  def get_config(self):
    return dict(rates=self.rates, boundaries=self.boundaries)


def schedule(config):
  """Returns the learning-rate schedule: `config.train.stage_learning_rates` ("1, 0.5, ...",
  one per stage) if set, else a cosine decay from config.train.learning_rate."""
  plan = stages(config)
  boundaries = [stage["begin"] for stage in plan[1:]]
  spec = config.train.get("stage_learning_rates", "")
  if not spec:
    return StagedCosine(config.train.learning_rate, config.train.steps, boundaries,
                        config.train.get("stage_warmup", 0))
  try:
    rates = [float(rate) for rate in spec.split(",")]
  except ValueError:
    rates = []
  if len(rates) != len(plan) or not all(rate > 0 for rate in rates):
    raise ValueError(f"config.train.stage_learning_rates={spec!r}: give {len(plan)} positive "
                     "numbers, one per stage of config.train.stages")
  return StagedConstant(rates, boundaries)


def build(model_name, config, strategy=None):
  """Returns (model, optimizers, checkpoint) built under `strategy`'s scope.

  `optimizers` is a dict of part -> optimizer whose first entry counts the training
  steps: {"model": one optimizer} for most models; a model with `make_optimizers`
  (GVAE: generator and critic) makes its own, one per part (`model.trainable_for`),
  and trains them in its `training_phases`. The checkpoint holds the first as
  `optimizer` and the others as `<part>_optimizer`.
  """
  strategy = strategy or tf.distribute.get_strategy()
  with strategy.scope():
    model = zoo.get(model_name).Model(config)
    rate = schedule(config)
    if hasattr(model, "make_optimizers"):
      optimizers = model.make_optimizers(rate)
      for part, optimizer in optimizers.items():
        optimizer.build(model.trainable_for(part))
    else:
      if config.train.get("optimizer", "adam") == "sgd":  # RIDE section 3: SGD, momentum 0.9
        optimizer = keras.optimizers.SGD(rate, momentum=0.9)
      else:
        optimizer = keras.optimizers.Adam(rate)
      optimizer.build(model.trainable_variables)
      optimizers = {"model": optimizer}
    (_, main), *others = optimizers.items()
    checkpoint = tf.train.Checkpoint(model=model, optimizer=main,
                                     **{f"{part}_optimizer": opt for part, opt in others})
  return model, optimizers, checkpoint


def restore(workdir):
  """Returns (model name, config, model) of a trained run, weights from its latest checkpoint."""
  with open(os.path.join(workdir, "run.json")) as f:
    run = json.load(f)
  with open(os.path.join(workdir, "config.json")) as f:
    config = ml_collections.ConfigDict(json.load(f))
  model, _, checkpoint = build(run["model"], config)
  latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  if latest is None:
    raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints; train first")
  checkpoint.restore(latest).expect_partial()
  return run["model"], config, model


def _step_seeds(seed, steps, batch_size):
  """Returns a dataset of int64 [batch_size, 2] seeds, one per step, keyed by (seed, step)."""
  return steps.map(lambda s: tf.random.stateless_uniform(
      [batch_size, 2], [seed, s], minval=0, maxval=2**62, dtype=tf.int64))


def stages(config):
  """Returns the training stages: dicts with begin, end (global steps), patch_size, part.

  `config.train.stages` (optional) is a string "part:patch:fraction, ..." (RIDE:
  "mcgsm:16:0.4, all:12:0.3, all:16:0.3"): each stage trains `part` of the model
  (`model.trainable_for`) on patches of `patch` pixels for `fraction` of train.steps.
  Without it there is one stage over config.data.patch_size.
  """
  total = config.train.steps
  spec = config.train.get("stages")
  if not spec:
    return [dict(begin=0, end=total, patch_size=config.data.patch_size, part=None)]
  out, begin, acc = [], 0, 0.0
  items = [item.strip() for item in spec.split(",") if item.strip()]
  for k, item in enumerate(items):
    try:
      part, patch, fraction = item.split(":")
      patch, fraction = int(patch), float(fraction)
    except ValueError:
      raise ValueError(f"bad stage {item!r} in config.train.stages={spec!r}; "
                       "write part:patch:fraction, e.g. 'mcgsm:16:0.4, all:16:0.6'") from None
    acc += fraction
    end = total if k == len(items) - 1 else min(total, round(acc * total))
    out.append(dict(begin=begin, end=end, patch_size=patch, part=part))
    begin = end
  return out


def requantize(images, levels):
  """Returns uint8 images with values in [0, levels): u // (256 / levels) (levels divides 256).

  levels=2 thresholds at 128: the binarised MNIST of the PixelCNN literature.
  """
  if levels == 256:
    return images
  return images // tf.constant(256 // levels, tf.uint8)


class ConfigError(ValueError):
  """The config asks for something the model or data cannot do; the message is one line."""


class TrainingStopped(RuntimeError):
  """Training stopped early, with the message as one line: `exit_code` 1 for a fault
  (non-finite loss, a write that failed), 143 after SIGTERM (checkpoint saved)."""

  def __init__(self, message, exit_code=1):
    super().__init__(message)
    self.exit_code = exit_code


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


class _Preemption:
  """Notes SIGTERM (a scheduler's preemption) so the loop can checkpoint and stop between
  steps; restores the previous handler on exit. A no-op outside the main thread."""

  def __enter__(self):
    self.received, self.previous = False, None
    if threading.current_thread() is threading.main_thread():
      self.previous = signal.signal(signal.SIGTERM, self._note)
    return self

  def _note(self, signum, frame):
    del signum, frame
    self.received = True

  def __exit__(self, *exc):
    if self.previous is not None:
      signal.signal(signal.SIGTERM, self.previous)


def _save(manager, step):
  """Saves a checkpoint; a failed write (disk full, file too large, unwritable) becomes
  one line, and the checkpoints already written stay as they were."""
  try:
    manager.save(checkpoint_number=step)
  except (tf.errors.OpError, OSError) as e:
    raise TrainingStopped(f"could not write the checkpoint of step {step} in {manager.directory}: "
                          f"{cli.first_line(e)}; free space or give another --workdir (earlier "
                          "checkpoints are intact: rerun to resume)") from e


def _write_json(path, payload):
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


class _EarlyStopping:
  """config.train.early_stopping (RIDE section 3; the authors' train.py): the validation
  metric before training and after every stage; when a stage makes it worse, the best
  stage's weights come back and training stops.

  The state (best score, the last stage checked, stopped) is <write_dir>/early_stopping.json
  and the best weights checkpoints/best/, so a resumed run takes the same decisions; on
  stopping, the best weights are also saved as the latest checkpoint, which is what
  `export.run` and `training.sample` load.
  """

  def __init__(self, model, module, config, data_name, data_dir, write_dir):
    self.score = lambda: evaluate(model, module, config, data_name, data_dir,
                                  "validation")[module.METRIC]
    self.metric = module.METRIC
    _, self.higher_is_better = units.METRICS[module.METRIC]
    self.path = os.path.join(write_dir, "early_stopping.json")
    self.weights = tf.train.Checkpoint(model=model)
    self.prefix = os.path.join(write_dir, "checkpoints", "best", "weights")
    self.state = None
    if os.path.exists(self.path):
      with open(self.path) as f:
        self.state = json.load(f)

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
    _save(manager, step)
    self.state.update(checked=step, stopped=True, stopped_score=score)
    _write_json(self.path, self.state)
    return True

  def _keep(self, score, step):
    self.weights.write(self.prefix)
    self.state = dict(best=score, step=step, checked=step, stopped=False)
    _write_json(self.path, self.state)


class _Rollback:
  """With config.train.skip_nonfinite: a copy of every training variable (model and
  optimizers) taken before each step, put back when the step's loss is not finite."""

  def __init__(self, variables, strategy):
    self.variables = variables
    with strategy.scope():
      self.copies = [tf.Variable(v, trainable=False, name="rollback") for v in variables]
    self.save = tf.function(lambda: [c.assign(v) for c, v in zip(self.copies, self.variables)])
    self.load = tf.function(lambda: [v.assign(c) for c, v in zip(self.copies, self.variables)])


def check_levels(config):
  """Raises ConfigError unless config.model.levels (if any) divides 256."""
  levels = config.model.get("levels", 256)
  if not isinstance(levels, int) or levels < 2 or 256 % levels:
    raise ConfigError(f"config.model.levels={levels!r} must divide 256: 2, 4, 8, 16, 32, 64, 128 or 256")


def conditioning(model):
  """Returns the names of the conditioning inputs that come with the data (e.g. label)."""
  return tuple(k for k in getattr(model, "conditional_inputs", ()) if k == "label")


def train_dataset(config, data_name, start_step, patch_size, data_dir=None, labels=False):
  """Returns a dataset of dicts from `start_step`: images uint8 [GB, P, P, C], seeds int64
  [GB, 2] and, with `labels`, label int32 [GB]. Images are requantised to config.model.levels."""
  gb = config.train.batch_size
  batches = data_lib.train_batches(
      data_name, patch_size=patch_size, global_batch_size=gb, seed=config.train.seed,
      start_step=start_step, flips=config.data.flips, data_dir=data_dir, labels=labels)
  levels = config.model.get("levels", 256)
  if labels:
    batches = batches.map(lambda images, label: {"images": requantize(images, levels),
                                                 "label": tf.cast(label, tf.int32)})
  else:
    batches = batches.map(lambda images: {"images": requantize(images, levels)})
  seeds = _step_seeds(config.train.seed + 1, tf.data.Dataset.range(start_step, 2**62), gb)
  ds = tf.data.Dataset.zip((batches, seeds)).map(lambda batch, seeds: {**batch, "seeds": seeds})
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return ds.with_options(options)


def _run_phase(strategy, phase, batch):
  """Runs one replica function of a model's `training_phases`; returns its summed loss."""
  return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(phase, args=(batch,)), axis=None)


def make_train_step(model, optimizer, strategy, global_batch_size, part=None, jit=False):
  """Returns a tf.function running one optimisation step on a distributed batch -> loss.

  `optimizer` is one optimizer or `build`'s dict of them. `part` (a stage's) selects the
  variables (`model.trainable_for`) and is passed to `model.train_loss`. With `jit` the
  loss and gradients are XLA-compiled; the optimizer update stays outside XLA (it
  synchronises replicas). A model with `training_phases` (several optimizers, e.g. a
  GAN's) gets the dict of optimizers and returns its step as a list of replica
  functions, each run by `strategy.run` in its own tf.function (in one tf.function,
  grappler's arithmetic and loop optimizers turned the phases of a GVAE step into a
  graph with a cycle under MirroredStrategy: "nodes in a cycle").
  """
  if hasattr(model, "training_phases"):
    if not isinstance(optimizer, dict):
      raise TypeError(f"{type(model).__name__} trains several networks: pass build()'s optimizers")
    # A partial per phase: tf.function keys its retracing warning by the code object.
    phases = [tf.function(functools.partial(_run_phase, strategy, phase))
              for phase in model.training_phases(optimizer, global_batch_size)]

    def phased_step(batch):
      return [phase(batch) for phase in phases][-1]  # the last phase's loss

    return phased_step
  if isinstance(optimizer, dict):
    (optimizer,) = optimizer.values()
  options = {} if part is None else {"part": part}
  variables = model.trainable_for(part) if part is not None else model.trainable_variables

  def gradients(batch):
    cond = {k: v for k, v in batch.items() if k not in ("images", "seeds")}  # e.g. label
    with tf.GradientTape() as tape:
      per_example, _ = model.train_loss(batch["images"], batch["seeds"], **cond, **options)
      loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)
    return loss, tape.gradient(loss, variables)

  if jit:
    gradients = tf.function(gradients, jit_compile=True)

  def replica_step(batch):
    loss, grads = gradients(batch)
    optimizer.apply_gradients(zip(grads, variables))
    return loss

  @tf.function
  def step(batch):
    """batch: a (distributed) dict of images, seeds and any conditioning (label)."""
    losses = strategy.run(replica_step, args=(batch,))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

  return step


def eval_seeds(config, index, batch_size):
  """Returns int64 [batch_size, 2]: the per-image seeds of evaluation batch `index`."""
  return tf.random.stateless_uniform([batch_size, 2], [config.eval.seed, index],
                                     minval=0, maxval=2**62, dtype=tf.int64)


def evaluate(model, module, config, data_name, data_dir=None, split="test"):
  """Returns {metric: value, ...} on the held-out patches, in the paper's units.

  split="validation" (early stopping) gives the model's metric alone.
  """
  labels = "label" in conditioning(model)
  patches = data_lib.eval_patches(data_name, patch_size=config.eval.patch_size, data_dir=data_dir,
                                  labels=labels, split=split)
  levels = config.model.get("levels", 256)
  if labels:
    patches = patches.map(lambda image, label: (requantize(image, levels), tf.cast(label, tf.int32)))
  else:
    patches = patches.map(lambda image: (requantize(image, levels),))
  patches = patches.take(config.eval.max_patches).batch(config.eval.batch_size)
  terms = tf.function(model.eval_terms)
  # Other per-example metrics of the model (e.g. a VAE's reconstruction error): mean and std.
  extras = tf.function(model.eval_extras) if hasattr(model, "eval_extras") else None
  nats, dims, count, extra = 0.0, 0.0, 0, {}
  for i, (batch, *label) in enumerate(patches):
    seeds = eval_seeds(config, i, tf.shape(batch)[0])
    cond = {"label": label[0]} if label else {}
    n, d = terms(batch, seeds, **cond)
    nats, dims, count = nats + float(tf.reduce_sum(n)), dims + float(tf.reduce_sum(d)), count + len(n)
    for name, values in (extras(batch, seeds, **cond) if extras else {}).items():
      extra.setdefault(name, []).append(values.numpy())
  to_units, _ = units.METRICS[module.METRIC]
  metrics = {module.METRIC: float(to_units(nats, dims)), "test_patches": count,
             "test_patch_size": config.eval.patch_size}
  if split != "test":
    return {module.METRIC: metrics[module.METRIC]}
  for name, values in extra.items():
    values = np.concatenate(values)
    metrics.update({name: float(values.mean()), f"{name}_std": float(values.std())})
  quality = config.eval.get("sample_quality", 0)
  if quality and not getattr(model, "conditional_inputs", ()):
    metrics.update(_sample_quality(model, config, patches.unbatch(), quality))
  members = config.eval.get("ensemble", 1)
  if members > 1 and hasattr(model, "ensemble_terms"):
    metrics.update(_evaluate_ensemble(model, module, config, patches, members))
  return metrics


def _sample_quality(model, config, patches, num):
  """Returns `zoo.metrics.sample_quality` of min(num, test images) samples (seeds
  (config.eval.seed, k)) against as many held-out images: MMD^2 and MS-SSIM diversity."""
  held_out = np.concatenate([batch.numpy() for batch, *_ in patches.take(num).batch(256)])
  num = len(held_out)
  sampler = tf.function(model.sample)
  seeds = np.stack([np.full(num, config.eval.seed), np.arange(num)], 1).astype(np.int64)
  samples = np.concatenate([sampler(tf.constant(seeds[k:k + 256])).numpy() for k in range(0, num, 256)])
  to_255 = 255.0 / (config.model.get("levels", 256) - 1)
  return metrics_lib.sample_quality(samples * to_255, held_out * to_255)


def _evaluate_ensemble(model, module, config, patches, members):
  """Returns the ensemble's metric and the single model's, both on the patches' central
  pixels (`ensemble_terms`)."""
  to_units, _ = units.METRICS[module.METRIC]
  ensemble = tf.function(lambda x, s: model.ensemble_terms(x, s, members))
  single = tf.function(lambda x, s: model.ensemble_terms(x, s, 1))
  sums = np.zeros(3)  # ensemble nats, single nats, pixels
  for i, (batch,) in enumerate(patches):  # models with ensembles take no label
    seeds = eval_seeds(config, i, tf.shape(batch)[0])
    (n_ens, d), (n_one, _) = ensemble(batch, seeds), single(batch, seeds)
    sums += [float(tf.reduce_sum(n_ens)), float(tf.reduce_sum(n_one)), float(tf.reduce_sum(d))]
  return {f"{module.METRIC}_central": float(to_units(sums[1], sums[2])),
          f"{module.METRIC}_ensemble{members}_central": float(to_units(sums[0], sums[2]))}


def _finetune(model, config, data_name, stage, data_dir, writer):
  """L-BFGS on the MCGSM after a stage (RIDE section 3), on batches keyed by the stage end."""
  # config.train.lbfgs_pixels (the authors' finetune(num_samples_train=10**6)): enough
  # batches of the stage's patches to hold that many pixels; else init_batches batches.
  pixels = config.train.get("lbfgs_pixels", 0)
  count = (math.ceil(pixels / (config.train.batch_size * stage["patch_size"] ** 2)) if pixels
           else config.train.init_batches)
  batches = list(train_dataset(config, data_name, stage["end"], stage["patch_size"], data_dir)
                 .take(count))
  images = tf.concat([b["images"] for b in batches], 0)
  seeds = tf.concat([b["seeds"] for b in batches], 0)
  options = {} if stage["part"] is None else {"part": stage["part"]}
  before, after = tf.function(lambda x, s: model.finetune_mcgsm(
      x, s, config.train.lbfgs_iterations, **options))(images, seeds)
  print(f"L-BFGS on the MCGSM after step {stage['end']}: {float(before):.4f} -> "
        f"{float(after):.4f} nats/px on {images.shape[0]} patches")
  with writer.as_default():
    tf.summary.scalar("lbfgs_loss", after, step=stage["end"])


_SAMPLERS = weakref.WeakKeyDictionary()  # model -> its traced `sample`


def sample_conditioning(model, config, data_name=None, data_dir=None):
  """Returns the conditioning of the sample grid's config.sample.num samples: {} for an
  unconditional model, label k % num_classes for sample k of a class-conditional one,
  and for an auto-encoder the codes of the first test images (from `data_name`)."""
  names, num = getattr(model, "conditional_inputs", ()), config.sample.num
  if "label" in names:
    return {"label": tf.range(num, dtype=tf.int32) % model.num_classes}
  if "code" in names:
    if data_name is None:
      raise ValueError("an auto-encoder's samples need test images to encode: pass data_name")
    images = next(iter(data_lib.eval_patches(data_name, patch_size=config.eval.patch_size,
                                             data_dir=data_dir).batch(num)))
    images = requantize(images, config.model.get("levels", 256))
    reps = -(-num // int(images.shape[0]))
    return {"code": tf.repeat(model.encode(images), reps, axis=0)[:num]}
  return {}


def sample_grid(model, config, writer=None, step=0, cond=None):
  """Returns uint8 [H', W', C]: a grid of config.sample.num samples, seeds (sample.seed, k).

  `cond` is the conditioning (`sample_conditioning`); also writes the grid to
  TensorBoard when a summary `writer` is given.
  """
  if model not in _SAMPLERS:  # trace the sampler once per model
    _SAMPLERS[model] = tf.function(model.sample)
  seeds = tf.stack([tf.fill([config.sample.num], config.sample.seed),
                    tf.range(config.sample.num)], axis=1)
  samples = _SAMPLERS[model](tf.cast(seeds, tf.int64), **(cond or {}))
  grid = images_lib.grid(samples.numpy())
  if writer is not None:
    with writer.as_default():
      tf.summary.image("samples", grid[None], step=step)
  return grid


def train(model_name, data_name, config, workdir, strategy, data_dir=None, export=True):
  """Trains (or resumes) a run in `workdir`; returns the final metrics dict."""
  module = zoo.get(model_name)
  data_name = data_lib.resolve(data_name, config.data)  # e.g. textures -> textures/brick
  check_levels(config)
  with config.unlocked():  # what models need to know of the data, saved with the config
    config.data.image_shape = data_lib.image_shape(data_name, data_dir)
    config.data.num_classes = data_lib.num_classes(data_name, data_dir)
  if config.train.get("early_stopping", False):  # before anything is written
    try:
      data_lib.eval_patches(data_name, patch_size=0, split="validation", data_dir=data_dir)
    except data_lib.DataError as e:
      raise data_lib.DataError(f"config.train.early_stopping needs a validation split: {e}; "
                               "or set --config.train.early_stopping=false") from e
  try:  # before anything is written: a config the model rejects leaves the workdir as it was
    model, optimizers, checkpoint = build(model_name, config, strategy)
  except ValueError as e:
    raise ConfigError(" ".join(str(e).split())) from e
  optimizer = next(iter(optimizers.values()))  # counts the steps
  chief = is_chief(strategy)
  # Only the chief writes into the workdir; other workers write to a scratch dir.
  write_dir = workdir if chief else tempfile.mkdtemp(prefix="genzoo-worker-")
  os.makedirs(write_dir, exist_ok=True)
  for name, payload in (("run.json", {"model": model_name, "data": data_name}),
                        ("config.json", json.loads(config.to_json_best_effort()))):
    _write_json(os.path.join(write_dir, name), payload)

  manager = tf.train.CheckpointManager(
      checkpoint, os.path.join(write_dir, "checkpoints"), max_to_keep=3)
  start = 0
  restored = restore_latest_readable(checkpoint, manager)
  if restored:
    start = int(optimizer.iterations.numpy())
    print(f"resuming from {restored} at step {start}")
  stopper = None
  if config.train.get("early_stopping", False):
    stopper = _EarlyStopping(model, module, config, data_name, data_dir, write_dir)
  with _Preemption() as preemption:
    trained = _train_stages(model, optimizers, manager, config, data_name, data_dir, strategy,
                            start, write_dir, chief, preemption, stopper)
  return _finish(model, module, optimizer, config, data_name, data_dir, workdir, write_dir,
                 chief, export, trained)


def _train_stages(model, optimizers, manager, config, data_name, data_dir, strategy, start,
                  write_dir, chief, preemption, stopper=None):
  """Runs the training stages from step `start`; returns (last loss, steps skipped,
  the sample grid's conditioning). `stopper`: an _EarlyStopping, or None."""
  optimizer = next(iter(optimizers.values()))
  rollback = None
  if config.train.get("skip_nonfinite", False):
    rollback = _Rollback(list(model.variables) + [v for o in optimizers.values() for v in o.variables],
                         strategy)
  skipped = 0

  plan = stages(config)
  labels = "label" in conditioning(model)
  if start == 0 and hasattr(model, "initialize"):
    first = train_dataset(config, data_name, 0, plan[0]["patch_size"], data_dir)
    model.initialize(tf.concat([b["images"] for b in first.take(config.train.init_batches)], 0))
  if stopper:
    stopper.start()
  cond = sample_conditioning(model, config, data_name, data_dir) if chief else {}
  writer = tf.summary.create_file_writer(os.path.join(write_dir, "tensorboard"))
  total = config.train.steps
  progress = Progress(total, start)
  step, loss = start, float("nan")
  for stage in plan:
    if stopper and stopper.stopped:
      break
    if stage["end"] <= step:  # trained before a restart; its validation may still be due
      if stopper and stopper.needs_check(stage["end"]) and stopper.after_stage(stage["end"], manager):
        break
      continue
    # Each stage has its own patch size, so its own input pipeline and traced step.
    ds = train_dataset(config, data_name, step, stage["patch_size"], data_dir, labels)
    iterator = iter(strategy.experimental_distribute_dataset(ds))
    step_fn = make_train_step(model, optimizers, strategy, config.train.batch_size,
                              stage["part"], config.train.get("jit", False))
    pixels_per_batch = config.train.batch_size * (
        stage["patch_size"] ** 2 if stage["patch_size"] else
        math.prod(data_lib.image_shape(data_name, data_dir)[:2]))
    tick, tick_step = time.time(), step
    while step < stage["end"]:
      if rollback:
        rollback.save()
      loss = float(step_fn(next(iterator)))
      step += 1
      if not math.isfinite(loss):
        if not rollback:
          last = manager.latest_checkpoint or "none yet"
          raise TrainingStopped(
              f"non-finite loss ({loss}) at step {step}; stopped without saving it (last good "
              f"checkpoint: {last}); lower config.train.learning_rate, or set "
              "config.train.skip_nonfinite=true to skip such steps")
        rollback.load()  # the state before the step, then count the step as taken
        optimizer.iterations.assign(step)
        skipped += 1
        print(f"step {step}: non-finite loss ({loss}), update skipped ({skipped} so far)", flush=True)
      if step % config.train.log_every == 0 or step == stage["end"]:
        rate = (step - tick_step) * pixels_per_batch / max(time.time() - tick, 1e-9)
        tick, tick_step = time.time(), step
        with writer.as_default():
          tf.summary.scalar("loss", loss, step=step)
          tf.summary.scalar("learning_rate", float(optimizer.learning_rate), step=step)
          tf.summary.scalar("pixels_per_second", rate, step=step)
        progress.update(step, loss, rate)
      if step % config.train.checkpoint_every == 0 or step == total:
        _save(manager, step)
      if chief and step % config.train.get("sample_every", config.train.checkpoint_every) == 0:
        sample_grid(model, config, writer, step, cond)
      if preemption.received:
        if step % config.train.checkpoint_every and step != total:
          _save(manager, step)
        raise TrainingStopped(f"SIGTERM at step {step}: checkpoint saved in {manager.directory}; "
                              "rerun the same command to resume", exit_code=143)
    if config.train.get("lbfgs_iterations", 0) and hasattr(model, "finetune_mcgsm"):
      _finetune(model, config, data_name, stage, data_dir, writer)
    if stopper and stopper.after_stage(step, manager):
      break
  progress.close()
  writer.flush()
  return loss, skipped, cond


def weights_digest(model):
  """Returns the sha256 hex digest of the model's trainable weights (their bytes, in
  order): equal digests mean bit-identical weights (workers of one run, a resumed run)."""
  digest = hashlib.sha256()
  for variable in model.trainable_variables:
    digest.update(np.ascontiguousarray(variable.numpy()).tobytes())
  return digest.hexdigest()


def _finish(model, module, optimizer, config, data_name, data_dir, workdir, write_dir, chief,
            export, trained):
  """Evaluates, and on the chief writes samples.png, metrics.json and the export."""
  loss, skipped, cond = trained
  metrics = evaluate(model, module, config, data_name, data_dir)
  metrics.update(steps=int(optimizer.iterations.numpy()), final_train_loss=loss,
                 weights_sha256=weights_digest(model))
  if config.train.get("skip_nonfinite", False):
    metrics["skipped_steps"] = skipped  # in this process (a resumed run counts from its start)
  if chief:
    images_lib.write_png(os.path.join(workdir, "samples.png"), sample_grid(model, config, cond=cond))
    _write_json(os.path.join(workdir, "metrics.json"), metrics)
    if export and config.export.enabled:
      from export import saved_model  # pylint: disable=g-import-not-at-top
      metrics["export"] = saved_model.export(model, config, os.path.join(workdir, "export"))
  else:
    shutil.rmtree(write_dir, ignore_errors=True)
  return metrics
