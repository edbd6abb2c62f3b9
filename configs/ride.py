r"""RIDE (spatial LSTM + factorised MCGSM) on grey images: the main job.

  python -m training.run --model=ride --data=deadleaves
  python -m training.run --model=ride --data=deadleaves --config=configs/ride.py:paper

Default run (4,000 Adam steps, batch 64: 1,600 MCGSM-only steps on 16x16 patches, then
the whole network on 12x12 and 16x16 patches) on the 2-core CPU dev machine: 4 min 0 s
including evaluation, sampling and export; held-out rate 6.86 bit/px on the 1,600 64x64
test patches (the MCGSM default run: 6.60). The `paper` preset has the paper's sizes
(3 layers x 128 hidden units, 32 components, 32 features) and takes far longer.

Training follows the paper and the authors' code in stages: the MCGSM alone (RIDE
starts as the MCGSM: its weights on the SLSTM state start at zero), then the whole
network on patches of increasing size.
"""
import ml_collections


def get_config(arg="deadleaves"):
  """Returns the RIDE config; `arg` is the dataset name, "paper" for the paper's sizes, or
  "tiny" (tests: seconds to build)."""
  c = ml_collections.ConfigDict()
  c.data = dict(patch_size=16, flips=True)
  c.model = dict(neighbourhood=5, components=32, scales=4, features=32, seed=0,
                 hidden=64, layers=1, extended=False)
  # Stages "part:patch:fraction": the MCGSM alone, then everything on growing patches.
  c.train = dict(steps=4000, batch_size=64, learning_rate=1e-2, optimizer="adam", seed=0, jit=True,
                 checkpoint_every=500, sample_every=2000, log_every=50, init_batches=4,
                 stages="mcgsm:16:0.4, all:12:0.35, all:16:0.25", stage_warmup=200,
                 lbfgs_iterations=0)
  c.train.skip_nonfinite = False  # true: a step with a non-finite loss is undone and skipped
  c.eval = dict(patch_size=64, batch_size=25, max_patches=1600, seed=1, ensemble=1)
  c.sample = dict(size=64, margin=8, num=16, seed=0)
  c.export = dict(enabled=True)
  if arg == "textures":  # RIDE section 3.4: texture synthesis, 15 regions train, 1 held out
    c.data.texture = "brick"  # --config.data.texture=grass|gravel picks another
    c.sample.update(size=128, num=4)  # 128x128 samples are the synthesis result
  if arg == "tiny":
    c.model.update(components=4, scales=2, features=4, hidden=4, layers=2)
    c.sample.update(size=8, margin=2, num=4)
  if arg == "paper":
    c.model.update(hidden=128, layers=3)
    c.train.update(steps=100000, batch_size=50,
                   stages="mcgsm:16:0.1, all:8:0.3, all:16:0.3, all:22:0.3")
  return c
