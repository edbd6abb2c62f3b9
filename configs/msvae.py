r"""Deep residual VAE and multi-stage VAE (Cai, Gao & Ji 2017) on whole images.

  python -m training.run --model=msvae --data=lfw_faces                          # multi-stage
  python -m training.run --model=msvae --data=lfw_faces --config.model.variant=residual
  python -m training.run --model=msvae --data=mnist --config.model.stages=3    # needs the data

The VAE of configs/vae.py (same encoder, latent size and likelihood) with `stages - 1`
refinement networks of `blocks` residual blocks after its decoder. Reports the negative
ELBO in bits/dim of the model's likelihood, the reconstruction error of the last stage
(sqrt MSE on 0..255, mean and std) and its sharpness (high-frequency energy relative to
the originals). Default run on lfw_faces: see the README's model table for its time and
numbers on the 2-core dev machine.
"""
from configs import vae as vae_config


def get_config(arg="lfw_faces"):
  """Returns the multi-stage VAE config; `arg` is the dataset name or "tiny" (tests)."""
  c = vae_config.get_config(arg)
  with c.unlocked():
    c.model.update(variant="multistage", stages=2, blocks=3, refine_hidden=32)
    if arg == "tiny":
      c.model.update(blocks=1, refine_hidden=4)
  return c
