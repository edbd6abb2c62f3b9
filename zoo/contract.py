"""What every zoo model provides, and the optional capabilities it declares.

The training loop (`training/`) and the exporter (`export/`) rely on this contract and on
nothing else: they never probe a model for a method by name, and never name a model.
A new model implements `Model` below, lists its optional capabilities in
`capabilities`, and registers its module in `zoo.NAMES`; `tests/test_contract.py` then
checks it (every required member, every method its capabilities promise, the export
round trip, causality when it has per-pixel likelihoods, ...).

Conventions (shared/DESIGN.md): images enter and leave as uint8 [B, H, W, C] with values
in [0, levels); log-likelihoods are nats per example; `seeds` is int64 [B, 2], one
stateless seed pair per image, so that each row's result is independent of the rest of
the batch. A model module also defines `METRIC`, its metric's key in `zoo.units.METRICS`
(e.g. "bits_per_dim"), which the evaluation reports in the paper's units.
"""
from typing import Protocol, runtime_checkable

# -- optional capabilities: a model's `capabilities` lists those it has ------------------

PIXELS = "pixel_log_prob"  # pixel_log_prob(images, **cond) -> float32 [B, H, W, C], each
#                            pixel's conditional log-likelihood in nats (autoregressive)
ENSEMBLE = "ensemble"  # ensemble_terms(images, seeds, members) -> (nats [B], pixels [B]):
#                        the flip/rotation ensemble and (members=1) the single model,
#                        scored on the same central pixels
INPAINT = "inpaint"  # ancestral(y, draw, noise) and `width`: zoo.inpaint's Metropolis
#                      sampler of masked pixels (RIDE section 3.4)
ENCODE = "encode"  # encode(images) -> a code float [B, m] (an auto-encoder, `code_size`) or
#                    a posterior {"mean", "stddev"} [B, latent_size]; the `reconstruct`
#                    signature is built from it
DECODE = "decode"  # decode(latents float [B, latent_size]) -> uint8 images, and
#                    reconstruct(images, seeds) -> uint8 images (latent-variable models)
COARSE = "coarse"  # coarse_sizes() -> {level: (h, w)} and sample_from_coarse(coarse, seeds)
#                    (LapCVAE: partial sampling from a given coarse image)
PARTS = "parts"  # trainable_for(part) -> variables, and train_loss(..., part=part): the
#                  stages of config.train.stages train one part each
PHASES = "phases"  # make_optimizers(learning_rate) -> {part: optimizer} and
#                    training_phases(optimizers, global_batch_size) -> [replica fn]: a
#                    step of several optimisers (a GAN's critic and generator)
FINETUNE = "finetune"  # finetune(images, seeds, iterations, **options) -> (loss before,
#                        loss after): extra optimisation after each training stage when
#                        config.train.lbfgs_iterations > 0 (RIDE's L-BFGS on the MCGSM)
INITIALIZE = "initialize"  # initialize(images): data-dependent initialisation before the
#                            first step (the MCGSM's conditional whitening)
EXTRAS = "eval_extras"  # eval_extras(images, seeds, **cond) -> {name: float [B]}: more
#                         per-example test metrics (reconstruction error, sharpness)

# The methods (and attributes) each capability promises.
PROMISES = {
    PIXELS: ("pixel_log_prob",),
    ENSEMBLE: ("ensemble_terms",),
    INPAINT: ("ancestral", "width"),
    ENCODE: ("encode",),
    DECODE: ("decode", "reconstruct", "latent_size"),
    COARSE: ("coarse_sizes", "sample_from_coarse"),
    PARTS: ("trainable_for",),
    PHASES: ("make_optimizers", "training_phases", "trainable_for"),
    FINETUNE: ("finetune",),
    INITIALIZE: ("initialize",),
    EXTRAS: ("eval_extras",),
}
CAPABILITIES = frozenset(PROMISES)

# -- figures: a model's `figure` names the picture it is about (training/images.py draws it)

FIGURE_PROMISES = {
    "classes": ("num_classes",),  # one row of samples per class
    "reconstructions": ("encode",),  # test images above their reconstructions
    "partial_sampling": ("coarse_sizes", "sample_from_coarse"),  # LapCVAE's Figure 7
    "stages": ("stage_images", "latent_size"),  # every stage's image, side by side
    "reconstructions_and_samples": ("encode", "reconstruct"),  # the two above, and samples
    "inpainting": ("ancestral", "width"),  # samples beside test patches; an inpainting
}
FIGURES = frozenset(FIGURE_PROMISES)

