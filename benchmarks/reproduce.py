r"""The five papers' claims, each measured here: the models a claim compares trained on the
same data for the same steps in one process, then one table "paper claim, paper numbers,
ours, holds?".

  python -m benchmarks.reproduce [--quick] [--only=ride,pixelcnn,gvae,msvae,lapcvae]
                                 [--out_dir=/tmp/reproduce] [--readme_table=PATH]
                                 [--ride_mcgsm_input=both|hidden]

Sections (`--only` picks some; each prints every run's metrics as it finishes):
* ride: RIDE Table 1, BSDS300 "inf dim." rates in bit/px (higher is better): MCGSM
  32 comp. 3.706 < RIDE 1 layer 3.802 < RIDE 2 layers 3.869 < EoRIDE 2 layers 3.899.
  Ours on `photos` (5 train images, the 178 64x64 patches of the 3 test images): `mcgsm`
  (configs/mcgsm.py), `ride` with 1 and 2 layers (configs/ride.py's staged Adam training,
  the MCGSM reading `--ride_mcgsm_input`), all for the same steps; EoRIDE is the 2-layer
  run's 8-fold flip/rotation ensemble, compared with that run's single model on the same
  central pixels. Our rate has the paper's unit (8 - discrete bits/px on [0, 1) data),
  so the numbers stand side by side, but the images differ.
* pixelcnn: Gated PixelCNN vs the ungated (ReLU) PixelCNN on `mnist5k` at matched
  parameters (the ungated `hidden` is searched to the gated count), 256 levels in
  bits/dim and binarised (`levels=2`, thresholded at 128) in nats per image; the paper's
  claim is its CIFAR-10 Table 1 (3.14 vs 3.03 bits/dim); its MNIST reference is PixelCNN's
  81.30 nats on binarised MNIST (Pixel RNN paper), full MNIST binarised another way.
* gvae: GVAE vs the VAE with the same encoder on `mnist5k` (GVAE Tables 3 and 5: MMD^2,
  MS-SSIM diversity, importance-weighted bound, reconstruction RMSE, ELBO, KL), and
  GVAE's latent-size sweep (Table 4: z 100, 500, 1000, 2000), as benchmarks/gvae_vs_vae.py does
  on digits, but with `hidden` 16 (encoder, generator, critic) where configs/gvae.py's
  mnist sizes have 32: a GVAE step there costs ~4x (about 7 s on 2 idle cores).
* msvae: VAE, deep residual VAE and multi-stage VAE on `mnist5k`, the papers' fixed-sigma
  l2 likelihood (sigma 0.1): sharpness of the reconstructions (the multi-stage VAE paper's
  Figs. 5, 7, 9 are qualitative: "sharper").
* lapcvae: VAE, LapCVAE and LapCVAE without M on `lfw_faces` (32x32): reconstruction RMSE
  on 0..255 (LapCVAE Table 1), as benchmarks/vae_family.py does.

`--out_dir` receives every run's sample grid (`<run>_samples.png`) and figure
(`<run>_figure.png`), `metrics.json` (every run's raw metrics plus its wall seconds and
parameter count, rewritten after each run, so a partial run keeps what it measured) and
`table.md`; `--readme_table` writes the table to another path too. Wall seconds are whole runs: training, evaluation and sample grid.

Time on the 2-core dev machine: `--quick` (every run and row, a few steps each, tiny RIDE
patches: it checks the plumbing, its numbers mean nothing) took 7 min 20 s end to end,
with other jobs on the 2 cores (load 3.5 falling to 1.2). The full run, one section at a
time with the test suite sharing the cores: RIDE 40 min, PixelCNN 14, GVAE 23, multi-stage VAE 6,
LapCVAE 5; 88 min in all (the README has its table).
"""
import copy
import functools
import importlib
import json
import os
import shutil
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from export import trained
from training import batches
from training import data as data_lib
from training import loop
from training import steps
from zoo import gvae
from zoo import units

SECTIONS = ("ride", "pixelcnn", "gvae", "msvae", "lapcvae")

