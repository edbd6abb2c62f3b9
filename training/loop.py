"""The one training loop, used for every tf.distribute strategy.

Keras 3's `model.fit` breaks under MultiWorkerMirroredStrategy, so every model trains
here: `strategy.run` of one `tf.function` step (training/steps.py) and a
`tf.train.CheckpointManager` in the workdir, so that rerunning the same command resumes
where it stopped. `train` reads top to bottom:

  1. check the config and the data, and build the model, before anything is written;
  2. write run.json and config.json, resume from the newest readable checkpoint;
  3. train the stages (`_train_stage`): log, checkpoint, sample, stop on SIGTERM;
     after a stage, the model's FINETUNE (RIDE's L-BFGS) and early stopping;
  4. evaluate (training/evaluation.py); the chief writes samples.png, the model's
     figure.png, metrics.json (also to TensorBoard as eval/*) and the export with its
     model card.

The workdir's files and their guarantees are training/rundir.py's.
"""
import contextlib
import dataclasses
import json
import math
import os
import shutil
import sys
import time

import keras
import ml_collections
import tensorflow as tf
import tqdm

import zoo
from export import storage
from training import batches as batches_lib
from training import data as data_lib
from training import evaluation
from training import images as images_lib
from training import rundir
from training import steps as steps_lib
from zoo import contract


def make_strategy(name):
  """Returns the tf.distribute strategy for --strategy=auto|multi_worker|default."""
  if name == "auto":
    return tf.distribute.MirroredStrategy()  # all local GPUs, or the CPU
  if name == "multi_worker":
    return tf.distribute.MultiWorkerMirroredStrategy()  # reads TF_CONFIG
  if name == "default":
    return tf.distribute.get_strategy()
  raise ValueError(f"unknown strategy {name!r}; valid: auto, multi_worker, default")


def _cluster(strategy):
  """Returns MultiWorkerMirroredStrategy's cluster resolver when it has a cluster, else None."""
  resolver = getattr(strategy, "cluster_resolver", None)
  return resolver if resolver is not None and resolver.cluster_spec().as_dict() else None


def is_chief(strategy):
  """Returns True for the one process that writes checkpoints, summaries and exports."""
  resolver = _cluster(strategy)
  if resolver is None:
    return True
  return resolver.task_type == "chief" or (
      resolver.task_type == "worker" and resolver.task_id == 0
      and "chief" not in resolver.cluster_spec().as_dict())


@dataclasses.dataclass
class Run:
  """What every part of one training run reads."""
  config: ml_collections.ConfigDict
  source: batches_lib.Source
  strategy: tf.distribute.Strategy
  model: keras.Model
  optimizers: dict  # steps.build's {part: optimizer}; the first counts the steps
  metric: str  # the model's METRIC (a zoo.units.METRICS key)
  write_dir: str  # the workdir on the chief, a scratch directory on other workers
  chief: bool

  @property
  def step(self):
    return int(next(iter(self.optimizers.values())).iterations.numpy())


def train(model_name, data_name, config, workdir, strategy, *, data_dir=None, export=True,
          export_finished=False):
  """Trains (or resumes) a run in `workdir`; returns the final metrics dict.

  A workdir whose run already finished these steps with this config is left as it is:
  its metrics.json comes back with "finished": True, and nothing is trained, evaluated
  or (unless `export_finished`) exported. rundir.Refused when the workdir is busy or
  holds another run.
  """
  workdir = storage.normalize(workdir)  # file://x is x; other URLs stay URLs
  source = batches_lib.Source(data_lib.resolve(data_name, config.data), data_dir)  # textures/brick
  model, optimizers, checkpoint = _check_and_build(model_name, config, source, strategy)
  chief = is_chief(strategy)
  run_info = {"model": model_name, "data": source.name}
  config_json = json.loads(config.to_json_best_effort())
  with contextlib.ExitStack() as held:  # the workdir's lock, on the chief
    changed, finished = _claim_workdir(strategy, chief, workdir, run_info, config_json,
                                       config.train.steps, held)
    if finished is not None:
      if chief and export_finished:
        rundir.restore_latest_readable(checkpoint, _manager(checkpoint, workdir))
        finished["export"] = _export(model, config, workdir)
      return dict(finished, finished=True)
    return _train_run(run_info, config, config_json, changed, source, strategy, chief,
                      model, optimizers, checkpoint, workdir, export)


