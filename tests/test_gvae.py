"""Properties of GVAE: the gradient penalty is the critic's gradient norm, the two
optimizers update only their own networks, training resumes both, and a short run works."""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from configs import gvae as gvae_config
from tests.conftest import tiny_config
from training import loop
from training import steps
from zoo import gvae

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def random_batch(batch=8, shape=(8, 8, 1), seed=0):
  rng = np.random.default_rng(seed)
  return {"images": tf.constant(rng.integers(0, 256, [batch, *shape]), tf.uint8),
          "seeds": tf.constant(rng.integers(0, 2**40, [batch, 2]), tf.int64)}


class GradientPenaltyTest(tf.test.TestCase):

  def test_penalty_equals_finite_difference_gradient_norm(self):
    critic = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(6, activation="tanh"),
                               keras.layers.Dense(1)])
    critic.build((None, 3, 3, 1))
    for v in critic.trainable_variables:  # a critic whose gradient norm is far from 1
      v.assign(v * 3.0 + 0.1)
    rng = np.random.default_rng(0)
    real, fake = [tf.constant(rng.uniform(-1, 1, [4, 3, 3, 1]), tf.float32) for _ in range(2)]
    alpha = tf.constant(rng.uniform(0, 1, [4, 1, 1, 1]), tf.float32)
    penalty = gvae.gradient_penalty(critic, real, fake, alpha).numpy()

    mix = (alpha * real + (1 - alpha) * fake).numpy().astype(np.float64)
    score = lambda x: critic(tf.constant(x, tf.float32))[:, 0].numpy().astype(np.float64)
    eps, grads = 1e-2, np.zeros_like(mix)
    for k in range(9):  # central differences, one input dimension at a time
      i, j = divmod(k, 3)
      step = np.zeros_like(mix)
      step[:, i, j, 0] = eps
      grads[:, i, j, 0] = (score(mix + step) - score(mix - step)) / (2 * eps)
    expected = (np.sqrt((grads ** 2).sum(axis=(1, 2, 3))) - 1) ** 2
    self.assertAllClose(penalty, expected, rtol=2e-3, atol=1e-4)
    self.assertTrue(np.all(expected > 0.01))  # not trivially zero

  def test_interpolation_weights_are_uniform_per_example(self):
    # alpha ~ U(0, 1) independently per example (a widely copied bug draws it from a normal).
    seeds = tf.constant(np.random.default_rng(1).integers(0, 2**40, [4000, 2]), tf.int64)
    alpha = gvae.interpolation_weights(seeds).numpy().reshape(-1)
    self.assertEqual(alpha.shape, (4000,))
    self.assertGreaterEqual(alpha.min(), 0.0)
    self.assertLess(alpha.max(), 1.0)
    histogram, _ = np.histogram(alpha, bins=4, range=(0, 1))
    self.assertAllClose(histogram / 4000, [0.25] * 4, atol=0.03)


  def test_penalty_on_reconstructions_too_averages_both_lines(self):
    critic = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(6, activation="tanh"),
                               keras.layers.Dense(1)])
    critic.build((None, 3, 3, 1))
    rng = np.random.default_rng(2)
    real, fake_p, fake_q = [tf.constant(rng.uniform(-1, 1, [4, 3, 3, 1]), tf.float32) for _ in range(3)]
    seeds = tf.constant(rng.integers(0, 2**40, [4, 2]), tf.int64)
    alpha = gvae.interpolation_weights(seeds)
    on_prior = gvae.gradient_penalty(critic, real, fake_p, alpha)
    self.assertAllEqual(gvae.penalty(critic, real, fake_p, fake_q, seeds), on_prior)  # the default
    alpha_q = gvae.interpolation_weights(gvae._stream(seeds, gvae.RECONSTRUCTION_ALPHA_STREAM))
    self.assertNotAllClose(alpha_q, alpha)
    expected = 0.5 * (on_prior + gvae.gradient_penalty(critic, real, fake_q, alpha_q))
    self.assertAllClose(gvae.penalty(critic, real, fake_p, fake_q, seeds, "prior_and_reconstruction"),
                        expected, rtol=1e-5)