flags.DEFINE_bool("quick", False, "a few steps per run: checks the plumbing in minutes")
flags.DEFINE_list("only", list(SECTIONS), f"sections to run, of {', '.join(SECTIONS)}")
flags.DEFINE_string("out_dir", None, "sample grids, metrics.json, table.md (default: a temp dir)")
flags.DEFINE_string("readme_table", None, "also write the markdown table to this path")
flags.DEFINE_enum("ride_mcgsm_input", "both", ["both", "hidden"],
                  "what RIDE's MCGSM reads: both (ours, default) or hidden (the paper's)")
flags.register_validator("only", lambda names: set(names) <= set(SECTIONS),
                         f"--only takes a comma-separated subset of {', '.join(SECTIONS)}")

# Steps per run and evaluation sizes. Full: step times on 2 idle cores, estimated from
# step times measured under load (~5x) scaled by the README's default runs: MCGSM ~35 ms,
# RIDE 1 layer 45-135 ms (by stage), 2 layers ~1.3x that, PixelCNN (28x28, 8 blocks of 48,
# batch 32) ~0.6 s, VAE ~25 ms and multi-stage VAE ~0.13 s on mnist5k, LapCVAE ~55 ms,
# GVAE on mnist5k ~1.6 s at hidden 16 (~7 s at the mnist config's 32: out of budget).
FULL = dict(
    ride_steps=8000,      # each of MCGSM, RIDE 1 layer, RIDE 2 layers (default runs: 2,000 / 4,000)
    ride_patches=None,    # (train, eval, sample) patch sizes; None: the configs'
    ride_jit=None,        # XLA-compile RIDE's training step; None: the config's (True)
    eval_patches=10000,   # all 178 of photos' 64x64 test patches
    ensemble=8,           # EoRIDE: the 8 flips/rotations
    pixelcnn_steps=500,   # each of 4 runs (gated/ungated x 256/2 levels), batch 32
    gvae_steps=300,       # VAE and each GVAE (the paper: 1000 iterations, section 6)
    gvae_hidden=16,       # encoder, generator and critic widths (configs/gvae.py mnist: 32)
    gvae_latents=(100, 500, 1000, 2000),  # Table 4's sweep; 100 is the mnist config's, Table 5's
    gvae_samples=1000,    # MMD / MS-SSIM samples (capped at the 500 test images)
    iw_samples=16,
    vae_steps=2000,       # VAE, deep residual VAE, multi-stage VAE on mnist5k, batch 32
    lapcvae_steps=2000,   # VAE, LapCVAE, LapCVAE without M on lfw_faces (vae_family's)
    eval_images=10000,    # all test images of mnist5k (500) and lfw_faces (10)
    samples=16,
)
# Quick: every run and row, a few steps each, tiny RIDE patches and no XLA for RIDE
# (compiling its unrolled wavefronts takes minutes), a 2-member ensemble.
QUICK = dict(ride_steps=20, ride_patches=(8, 16, 16), ride_jit=False, eval_patches=4,
             ensemble=2, pixelcnn_steps=4, gvae_steps=2, gvae_hidden=4,
             gvae_latents=FULL["gvae_latents"], gvae_samples=32, iw_samples=2, vae_steps=20,
             lapcvae_steps=20, eval_images=64, samples=4)

# Paper numbers quoted in the table.
RIDE_TABLE1 = {"MCGSM": 3.706, "RIDE 1 layer": 3.802, "RIDE 2 layers": 3.869,
               "EoRIDE 2 layers": 3.899}  # BSDS300, inf dim., bit/px; MCGSM 16-128 comp.: 3.688-3.717
GVAE_TABLE5 = {"log-likelihood": (-1.568, -1.353), "reconstruction error": (88.5e-3, 4.27e-3),
               "ELBO": (-1.697, -1.404), "KL divergence": (0.165, 0.046)}  # (VAE, GVAE)
GVAE_TABLE4 = {100: (0.104, 0.856), 500: (0.085, 0.821), 1000: (0.068, 0.818),
               2000: (0.074, 0.844)}  # latent size: (MMD x 1e-4, MS-SSIM)
LAPCVAE_TABLE1 = {"VAE": "22.78 ± 4.64", "LapCVAE without M": "22.19 ± 4.80",
                  "LapCVAE": "20.60 ± 4.81"}  # CelebA 64x64, sqrt MSE on 0..255