def _manager(checkpoint, directory):
  """Returns the CheckpointManager of <directory>/checkpoints (the latest three)."""
  return tf.train.CheckpointManager(checkpoint, os.path.join(directory, "checkpoints"),
                                    max_to_keep=3)


# What the chief found in the workdir, as every worker learns it (_claim_workdir).
_GO, _FINISHED, _REFUSED = 0, 1, 2


def _claim_workdir(strategy, chief, workdir, run_info, config_json, steps, held):
  """On the chief: checks that the workdir can take this run (rundir.check_resume) and
  locks it for the life of `held`. Returns (the config changes of a rerun, the metrics of
  a run that already finished, else None); every worker gets the chief's verdict, so a
  refusal or a finished run ends all of them (they would otherwise wait at the first
  all-reduce for a chief that left)."""
  changed, finished, verdict = {}, None, _GO
  refusal = None
  if chief:
    try:
      changed = rundir.check_resume(workdir, run_info, config_json)
      held.enter_context(rundir.Lock(workdir))
      finished = None if changed else rundir.finished_metrics(workdir, steps)
      verdict = _GO if finished is None else _FINISHED
    except rundir.Refused as e:
      refusal, verdict = e, _REFUSED
  verdict = _chiefs(strategy, chief, verdict)
  if refusal is not None:
    raise refusal
  if verdict == _REFUSED:
    raise rundir.Refused(f"the chief refused --workdir={workdir} (its message says why)")
  if verdict == _FINISHED and finished is None:  # a worker other than the chief
    finished = {}
  return changed, finished


def _chiefs(strategy, chief, value):
  """Returns the chief's integer `value` on every worker: under MultiWorkerMirroredStrategy
  one all-reduce (the chief's replicas give `value`, the others 0); else `value`."""
  if _cluster(strategy) is None:
    return value
  mine = value if chief else 0
  total = strategy.reduce(tf.distribute.ReduceOp.SUM,
                          strategy.run(lambda: tf.constant(mine, tf.int64)), axis=None)
  return int(total.numpy()) // len(strategy.experimental_local_results(tf.constant(0)))


def _train_run(run_info, config, config_json, changed, source, strategy, chief, model,
               optimizers, checkpoint, workdir, export):
  """Resumes, trains, evaluates; the chief writes samples.png, figure.png, metrics.json
  and the export."""
  # Only the chief writes into the workdir; other workers write to a scratch dir.
  write_dir = workdir if chief else storage.local_scratch("genzoo-worker-")
  storage.makedirs(write_dir)
  run = Run(config, source, strategy, model, optimizers, zoo.get(run_info["model"]).METRIC,
            write_dir, chief)
  manager = _manager(checkpoint, write_dir)
  restored = rundir.restore_latest_readable(checkpoint, manager)
  rundir.record_run(write_dir, run_info, config_json, changed, run.step)
  if restored:
    print(f"resuming from {restored} at step {run.step}"
          + (f" with {', '.join('config.' + k for k in changed)} changed" if changed else ""))
  loss, skipped, cond = _train_stages(run, manager)
  metrics = evaluation.evaluate(model, config, source, run.metric)
  metrics.update(steps=run.step, final_train_loss=loss, weights_sha256=rundir.weights_digest(model))
  if config.train.get("skip_nonfinite", False):
    metrics["skipped_steps"] = skipped  # in this process (a resumed run counts from its start)
  if not chief:
    shutil.rmtree(write_dir, ignore_errors=True)
    return metrics
  images_lib.write_png(os.path.join(workdir, "samples.png"),
                       images_lib.SampleGrid(model, config, cond).draw())
  figure = (images_lib.draw_figure(model, config, source, config.sample.seed)
            if config.sample.get("figure", True) else None)
  if figure is not None:  # the picture the model is about (zoo/contract.py FIGURES)
    images_lib.write_png(os.path.join(workdir, "figure.png"), figure)
  rundir.write_json(os.path.join(workdir, "metrics.json"), metrics)
  _summarize_metrics(workdir, metrics, run.step, figure)
  if export and config.export.enabled:
    metrics["export"] = _export(model, config, workdir)
  return metrics