# -- conditioning: a model's `conditional_inputs` names those it takes ---------------------

LABEL = "label"  # int32 [B]: a class in [0, num_classes) (class-conditional models)
CODE = "code"  # float32 [B, code_size]: an auto-encoder's code of the image to reproduce
CONDITIONING = {LABEL: ("num_classes",), CODE: ("code_size",)}
FROM_DATA = (LABEL,)  # conditioning that comes with a data set's images


@runtime_checkable
class Model(Protocol):
  """What every model provides; `module.Model(config)` is a keras.Model that has these.

  Attributes:
    channels, levels: images are uint8 [B, H, W, channels] with values in [0, levels).
    continuous: True when `log_prob` is a density on [0, 1)^D (MCGSM, RIDE, a VAE with a
      Gaussian likelihood), False when it is a probability of the discrete image.
    fixed_size: (H, W) when the model takes only images of that size, else None.
    conditional_inputs: the conditioning each method takes as keyword arguments (of
      CONDITIONING), e.g. ("label",); () for an unconditional model.
    capabilities: a frozenset of the optional capabilities above.
    figure: the picture the model is about (one of FIGURES), drawn beside samples.png
      from held-out data, or None for samples alone.
  """

  channels: int
  levels: int
  continuous: bool
  fixed_size: tuple
  conditional_inputs: tuple
  capabilities: frozenset
  figure: str

  def log_prob(self, images, **cond):
    """float32 [B]: log p(x) in nats (for latent models the ELBO, a lower bound)."""

  def eval_terms(self, images, seeds, **cond):
    """(nats [B], dims [B]): the test metric's log-likelihood terms and how many values
    they score (units.METRICS turns their sums into the paper's unit)."""

  def train_loss(self, images, seeds, **cond):
    """(per-example loss [B] to minimise, {name: [B]} terms for logging)."""

  def sample(self, seeds, **cond):
    """uint8 [B, H, W, C]: one image per seed row, independent of the other rows."""


REQUIRED = ("channels", "levels", "continuous", "fixed_size", "conditional_inputs",
            "capabilities", "figure", "log_prob", "eval_terms", "train_loss", "sample")


def has(model, capability):
  """Returns True if `model` declares `capability` (one of CAPABILITIES)."""
  if capability not in CAPABILITIES:
    raise ValueError(f"unknown capability {capability!r}; valid: {', '.join(sorted(CAPABILITIES))}")
  return capability in model.capabilities


def conditioning(model, from_data=False):
  """Returns the names of `model`'s conditioning inputs (only those a data set carries
  with its images, i.e. a label, if `from_data`)."""
  names = tuple(model.conditional_inputs)
  return tuple(k for k in names if k in FROM_DATA) if from_data else names


def problems(model):
  """Returns a list of ways `model` breaks the contract (empty if it keeps it): missing
  members, unknown capabilities or conditioning, promised methods that are absent."""
  out = [f"missing `{name}`" for name in REQUIRED if not hasattr(model, name)]
  for capability in sorted(getattr(model, "capabilities", ())):
    if capability not in CAPABILITIES:
      out.append(f"unknown capability {capability!r}")
      continue
    out += [f"capability {capability!r} promises `{name}`, which is missing"
            for name in PROMISES[capability] if not hasattr(model, name)]
  figure = getattr(model, "figure", None)
  if figure is not None:
    if figure not in FIGURES:
      out.append(f"unknown figure {figure!r}")
    else:
      out += [f"figure {figure!r} needs `{name}`, which is missing"
              for name in FIGURE_PROMISES[figure] if not hasattr(model, name)]
  for name in getattr(model, "conditional_inputs", ()):
    if name not in CONDITIONING:
      out.append(f"unknown conditioning {name!r}")
      continue
    out += [f"conditioning {name!r} needs `{attr}`, which is missing"
            for attr in CONDITIONING[name] if not hasattr(model, attr)]
  return out


def checkpoint(model, **others):
  """Returns a tf.train.Checkpoint of `model` (and `others`, e.g. optimizers) that holds
  every one of the model's variables.

  Keras 3 leaves layers kept in Python lists (a PixelCNN's blocks, a LapCVAE's levels)
  out of tf.train.Checkpoint's object graph, so the model's variables are also listed by
  position (`model.variables`, the same order for the same config): a checkpoint of the
  model alone restores it whole, batch norm's moving averages included.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (keeps this module light)
  return tf.train.Checkpoint(model=model, weights=list(model.variables), **others)
