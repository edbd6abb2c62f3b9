r"""Our Gated PixelCNN against TFP's PixelCNN++ at matched size, and our cached sampler
against the naive one, side by side in one process.

  python -m benchmarks.pixelcnn_vs_tfp [--budget_s=240[,1200,...]] [--outputs=logistic_mixture,softmax]
      [--dtypes=float32,bfloat16] [--data=skimage|cifar10 --data_dir=DIR]

About 30 minutes on 2 shared CPU cores with the defaults (five 240 s budgets, then timing).

1. `zoo.pixelcnn` with each of `--outputs` (`config.model.output`): PixelCNN++'s mixture
   of 10 discretised logistics per pixel (11 gated blocks of 38 features, a 96-unit
   output layer: 333,062 parameters) and the paper's 256-way softmax per sub-pixel (11
   blocks of 36, the same output layer: 326,316), each trained in each of `--dtypes`
   (`config.train.compute_dtype`: float32, and bfloat16 mixed precision, which needs a
   CPU with bfloat16 arithmetic), against `tfp.distributions.PixelCNN` (PixelCNN++: 1 resnet
   layer per level, 3 levels of 24 filters, a mixture of 10 discretised logistics over
   the 256 values: 327,104 parameters), on 32x32x3 images, batch 32, Adam at the same
   constant learning rate, the same batches in the same order. Parameters are counted
   alike for both: trainable scalars less the kernel entries that a causal mask or
   constraint holds at zero (`our_parameters`, `tfp_parameters`). TFP's network has
   577,520 trainable scalars, but its 3x3 resnet kernels keep only a shifted conv's 6
   or 4 taps (its upsampling kernels fewer): 250,416 of the scalars are zeros that
   every optimizer step resets (until 2026-12-08 this benchmark matched our models to
   the 577,520, so they had 1.78x TFP's parameters).
   (a) training images/s: forward + backward + Adam step, each in one tf.function (ours:
       `training.steps.make_train_step`; TFP: -log_prob per dimension of the images as
       float in [0, 255], tf_keras Adam over the network's variables, which also applies
       TFP's causal masks);
   (b) seconds to draw 4 samples: our cached `sample` against `dist.sample(4)` (the
       whole network once per pixel), each in one tf.function, and each again with XLA;
   (c) bits/dim on held-out images after each of `--budget_s` seconds of training (or,
       with `--budget_steps`, after each of so many steps: how much each learns per
       step, whatever the machine's speed and load) (one
       run per model, evaluated as it passes each budget; the clock starts after the
       first, traced, step and stops while evaluating), with the weights as trained and
       with their Polyak averages (`--ema`, the same decay for both models, updated on
       the training clock after every step; PixelCNN++'s paper evaluates with averages
       of decay 0.9995): at a constant learning rate the weights themselves jitter, and
       one evaluation of them moved by up to 0.4 bits/dim between otherwise equal runs.
   Multiply-adds per image are printed too: every weight of ours is applied at every
   pixel, while PixelCNN++ holds most of its weights at 16x16 and 8x8, so at equal
   parameter counts ours does about 2x the arithmetic per image; training multiply-adds
   per second (3 x the forward's per image x images/s) compare the implementations,
   and each is given as a fraction of this machine's float32 matmul rate.
2. Cached `sample` against `sample_naive` (the whole network per sub-pixel, or per pixel
   with the mixture) of each head at 16x16x3 (the trained weights: the network is
   convolutional), batch 4: the time ratio and whether the two draw the identical uint8
   images.

Data. `--data=skimage` (default, offline): random 32x32 crops of the colour photographs
bundled with scikit-image (astronaut, coffee, chelsea, rocket, immunohistochemistry,
retina, the left view of stereo_motorcycle), the same number from each; training crops
come from the left four fifths of every photo and held-out crops from the right fifth,
so no held-out pixel is ever trained on. The crops are a function of `--seed`.
`--data=cifar10` reads CIFAR-10 through TFDS (prepare it first with
`tfds build cifar10 --data_dir=DIR` on a machine with internet).

TFP's network differs from its defaults in two places: dropout is off (`--tfp_dropout`;
ours has none), and its causal masks, kernel constraints that only an optimizer step
applies, are applied once at the start, so its weight-norm init and first step do not
see the pixels they predict.

The machine is shared: only ratios measured within one run mean anything.
"""
import functools
import math
import time