def _export(model, config, workdir):
  """Exports the model to <workdir>/export with the run's model card (read back from the
  workdir, as `export.run` reads it); returns the version dir."""
  from export import saved_model, trained  # pylint: disable=g-import-not-at-top
  return saved_model.export(model, config, os.path.join(workdir, "export"),
                            run=trained.run_card(workdir))


def _summarize_metrics(write_dir, metrics, step, figure=None):
  """Writes the final evaluation's numbers to TensorBoard as `eval/<name>` at `step`
  (nested groups as `eval/<group>/<name>`), beside the training scalars, and the
  model's figure (uint8 [H, W, C], if any) as the image `figure`."""
  def numbers(tree, prefix):
    for key, value in tree.items():
      if isinstance(value, dict):
        yield from numbers(value, f"{prefix}{key}/")
      elif isinstance(value, (int, float)) and not isinstance(value, bool) and key != "steps":
        yield f"{prefix}{key}", float(value)

  writer = tf.summary.create_file_writer(os.path.join(write_dir, "tensorboard"))
  with writer.as_default():
    for name, value in numbers(metrics, "eval/"):
      tf.summary.scalar(name, value, step=step)
    if figure is not None:
      tf.summary.image("figure", figure[None], step=step)
  writer.flush()


def _check_and_build(model_name, config, source, strategy):
  """Returns steps.build's (model, optimizers, checkpoint) after checking what the config
  asks of the model and data; ConfigError or DataError (one line) before anything is written."""
  data_lib.check_available(source.name, source.data_dir)  # seconds, not minutes, offline
  with config.unlocked():  # what models need to know of the data, saved with the config
    config.data.image_shape = data_lib.image_shape(source.name, source.data_dir)
    config.data.num_classes = data_lib.num_classes(source.name, source.data_dir)
  steps_lib.check_config(config, config.data.image_shape)
  if config.train.get("early_stopping", False):
    try:
      data_lib.eval_patches(source.name, patch_size=0, split="validation", data_dir=source.data_dir)
    except data_lib.DataError as e:
      raise data_lib.DataError(f"config.train.early_stopping needs a validation split: {e}; "
                               "or set --config.train.early_stopping=false") from e
  try:
    built = steps_lib.build(model_name, config, strategy)
    parts = {stage["part"] for stage in steps_lib.stages(config)} - {None, "all"}
  except ValueError as e:
    raise steps_lib.ConfigError(" ".join(str(e).split())) from e
  if parts and not contract.has(built[0], contract.PARTS):
    raise steps_lib.ConfigError(f"config.train.stages trains parts ({', '.join(sorted(parts))}) but "
                      f"{model_name} trains as a whole: give 'all' as every stage's part")
  return built


