"""The model contract (zoo/contract.py), checked for every model of the registry and its
variants (tests/conftest.py): a new model gets these tests the day it is registered.

* it declares what the contract requires, and has every method its capabilities promise;
* causality, by one method for every model with per-pixel log-likelihoods: changing a
  sub-pixel (raster order, R -> G -> B within a pixel) leaves every earlier sub-pixel's
  log-likelihood bit for bit the same and changes its own;
* normalisation, exhaustively on tiny images, where the model is discrete and exact
  (per-pixel log-likelihoods of a discrete image): the probabilities of all images sum to 1;
* `sample`: uint8 at the declared shape, each row a function of its own seed (and
  conditioning) only;
* `contract.checkpoint(model)` alone saves and restores every variable;
* two training steps with 2 replicas (MirroredStrategy on two logical CPUs) equal them
  with 1 replica (every model, and the class-conditional PixelCNN for labels in batches;
  batch norm's synchronised statistics: tests/test_training.py). The export round trip is tests/test_export.py's, over the same list.

All on untrained models whose weights are perturbed at random: a zero weight (RIDE's
MCGSM starts blind to its SLSTM) could hide a dependence.
"""
import itertools
import os

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from tests.conftest import mirrored_strategy
from tests.conftest import registry_variants
from tests.conftest import tiny_config
from tests.conftest import tiny_model
from training import steps
import zoo
from zoo import contract

CASES = [(f"{name}{variant}", name, overrides) for name, variant, overrides in registry_variants()]
# Replicas: every model, and the conditioning that travels with the batches (labels).
REPLICA_CASES = [case for case in CASES if case[0] in zoo.NAMES or case[0] == "pixelcnnClass"]


def perturbed(model, seed=0, scale=0.05):
  """Returns `model` with Gaussian noise added to every trainable weight."""
  rng = np.random.default_rng(seed)
  for v in model.trainable_variables:
    v.assign_add(rng.normal(0.0, scale, v.shape).astype(v.numpy().dtype))
  return model


def conditioning(model, rows, seed=0):
  """Returns the keyword conditioning of `rows` examples: labels, or codes, as the model takes."""
  rng = np.random.default_rng(seed)
  cond = {}
  if contract.LABEL in model.conditional_inputs:
    cond[contract.LABEL] = tf.constant(rng.integers(0, model.num_classes, [rows]), tf.int32)
  if contract.CODE in model.conditional_inputs:
    cond[contract.CODE] = tf.constant(rng.normal(0, 1, [rows, model.code_size]), tf.float32)
  return cond


def all_images(shape, levels):
  """Returns uint8 [levels ** (H W C), H, W, C]: every image of that shape."""
  values = np.array(list(itertools.product(range(levels), repeat=int(np.prod(shape)))), np.uint8)
  return values.reshape([-1, *shape])


class ContractTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(*CASES)
  def test_declares_what_the_contract_requires(self, name, overrides):
    model = tiny_model(tiny_config(name, **overrides), name)
    self.assertEqual(contract.problems(model), [])
    self.assertIsInstance(model, contract.Model)

  def test_problems_name_what_is_missing(self):
    model = tiny_model(tiny_config("mcgsm"), "mcgsm")

    class Broken:  # the MCGSM's declarations, but a promise broken and a member missing
      channels, levels, continuous, fixed_size = 1, 256, True, None
      conditional_inputs, capabilities = ("label",), model.capabilities | {"teleport"}
      log_prob = eval_terms = train_loss = model.log_prob
      figure = "stages"  # a figure whose methods it lacks

    self.assertEqual(contract.problems(Broken()), [
        "missing `sample`",
        "capability 'ensemble' promises `ensemble_terms`, which is missing",
        "capability 'finetune' promises `finetune`, which is missing",
        "capability 'initialize' promises `initialize`, which is missing",
        "capability 'inpaint' promises `ancestral`, which is missing",
        "capability 'inpaint' promises `width`, which is missing",
        "capability 'pixel_log_prob' promises `pixel_log_prob`, which is missing",
        "unknown capability 'teleport'",
        "figure 'stages' needs `stage_images`, which is missing",
        "figure 'stages' needs `latent_size`, which is missing",
        "conditioning 'label' needs `num_classes`, which is missing"])

  def skip_unless_exact_pixels(self, name, overrides, discrete=False):
    model = tiny_model(tiny_config(name, **overrides), name)
    if not contract.has(model, contract.PIXELS):
      self.skipTest(f"{name} has no per-pixel log-likelihoods")
    if discrete and model.continuous:
      self.skipTest(f"{name}: log_prob is a density, not a probability")

  @parameterized.named_parameters(*CASES)
  def test_a_subpixel_never_changes_an_earlier_one(self, name, overrides):
    self.skip_unless_exact_pixels(name, overrides)
    shape = (5, 6, 3) if name == "pixelcnn" and not overrides else (5, 6, 1)  # RGB order too
    model = perturbed(tiny_model(tiny_config(name, image_shape=shape, **overrides), name))
    rng = np.random.default_rng(1)
    image = rng.integers(0, model.levels, [1, *shape]).astype(np.uint8)
    cond = conditioning(model, 1)
    base = model.pixel_log_prob(image, **cond).numpy().reshape(-1)
    size = base.size
    for t in sorted({0, 1, shape[2], size // 2, size - 2, size - 1}):
      changed = image.reshape(-1).copy()
      changed[t] = (int(changed[t]) + model.levels // 2 + 1) % model.levels
      out = model.pixel_log_prob(changed.reshape(image.shape), **cond).numpy().reshape(-1)
      self.assertAllEqual(out[:t], base[:t], msg=f"sub-pixel {t} changed an earlier one")
      self.assertNotEqual(out[t], base[t], msg=f"sub-pixel {t}'s own term ignores it")

  @parameterized.named_parameters(*CASES)
  def test_probabilities_of_all_tiny_images_sum_to_one(self, name, overrides):
    self.skip_unless_exact_pixels(name, overrides, discrete=True)
    channels = 3 if name == "pixelcnn" and not overrides else 1
    config = tiny_config(name, image_shape=(2, 2, channels), **overrides)
    if "levels" in config.model:
      config.model.levels = 2
    model = perturbed(tiny_model(config, name))
    images = all_images((2, 2, channels), model.levels)
    for cond in (conditioning(model, 1, seed) for seed in (0, 1)):
      rows = {k: tf.repeat(v, len(images), 0) for k, v in cond.items()}
      log_probs = tf.concat([model.log_prob(images[k:k + 1024], **{
          key: value[k:k + 1024] for key, value in rows.items()}) for k in range(0, len(images), 1024)], 0)
      self.assertAllClose(tf.reduce_logsumexp(log_probs), 0.0, atol=1e-5)

  @parameterized.named_parameters(*CASES)
  def test_sample_rows_depend_only_on_their_own_seed(self, name, overrides):
    model = perturbed(tiny_model(tiny_config(name, **overrides), name))
    cond_a, cond_b = conditioning(model, 2, seed=0), conditioning(model, 3, seed=1)
    cond_b = {k: tf.concat([cond_a[k][:1], v[1:]], 0) for k, v in cond_b.items()}  # row 0 shared
    sample = tf.function(model.sample)
    a = sample(tf.constant([[1, 2], [3, 4]], tf.int64), **cond_a).numpy()
    b = sample(tf.constant([[1, 2], [5, 6], [7, 8]], tf.int64), **cond_b).numpy()
    self.assertEqual(a.dtype, np.uint8)
    self.assertEqual(a.shape[0], 2)
    self.assertEqual(a.shape[3], model.channels)
    self.assertLess(int(a.max()), model.levels)
    self.assertAllEqual(a[0], b[0])
    self.assertNotAllEqual(a[1], b[1])


  @parameterized.named_parameters(*CASES)
  def test_a_checkpoint_of_the_model_alone_restores_every_variable(self, name, overrides):
    # Keras 3 leaves layers in Python lists out of tf.train.Checkpoint's graph: a
    # PixelCNN's blocks, a LapCVAE's levels, batch norm's moving averages in lists.
    config = tiny_config(name, **overrides)
    model = tiny_model(config, name)
    rng = np.random.default_rng(2)
    for v in model.variables:
      v.assign(rng.normal(0, 1, v.shape).astype(v.numpy().dtype))
    path = contract.checkpoint(model).save(os.path.join(self.get_temp_dir(), name, "ckpt"))
    again = tiny_model(config, name)
    contract.checkpoint(again).restore(path).assert_existing_objects_matched()
    self.assertLen(again.variables, len(model.variables))
    for a, b in zip(model.variables, again.variables):
      self.assertAllEqual(a.numpy(), b.numpy(), msg=a.path)


class ReplicasTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(*REPLICA_CASES)
  def test_two_replicas_match_one(self, name, overrides):
    mirrored = mirrored_strategy()
    config = tiny_config(name, image_shape=(8, 8, 1), **overrides)
    rng = np.random.default_rng(0)
    batches = [{"images": tf.constant(rng.integers(0, 256, [8, 8, 8, 1]), tf.uint8),
                "seeds": tf.constant(rng.integers(0, 2**40, [8, 2]), tf.int64)} for _ in range(2)]
    results = {}
    for strategy_name, strategy in (("one", tf.distribute.get_strategy()), ("two", mirrored)):
      model, optimizers, _ = steps.build(name, config, strategy)
      if contract.LABEL in model.conditional_inputs:
        for k, batch in enumerate(batches):
          batch[contract.LABEL] = tf.constant(np.arange(8) % 3 + k, tf.int32) % 3
      if contract.has(model, contract.INITIALIZE):
        model.initialize(batches[0]["images"])
      initial = [v.numpy() for v in model.trainable_variables]
      # As the loop builds it: XLA-compiled where the config says so (the MCGSM), except
      # RIDE's, whose unrolled spatial LSTMs take XLA ~50 s to compile three times here
      # (one replica, then two); its step runs op by op (15 s).
      jit = config.train.get("jit", False) and name != "ride"
      step = steps.make_train_step(model, optimizers, strategy, global_batch_size=8, jit=jit)
      ds = tf.data.Dataset.from_tensor_slices({k: tf.stack([b[k] for b in batches]) for k in batches[0]})
      losses = [float(step(batch)) for batch in strategy.experimental_distribute_dataset(ds)]
      results[strategy_name] = losses, [v.numpy() for v in model.trainable_variables]
    self.assertEqual(mirrored.num_replicas_in_sync, 2)
    self.assertAllClose(results["one"][0], results["two"][0], rtol=1e-5)
    for a, b in zip(results["one"][1], results["two"][1]):
      self.assertAllClose(a, b, rtol=1e-4, atol=1e-6)
    # The steps moved the weights, so the comparison is not vacuous.
    self.assertTrue(any(np.abs(a - b).max() > 1e-4 for a, b in zip(initial, results["one"][1])))


if __name__ == "__main__":
  tf.test.main()
