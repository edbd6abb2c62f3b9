r"""The VAE family side by side: VAE, deep residual VAE, multi-stage VAE, LapCVAE and
LapCVAE without M, trained on the same data for the same steps in one process.

  python -m benchmarks.vae_family [--data=lfw_faces] [--steps=2000] [--out_dir=/tmp/vae_family]

Every model has the same likelihood (by default the papers' fixed-sigma l2 loss, so
LapCVAE's per-level MSE and the VAE's MSE weigh errors alike), the same total latent size (the VAE's 64; LapCVAE 4 levels x 16), the
same encoder/decoder widths and about the same number of parameters (printed), the
same batches (seed 0) and Adam schedule. Printed per model: parameters, training time,
the negative ELBO in bits/dim (each model's own bound on the image), the reconstruction
error (sqrt MSE on 0..255 at the posterior mean, mean and std over the test images,
LapCVAE Table 1) and sharpness (high-frequency energy of the reconstructions relative
to the originals, 1 = as much detail). Then the papers' orderings: LapCVAE below the
VAE in reconstruction error, LapCVAE below LapCVAE without M, and the multi-stage VAE
sharper than the VAE. `--out_dir` receives each model's sample grid and its figure (as a
run's figure.png: the VAE's reconstructions, the multi-stage VAE's stages, LapCVAE's
Figure 7: per test image the original, then images whose coarse levels are the
original's and whose finer levels are drawn anew, one row per coarse level kept).

About 7 minutes on the 2-core dev machine with the defaults.
"""
import importlib
import os
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from export import trained
from training import batches as batches_lib
from training import images as images_lib
from training import loop

flags.DEFINE_string("data", "lfw_faces", "dataset")
flags.DEFINE_integer("steps", 2000, "training steps per model")
flags.DEFINE_string("out_dir", None, "where to write sample grids (default: a temp dir)")
flags.DEFINE_enum("likelihood", "gaussian", ["gaussian", "discretized"],
                  "decoder likelihood of every model (gaussian: the papers' fixed-sigma l2)")
flags.DEFINE_float("sigma", 0.1, "the Gaussian's fixed sigma on the [0, 1) scale (all models)")

MODELS = {  # name -> (registry name, config.model overrides)
    "VAE": ("vae", {}),
    "deep residual VAE": ("msvae", dict(variant="residual")),
    "multi-stage VAE": ("msvae", dict(variant="multistage")),
    "LapCVAE": ("lapcvae", {}),
    "LapCVAE without M": ("lapcvae", dict(learned_prior=False)),
}


def train(name, steps, data, workdir, likelihood, sigma):
  """Trains one model; returns (model, config, metrics, seconds)."""
  model_name, overrides = MODELS[name]
  config = importlib.import_module(f"configs.{model_name}").get_config(data)
  config.model.update(overrides, likelihood=likelihood, sigma=sigma)
  config.train.update(steps=steps, checkpoint_every=10 * steps, log_every=max(steps // 4, 1))
  config.export.enabled = False
  start = time.time()
  metrics = loop.train(model_name, data, config, workdir, tf.distribute.get_strategy())
  seconds = time.time() - start
  _, config, model = trained.restore(workdir)
  return model, config, metrics, seconds


def main(argv):
  del argv
  f = flags.FLAGS
  out_dir = f.out_dir or tempfile.mkdtemp(prefix="vae-family-")
  os.makedirs(out_dir, exist_ok=True)
  results = {}
  for name in MODELS:
    workdir = tempfile.mkdtemp(prefix="vae-family-run-")
    model, config, metrics, seconds = train(name, f.steps, f.data, workdir, f.likelihood, f.sigma)
    params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    results[name] = dict(metrics, params=params, seconds=seconds)
    slug = name.lower().replace(" ", "_")
    images_lib.write_png(os.path.join(out_dir, f"{slug}_samples.png"), images_lib.SampleGrid(model, config).draw())
    figure = images_lib.draw_figure(model, config, batches_lib.Source(f.data))
    if figure is not None:  # each model's own: reconstructions, LapCVAE's Figure 7, stages
      images_lib.write_png(os.path.join(out_dir, f"{slug}_{model.figure}.png"), figure)
    print(f"{name}: done in {seconds:.0f} s", flush=True)

  print(f"\n{f.data}, {f.steps} steps each, batch 32, Adam 1e-3, {f.likelihood} likelihood "
        f"(sigma {f.sigma:g}); test images: {results['VAE']['test_patches']}")
  print(f"{'model':<20}{'params':>10}{'time s':>8}{'-ELBO bits/dim':>16}{'recon RMSE (0-255)':>22}"
        f"{'sharpness':>16}")
  for name, r in results.items():
    print(f"{name:<20}{r['params']:>10,}{r['seconds']:>8.0f}{r['bits_per_dim']:>16.3f}"
          f"{r['reconstruction_rmse']:>13.2f} ± {r['reconstruction_rmse_std']:<6.2f}"
          f"{r['sharpness']:>9.3f} ± {r['sharpness_std']:.3f}")
  rmse = {name: r["reconstruction_rmse"] for name, r in results.items()}
  sharp = {name: r["sharpness"] for name, r in results.items()}
  print("\npapers' orderings:")
  for claim, holds in (
      ("LapCVAE reconstructs better than the VAE (LapCVAE Table 1)", rmse["LapCVAE"] < rmse["VAE"]),
      ("LapCVAE reconstructs better than LapCVAE without M", rmse["LapCVAE"] < rmse["LapCVAE without M"]),
      ("the multi-stage VAE is sharper than the VAE", sharp["multi-stage VAE"] > sharp["VAE"]),
      ("the deep residual VAE is sharper than the VAE", sharp["deep residual VAE"] > sharp["VAE"])):
    print(f"  {'holds' if holds else 'does NOT hold'}: {claim}")
  print(f"grids in {out_dir}")


if __name__ == "__main__":
  app.run(main)
