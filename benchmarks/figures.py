r"""The README's pictures: each model's default run (the README's model table), then its
samples.png and figure.png copied to docs/figures/.

  python -m benchmarks.figures [--out_dir=docs/figures] [--runs=runs] [--models=ride,...]

About 30 minutes on the 2-core dev machine when no run is there yet (22 min 20 s with
RIDE's run reused, 2026-12-03; the default runs' times are in the README's model table,
and each figure adds seconds). A run already finished in `<runs>/<model>-<data>` (e.g. by
the README's command) is reused as it is, so rerunning only copies. Prints each model's
time and metric.
"""
import importlib
import os
import shutil
import time

from absl import app
from absl import flags

from training import loop

flags.DEFINE_string("out_dir", "docs/figures", "where the PNGs go")
flags.DEFINE_string("runs", "runs", "where the runs' workdirs are (reused when finished)")
flags.DEFINE_list("models", None, "the entries of RUNS to draw (default: all)")

# name -> (model, data, config.model overrides): the README table's default runs, with the
# PixelCNN class-conditional (its figure is one row per class).
RUNS = {
    "ride": ("ride", "deadleaves", {}),
    "mcgsm": ("mcgsm", "deadleaves", {}),
    "pixelcnn": ("pixelcnn", "digits", {"conditional": "class"}),
    "vae": ("vae", "lfw_faces", {}),
    "msvae": ("msvae", "lfw_faces", {}),
    "lapcvae": ("lapcvae", "lfw_faces", {}),
    "gvae": ("gvae", "digits", {}),
}


def main(argv):
  del argv
  f = flags.FLAGS
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  os.makedirs(f.out_dir, exist_ok=True)
  names = f.models or list(RUNS)
  unknown = sorted(set(names) - set(RUNS))
  if unknown:
    raise SystemExit(f"unknown --models {', '.join(unknown)}; valid: {', '.join(RUNS)}")
  start = time.time()
  for name in names:
    model, data, overrides = RUNS[name]
    config = importlib.import_module(f"configs.{model}").get_config(data)
    config.model.update(overrides)
    suffix = "".join(f"-{k}_{v}" for k, v in sorted(overrides.items()))
    workdir = os.path.join(f.runs, f"{model}-{data}{suffix}")
    t0 = time.time()
    metrics = loop.train(model, data, config, workdir, tf.distribute.MirroredStrategy())
    seconds = time.time() - t0
    copied = []
    for picture in ("samples.png", "figure.png"):
      if os.path.exists(os.path.join(workdir, picture)):
        target = os.path.join(f.out_dir, f"{name}_{picture}")
        shutil.copyfile(os.path.join(workdir, picture), target)
        copied.append(target)
    metric = importlib.import_module(f"zoo.{model}").METRIC
    print(f"{name} on {data}: {metric} {metrics.get(metric, float('nan')):.4f}, "
          f"{'reused' if metrics.get('finished') else f'{seconds:.0f} s'}; {', '.join(copied)}",
          flush=True)
  print(f"(total {time.time() - start:.0f} s)")


if __name__ == "__main__":
  app.run(main)
