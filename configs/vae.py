r"""Variational auto-encoder baseline (the VAE family's reference) on whole images.

  python -m training.run --model=vae --data=lfw_faces
  python -m training.run --model=vae --data=digits --config.model.downsamples=2
  python -m training.run --model=vae --data=mnist --config.model.latent_size=128   # needs the data

Reports the negative ELBO in bits/dim (lower is better) and the reconstruction error
(sqrt of the MSE on the 0..255 scale, mean and std over the test images, LapCVAE Table 1).
`--config.model.likelihood=gaussian` trains with the papers' fixed-sigma l2 loss instead
of the discretised Gaussian. Default run on lfw_faces (32x32, 2,000 Adam steps of batch
32): see the README's model table for its time and numbers on the 2-core dev machine.
"""
import ml_collections


def get_config(arg="lfw_faces"):
  """Returns the VAE config; `arg` is the dataset name or "tiny" (tests)."""
  c = ml_collections.ConfigDict()
  # Whole images (patch_size 0); the loop adds image_shape and num_classes from the data.
  c.data = dict(patch_size=0, flips=True)
  c.model = dict(latent_size=64, hidden=32, downsamples=3, likelihood="discretized", sigma=0.1,
                 kl_weight=1.0, levels=256, seed=0)
  c.train = dict(steps=2000, batch_size=32, learning_rate=1e-3, optimizer="adam", seed=0,
                 checkpoint_every=500, log_every=50, init_batches=0, jit=False)
  c.train.skip_nonfinite = False  # true: a step with a non-finite loss is undone and skipped
  c.train.stage_learning_rates = ""  # "r": a constant rate r instead of the cosine decay
  c.eval = dict(patch_size=0, batch_size=100, max_patches=10000, seed=1)
  # figure: also draw the model's figure (figure.png, TensorBoard) at the end.
  c.sample = dict(num=16, seed=0, figure=True)
  c.export = dict(enabled=True)
  if arg in ("digits",):  # 8x8
    c.model.update(downsamples=2, latent_size=16)
  # 28x28: 128 latents as the multi-stage VAE paper's MNIST model (section 3.1), but two
  # stride-2 convs where it has three (configs/msvae.py:paper has the paper's encoder).
  if arg in ("mnist5k", "mnist", "fashion_mnist"):
    c.model.update(downsamples=2, latent_size=128)
  if arg == "tiny":
    c.model.update(latent_size=3, hidden=4, downsamples=1)
    c.train.update(steps=4, batch_size=8, checkpoint_every=2)
    c.eval.update(batch_size=8, max_patches=16)
    c.sample.update(num=2, figure=False)  # tests/test_images.py draws the figures
  return c
