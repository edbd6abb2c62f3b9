r"""GVAE: VAE encoder + ResNet generator + WGAN-GP critic (`zoo/gvae.py`).

  python -m training.run --model=gvae --data=digits
  python -m training.run --model=gvae --data=mnist    # needs the data (TFDS)
  python -m training.run --model=gvae --data=digits --config.model.latent_size=64

Reports the negative ELBO in bits/dim (of the fixed-sigma Gaussian around the generator,
lower is better), reconstruction RMSE (0..255), KL, the importance-weighted bound, and
MMD^2 / MS-SSIM diversity of `eval.sample_quality` samples against as many held-out
images (paper Tables 3-5). Adam 1e-4 with betas (0.5, 0.9) for both networks, cosine
decay to 1e-5; lambda = 10, n_critic = 5. The default run on digits (8x8, 2,000 steps of
batch 32): see the README's model table for its time and numbers on the 2-core machine.
"""
import ml_collections


def get_config(arg="digits"):
  """Returns the GVAE config; `arg` is the dataset name or "tiny" (tests)."""
  c = ml_collections.ConfigDict()
  c.data = dict(patch_size=0, flips=False)  # digits are not mirror-symmetric
  c.model = dict(latent_size=16, hidden=16, downsamples=2, upsamples=2, critic_hidden=16,
                 likelihood="gaussian", sigma=0.1, kl_weight=1.0, adversarial_weight=0.1,
                 penalty_weight=10.0, n_critic=5, beta_1=0.5, beta_2=0.9, levels=256, seed=0)
  c.train = dict(steps=2000, batch_size=32, learning_rate=1e-4, seed=0, checkpoint_every=500,
                 log_every=50, init_batches=0, jit=False)
  c.train.skip_nonfinite = False  # true: a step with a non-finite loss is undone and skipped
  c.eval = dict(patch_size=0, batch_size=100, max_patches=10000, seed=1, iw_samples=16,
                sample_quality=300)
  c.sample = dict(num=16, seed=0)
  c.export = dict(enabled=True)
  if arg in ("mnist", "fashion_mnist"):  # 28x28: the paper's data
    c.model.update(latent_size=100, hidden=32, critic_hidden=32)
    c.eval.update(sample_quality=1000)
  if arg == "lfw_faces":  # 32x32 grey faces
    c.model.update(latent_size=64, downsamples=3)
    c.eval.update(sample_quality=10)
  if arg == "tiny":
    c.model.update(latent_size=3, hidden=4, critic_hidden=4, downsamples=1, upsamples=1, n_critic=2)
    c.train.update(steps=4, batch_size=8, checkpoint_every=2)
    c.eval.update(batch_size=8, max_patches=16, iw_samples=2, sample_quality=8)
    c.sample.update(num=2)
  return c
