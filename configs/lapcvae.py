r"""LapCVAE: a Laplacian pyramid of conditional VAEs (Dorta et al. 2017) on whole images.

  python -m training.run --model=lapcvae --data=lfw_faces
  python -m training.run --model=lapcvae --data=lfw_faces --config.model.learned_prior=false  # without M
  python -m training.run --model=lapcvae --data=lfw_faces \
      --config.train.stages="level3:0:0.25, level2:0:0.25, level1:0:0.25, level0:0:0.25"  # greedy
  python -m training.run --model=lapcvae --data=lfw_faces --config.train.stages="all:0:0.8, prior:0:0.2"
  python -m training.run --model=lapcvae --data=celeb_a --config=configs/lapcvae.py:paper  # needs the data
  python -m training.run --model=lapcvae --data=celeb_a --config=configs/lapcvae.py:paper128

`levels_k` pyramid levels (32x32 faces: 32, 16, 8, 4), `latent_size` latents per level
(4 x 16 = the VAE default's 64 in all). Reports the reconstruction error (sqrt MSE on
0..255, mean and std, LapCVAE Table 1), sharpness and the negative ELBO in bits/dim of
the image. Default run on lfw_faces: see the README's model table for its time and
numbers on the 2-core dev machine.

Per-level fields list level k = 0 (the finest) first, the paper's index and the order in
which it prints its vectors; one value sets every level:
  kl_weights    lambda_k of eq. 12, the weight of level k's own KL term (against M_k's
                learned prior for k < K-1, against N(0, I) at the coarsest level K-1)
  latent_sizes  n_k, the latent width of level k (unset: `latent_size` at every level);
                M_k = (R_k, S_k) maps n_{k+1} to n_k
(`encode` and `decode` concatenate the levels' latents the other way, coarsest first.)

Reading the paper's lists finest first (lambda = [lambda_0, lambda_1, lambda_2]): its two
models then share lambda and n_z at the resolutions they have in common (16x16: 0.01,
32x32: 0.1, 64 latents each), which is what its greedy, coarse-first search would find;
read coarsest first, the same 16x16 level would get 10 in one model and 100 in the other.

`paper`: the 64x64 CelebA model of section 5, as far as the paper gives it:
  levels_k=4        S5: "four Laplacian levels for the 64x64 ... the input size for each VAE
                    is 64x64, 32x32, 16x16 and 8x8 pixels" (on 32x32 lfw_faces: 32..4)
  latent_sizes=64   S5: "The size of the latent space for each level of the pyramid is set
                    to 64 for the 64x64 network" ("a combined dimensionality ... of 256")
  kl_weights=10,0.1,0.01,1
                    S5: "lambda = [10, 0.1, 0.01] for the 64x64 model", "lambda_k, the
                    weight for the KL divergence term for M_k": lambda_0..lambda_2 of the
                    three levels with M_k (64x64, 32x32, 16x16). The coarsest level's
                    (N(0, I), S4.3 "For the coarsest level ... equation 5") is not given;
                    ours: 1. The scale of the reconstruction term that lambda trades
                    against is not given either (S5: "The mean squared error (MSE) between
                    pixels was used as the reconstruction cost"); ours: squared error
                    summed over pixels / (2 sigma^2), sigma = 0.1 on [0, 1), area-weighted.
  learned_prior     S4.3, eq. 13; M_k "shallow multilayer perceptron networks":
                    ours one hidden layer of `prior_hidden` = 64 ReLU units (width not given)
  stages=""         joint training: S5 "The whole pyramid model takes approximately 8 hours
                    to train"; S6 greedy training is possible but "the total training time
                    is doubled"; S5.1.3 figures "were generated without retraining M"
  data              S5: CelebA "aligned and cropped", 64x64, "80% ... for training and 20%
                    for testing"; ours: --data=celeb_a (108x108 centre crop, TFDS's split)
  encoder/decoder   not given ("refer to the supplementary material"); ours: the VAE's
                    conv stacks, hidden=32, downsamples=2
  optimiser, learning rate, batch size, steps: not given (S5: TensorFlow, "a single Nvidia
                    Titan X", about 8 hours); ours: Adam, 1e-3 cosine-decayed, batch 32,
                    2,000 steps
`paper128`: the 128x128 model, the same except
  levels_k=5        S5: "with five for the 128x128"
  latent_sizes=128,128,64,64,64
                    S5: "n_z = [128, 128, 64, 64, 64] for the larger model" ("448")
  kl_weights=100,100,0.1,0.01,1
                    S5: "lambda = [100, 100, 0.1, 0.01] for the 128x128"; coarsest: ours 1
  (our celeb_a is 64x64: there the levels are 64..4, not 128..8)
"""
from configs import vae as vae_config


def get_config(arg="lfw_faces"):
  """Returns the LapCVAE config; `arg` is the dataset name, "paper" (the paper's 64x64
  model), "paper128" (its 128x128 model) or "tiny" (tests)."""
  c = vae_config.get_config(arg)
  with c.unlocked():
    c.model.update(levels_k=4, latent_size=16, latent_sizes="", kl_weights="1", learned_prior=True,
                   area_weighted=True, prior_hidden=64, downsamples=2)
    c.train.stages = ""
    if arg == "digits":  # 8x8: 8, 4
      c.model.update(levels_k=2, latent_size=8, downsamples=1)
    if arg in ("mnist5k", "mnist", "fashion_mnist"):  # 28x28: 28, 14, 7
      c.model.update(levels_k=3, latent_size=43)
    if arg == "tiny":
      c.model.update(levels_k=2, latent_size=2, hidden=4, prior_hidden=4, downsamples=1)
    if arg == "paper":  # sources: the module docstring
      c.model.update(levels_k=4, latent_sizes="64", kl_weights="10,0.1,0.01,1")
    if arg == "paper128":
      c.model.update(levels_k=5, latent_sizes="128,128,64,64,64", kl_weights="100,100,0.1,0.01,1")
  return c
