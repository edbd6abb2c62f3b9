r"""Draws a grid of samples from a trained run.

  python -m training.sample --workdir=runs/mcgsm-deadleaves --num=64 --seed=0 --out=grid.png

Row k of the grid uses the seed (seed, k), so the same command draws the same grid.
"""
import os

from absl import flags

from export import cli
from export.cli import fail

flags.DEFINE_string("workdir", None, "a trained run's directory", required=True)
flags.DEFINE_integer("num", 64, "number of samples", lower_bound=1)
flags.DEFINE_integer("seed", 0, "seed of the grid")
flags.DEFINE_string("out", "grid.png", "PNG file to write")


def main(argv):
  del argv
  f = flags.FLAGS
  if not cli.is_url(f.workdir) and not os.path.isfile(os.path.join(f.workdir, "run.json")):
    fail(f"--workdir={f.workdir} holds no run (no run.json); give a directory written by training.run")
  if not cli.is_url(f.out):
    out_dir = os.path.dirname(os.path.abspath(f.out))
    if not os.path.isdir(out_dir) or not os.access(out_dir, os.W_OK):
      fail(f"cannot write --out={f.out}: {out_dir} is not a writable directory")
  with cli.quiet_stderr():
    from export import storage  # pylint: disable=g-import-not-at-top
    from training import images  # pylint: disable=g-import-not-at-top
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.list_logical_devices()  # the runtime's start-up notices (cuInit), hidden too
  cli.check_filesystem(f.workdir, "workdir")
  cli.check_filesystem(f.out, "out")
  if not storage.isfile(os.path.join(f.workdir, "run.json")):
    fail(f"--workdir={f.workdir} holds no run (no run.json); give a directory written by training.run")
  try:
    images.write_png(f.out, images.run_samples(f.workdir, f.num, f.seed))
  except FileNotFoundError as e:
    fail(str(e))
  except (ValueError, KeyError) as e:  # e.g. an unknown model name in run.json
    fail(f"cannot restore the run in --workdir={f.workdir}: {cli.first_line(e)}")
  print(f"wrote {f.num} samples to {f.out}")


if __name__ == "__main__":
  cli.run(main, cli.flags_parser(
      "python -m training.sample --workdir=RUN_DIR [--num=64] [--seed=0] [--out=grid.png]"))