class PaperEncoderTest(tf.test.TestCase):

  def test_paper_preset_encoder_is_four_3x3_convs_with_batch_norm_and_leaky_relu(self):
    config = gvae_config.get_config("paper")
    config.data.image_shape = (28, 28, 1)
    config.model.update(latent_size=10, hidden=4, critic_hidden=4)  # the layout, not the sizes
    model = gvae.Model(config)
    convs = [l for l in model.encoder.layers if isinstance(l, keras.layers.Conv2D)]
    self.assertEqual([(c.kernel_size, c.strides) for c in convs], [((3, 3), (2, 2))] * 4)
    self.assertLen([l for l in model.encoder.layers if isinstance(l, keras.layers.BatchNormalization)], 3)
    self.assertLen([l for l in model.encoder.layers if isinstance(l, keras.layers.LeakyReLU)], 3)
    self.assertEqual(model.encoder.output_shape, (None, 20))
    self.assertEqual(model.penalty_on, "prior_and_reconstruction")
    batch = random_batch(batch=2, shape=(28, 28, 1))
    self.assertEqual(model.reconstruct(batch["images"], batch["seeds"]).shape, (2, 28, 28, 1))

  def test_batch_norm_trains_on_the_batch_and_evaluates_on_checkpointed_averages(self):
    config = tiny_config("gvae", image_shape=(8, 8, 1))
    config.model.update(encoder="paper", penalty_on="prior_and_reconstruction")
    model, optimizers, checkpoint = steps.build("gvae", config)
    moving = [v for v in model.non_trainable_variables if "moving" in v.path]
    self.assertLen(moving, 6)  # three batch norms' means and variances
    before = [v.numpy() for v in moving]
    steps.make_train_step(model, optimizers, tf.distribute.get_strategy(), 8)(random_batch())
    self.assertTrue(all(np.abs(v.numpy() - b).max() > 0 for v, b in zip(moving, before)))
    images = random_batch(seed=1)["images"]
    log_prob = model.log_prob(images)
    self.assertAllEqual(model.log_prob(images), log_prob)
    self.assertAllClose(model.log_prob(images[2:3]), log_prob[2:3], rtol=1e-6)
    self.assertAllClose(model.encode(images[5:6])["mean"], model.encode(images)["mean"][5:6], rtol=1e-6)
    path = checkpoint.save(os.path.join(self.get_temp_dir(), "ckpt"))
    restored, _, again = steps.build("gvae", config)
    again.restore(path).assert_existing_objects_matched()
    self.assertAllEqual(restored.log_prob(images), log_prob)

  def test_bad_encoder_or_penalty_says_what_is_allowed(self):
    for field, value, valid in (("encoder", "dcgan", "valid: vae, paper"),
                                ("penalty_on", "real", "valid: prior, prior_and_reconstruction")):
      config = tiny_config("gvae", image_shape=(8, 8, 1))
      config.model[field] = value
      with self.assertRaisesRegex(ValueError, f"unknown config.model.{field} '{value}'; {valid}"):
        gvae.Model(config)


