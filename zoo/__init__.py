"""genzoo's models: `zoo.get(name)` returns a model's module; `module.Model(config)`."""
import importlib

NAMES = ("mcgsm", "ride", "pixelcnn", "vae", "msvae", "lapcvae", "gvae")


def get(name):
  """Returns the module of model `name`; ValueError names the valid ones."""
  if name not in NAMES:
    raise ValueError(f"unknown model {name!r}; valid: {', '.join(NAMES)}")
  return importlib.import_module(f"zoo.{name}")