from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from benchmarks.common import best_time
from benchmarks.common import matmul_gflops
from configs import pixelcnn as pixelcnn_config
from training import data as data_lib
from training import steps as steps_lib
from zoo import pixelcnn
from zoo import units

flags.DEFINE_enum("data", "skimage", ["skimage", "cifar10"], "images to train and score on")
flags.DEFINE_string("data_dir", None, "TFDS data_dir holding a prepared cifar10")
flags.DEFINE_integer("train_images", 16384, "training images (crops for skimage)")
flags.DEFINE_integer("test_images", 1024, "held-out images scored for bits/dim")
flags.DEFINE_integer("seed", 0, "seed of the crops, the batch order and the samples")
flags.DEFINE_list("budget_steps", None, "instead of --budget_s: training steps per model after "
                  "which the held-out bits/dim are compared (learning per step, whatever the "
                  "machine's speed or load)")
flags.DEFINE_list("budget_s", ["240"], "training seconds per model after which the held-out "
                  "bits/dim are compared (several: one run, evaluated at each)")
flags.DEFINE_integer("batch", 32, "training batch size")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate of both models (constant)")
flags.DEFINE_float("ema", 0.999, "decay of both models' Polyak (exponential moving) averages of "
                   "their weights, updated after every training step; held-out bits/dim are "
                   "reported with the averages as well as with the weights (0: off)")
flags.DEFINE_integer("steps", 5, "training steps per timing round")
flags.DEFINE_integer("repeats", 3, "timing rounds of the fast measurements; the best is reported")
flags.DEFINE_integer("slow_repeats", 1, "timing rounds of TFP's and the naive sampler, after "
                     "a warm-up call")
flags.DEFINE_integer("num_samples", 4, "images per sampling batch")
flags.DEFINE_integer("naive_size", 16, "image side of the cached-vs-naive comparison")
flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "our training compute dtypes to run "
                  "(config.train.compute_dtype; bfloat16 needs a CPU with bfloat16 arithmetic)")
flags.DEFINE_list("outputs", ["logistic_mixture", "softmax"], "our output heads to run "
                  "(config.model.output): PixelCNN++'s logistic mixture, the paper's softmax")
flags.DEFINE_list("race_dtypes", None, "those of --dtypes whose models train for the budgets "
                  "(default: all); the others are only timed (images/s)")
flags.DEFINE_integer("layers", 11, "our gated blocks")
flags.DEFINE_integer("hidden", 36, "our features per block with the softmax head (a multiple of "
                     "3; 36: 326,316 parameters, 0.998x TFP's 327,104 at the defaults)")
flags.DEFINE_integer("mixture_hidden", 38, "our features per block with the logistic mixture "
                     "head (its head is smaller; 38: 333,062 parameters, 1.018x TFP's)")
flags.DEFINE_integer("mixtures", 10, "our logistic mixture's components (as TFP's num_logistic_mix)")
flags.DEFINE_integer("output_hidden", 96, "our output layer's units")
flags.DEFINE_integer("context", 0, "our config.model.context: resolutions of the causal summary "
                     "of the rows above (zoo.pixelcnn.Context; 0: none, the paper's network)")
flags.DEFINE_integer("context_features", 48, "our config.model.context_features")
flags.DEFINE_integer("context_blocks", 1, "our config.model.context_blocks")
flags.DEFINE_bool("weight_norm", False, "our config.model.weight_norm: weight normalisation with "
                  "data-dependent initialisation on the first batch (as TFP's)")
flags.DEFINE_enum("gate", "tanh", ["tanh", "linear"], "our config.model.gate: eq. 2's "
                  "tanh(f) * sigmoid(g), or PixelCNN++'s f * sigmoid(g)")
flags.DEFINE_bool("vertical_residual", False, "our config.model.vertical_residual: the vertical "
                  "stack residual too")
