"""The paper's training in the loop: one learning rate per stage, early stopping on validation."""
import json
import os

import numpy as np
import tensorflow as tf

from configs import ride as ride_config
from tests.conftest import tiny_run_config
from training import batches
from training import data
from training import evaluation
from training import loop
from training import steps
from zoo import mcgsm


class StageLearningRateTest(tf.test.TestCase):

  def test_each_stage_trains_at_its_own_rate(self):
    c = tiny_run_config(steps=4)
    c.train.update(steps=100, stages="all:8:0.5, all:10:0.3, all:12:0.2",
                   stage_learning_rates="1, 0.5, 0.1")
    rate = steps.schedule(c)
    self.assertAllClose([float(rate(s)) for s in (0, 49, 50, 79, 80, 99)],
                        [1.0, 1.0, 0.5, 0.5, 0.1, 0.1])

  def test_a_rate_count_that_does_not_match_the_stages_is_one_line(self):
    c = tiny_run_config(steps=4)
    c.train.update(stages="all:8:0.5, all:10:0.5", stage_learning_rates="1, 0.5, 0.1")
    with self.assertRaisesRegex(ValueError, r"^config.train.stage_learning_rates='1, 0.5, 0.1': "
                                            r"give 2 positive numbers, one per stage"):
      steps.schedule(c)

  def test_paper_preset_follows_the_authors_schedule(self):
    c = ride_config.get_config("paper")
    plan = steps.stages(c)
    self.assertEqual([stage["patch_size"] for stage in plan], [8, 10, 12, 14, 16, 18, 20, 22])
    self.assertEqual({stage["part"] for stage in plan}, {"all"})  # no MCGSM-only stage
    pixels = [(s["end"] - s["begin"]) * s["patch_size"] ** 2 for s in plan]
    self.assertLess(max(pixels) / min(pixels), 1.01)  # one "pass" of equal size per stage
    rate = steps.schedule(c)
    self.assertAllClose([float(rate(s["begin"])) for s in plan],
                        [1.0, 0.5, 0.1, 0.05, 0.01, 0.005, 0.001, 0.0005])
    self.assertEqual((c.train.optimizer, c.train.batch_size, c.train.lbfgs_iterations),
                     ("sgd", 50, 500))
    self.assertEqual(c.model.mcgsm_input, "hidden")
    textures = ride_config.get_config("paper,textures")
    self.assertEqual([s["patch_size"] for s in steps.stages(textures)], [20, 24, 28, 32, 36, 40])
    self.assertEqual(textures.data.texture, "brick")


class EnsembleEvaluationTest(tf.test.TestCase):

  def test_ensemble_and_single_model_are_scored_on_the_same_central_pixels(self):
    data_dir = os.path.join(self.get_temp_dir(), "tfds")
    config = tiny_run_config(steps=4)
    config.eval.update(ensemble=2, max_patches=4, batch_size=2)
    model, _, _ = steps.build("mcgsm", config)
    model.initialize(next(iter(data.train_batches("photos", patch_size=8, global_batch_size=16,
                                                  seed=0, data_dir=data_dir))))
    metrics = evaluation.evaluate(model, config, batches.Source("photos", data_dir), mcgsm.METRIC)
    single, ensemble = metrics["bit_per_px_rate_central"], metrics["bit_per_px_rate_ensemble2_central"]
    self.assertNotEqual(single, metrics["bit_per_px_rate"])  # other pixels than the main metric
    # A mixture of K members is at least its first member less log K: per central pixel
    # (60 x 60 of a 64 x 64 patch) at most log2(2) / 3600 bit lower.
    self.assertGreaterEqual(ensemble, single - 1.0 / 3600 - 1e-6)
    self.assertNotAlmostEqual(ensemble, single, places=6)  # the flipped member counts


class EarlyStoppingTest(tf.test.TestCase):

  def test_a_worse_stage_brings_back_the_best_weights_and_stops(self):
    data_dir = os.path.join(self.get_temp_dir(), "tfds")
    workdir = os.path.join(self.get_temp_dir(), "run")
    config = tiny_run_config(steps=4)
    model, _, checkpoint = steps.build("mcgsm", config)
    model.initialize(next(iter(data.train_batches("photos", patch_size=8, global_batch_size=16,
                                                  seed=0, data_dir=data_dir))))
    manager = tf.train.CheckpointManager(checkpoint, os.path.join(workdir, "checkpoints"), 2)
    good = [v.numpy() for v in model.trainable_variables]
    rng = np.random.default_rng(0)
    spoil = lambda: [v.assign(w + rng.normal(0, 2.0, w.shape).astype(np.float32))
                     for v, w in zip(model.trainable_variables, good)]

    spoil()  # the run starts worse than the good weights
    source = batches.Source("photos", data_dir)
    stopper = evaluation.EarlyStopping(model, config, source, mcgsm.METRIC, workdir)
    stopper.start()
    first = stopper.state["best"]
    for v, w in zip(model.trainable_variables, good):
      v.assign(w)
    self.assertFalse(stopper.after_stage(2, manager))  # better: kept as the best
    self.assertGreater(stopper.state["best"], first)  # a rate: higher is better
    self.assertEqual(stopper.state["step"], 2)

    spoil()
    self.assertTrue(stopper.after_stage(4, manager))  # worse: stop with the best weights
    for v, w in zip(model.trainable_variables, good):
      self.assertAllEqual(v, w)
    with open(os.path.join(workdir, "early_stopping.json")) as f:
      state = json.load(f)
    self.assertEqual((state["stopped"], state["step"], state["checked"]), (True, 2, 4))
    # The latest checkpoint (what export.run and training.sample load) holds them too.
    spoil()
    checkpoint.read(manager.latest_checkpoint).expect_partial()
    for v, w in zip(model.trainable_variables, good):
      self.assertAllEqual(v, w)
    # A resumed run reads the decision back.
    again = evaluation.EarlyStopping(model, config, source, mcgsm.METRIC, workdir)
    self.assertTrue(again.stopped)

  def test_early_stopping_without_a_validation_split_is_one_line_before_writing(self):
    config = tiny_run_config(steps=4)
    config.train.early_stopping = True
    config.eval.patch_size = 16  # lfw_faces' images are 32x32
    workdir = os.path.join(self.get_temp_dir(), "never")
    with self.assertRaisesRegex(data.DataError, r"^config.train.early_stopping needs a validation "
                                                r"split: dataset 'lfw_faces' has no split") as caught:
      loop.train("mcgsm", "lfw_faces", config, workdir, tf.distribute.get_strategy(),
                 data_dir=os.path.join(self.get_temp_dir(), "tfds"), export=False)
    self.assertNotIn("\n", str(caught.exception))
    self.assertFalse(os.path.exists(workdir))


if __name__ == "__main__":
  tf.test.main()
