"""A run's model and optimisers, its stages and learning rates, and one training step.

`build` makes the model, its optimizers ({part: optimizer}, the first counts the steps)
and the checkpoint that holds them; `stages` reads config.train.stages; `schedule` the
learning rate; `make_train_step` the tf.function of one step under a tf.distribute
strategy: the loss averaged over the *global* batch (`tf.nn.compute_average_loss`).
"""
import functools
import math

import keras
import tensorflow as tf

import zoo
from zoo import contract


class ConfigError(ValueError):
  """The config asks for something the model or data cannot do; the message is one line."""


# Fields that must be positive, where the config has them.
_POSITIVE = (("train", "steps"), ("train", "batch_size"), ("train", "learning_rate"),
             ("train", "checkpoint_every"), ("train", "log_every"), ("eval", "batch_size"),
             ("eval", "max_patches"))


def check_config(config, image_shape):
  """Raises ConfigError (one line) unless the config's values are usable: config.model.levels
  divides 256, counts and rates are positive, and the training and evaluation patches fit
  in the data's images (`image_shape` (H, W, C), None for a side that varies)."""
  levels = config.model.get("levels", 256)
  if not isinstance(levels, int) or levels < 2 or 256 % levels:
    raise ConfigError(f"config.model.levels={levels!r} must divide 256: 2, 4, 8, 16, 32, 64, 128 or 256")
  for section, field in _POSITIVE:
    value = config[section].get(field)
    if value is not None and not value > 0:
      raise ConfigError(f"config.{section}.{field}={value!r} must be positive")
  sides = [side for side in image_shape[:2] if side]
  if not sides:
    return
  smallest = min(sides)
  patches = [("config.eval.patch_size", config.eval.get("patch_size", 0))]
  try:
    patches += [("config.train.stages" if config.train.get("stages") else "config.data.patch_size",
                 stage["patch_size"]) for stage in stages(config)]
  except ValueError as e:
    raise ConfigError(str(e)) from e
  for name, patch in patches:
    if patch and patch > smallest:
      raise ConfigError(f"{name} asks for {patch}x{patch} patches but the images are "
                        f"{image_shape[0]}x{image_shape[1]}: give patches of at most {smallest} "
                        "(0: whole images)")


def stages(config):
  """Returns the training stages: dicts with begin, end (global steps), patch_size, part.

  `config.train.stages` (optional) is a string "part:patch:fraction, ..." (RIDE:
  "all:12:0.6, all:16:0.4"): each stage trains `part` of the model (a model with the
  PARTS capability: `model.trainable_for`) on patches of `patch` pixels for `fraction`
  of train.steps. Without it there is one stage over config.data.patch_size.
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
  steps: {"model": one optimizer} for most models; a model with the PHASES capability
  (GVAE: generator and critic) makes its own, one per part (`model.trainable_for`),
  and trains them in its `training_phases`. The checkpoint (`zoo.contract.checkpoint`:
  every model variable) holds the first as `optimizer` and the others as `<part>_optimizer`.
  """
  strategy = strategy or tf.distribute.get_strategy()
  with strategy.scope():
    model = zoo.get(model_name).Model(config)
    rate = schedule(config)
    if contract.has(model, contract.PHASES):
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
    checkpoint = contract.checkpoint(model, optimizer=main,
                                     **{f"{part}_optimizer": opt for part, opt in others})
  return model, optimizers, checkpoint


def _run_phase(strategy, phase, batch):
  """Runs one replica function of a model's `training_phases`; returns its summed loss."""
  return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(phase, args=(batch,)), axis=None)


def make_train_step(model, optimizers, strategy, global_batch_size, *, part=None, jit=False):
  """Returns a tf.function running one optimisation step on a distributed batch -> loss.

  `optimizers` is `build`'s dict. `part` (a stage's) selects the variables
  (`model.trainable_for`) and is passed to `model.train_loss`. With `jit` the loss and
  gradients are XLA-compiled; the optimizer update stays outside XLA (it synchronises
  replicas). A model with the PHASES capability (several optimizers, e.g. a GAN's)
  returns its step as a list of replica functions, each run by `strategy.run` in its
  own tf.function (in one tf.function, grappler's arithmetic and loop optimizers turned
  the phases of a GVAE step into a graph with a cycle under MirroredStrategy: "nodes in
  a cycle").
  """
  if not isinstance(optimizers, dict):
    raise TypeError("make_train_step takes build()'s dict of optimizers, e.g. {'model': adam}")
  if contract.has(model, contract.PHASES):
    # A partial per phase: tf.function keys its retracing warning by the code object.
    phases = [tf.function(functools.partial(_run_phase, strategy, phase))
              for phase in model.training_phases(optimizers, global_batch_size)]

    def phased_step(batch):
      return [phase(batch) for phase in phases][-1]  # the last phase's loss

    return phased_step
  (optimizer,) = optimizers.values()
  if not contract.has(model, contract.PARTS):
    part = None  # a model without parts trains as a whole ("all")
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


class Rollback:
  """With config.train.skip_nonfinite: a copy of every training variable (model and
  optimizers) taken before each step, put back when the step's loss is not finite."""

  def __init__(self, variables, strategy):
    self.variables = variables
    with strategy.scope():
      self.copies = [tf.Variable(v, trainable=False, name="rollback") for v in variables]
    self.save = tf.function(lambda: [c.assign(v) for c, v in zip(self.copies, self.variables)])
    self.load = tf.function(lambda: [v.assign(c) for c, v in zip(self.copies, self.variables)])