class Runs:
  """Trains runs in temp workdirs; keeps every run's metrics in `results` and out_dir."""

  def __init__(self, out_dir):
    self.out_dir, self.results = out_dir, {}

  def train(self, tag, model_name, data_name, config, extras=None):
    """Returns the run's metrics + seconds + params; `extras(model, config)` adds more."""
    steps = config.train.steps
    with config.unlocked():  # one checkpoint at the end, no sample grids during training
      config.train.update(checkpoint_every=10 * steps, sample_every=10 * steps,
                          log_every=max(steps // 4, 1))
    config.export.enabled = False
    print(f"\n=== {tag}: {model_name} on {data_name}, {steps} steps", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"reproduce-{tag}-") as workdir:
      start = time.time()
      metrics = loop.train(model_name, data_name, config, workdir, tf.distribute.get_strategy(),
                           export=False)
      seconds = time.time() - start
      for picture in ("samples", "figure"):  # the figure: the model's own (figure.png)
        if os.path.exists(os.path.join(workdir, f"{picture}.png")):
          shutil.copy(os.path.join(workdir, f"{picture}.png"),
                      os.path.join(self.out_dir, f"{tag}_{picture}.png"))
      _, config, model = trained.restore(workdir)
      metrics.update(extras(model, config) if extras else {})
    metrics.pop("weights_sha256", None)
    result = dict(metrics, seconds=seconds, params=count_params(model), model=model_name,
                  data=data_name)
    self.results[tag] = result
    print(f"[{tag}] " + ", ".join(f"{k}={_fmt(v)}" for k, v in result.items()), flush=True)
    _write(os.path.join(self.out_dir, "metrics.json"), json.dumps(self.results, indent=1))
    return result


def _fmt(value):
  return f"{value:.4g}" if isinstance(value, float) else str(value)


def _write(path, text):
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    f.write(text)


def count_params(model):
  """Returns the model's number of trainable parameters."""
  return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


def get_config(model_name, arg):
  """Returns configs/<model_name>.py's get_config(arg)."""
  return importlib.import_module(f"configs.{model_name}").get_config(arg)


def row(claim, paper, ours, holds):
  """Returns one table row: the claim, the paper's numbers, ours (text) and holds (bool)."""
  return dict(claim=claim, paper=paper, ours=ours, holds=holds)


# -- RIDE Table 1 ---------------------------------------------------------------------------

def ride_section(runs, budget):
  """MCGSM, RIDE 1 layer, RIDE 2 layers (+ EoRIDE) on photos; returns the table rows."""
  def configure(config):
    config.train.steps = budget["ride_steps"]
    config.eval.max_patches = budget["eval_patches"]
    config.sample.num = budget["samples"]
    if budget["ride_jit"] is not None and "jit" in config.train:
      config.train.jit = budget["ride_jit"]
    if budget["ride_patches"]:
      train, evaluation, sample = budget["ride_patches"]
      scale = train / config.data.patch_size
      config.data.patch_size, config.eval.patch_size = train, evaluation
      config.sample.update(size=sample, margin=4)
      if "stages" in config.train:  # RIDE's "part:patch:fraction, ...": patches scaled alike
        config.train.stages = ", ".join(
            f"{part}:{round(int(patch) * scale)}:{fraction}" for part, patch, fraction in
            (item.strip().split(":") for item in config.train.stages.split(",")))
    return config

  mcgsm = runs.train("mcgsm", "mcgsm", "photos", configure(get_config("mcgsm", "photos")))
  rides = {}
  for layers in (1, 2):
    config = configure(get_config("ride", "photos"))
    config.model.update(layers=layers, mcgsm_input=budget["ride_mcgsm_input"])
    if layers == 2:  # EoRIDE's score on the central pixels, beside the single model's
      config.eval.ensemble = budget["ensemble"]
    rides[layers] = runs.train(f"ride_{layers}layer", "ride", "photos", config)

  rate = lambda r: r["bit_per_px_rate"]
  ensemble = rides[2][f"bit_per_px_rate_ensemble{budget['ensemble']}_central"]
  central = rides[2]["bit_per_px_rate_central"]
  paper, data = RIDE_TABLE1, (f"photos, {mcgsm['test_patches']} test patches, "
                              f"{budget['ride_steps']} steps each")
  return [
      row("RIDE Table 1: MCGSM < RIDE 1 layer (bit/px rate, higher is better)",
          f"{paper['MCGSM']:.3f} (32 comp.; 16-128: 3.688-3.717) < {paper['RIDE 1 layer']:.3f} "
          "(BSDS300, inf dim.)",
          f"{rate(mcgsm):.3f} < {rate(rides[1]):.3f} ({data})", rate(mcgsm) < rate(rides[1])),
      row("RIDE Table 1: RIDE 1 layer < RIDE 2 layers",
          f"{paper['RIDE 1 layer']:.3f} < {paper['RIDE 2 layers']:.3f}",
          f"{rate(rides[1]):.3f} < {rate(rides[2]):.3f}", rate(rides[1]) < rate(rides[2])),
      row("RIDE Table 1: RIDE 2 layers < EoRIDE 2 layers (ours: both on the patches' central "
          "pixels)", f"{paper['RIDE 2 layers']:.3f} < {paper['EoRIDE 2 layers']:.3f}",
          f"{central:.3f} < {ensemble:.3f} ({budget['ensemble']}-fold)", central < ensemble),
  ]


# -- Gated PixelCNN vs PixelCNN -------------------------------------------------------------

def _pixelcnn_params(config, data_name, hidden):
  """Returns the parameter count of the PixelCNN `config` with model.hidden = hidden."""
  config = copy.deepcopy(config)
  config.model.hidden = hidden
  with config.unlocked():
    config.data.image_shape = data_lib.image_shape(data_name)
    config.data.num_classes = data_lib.num_classes(data_name)
  model, _, _ = steps.build("pixelcnn", config)
  return count_params(model)


def matched_ungated(config, data_name):
  """Returns (hidden, its parameters, the gated `config`'s parameters): the ungated
  PixelCNN's hidden whose count is nearest the gated one's, by bisection over hidden in
  [gated hidden, 3x] (the count grows with hidden)."""
  target = _pixelcnn_params(config, data_name, config.model.hidden)
  ungated = copy.deepcopy(config)
  ungated.model.gated = False
  count = functools.lru_cache(None)(lambda h: _pixelcnn_params(ungated, data_name, h))
  lo, hi = config.model.hidden, 3 * config.model.hidden
  while hi - lo > 1:  # count(lo) < target <= count(hi)
    mid = (lo + hi) // 2
    lo, hi = (mid, hi) if count(mid) < target else (lo, mid)
  hidden = min((lo, hi), key=lambda h: abs(count(h) - target))
  return hidden, count(hidden), target


def pixelcnn_section(runs, budget):
  """Gated vs ungated PixelCNN on mnist5k, 256 and 2 levels; returns the table rows."""
  out, data_name = {}, "mnist5k"
  for levels in (256, 2):
    config = get_config("pixelcnn", data_name)
    config.model.levels = levels
    config.train.steps = budget["pixelcnn_steps"]
    config.eval.max_patches = budget["eval_images"]
    config.sample.num = budget["samples"]
    hidden, params, target = matched_ungated(config, data_name)
    print(f"PixelCNN, {levels} levels: gated hidden {config.model.hidden} has {target:,} "
          f"parameters, ungated hidden {hidden} {params:,} ({params / target - 1:+.1%})", flush=True)
    out["gated", levels] = runs.train(f"pixelcnn_gated_{levels}levels", "pixelcnn", data_name,
                                      config)
    ungated = copy.deepcopy(config)
    ungated.model.update(gated=False, hidden=hidden)
    out["ungated", levels] = runs.train(f"pixelcnn_ungated_{levels}levels", "pixelcnn",
                                        data_name, ungated)

  dims = int(np.prod(data_lib.image_shape(data_name)))
  units_of = {256: (lambda bpd: bpd, "bits/dim", 3),
              2: (lambda bpd: bpd * dims * units.LN2, "nats", 2)}  # bits/dim -> nats per image

  def cell(levels):
    (g, u), (to_units, unit, digits) = (out["gated", levels], out["ungated", levels]), units_of[levels]
    return (f"PixelCNN {to_units(u['bits_per_dim']):.{digits}f} vs gated "
            f"{to_units(g['bits_per_dim']):.{digits}f} {unit} ({u['params']:,} vs "
            f"{g['params']:,} params; {u['seconds']:.0f} s vs {g['seconds']:.0f} s; "
            f"{budget['pixelcnn_steps']} steps each, {g['test_patches']} test digits)")

  holds = lambda levels: out["gated", levels]["bits_per_dim"] < out["ungated", levels]["bits_per_dim"]
  return [
      row("Gated PixelCNN: gating lowers bits/dim (Table 1, CIFAR-10; ours mnist5k, 256 levels, "
          "matched parameters)", "PixelCNN 3.14 vs Gated PixelCNN 3.03 bits/dim",
          cell(256), holds(256)),
      row("Gated PixelCNN on binarised digits (nats per image; ours: the 4,500 mnist5k train "
          "digits thresholded at 128)", "no Gated number; PixelCNN 81.30 nats (Pixel RNN "
          "paper, binarised full MNIST)", cell(2), holds(2)),
  ]


# -- GVAE vs VAE ----------------------------------------------------------------------------

def _table5_extras(model, config, data_name):
  """Returns the means of `zoo.gvae.table5_extras` (KL, IW bound) for a model without them."""
  patches = data_lib.eval_patches(data_name, patch_size=0).take(
      config.eval.max_patches).batch(config.eval.batch_size)
  extras = tf.function(lambda x, s: gvae.table5_extras(model, x, s, config.eval.iw_samples))
  values = {}
  for i, batch in enumerate(patches):
    for key, value in extras(batch, batches.eval_seeds(config, i, tf.shape(batch)[0])).items():
      values.setdefault(key, []).append(value)
  return {key: float(tf.reduce_mean(tf.concat(v, 0))) for key, v in values.items()}


def _vae_or_gvae(model_name, latent, budget):
  """Returns the config of gvae_vs_vae.py's comparison: the same encoder (budget's
  `gvae_hidden`, the GVAE config's downsamplings), fixed-sigma Gaussian likelihood, batch,
  steps and evaluation for both models, each model its own optimizer."""
  # configs/vae.py and configs/gvae.py size 28x28 models under the arg "mnist"; the data
  # name passed to loop.train is still mnist5k.
  reference = get_config("gvae", "mnist")
  config = get_config(model_name, "mnist")
  config.model.update(latent_size=latent, hidden=budget["gvae_hidden"],
                      downsamples=reference.model.downsamples, likelihood="gaussian",
                      sigma=reference.model.sigma)
  if model_name == "gvae":
    config.model.critic_hidden = budget["gvae_hidden"]
  config.train.update(steps=budget["gvae_steps"], batch_size=reference.train.batch_size, seed=0)
  config.data.flips = reference.data.flips
  with config.unlocked():
    config.eval.update(iw_samples=budget["iw_samples"], sample_quality=budget["gvae_samples"],
                       max_patches=budget["eval_images"])
  config.sample.num = budget["samples"]
  return config


def gvae_section(runs, budget):
  """VAE vs GVAE at the mnist config's latent size, and GVAE's latent sweep; returns rows."""
  latent = get_config("gvae", "mnist").model.latent_size
  vae = runs.train(f"vae_z{latent}", "vae", "mnist5k", _vae_or_gvae("vae", latent, budget),
                   extras=lambda model, config: _table5_extras(model, config, "mnist5k"))
  sweep = {}
  for z in sorted({latent, *budget["gvae_latents"]}):
    sweep[z] = runs.train(f"gvae_z{z}", "gvae", "mnist5k", _vae_or_gvae("gvae", z, budget))
  ours = sweep[latent]
  vs = lambda key, fmt: f"VAE {fmt.format(vae[key])} vs GVAE {fmt.format(ours[key])}"
  lower = lambda key: ours[key] < vae[key]
  t5 = {k: f"VAE {v:g} vs GVAE {g:g}" for k, (v, g) in GVAE_TABLE5.items()}
  setup = (f"(mnist5k, z={latent}, hidden {budget['gvae_hidden']}, {budget['gvae_steps']} "
           f"steps each: VAE {vae['seconds']:.0f} s, GVAE {ours['seconds']:.0f} s)")
  best = min(sweep, key=lambda z: sweep[z]["mmd2"])
  sweep_cell = ", ".join(f"z {z}: {r['mmd2']:.4f} / {r['ms_ssim_diversity']:.3f}"
                         for z, r in sweep.items())
  return [
      row("GVAE Table 3: GVAE's samples closer to the data than the VAE's (MMD^2, lower is "
          "better)", "GVAE 0.068e-4 (WGAN-GP 0.327e-4, VAE-GAN 0.075e-4, alpha-GAN 0.131e-4; "
          "no plain VAE row)", vs("mmd2", "{:.4f}") + " " + setup, lower("mmd2")),
      row("GVAE Table 3: more diverse samples (MS-SSIM, lower is better)",
          "GVAE 0.818 (WGAN-GP 0.996, VAE-GAN 0.972, alpha-GAN 0.843)",
          vs("ms_ssim_diversity", "{:.3f}") + f" (test images {vae['ms_ssim_diversity_test']:.3f})",
          lower("ms_ssim_diversity")),
      row("GVAE Table 5: higher log-likelihood (ours: IW bound, bits/dim, lower is better)",
          t5["log-likelihood"], vs("iw_bits_per_dim", "{:.3f}"), lower("iw_bits_per_dim")),
      row("GVAE Table 5: lower reconstruction error (ours: RMSE on 0..255)",
          t5["reconstruction error"], vs("reconstruction_rmse", "{:.2f}"),
          lower("reconstruction_rmse")),
      row("GVAE Table 5: higher ELBO (ours: -ELBO bits/dim, lower is better)", t5["ELBO"],
          vs("bits_per_dim", "{:.3f}"), lower("bits_per_dim")),
      row("GVAE Table 5: lower KL (ours: nats per image)", t5["KL divergence"],
          vs("kl", "{:.2f}"), lower("kl")),
      row("GVAE Table 4: a moderate latent size is best, both ends worse (MMD^2 / MS-SSIM)",
          ", ".join(f"z {z}: {m}e-4 / {s}" for z, (m, s) in GVAE_TABLE4.items()),
          f"{sweep_cell}; lowest MMD^2 at z {best}", min(sweep) < best < max(sweep)),
  ]


# -- the VAE family: multi-stage VAE, LapCVAE ----------------------------------------------

VAE_FAMILY = {  # run name -> (registry name, config.model overrides), as benchmarks/vae_family.py
    "VAE": ("vae", {}),
    "deep residual VAE": ("msvae", dict(variant="residual")),
    "multi-stage VAE": ("msvae", dict(variant="multistage")),
    "LapCVAE": ("lapcvae", {}),
    "LapCVAE without M": ("lapcvae", dict(learned_prior=False)),
}


def _family(runs, names, data_name, config_arg, steps, budget):
  """Trains VAE_FAMILY's `names` with the papers' fixed-sigma l2 likelihood (sigma 0.1);
  returns {name: result}."""
  out = {}
  for name in names:
    model_name, overrides = VAE_FAMILY[name]
    config = get_config(model_name, config_arg)
    config.model.update(overrides, likelihood="gaussian", sigma=0.1)
    config.train.steps = steps
    config.eval.max_patches = budget["eval_images"]
    config.sample.num = budget["samples"]
    tag = f"{name.lower().replace(' ', '_').replace('-', '_')}_{data_name}"
    out[name] = runs.train(tag, model_name, data_name, config)
  return out


def msvae_section(runs, budget):
  """VAE, deep residual VAE, multi-stage VAE on mnist5k: sharpness; returns the rows."""
  # configs/{vae,msvae}.py size 28x28 models under the arg "mnist"; the data is mnist5k.
  r = _family(runs, ("VAE", "deep residual VAE", "multi-stage VAE"), "mnist5k", "mnist",
              budget["vae_steps"], budget)
  sharp = {name: v["sharpness"] for name, v in r.items()}
  cell = lambda a, b: (f"{a} {sharp[a]:.3f} ± {r[a]['sharpness_std']:.3f} vs {b} "
                       f"{sharp[b]:.3f} ± {r[b]['sharpness_std']:.3f}")
  note = f" (sharpness of reconstructions, mnist5k, {budget['vae_steps']} steps each)"
  return [
      row("Multi-stage VAE: sharper than the VAE", "qualitative (Figs. 5, 7, 9)",
          cell("multi-stage VAE", "VAE") + note, sharp["multi-stage VAE"] > sharp["VAE"]),
      row("Multi-stage VAE: sharper than the deep residual VAE", "qualitative (Figs. 5, 7, 9)",
          cell("multi-stage VAE", "deep residual VAE"),
          sharp["multi-stage VAE"] > sharp["deep residual VAE"]),
      row("Multi-stage VAE paper: the deep residual VAE is clearer than the VAE",
          "qualitative (Figs. 5, 9)", cell("deep residual VAE", "VAE"),
          sharp["deep residual VAE"] > sharp["VAE"]),
  ]


def lapcvae_section(runs, budget):
  """VAE, LapCVAE, LapCVAE without M on lfw_faces: reconstruction RMSE; returns the rows."""
  r = _family(runs, ("VAE", "LapCVAE", "LapCVAE without M"), "lfw_faces", "lfw_faces",
              budget["lapcvae_steps"], budget)
  rmse = {name: v["reconstruction_rmse"] for name, v in r.items()}
  cell = lambda a, b: (f"{a} {rmse[a]:.2f} ± {r[a]['reconstruction_rmse_std']:.2f} vs {b} "
                       f"{rmse[b]:.2f} ± {r[b]['reconstruction_rmse_std']:.2f}")
  paper = lambda a, b: f"{a} {LAPCVAE_TABLE1[a]} vs {b} {LAPCVAE_TABLE1[b]} (CelebA 64x64)"
  note = (f" (lfw_faces, {r['VAE']['test_patches']} test faces, {budget['lapcvae_steps']} "
          "steps each)")
  return [
      row("LapCVAE Table 1: LapCVAE reconstructs better than the VAE (RMSE, 0..255)",
          paper("LapCVAE", "VAE"), cell("LapCVAE", "VAE") + note, rmse["LapCVAE"] < rmse["VAE"]),
      row("LapCVAE Table 1: LapCVAE without M reconstructs better than the VAE",
          paper("LapCVAE without M", "VAE"), cell("LapCVAE without M", "VAE"),
          rmse["LapCVAE without M"] < rmse["VAE"]),
      row("LapCVAE Table 1: M helps: LapCVAE better than LapCVAE without M",
          paper("LapCVAE", "LapCVAE without M"), cell("LapCVAE", "LapCVAE without M"),
          rmse["LapCVAE"] < rmse["LapCVAE without M"]),
  ]


# -- the table ------------------------------------------------------------------------------

def markdown(rows, header):
  """Returns the rows as a markdown table under a one-line header."""
  escape = lambda s: str(s).replace("|", "\\|")
  lines = [header, "", "| paper claim | paper numbers | ours | holds? |", "| --- | --- | --- | --- |"]
  lines += [f"| {escape(r['claim'])} | {escape(r['paper'])} | {escape(r['ours'])} | "
            f"{'yes' if r['holds'] else '**no**'} |" for r in rows]
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # TFDS's info lines would bury the metrics
  f = flags.FLAGS
  budget = dict(QUICK if f.quick else FULL, ride_mcgsm_input=f.ride_mcgsm_input)
  out_dir = f.out_dir or tempfile.mkdtemp(prefix="reproduce-")
  os.makedirs(out_dir, exist_ok=True)
  runs = Runs(out_dir)
  sections = {"ride": ride_section, "pixelcnn": pixelcnn_section, "gvae": gvae_section,
              "msvae": msvae_section, "lapcvae": lapcvae_section}
  rows, start = [], time.time()
  for name in SECTIONS:
    if name in f.only:
      rows += sections[name](runs, budget)
  minutes = (time.time() - start) / 60
  kind = ("Quick check (`--quick`: a few steps per run, the numbers mean nothing)" if f.quick
          else "Full run")
  header = (f"{kind} of `python -m benchmarks.reproduce`: {len(runs.results)} runs, "
            f"{minutes:.0f} min; RIDE's MCGSM reads `{f.ride_mcgsm_input}`.")
  table = markdown(rows, header)
  print("\n" + table, flush=True)
  _write(os.path.join(out_dir, "table.md"), table)
  if f.readme_table:
    _write(f.readme_table, table)
  print(f"sample grids, metrics.json and table.md in {out_dir}")


if __name__ == "__main__":
  app.run(main)