def _train_stages(run, manager):
  """Runs the training stages from the run's step; returns (last loss, steps skipped, the
  sample grid's conditioning)."""
  config, model = run.config, run.model
  plan = steps_lib.stages(config)
  stopper = None
  if config.train.get("early_stopping", False):
    stopper = evaluation.EarlyStopping(model, config, run.source, run.metric, run.write_dir)
  if run.step == 0 and contract.has(model, contract.INITIALIZE):
    first = batches_lib.train_dataset(config, run.source, 0, plan[0]["patch_size"])
    model.initialize(tf.concat([b["images"] for b in first.take(config.train.init_batches)], 0))
  if stopper:
    stopper.start()
  cond = images_lib.sample_conditioning(model, config, run.source) if run.chief else {}
  log = _Log(run, images_lib.SampleGrid(model, config, cond) if run.chief else None)
  loss, skipped = float("nan"), 0
  with rundir.Preemption() as preemption:
    for stage in plan:
      if stopper and stopper.stopped:
        break
      if stage["end"] > run.step:
        loss, stage_skipped = _train_stage(run, stage, manager, log, preemption)
        skipped += stage_skipped
        if config.train.get("lbfgs_iterations", 0) and contract.has(model, contract.FINETUNE):
          _finetune(run, stage, log.writer)
      # A stage trained before a restart may still owe its validation.
      if stopper and stopper.needs_check(stage["end"]) and stopper.after_stage(stage["end"], manager):
        break
    if preemption.received:  # during fine-tuning or validation after the last step
      rundir.save_checkpoint(manager, run.step)
      raise preemption.stop(run.step, manager.directory)
  log.close()
  return loss, skipped, cond


def _train_stage(run, stage, manager, log, preemption):
  """Trains one stage from the run's step to stage["end"]; returns (last loss, steps
  skipped). Checkpoints every config.train.checkpoint_every steps and at the end."""
  config, model, optimizer = run.config, run.model, next(iter(run.optimizers.values()))
  rollback = None
  if config.train.get("skip_nonfinite", False):
    rollback = steps_lib.Rollback(
        list(model.variables) + [v for o in run.optimizers.values() for v in o.variables],
        run.strategy)
  # Each stage has its own patch size, so its own input pipeline and traced step.
  labels = contract.LABEL in contract.conditioning(model, from_data=True)
  step = run.step
  ds = batches_lib.train_dataset(config, run.source, step, stage["patch_size"], labels)
  iterator = iter(run.strategy.experimental_distribute_dataset(ds))
  step_fn = steps_lib.make_train_step(model, run.optimizers, run.strategy, config.train.batch_size,
                                      part=stage["part"], jit=config.train.get("jit", False))
  log.start_stage(stage)
  loss, skipped = float("nan"), 0
  while step < stage["end"]:
    if rollback:
      rollback.save()
    loss = float(step_fn(next(iterator)))
    step += 1
    if not math.isfinite(loss):
      if not rollback:
        raise rundir.TrainingStopped(
            f"non-finite loss ({loss}) at step {step}; stopped without saving it (last good "
            f"checkpoint: {manager.latest_checkpoint or 'none yet'}); lower "
            "config.train.learning_rate, or set config.train.skip_nonfinite=true to skip such steps")
      rollback.load()  # the state before the step, then count the step as taken
      optimizer.iterations.assign(step)
      skipped += 1
      print(f"step {step}: non-finite loss ({loss}), update skipped ({skipped} so far)", flush=True)
    log.step(step, loss, last=step == stage["end"])
    if step % config.train.checkpoint_every == 0 or step == config.train.steps:
      rundir.save_checkpoint(manager, step)
    if preemption.received:
      if step % config.train.checkpoint_every and step != config.train.steps:
        rundir.save_checkpoint(manager, step)
      raise preemption.stop(step, manager.directory)
  return loss, skipped


# e.g. "step 3050/4000 |###############2    |  76% [00:12<03:53, loss -4.7865, 425,077 px/s]"
_BAR_FORMAT = "step {n}/{total} |{bar:20}| {percentage:3.0f}% [{elapsed}<{remaining}{postfix}]"


