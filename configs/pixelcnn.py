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

`--config.model.gated=false` gives the paper's baseline: the same blocks with ReLU in
place of the gate (section 2.1), at equal `hidden` about half the block parameters. At
matched parameters on digits, `--config.model.gated=false --config.model.hidden=70`
(289,948 parameters against the gated default's 287,488). A sanity check, one seed,
600 steps each (`--config.train.steps=600`): held-out 1.95 bits/dim gated, 1.81 ungated
(wall times, 615 s and 543 s, were dominated by other jobs on the shared 2 cores).

The `paper` preset (`--config=configs/pixelcnn.py:paper --data=cifar10`) follows the
paper only as far as it says; its one stated model is the ImageNet one (Table 2):
  layers=20, hidden=384, kernel=first_kernel=5: "For the results in Table 2 we trained a
      larger model with 20 layers (Figure 2), each having 384 hidden units and filter size
      of 5×5" (section 3.1; 384 read as p, the features of each stack; every layer 5×5);
  steps=200000, batch_size=128: "We used 200K synchronous updates over 32 GPUs in
      TensorFlow [1] using a total batch size of 128" (section 3.1);
  levels=256: "The 256 possible values for each colour channel are then modelled using a
      softmax" (section 2);
  gated=True: eq. 2 (section 2.1);
  optimiser and learning rate: not given; ours: Adam, 3e-4;
  output layers: not given; ours: ReLU, 1x1 to output_hidden=1024, ReLU, 1x1 to logits;
  data: 32x32 ImageNet (Table 2), which genzoo does not have; CIFAR-10 (Table 1) is the
      nearest, but the paper gives no sizes for its CIFAR-10 model.
Far beyond a CPU: 116.9 M parameters. `paper_ungated` is the same with gated=False and
hidden=549: 116.5 M parameters, matched to 0.3 % (the paper gives no sizes for its
baseline).
"""
import ml_collections


def get_config(arg="digits"):
  """Returns the PixelCNN config; `arg` is the dataset name, "paper", "paper_ungated" or
  "tiny" (tests)."""
  c = ml_collections.ConfigDict()
  # Whole images (patch_size 0); the loop adds image_shape and num_classes from the data.
  c.data = dict(patch_size=0, flips=True)
  c.model = dict(layers=8, hidden=48, kernel=3, first_kernel=7, output_hidden=96, levels=256,
                 conditional="", spatial=False, spatial_features=8, code_size=10, seed=0,
                 gated=True,  # False: the ungated (ReLU) baseline, `zoo.pixelcnn`
                 # "softmax": the paper's 256-way softmax per sub-pixel; "logistic_mixture":
                 # PixelCNN++'s mixture of `mixtures` discretised logistics per pixel.
                 output="softmax", mixtures=10,
                 # context=L > 0 (not in the paper): a causal L-resolution summary of the
                 # rows above every pixel (`zoo.pixelcnn.Context`) feeds every block.
                 context=0, context_features=32, context_blocks=1,
                 # weight_norm=True (not in the paper): PixelCNN++'s weight normalisation
                 # with data-dependent initialisation on config.train.init_batches batches.
                 weight_norm=False,
                 # gate="linear" (not in the paper): f * sigmoid(g), PixelCNN++'s gate,
                 # instead of eq. 2's tanh(f) * sigmoid(g); vertical_residual=True (not in
                 # the paper): the vertical stack is residual too.
                 gate="tanh", vertical_residual=False)
  # jit=False: the training loss XLA-compiles only its gates and softmax (`zoo.pixelcnn`),
  # faster here than compiling the whole gradient (47 s vs 56 s for 600 digits steps; at
  # 32x32 XLA's CPU convolutions are 1.2x slower than TF's); exports never need XLA.
  c.train = dict(steps=2000, batch_size=32, learning_rate=1e-3, optimizer="adam", seed=0,
                 checkpoint_every=500, log_every=50, init_batches=1, jit=False)
  # "bfloat16": the training loss computes in bfloat16 (mixed precision; 1.8x the images/s on
  # CPUs with AMX, much slower on CPUs without bfloat16 arithmetic); evaluation, sampling
  # and exports always compute in float32.
  c.train.compute_dtype = "float32"
  c.train.skip_nonfinite = False  # true: a step with a non-finite loss is undone and skipped
  c.eval = dict(patch_size=0, batch_size=100, max_patches=10000, seed=1)
  # figure: also draw the model's figure (figure.png, TensorBoard) at the end.
  c.sample = dict(num=16, seed=0, figure=True)
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
    c.sample.update(num=2, figure=False)  # tests/test_images.py draws the figures
  if arg in ("paper", "paper_ungated"):  # the ImageNet model (section 3.1); see the docstring
    c.model.update(layers=20, hidden=384, kernel=5, first_kernel=5, output_hidden=1024,
                   levels=256)
    c.train.update(steps=200000, batch_size=128, learning_rate=3e-4, optimizer="adam")
  if arg == "paper_ungated":  # ReLU in place of the gate, parameters matched (not in the paper)
    c.model.update(gated=False, hidden=549)
  return c