flags.DEFINE_integer("tfp_resnet", 1, "TFP num_resnet")
flags.DEFINE_integer("tfp_hierarchies", 3, "TFP num_hierarchies")
flags.DEFINE_integer("tfp_filters", 24, "TFP num_filters")
flags.DEFINE_integer("tfp_mix", 10, "TFP num_logistic_mix")
flags.DEFINE_float("tfp_dropout", 0.0, "TFP dropout_p (its default is 0.5)")

SIZE = 32
SHAPE = (SIZE, SIZE, 3)
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina",
          "stereo_motorcycle")  # the RGB photographs scikit-image ships without a download
HELD_OUT = 0.2  # the rightmost fifth of every photo's columns


# -- data -------------------------------------------------------------------------------------


def skimage_crops(train_count, test_count, seed):
  """Returns (train, test) uint8 [N, 32, 32, 3]: random crops of scikit-image's photos,
  test crops from the right fifth of each photo, train crops from the rest."""
  import skimage.data  # pylint: disable=g-import-not-at-top  (only this data set needs it)
  photos = []
  for name in PHOTOS:
    image = getattr(skimage.data, name)()
    photos.append(np.asarray(image[0] if isinstance(image, tuple) else image))  # [H, W, 3]
  rng = np.random.default_rng(seed)

  def cut(count, held_out):
    crops = []
    for k in range(count):
      image = photos[k % len(photos)]
      height, width, _ = image.shape
      split = int(width * (1 - HELD_OUT))
      left, right = (split, width - SIZE) if held_out else (0, split - SIZE)
      i, j = rng.integers(0, height - SIZE + 1), rng.integers(left, right + 1)
      crops.append(image[i:i + SIZE, j:j + SIZE])
    return np.stack(crops)  # [N, 32, 32, 3]

  return cut(train_count, False), cut(test_count, True)


def cifar10(train_count, test_count, data_dir):
  """Returns (train, test) uint8 [N, 32, 32, 3]: the first images of CIFAR-10's splits."""
  take = lambda split, n: next(data_lib.load_images("cifar10", split, data_dir)
                               .take(n).batch(n).as_numpy_iterator())
  return take("train", train_count), take("test", test_count)


def batches(images, batch, seed):
  """Yields uint8 [batch, 32, 32, 3] forever: epochs of `images` in a seeded order."""
  rng = np.random.default_rng(seed)
  while True:
    order = rng.permutation(len(images))
    for k in range(0, len(order) - batch + 1, batch):
      yield tf.constant(images[order[k:k + batch]])


# -- our model ----------------------------------------------------------------------------------


def our_config(shape, dtype="float32", output="softmax"):
  """Returns the pixelcnn config of the comparison for images of `shape` (H, W, C)."""
  f = flags.FLAGS
  config = pixelcnn_config.get_config("cifar10")
  mixture = output == "logistic_mixture"
  config.model.update(layers=f.layers, hidden=f.mixture_hidden if mixture else f.hidden,
                      output_hidden=f.output_hidden, output=output, mixtures=f.mixtures,
                      context=f.context, context_features=f.context_features,
                      context_blocks=f.context_blocks, weight_norm=f.weight_norm,
                      gate=f.gate, vertical_residual=f.vertical_residual)
  config.train.update(compute_dtype=dtype, jit=False)  # XLA for the gates and softmax only
  config.data.image_shape = shape
  config.data.num_classes = 0
  return config


class Ours:
  """Our Gated PixelCNN: the zoo's training step, log_prob, the cached sampler."""

  def __init__(self, batch, dtype, output, first_batch):
    f = flags.FLAGS
    self.output = output
    self.name = f"ours {'mixture' if output == 'logistic_mixture' else 'softmax'} {dtype}"
    self.model = pixelcnn.Model(our_config(SHAPE, dtype, output))
    if self.model.weight_norm:  # data-dependent init on the first batch, as TFP's
      self.model.initialize(first_batch)
    self.variables = self.model.trainable_variables
    self.macs = our_macs(self.model)
    self.parameters = our_parameters(self.model)
    optimizer = keras.optimizers.Adam(f.learning_rate)
    train_step = steps_lib.make_train_step(self.model, {"model": optimizer},
                                           tf.distribute.get_strategy(), batch)
    seeds = tf.zeros([batch, 2], tf.int64)  # unused by the PixelCNN (no noise)
    self.step = lambda images: train_step({"images": images, "seeds": seeds})
    self.log_prob = tf.function(self.model.log_prob)
    seed_rows = tf.constant([[f.seed, k] for k in range(f.num_samples)], tf.int64)
    self.samplers = {jit: functools.partial(tf.function(self.model.sample, jit_compile=jit),
                                            seed_rows) for jit in (False, True)}