class _Log:
  """What a run shows while it trains: the progress bar (loss and pixels per second),
  TensorBoard scalars every config.train.log_every steps, and the sample grid every
  config.train.sample_every steps (on the chief: `grid` is None elsewhere).

  The bar is tqdm's: redrawn in place on a terminal; in a log file (not a terminal) one
  plain-ASCII line per update, so `tail` and `grep` read it. Its rate and ETA count only
  this process's steps (`initial`: a resumed run's first step). keras.utils.Progbar was
  tried: it writes ANSI colour codes into log files and estimates a resumed run's ETA
  from the steps before the restart too.
  """

  def __init__(self, run, grid):
    self.run, self.grid = run, grid
    self.writer = tf.summary.create_file_writer(os.path.join(run.write_dir, "tensorboard"))
    self.first, self.t0 = run.step, time.time()
    self.bar = (tqdm.tqdm(total=run.config.train.steps, initial=run.step, file=sys.stdout,
                          bar_format=_BAR_FORMAT) if sys.stdout.isatty() else None)
    self.pixels_per_batch = 0

  def start_stage(self, stage):
    source, size = self.run.source, stage["patch_size"]
    area = size ** 2 if size else math.prod(data_lib.image_shape(source.name, source.data_dir)[:2])
    self.pixels_per_batch = self.run.config.train.batch_size * area
    self.tick, self.tick_step = time.time(), self.run.step

  def step(self, step, loss, last=False):
    """Logs step `step` (its loss) when it is due; `last`: the stage's last step."""
    train = self.run.config.train
    if step % train.log_every == 0 or last:
      rate = (step - self.tick_step) * self.pixels_per_batch / max(time.time() - self.tick, 1e-9)
      self.tick, self.tick_step = time.time(), step
      with self.writer.as_default():
        tf.summary.scalar("loss", loss, step=step)
        tf.summary.scalar("learning_rate",
                          float(next(iter(self.run.optimizers.values())).learning_rate), step=step)
        tf.summary.scalar("pixels_per_second", rate, step=step)
      self._show(step, f"loss {loss:.4f}, {rate:,.0f} px/s")
    if self.grid and step % train.get("sample_every", train.checkpoint_every) == 0:
      self.grid.summarize(self.writer, step)

  def _show(self, step, postfix):
    if self.bar is not None:
      self.bar.update(step - self.bar.n)
      self.bar.set_postfix_str(postfix)
    else:
      print(tqdm.tqdm.format_meter(step, self.run.config.train.steps, time.time() - self.t0,
                                   initial=self.first, ascii=True, bar_format=_BAR_FORMAT,
                                   postfix=postfix), flush=True)

  def close(self):
    if self.bar is not None:
      self.bar.close()
    self.writer.flush()


def _finetune(run, stage, writer):
  """The model's FINETUNE after a stage (RIDE section 3: L-BFGS on the MCGSM), on training
  batches keyed by the stage's end."""
  config = run.config
  # config.train.lbfgs_pixels (the authors' finetune(num_samples_train=10**6)): enough
  # batches of the stage's patches to hold that many pixels; else init_batches batches.
  pixels = config.train.get("lbfgs_pixels", 0)
  count = (math.ceil(pixels / (config.train.batch_size * stage["patch_size"] ** 2)) if pixels
           else config.train.init_batches)
  batches = list(batches_lib.train_dataset(config, run.source, stage["end"], stage["patch_size"])
                 .take(count))
  images = tf.concat([b["images"] for b in batches], 0)
  seeds = tf.concat([b["seeds"] for b in batches], 0)
  options = {} if stage["part"] is None else {"part": stage["part"]}
  before, after = tf.function(lambda x, s: run.model.finetune(
      x, s, config.train.lbfgs_iterations, **options))(images, seeds)
  print(f"fine-tuning after step {stage['end']}: {float(before):.4f} -> "
        f"{float(after):.4f} nats/px on {images.shape[0]} patches")
  with writer.as_default():
    tf.summary.scalar("finetune_loss", after, step=stage["end"])