class TrainingTest(tf.test.TestCase):

  def test_each_phase_updates_only_its_network(self):
    config = tiny_config("gvae", image_shape=(8, 8, 1))
    model, optimizers, _ = steps.build("gvae", config)
    phases = model.training_phases(optimizers, global_batch_size=8)
    self.assertLen(phases, config.model.n_critic + 1)
    batch = random_batch()
    critic_ids = {id(v) for v in model.trainable_for("critic")}
    for k, phase in enumerate(phases):
      before = [v.numpy() for v in model.trainable_variables]
      self.assertTrue(np.isfinite(float(tf.function(phase)(batch))))
      moved = {id(v) for v, b in zip(model.trainable_variables, before)
               if np.abs(v.numpy() - b).max() > 0}
      expected = critic_ids if k < config.model.n_critic else (
          {id(v) for v in model.trainable_for("generator")})
      self.assertTrue(moved, f"phase {k} moved nothing")
      self.assertLessEqual(moved, expected, f"phase {k} moved another network's weights")
    self.assertEqual(int(optimizers["critic"].iterations.numpy()), config.model.n_critic)
    self.assertEqual(int(optimizers["generator"].iterations.numpy()), 1)

  def test_checkpoint_holds_both_optimizers(self):
    config = tiny_config("gvae", image_shape=(8, 8, 1))
    model, optimizers, checkpoint = steps.build("gvae", config)
    step = steps.make_train_step(model, optimizers, tf.distribute.get_strategy(), 8)
    for seed in range(2):
      step(random_batch(seed=seed))
    path = checkpoint.save(os.path.join(self.get_temp_dir(), "ckpt"))
    _, restored, again = steps.build("gvae", config)
    again.restore(path).assert_existing_objects_matched()
    self.assertEqual(int(restored["generator"].iterations.numpy()), 2)
    self.assertEqual(int(restored["critic"].iterations.numpy()), 2 * config.model.n_critic)
    for a, b in zip(optimizers["critic"].variables, restored["critic"].variables):
      self.assertAllEqual(a.numpy(), b.numpy())

  def test_one_optimizer_for_a_gvae_is_refused(self):
    config = tiny_config("gvae", image_shape=(8, 8, 1))
    model, optimizers, _ = steps.build("gvae", config)
    with self.assertRaisesRegex(TypeError, "dict of optimizers"):
      steps.make_train_step(model, optimizers["generator"], tf.distribute.get_strategy(), 8)

  def test_cli_trains_evaluates_and_exports(self):
    workdir = os.path.join(self.get_temp_dir(), "run")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    args = ["--model=gvae", "--data=digits", f"--workdir={workdir}", "--config.train.steps=6",
            "--config.train.batch_size=8", "--config.model.hidden=4", "--config.model.critic_hidden=4",
            "--config.model.n_critic=2", "--config.eval.sample_quality=20", "--config.eval.iw_samples=2",
            "--config.train.checkpoint_every=3"]
    done = subprocess.run([sys.executable, "-m", "training.run", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    self.assertEqual(done.returncode, 0, done.stderr[-2000:])
    with open(os.path.join(workdir, "metrics.json")) as f:
      metrics = json.load(f)
    for key in ("bits_per_dim", "reconstruction_rmse", "kl", "iw_bits_per_dim", "mmd2",
                "ms_ssim_diversity", "ms_ssim_diversity_test"):
      self.assertTrue(np.isfinite(metrics[key]), key)
    self.assertEqual(metrics["steps"], 6)
    self.assertLess(metrics["ms_ssim_diversity"], 1.0)
    self.assertTrue(os.path.isdir(os.path.join(workdir, "export", "1")))

  def test_mnist_and_fashion_mnist_through_tfds(self):
    for name in ("mnist", "fashion_mnist"):
      with self.subTest(data=name), tfds.testing.mock_data(num_examples=20):
        config = gvae_config.get_config("tiny")
        config.train.steps = 2
        workdir = os.path.join(self.get_temp_dir(), name)
        metrics = loop.train("gvae", name, config, workdir, tf.distribute.get_strategy(), export=False)
        self.assertEqual(tuple(config.data.image_shape), (28, 28, 1))
        for key in ("bits_per_dim", "mmd2", "ms_ssim_diversity"):
          self.assertTrue(np.isfinite(metrics[key]), key)

  def test_bad_n_critic_is_one_clear_line(self):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    workdir = os.path.join(self.get_temp_dir(), "bad")
    done = subprocess.run([sys.executable, "-m", "training.run", "--model=gvae", "--data=digits",
                           f"--workdir={workdir}", "--config.model.n_critic=0"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    self.assertNotEqual(done.returncode, 0)
    self.assertIn("n_critic=0 must be at least 1", done.stderr.strip().splitlines()[-1])


if __name__ == "__main__":
  tf.test.main()
