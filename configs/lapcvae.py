r"""LapCVAE: a Laplacian pyramid of conditional VAEs (Dorta et al. 2017) on whole images.

  python -m training.run --model=lapcvae --data=lfw_faces
  python -m training.run --model=lapcvae --data=lfw_faces --config.model.learned_prior=false  # without M
  python -m training.run --model=lapcvae --data=lfw_faces \
      --config.train.stages="level3:0:0.25, level2:0:0.25, level1:0:0.25, level0:0:0.25"  # greedy
  python -m training.run --model=lapcvae --data=lfw_faces --config.train.stages="all:0:0.8, prior:0:0.2"
  python -m training.run --model=lapcvae --data=celeb_a --config.model.levels_k=4   # needs the data

`levels_k` pyramid levels (32x32 faces: 32, 16, 8, 4), `latent_size` latents per level
(4 x 16 = the VAE default's 64 in all), KL weights `kl_weights` from the coarsest level
to the finest (the paper's 64x64 model: "10,0.1,0.01" for its finer levels). Reports the
reconstruction error (sqrt MSE on 0..255, mean and std, LapCVAE Table 1), sharpness and
the negative ELBO in bits/dim of the image. Default run on lfw_faces: see the README's
model table for its time and numbers on the 2-core dev machine.
"""
from configs import vae as vae_config


def get_config(arg="lfw_faces"):
  """Returns the LapCVAE config; `arg` is the dataset name or "tiny" (tests)."""
  c = vae_config.get_config(arg)
  with c.unlocked():
    c.model.update(levels_k=4, latent_size=16, kl_weights="1", learned_prior=True, area_weighted=True,
                   prior_hidden=64, downsamples=2)
    c.train.stages = ""
    if arg == "digits":  # 8x8: 8, 4
      c.model.update(levels_k=2, latent_size=8, downsamples=1)
    if arg in ("mnist", "fashion_mnist"):  # 28x28: 28, 14, 7
      c.model.update(levels_k=3, latent_size=43)
    if arg == "tiny":
      c.model.update(levels_k=2, latent_size=2, hidden=4, prior_hidden=4, downsamples=1)
  return c
