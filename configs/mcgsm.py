r"""Factorised MCGSM (RIDE section 2.1) on grey images.

  python -m training.run --model=mcgsm --data=deadleaves

Default run (2,000 Adam steps, batch 64 of 16x16 patches, loss and gradients XLA-compiled)
on the 2-core CPU dev machine: 1 min 50 s including evaluation, sampling and export
(2026-12-03; training ~55 s, 650,000-850,000 px/s); it reaches a held-out rate of 6.646
bit/px on the 1,600 64x64 test patches (op by op, before XLA: 6.60; a sweep then found
6.62-6.66 with 3,000 steps or batch 128).
Overrides: --config.train.steps=200 --config.model.components=16 ...
"""
import ml_collections


def get_config(arg="deadleaves"):
  """Returns the MCGSM config; `arg` is the dataset name, or "tiny" (tests: seconds to build)."""
  c = ml_collections.ConfigDict()
  c.data = dict(patch_size=16, flips=True)
  c.model = dict(neighbourhood=5, components=32, scales=4, features=32, seed=0)
  # jit: the loss and gradients XLA-compiled (1.6-2.7x the step's speed on the 2-core dev
  # machines; the README's MCGSM roofline); false runs them op by op.
  c.train = dict(steps=2000, batch_size=64, learning_rate=1e-2, optimizer="adam", seed=0,
                 checkpoint_every=500, log_every=50, init_batches=4, jit=True)
  c.train.skip_nonfinite = False  # true: a step with a non-finite loss is undone and skipped
  c.eval = dict(patch_size=64, batch_size=50, max_patches=1600, seed=1)
  # figure: also draw the model's figure (figure.png, TensorBoard) at the end.
  c.sample = dict(size=64, margin=8, num=16, seed=0, figure=True)
  c.export = dict(enabled=True)
  if arg == "textures":  # RIDE section 3.4: texture synthesis, 15 regions train, 1 held out
    c.data.texture = "brick"  # --config.data.texture=grass|gravel picks another
    c.sample.update(size=128, num=4)  # 128x128 samples are the synthesis result
  if arg == "tiny":
    c.model.update(components=4, scales=2, features=4)
    c.sample.update(size=8, margin=2, num=4, figure=False)  # tests/test_images.py draws it
  return c
