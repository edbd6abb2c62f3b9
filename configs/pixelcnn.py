r"""Gated PixelCNN (van den Oord et al. 2016) on whole images.

  python -m training.run --model=pixelcnn --data=digits
  python -m training.run --model=pixelcnn --data=digits --config.model.conditional=class
  python -m training.run --model=pixelcnn --data=mnist --config.model.levels=2   # binarised
  python -m training.run --model=pixelcnn --data=mnist --config.model.conditional=autoencoder

Default run on digits (6 blocks of 48 features, 2,000 Adam steps of batch 64) on the
2-core CPU dev machine: 2 min 31 s including evaluation, sampling and
export; 1.75 bits/dim on the 300 held-out digits (the 17 grey levels of the data would
take 4.09 bits/dim under a uniform model over them, 8 over all 256). `--config.model.levels=L` (L < 256 dividing 256) requantises the data to L levels
(x // (256 / L): levels=2 thresholds at 128, binarised MNIST). `conditional=class` needs
a labelled dataset; `spatial=True` adds the location-dependent conditioning of eq. 5.
The `paper` preset has the CIFAR-10 model's sizes and takes far longer.
"""
import ml_collections


def get_config(arg="digits"):
  """Returns the PixelCNN config; `arg` is the dataset name, "paper" or "tiny" (tests)."""
  c = ml_collections.ConfigDict()
  # Whole images (patch_size 0); the loop adds image_shape and num_classes from the data.
  c.data = dict(patch_size=0, flips=True)
  c.model = dict(layers=8, hidden=48, kernel=3, first_kernel=7, output_hidden=96, levels=256,
                 conditional="", spatial=False, spatial_features=8, code_size=10, seed=0)
  # jit=False: the training loss XLA-compiles only its gates and softmax (`zoo.pixelcnn`),
  # faster here than compiling the whole gradient (47 s vs 56 s for 600 digits steps; at
  # 32x32 XLA's CPU convolutions are 1.2x slower than TF's); exports never need XLA.
  c.train = dict(steps=2000, batch_size=32, learning_rate=1e-3, optimizer="adam", seed=0,
                 checkpoint_every=500, log_every=50, init_batches=0, jit=False)
  # "bfloat16": the training loss computes in bfloat16 (mixed precision; 1.8x the images/s on
  # CPUs with AMX, much slower on CPUs without bfloat16 arithmetic); evaluation, sampling
  # and exports always compute in float32.
  c.train.compute_dtype = "float32"
  c.train.skip_nonfinite = False  # true: a step with a non-finite loss is undone and skipped
  c.eval = dict(patch_size=0, batch_size=100, max_patches=10000, seed=1)
  c.sample = dict(num=16, seed=0)
  c.export = dict(enabled=True)
  if arg == "digits":  # 8x8: six blocks already see the whole causal past
    c.model.update(layers=6, hidden=48, output_hidden=96)
    c.train.update(steps=2000, batch_size=64)
  if arg == "cifar10":
    c.model.update(layers=12, hidden=96, output_hidden=192)
  if arg == "tiny":
    c.model.update(layers=2, hidden=6, output_hidden=6, first_kernel=3, code_size=3,
                   spatial_features=2)
    c.train.update(steps=4, batch_size=8, checkpoint_every=2, jit=False)
    c.eval.update(batch_size=8, max_patches=16)
    c.sample.update(num=2)
  if arg == "paper":  # CIFAR-10 (Table 1): 15 blocks of 3x3 after a 7x7, 128 feature maps per group
    c.model.update(layers=16, hidden=384, output_hidden=1024)
    c.train.update(steps=200000, batch_size=128, learning_rate=3e-4)
  return c