def our_macs(model):
  """Returns the multiply-adds per image of our network: every kernel of the blocks and
  the head at every pixel (masked taps are multiplied too), the context's at its
  resolution (a stride-2 conv at its output's, a transposed one at its input's)."""
  size = lambda v: int(np.prod(v.shape))
  context = getattr(model, "context", None)
  skip = {id(v) for v in context.trainable_variables} if context else set()
  macs = sum(size(v) for v in model.trainable_variables
             if len(v.shape) > 1 and id(v) not in skip) * SIZE**2
  if context:
    pixels = lambda level: SIZE**2 // 4**level
    macs += size(context.entry) * pixels(0)
    units = iter(range(context.unit_count))
    levels = [*range(context.levels), *reversed(range(context.levels - 1))]  # down, then up
    for level in levels:
      for _ in range(context.blocks):
        k = next(units)
        macs += (size(getattr(context, f"unit{k}_conv")) + size(getattr(context, f"unit{k}_out"))) * pixels(level)
    for level in range(context.levels - 1):
      macs += (size(getattr(context, f"down{level}")) + size(getattr(context, f"up{level}"))) * pixels(level + 1)
  return macs


# -- TFP's PixelCNN++ ---------------------------------------------------------------------------


class Tfp:
  """tfp.distributions.PixelCNN trained on -log_prob with tf_keras Adam."""

  name = "tfp (float32)"

  def __init__(self, first_batch):
    f = flags.FLAGS
    self.dist = tfp.distributions.PixelCNN(
        SHAPE, num_resnet=f.tfp_resnet, num_hierarchies=f.tfp_hierarchies,
        num_filters=f.tfp_filters, num_logistic_mix=f.tfp_mix, dropout_p=f.tfp_dropout)
    self.variables = self.dist.network.trainable_variables
    # The causal masks are kernel constraints, which only an optimizer step applies:
    # apply them now, so that neither the data-dependent init nor the first step sees the
    # pixels it predicts.
    masked = [v for v in self.variables if v.constraint is not None]
    self.unmasked = sum(float(tf.reduce_sum(tf.abs(v - v.constraint(v)))) for v in masked)
    for v in masked:
      v.assign(v.constraint(v))
    # Weight norm's data-dependent init runs on the first call: an eager one on real data,
    # not a branch inside the traced training step.
    self.dist.log_prob(tf.cast(first_batch, tf.float32), training=False)
    self.macs = tfp_macs(self.dist)
    self.parameters = tfp_parameters(self.dist)
    optimizer = tf_keras.optimizers.Adam(f.learning_rate)  # applies the constraints
    dims = float(np.prod(SHAPE))

    @tf.function
    def step(images):
      with tf.GradientTape() as tape:
        nats = self.dist.log_prob(tf.cast(images, tf.float32), training=True)  # [B]
        loss = -tf.reduce_mean(nats) / dims
      optimizer.apply_gradients(zip(tape.gradient(loss, self.variables), self.variables))
      return loss

    self.step = step
    self.log_prob = tf.function(
        lambda images: self.dist.log_prob(tf.cast(images, tf.float32), training=False))
    self.samplers = {jit: tf.function(lambda: self.dist.sample(f.num_samples, seed=f.seed),
                                      jit_compile=jit) for jit in (False, True)}


def tfp_macs(dist):
  """Returns the multiply-adds per image of a built tfd.PixelCNN's network."""
  macs = 0
  for layer in dist.network._network.layers:  # pylint: disable=protected-access
    if hasattr(layer, "v"):  # a WeightNorm-wrapped conv, transposed conv or dense layer
      out = layer.output_shape  # [None, H, W, C]
      transposed = isinstance(layer.layer, tf_keras.layers.Conv2DTranspose)
      pixels = np.prod((layer.input_shape if transposed else out)[1:-1])
      macs += int(pixels * np.prod(layer.v.shape))
  return macs


