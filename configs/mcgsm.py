r"""Factorised MCGSM (RIDE section 2.1) on grey images.

  python -m training.run --model=mcgsm --data=deadleaves

Default run on 2 CPU cores: see README (measured there with the command above).
Overrides: --config.train.steps=200 --config.model.components=16 ...
"""
import ml_collections


def get_config(data="deadleaves"):
  """Returns the MCGSM config for dataset `data`."""
  c = ml_collections.ConfigDict()
  c.data = dict(patch_size=16, flips=True)
  c.model = dict(neighbourhood=5, components=32, scales=4, features=32, seed=0)
  c.train = dict(steps=2000, batch_size=64, learning_rate=1e-2, optimizer="adam", seed=0,
                 checkpoint_every=500, log_every=50, init_batches=4)
  c.eval = dict(patch_size=64, batch_size=50, max_patches=1600, seed=1)
  c.sample = dict(size=64, margin=8, num=16, seed=0)
  c.export = dict(enabled=True)
  return c
