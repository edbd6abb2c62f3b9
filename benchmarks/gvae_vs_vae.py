r"""GVAE against the baseline VAE with the same encoder and budget, and a latent-size sweep
(the GVAE paper's Tables 3-5 at this machine's scale), trained in one process.

  python -m benchmarks.gvae_vs_vae [--data=digits] [--steps=2000] [--latents=4,16,64]
                                   [--out_dir=/tmp/gvae]

Both models have the same encoder (`zoo.vae.conv_encoder`, the GVAE config's `hidden`,
`downsamples` and latent size), the same fixed-sigma Gaussian likelihood (sigma 0.1: the
l2 loss) and the same batches (seed 0) and steps; each keeps its own optimizer settings
(VAE: Adam 1e-3; GVAE: Adam 1e-4, betas (0.5, 0.9), n_critic = 5). Printed per run:
training time, negative ELBO and importance-weighted bound in bits/dim, KL (nats per
image), reconstruction RMSE (0..255), MMD^2 between as many samples as test images and
the test images, and the samples' MS-SSIM diversity (the test images' own is printed for
scale). Then the paper's orderings (GVAE vs VAE: lower reconstruction error, higher ELBO
and log-likelihood, lower KL — Table 5; lower MMD and MS-SSIM — Table 3) and the sweep
(Table 4). `--out_dir` receives each run's sample grid.

About 17 minutes on the 2-core dev machine with the defaults.
"""
import importlib
import os
import tempfile
import time

from absl import app
from absl import flags
import tensorflow as tf

from export import trained
from training import batches
from training import data as data_lib
from training import images as images_lib
from training import loop
from zoo import gvae

flags.DEFINE_string("data", "digits", "dataset")
flags.DEFINE_integer("steps", 2000, "training steps per run (the GVAE default run's)")
flags.DEFINE_list("latents", ["4", "16", "64"], "GVAE latent sizes of the sweep")
flags.DEFINE_string("out_dir", None, "where to write sample grids (default: a temp dir)")

COLUMNS = (("bits_per_dim", "-ELBO b/d", "{:.3f}"), ("iw_bits_per_dim", "-IW b/d", "{:.3f}"),
           ("kl", "KL nats", "{:.2f}"), ("reconstruction_rmse", "RMSE", "{:.2f}"),
           ("mmd2", "MMD^2", "{:.4f}"), ("ms_ssim_diversity", "MS-SSIM", "{:.3f}"))


def train(model_name, data, steps, latent, out_dir):
  """Trains one run with the GVAE config's encoder sizes; returns its metrics + seconds."""
  reference = importlib.import_module("configs.gvae").get_config(data)
  config = importlib.import_module(f"configs.{model_name}").get_config(data)
  config.model.update(latent_size=latent, hidden=reference.model.hidden,
                      downsamples=reference.model.downsamples, likelihood="gaussian",
                      sigma=reference.model.sigma)
  config.train.update(steps=steps, batch_size=reference.train.batch_size, seed=0,
                      checkpoint_every=10 * steps, log_every=max(steps // 4, 1))
  config.data.flips = reference.data.flips
  config.eval.update(iw_samples=reference.eval.iw_samples,
                     sample_quality=reference.eval.sample_quality)
  config.export.enabled = False
  workdir = tempfile.mkdtemp(prefix=f"gvae-bench-{model_name}-")
  start = time.time()
  metrics = loop.train(model_name, data, config, workdir, tf.distribute.get_strategy())
  seconds = time.time() - start
  _, config, model = trained.restore(workdir)
  images_lib.write_png(os.path.join(out_dir, f"{model_name}_z{latent}_samples.png"),
                       images_lib.SampleGrid(model, config).draw())
  if "iw_bits_per_dim" not in metrics:  # the VAE's evaluation has no IW bound or KL: add them
    metrics.update(_table5_extras(model, config, data))
  return dict(metrics, seconds=seconds)


def _table5_extras(model, config, data):
  """Returns the means of `zoo.gvae.table5_extras` (KL, IW bound) for another VAE."""
  patches = data_lib.eval_patches(data, patch_size=0).batch(config.eval.batch_size)
  extras = tf.function(lambda x, s: gvae.table5_extras(model, x, s, config.eval.iw_samples))
  values = {}
  for i, batch in enumerate(patches):
    for key, value in extras(batch, batches.eval_seeds(config, i, tf.shape(batch)[0])).items():
      values.setdefault(key, []).append(value)
  return {key: float(tf.reduce_mean(tf.concat(v, 0))) for key, v in values.items()}


def main(argv):
  del argv
  f = flags.FLAGS
  out_dir = f.out_dir or tempfile.mkdtemp(prefix="gvae-bench-")
  os.makedirs(out_dir, exist_ok=True)
  latent = importlib.import_module("configs.gvae").get_config(f.data).model.latent_size
  runs = {("VAE", latent): train("vae", f.data, f.steps, latent, out_dir)}
  for z in sorted({latent, *(int(v) for v in f.latents)}):
    runs["GVAE", z] = train("gvae", f.data, f.steps, z, out_dir)
    print(f"GVAE z={z}: done in {runs['GVAE', z]['seconds']:.0f} s", flush=True)

  first = runs["VAE", latent]
  print(f"\n{f.data}, {f.steps} steps each, batch 32; {first['test_patches']} test images, "
        f"as many samples; MS-SSIM of the test images themselves: "
        f"{first['ms_ssim_diversity_test']:.3f}")
  print(f"{'model':<8}{'latent':>7}{'time s':>8}" + "".join(f"{title:>11}" for _, title, _ in COLUMNS))
  for (name, z), r in runs.items():
    print(f"{name:<8}{z:>7}{r['seconds']:>8.0f}"
          + "".join(f"{fmt.format(r[key]):>11}" for key, _, fmt in COLUMNS))
  vae, ours = runs["VAE", latent], runs["GVAE", latent]
  print(f"\nthe paper's orderings (GVAE vs VAE, latent {latent}):")
  for claim, holds in (
      ("lower reconstruction error (Table 5)", ours["reconstruction_rmse"] < vae["reconstruction_rmse"]),
      ("higher ELBO (Table 5)", ours["bits_per_dim"] < vae["bits_per_dim"]),
      ("higher log-likelihood bound (Table 5)", ours["iw_bits_per_dim"] < vae["iw_bits_per_dim"]),
      ("lower KL (Table 5)", ours["kl"] < vae["kl"]),
      ("lower MMD (Table 3)", ours["mmd2"] < vae["mmd2"]),
      ("more diverse samples: lower MS-SSIM (Table 3)",
       ours["ms_ssim_diversity"] < vae["ms_ssim_diversity"])):
    print(f"  {'holds' if holds else 'does NOT hold'}: {claim}")
  sweep = {z: r for (name, z), r in runs.items() if name == "GVAE"}
  best = min(sweep, key=lambda z: sweep[z]["mmd2"])
  print(f"latent sweep (Table 4): lowest MMD at z={best}; paper: a moderate size is best "
        f"(1000 of 100-2000), both ends worse -> "
        f"{'holds' if min(sweep) < best < max(sweep) else 'does NOT hold'} here")
  print(f"grids in {out_dir}")


if __name__ == "__main__":
  app.run(main)