# -- measurements -------------------------------------------------------------------------------


def count(variables):
  """Returns the number of scalars in `variables`."""
  return sum(int(np.prod(v.shape)) for v in variables)


def zeros(masks):
  """Returns the number of zeros in `masks` (arrays, 0 where a kernel entry is held at 0)."""
  return sum(int(np.size(m) - np.count_nonzero(m)) for m in masks)


def our_parameters(model):
  """Returns the parameters of our `zoo.pixelcnn.Model`: its trainable scalars less the
  kernel entries its causal masks multiply by zero (a few: only the current pixel's taps
  and channel groups are masked; the shifted convolutions have no masked rows)."""
  masks = [*(m for block in model.blocks for m in block.masks.values()), *model.head_masks]
  return count(model.trainable_variables) - zeros([np.asarray(m) for m in masks])


def tfp_parameters(dist):
  """Returns the parameters of a built `tfd.PixelCNN`: its trainable scalars less the
  kernel entries its causal constraints hold at zero. Its convolutions are 3x3 (and
  4x4, 2x4, 2x2) kernels of which the constraints keep the taps of a 2x3 or 2x2 shifted
  convolution, so 43 % of its trainable scalars (at the comparison's size) are zeros
  that every optimizer step resets: trained variables but not parameters (openai's
  PixelCNN++ uses 2x3 and 2x2 kernels and has none of them)."""
  variables = dist.network.trainable_variables
  return count(variables) - zeros([v.constraint(tf.ones_like(v)).numpy()
                                   for v in variables if v.constraint is not None])


def bits_per_dim(log_prob, images, batch=128):
  """Returns the bits/dim of uint8 images [N, H, W, C] under log_prob (nats [B])."""
  nats = sum(float(tf.reduce_sum(log_prob(tf.constant(images[k:k + batch]))))
             for k in range(0, len(images), batch))
  return float(units.bits_per_dim(nats, images.size))


