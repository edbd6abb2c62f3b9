r"""Deep residual VAE and multi-stage VAE (Cai, Gao & Ji 2017) on whole images.

  python -m training.run --model=msvae --data=lfw_faces                          # multi-stage
  python -m training.run --model=msvae --data=lfw_faces --config.model.variant=residual
  python -m training.run --model=msvae --data=mnist5k --config=configs/msvae.py:paper

The VAE of configs/vae.py (same encoder, latent size and likelihood) with `stages - 1`
refinement networks of `blocks` residual blocks after its decoder. Reports the negative
ELBO in bits/dim of the model's likelihood, the reconstruction error of the last stage
(sqrt MSE on 0..255, mean and std) and its sharpness (high-frequency energy relative to
the originals). Default run on lfw_faces: see the README's model table for its time and
numbers on the 2-core dev machine.

The `paper` preset is the paper's MNIST model (section 3.1, "Settings"; the paper reports
no numbers, only figures), value by value:
  downsamples=3      "The encoder model of VAE consists of three convolution layers with a
                     stride of 2." (kernel size and widths not given; ours: 3x3, `hidden`
                     32, 64, 128 features, ReLU, then a dense layer to q's parameters)
  latent_size=128    "The latent variable size of VAE is set to 128."
  (decoder)          "The decoder reconstructs the image from the latent variable with three
                     deconvolution layers." Ours, from downsamples=3: a dense layer to 4x4,
                     three stride-2 transposed convs (to 32x32), a 3x3 conv to the image,
                     cropped to 28x28.
  blocks=5           "we concatenate the original VAE decoder with five residual blocks"
  batch_norm=True    "Each residual block consists of two convolution layers followed by a
                     batch normalization layer." (activation not given; ours: ReLU between
                     the convs; refine_hidden, the blocks' width, not given; ours: 32)
  variant, stages    "multistage", 2: the two-stage model of section 2.3 ("Here we use two
                     stage deep VAE"); `variant=residual` gives the deep residual VAE
                     trained alongside it.
  likelihood         "gaussian" (fixed sigma): "we add an l2 loss function at the location of
                     the output in the original VAE" (eqs. 3, 7, 14); sigma not given;
                     ours: 0.1 on the [0, 1) scale.
  (refinement loss)  l1: "we employ l1 loss in the objective function of the second network";
                     its weight is not given; ours: 1 / sigma (a Laplace of scale sigma).
  steps=100000, batch_size=256, learning_rate=1e-3
                     "Each model is trained for 100,000 iterations with a batch size of 256
                     and a learning rate of 1e-3." (no schedule is mentioned: constant,
                     stage_learning_rates="0.001"; the optimizer is not given; ours: Adam)
  flips=False        no augmentation is mentioned (and digits are not mirror-symmetric)
  data               MNIST's 60,000 training images; run it with --data=mnist (TFDS) or
                     the bundled --data=mnist5k.
"""
from configs import vae as vae_config


def get_config(arg="lfw_faces"):
  """Returns the multi-stage VAE config; `arg` is the dataset name, "paper" (the paper's
  MNIST model) or "tiny" (tests)."""
  c = vae_config.get_config(arg)
  with c.unlocked():
    c.model.update(variant="multistage", stages=2, blocks=3, refine_hidden=32, batch_norm=False)
    if arg == "tiny":
      c.model.update(blocks=1, refine_hidden=4)
    if arg == "paper":  # MNIST, section 3.1: every value is sourced in the docstring
      c.data.update(flips=False)
      c.model.update(variant="multistage", stages=2, downsamples=3, latent_size=128, hidden=32,
                     blocks=5, batch_norm=True, refine_hidden=32, likelihood="gaussian",
                     sigma=0.1)
      c.train.update(steps=100000, batch_size=256, learning_rate=1e-3, optimizer="adam",
                     stage_learning_rates="0.001")
  return c