class Average:
  """Polyak averages of `variables` (PixelCNN++ evaluates with them): after update k
  (k = 1, 2, ...), a = d a + (1 - d) w with d = min(decay, (1 + k) / (10 + k)), the
  warm-up of `tf.train.ExponentialMovingAverage`'s num_updates, so that early averages
  do not lean on the initial weights."""

  def __init__(self, variables, decay):
    self.variables, self.decay = list(variables), decay
    self.averages = [tf.Variable(v, trainable=False) for v in self.variables]
    self.updates = tf.Variable(0.0, trainable=False)

  @tf.function
  def update(self):
    self.updates.assign_add(1.0)
    d = tf.minimum(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
    for a, v in zip(self.averages, self.variables):
      a.assign(d * a + (1.0 - d) * v)

  def evaluate(self, fn):
    """Returns fn() computed with the averages in place of the weights (then restored)."""
    saved = [tf.identity(v) for v in self.variables]
    for v, a in zip(self.variables, self.averages):
      v.assign(a)
    try:
      return fn()
    finally:
      for v, w in zip(self.variables, saved):
        v.assign(w)


def train_for(runner, stream, budgets, test, by_steps=False, ema=0.0):
  """Trains `runner` on `stream` after one traced step, for the largest of `budgets`
  seconds (`by_steps`: steps), with `Average`s of its weights updated after every step
  if `ema` (their cost on the training clock); returns {budget: (steps, loss of the last
  step in nats/dim, held-out bits/dim of `test` when the training clock, or step count,
  passed the budget, the same with the averaged weights or None)}."""
  average = Average(runner.variables, ema) if ema else None
  loss = float(runner.step(next(stream)))  # trace
  if average:
    average.update()
  steps, trained, results = 0, 0.0, {}
  for budget in sorted(budgets):
    while (steps if by_steps else trained) < budget:
      start = time.perf_counter()
      loss = runner.step(next(stream))
      if average:
        average.update()
      loss = float(loss)
      trained += time.perf_counter() - start
      steps += 1
    score = lambda: bits_per_dim(runner.log_prob, test)
    results[budget] = (steps, loss, score(), average.evaluate(score) if average else None)
  return results


def cached_vs_naive(model, size, num, seed, repeats, slow_repeats):
  """Returns (cached s, naive s, identical, differing sub-pixels) of plain zoo.pixelcnn
  at size x size x 3 with `model`'s weights (and head)."""
  small = pixelcnn.Model(our_config((size, size, 3), output=model.output_kind))
  small.set_weights(model.get_weights())  # convolutional: the same weights serve any size
  seeds = tf.constant([[seed, k] for k in range(num)], tf.int64)
  cached, naive = tf.function(small.sample), tf.function(small.sample_naive)
  t_cached = best_time(cached, seeds, repeats=repeats, inner=1)
  t_naive = best_time(naive, seeds, repeats=slow_repeats, inner=1)
  a, b = cached(seeds).numpy(), naive(seeds).numpy()
  return t_cached, t_naive, bool(np.array_equal(a, b)), int(np.sum(a != b))


def versus(a, b, key, label=""):
  """Returns "label: a vs b (lower)" (or "(not lower)") of results a and b at `key`."""
  return (f"{label + ': ' if label else ''}{a[key]:.3f} vs {b[key]:.3f}"
          + (" (lower)" if a[key] < b[key] else " (not lower)"))


def main(argv):
  del argv
  f = flags.FLAGS
  t0 = time.perf_counter()
  if f.data == "skimage":
    train, test = skimage_crops(f.train_images, f.test_images, f.seed)
  else:
    train, test = cifar10(f.train_images, f.test_images, f.data_dir)
  print(f"data {f.data}: {len(train)} training and {len(test)} held-out images "
        f"{'x'.join(map(str, train.shape[1:]))}; batch {f.batch}, Adam {f.learning_rate:g}")
  first = tf.constant(train[:f.batch])
  ours = [Ours(f.batch, dtype, output, first) for output in f.outputs for dtype in f.dtypes]
  # Our samplers compute in float32 whatever the training dtype: timed once per head.
  timed_samplers = {r.output: r for r in reversed(ours)}.values()
  theirs = Tfp(first)
  runners = [*ours, theirs]
  print(f"TFP's kernels before its masks: sum |w - mask(w)| = {theirs.unmasked:.1f} "
        "(non-zero: not causal until an optimizer step)")

  results = {r: {"variables": count(r.variables), "parameters": r.parameters, "MACs/image": r.macs}
             for r in runners}
  by_steps = f.budget_steps is not None
  budgets = sorted(float(b) for b in (f.budget_steps if by_steps else f.budget_s))
  unit = " steps" if by_steps else " s"
  racing = [r for r in runners if r is theirs or f.race_dtypes is None
            or r.model.train_dtype.name in f.race_dtypes]
  for r, res in results.items():  # (c) first, on fresh weights
    if r not in racing:
      continue
    for budget, (steps, loss, bits, averaged) in train_for(
        r, batches(train, f.batch, f.seed), budgets, test, by_steps, f.ema).items():
      res[f"steps {budget:g}"], res[f"bits/dim {budget:g}"] = steps, bits
      if averaged is not None:
        res[f"averaged bits/dim {budget:g}"] = averaged
      print(f"{r.name}: {steps} steps in {budget:g}{unit} (last batch {loss / math.log(2):.3f} "
            f"bits/dim), held-out {bits:.3f} bits/dim"
            + (f", {averaged:.3f} with the averaged weights" if averaged is not None else ""),
            flush=True)
  for r, res in results.items():  # (a), (b): the cost does not depend on the weights
    res["train images/s"] = f.batch / best_time(r.step, first, repeats=f.repeats, inner=f.steps)
    # Multiply-adds per second of training: forward + backward = 3 x the forward's.
    res["GMAC/s"] = 3 * res["train images/s"] * res["MACs/image"] / 1e9
    if r in timed_samplers or r is theirs:
      for jit in (False, True):
        res[f"samples s{' xla' if jit else ''}"] = best_time(
            r.samplers[jit], repeats=f.slow_repeats if r is theirs else f.repeats, inner=1)
    print(f"{r.name}: {res['train images/s']:.1f} train images/s"
          + (f", {f.num_samples} samples in {res['samples s']:.2f} s ({res['samples s xla']:.2f} s "
             "with XLA)" if "samples s" in res else ""), flush=True)
  naive = {r.output: cached_vs_naive(r.model, f.naive_size, f.num_samples, f.seed, f.repeats,
                                     f.slow_repeats) for r in timed_samplers}
  matmul_gmacs = matmul_gflops() / 2  # multiply-adds per second of n x n float32 matmuls

  width = max(len(r.name) for r in runners) + 2
  print(f"\n{'':<36}" + "".join(f"{r.name:>{width}}" for r in runners))
  rows = (("parameters", "parameters", "{:,}"),
          ("  trainable scalars (masked too)", "variables", "{:,}"),
          ("multiply-adds per image", "MACs/image", "{:,}"),
          ("train images/s", "train images/s", "{:.1f}"),
          ("train multiply-adds/s (G)", "GMAC/s", "{:.1f}"),
          (f"{f.num_samples} samples, tf.function (s)", "samples s", "{:.2f}"),
          (f"{f.num_samples} samples, XLA (s)", "samples s xla", "{:.2f}"),
          *((f"steps in {b:g}{unit}", f"steps {b:g}", "{:,}") for b in budgets if not by_steps),
          *(row for b in budgets for row in (
              (f"held-out bits/dim after {b:g}{unit}", f"bits/dim {b:g}", "{:.3f}"),
              ("  with averaged weights", f"averaged bits/dim {b:g}", "{:.3f}"))))
  for label, key, fmt in rows:
    if not any(key in results[r] for r in runners):
      continue
    print(f"{label:<36}" + "".join(
        f"{fmt.format(results[r][key]) if key in results[r] else '-':>{width}}" for r in runners))
  b = results[theirs]
  print(f"\nfloat32 matmul rate here: {matmul_gmacs:.0f} G multiply-adds/s; TFP's training "
        f"runs at {b['GMAC/s'] / matmul_gmacs:.2f} of it")
  for r in ours:
    a = results[r]
    print(f"\n{r.name} / tfp: parameters {a['parameters'] / b['parameters']:.3f} (trainable "
          f"scalars {a['variables'] / b['variables']:.3f}), "
          f"multiply-adds per image {a['MACs/image'] / b['MACs/image']:.2f}, "
          f"train images/s {a['train images/s'] / b['train images/s']:.2f}x, "
          f"train multiply-adds/s {a['GMAC/s'] / b['GMAC/s']:.2f}x "
          f"({a['GMAC/s'] / matmul_gmacs:.2f} of the matmul rate); held-out bits/dim after "
          + (", ".join(versus(a, b, f"bits/dim {t:g}", f"{t:g}{unit}")
                       + (f" (averaged weights: {versus(a, b, f'averaged bits/dim {t:g}')})"
                          if f"averaged bits/dim {t:g}" in a else "")
                       for t in budgets) if r in racing else "not raced (--race_dtypes)"))
    if "samples s" in a:
      print(f"  sampling speed-up vs tfp: {b['samples s'] / a['samples s']:.1f}x "
            f"(both with XLA: {b['samples s xla'] / a['samples s xla']:.1f}x)")
  failed = []
  for output, (t_cached, t_naive, identical, differing) in naive.items():
    print(f"{output}: cached vs naive sampling, {f.naive_size}x{f.naive_size}x3, batch "
          f"{f.num_samples}: {t_cached:.2f} s vs {t_naive:.2f} s ({t_naive / t_cached:.1f}x), "
          f"identical: {identical}" + ("" if identical else f" ({differing} sub-pixels differ)"))
    failed += [] if identical else [output]
  print(f"(total {time.perf_counter() - t0:.0f} s)")
  if failed:
    raise SystemExit(f"cached and naive sampling drew different images from the same seeds: "
                     f"{', '.join(failed)}")


if __name__ == "__main__":
  app.run(main)
