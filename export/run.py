r"""Exports a trained run's latest checkpoint as a new SavedModel version.

  python -m export.run --workdir=runs/mcgsm-deadleaves [--export_dir=serving/mcgsm] [--tflite]

Prints the published version dir (`<export_dir>/<version>`, export_dir defaulting to
`<workdir>/export`); point TF Serving's `--model_base_path` at export_dir. Bad input
(no such workdir, no checkpoint, unwritable export_dir) ends with one line on stderr
saying what was wrong and what would be right, exit code 2, and nothing written.
"""
import os

from absl import flags

from export import cli
from export.cli import fail

USAGE = "python -m export.run --workdir=RUN_DIR [--export_dir=DIR] [--tflite]"

flags.DEFINE_string("workdir", None, "a training run's workdir (python -m training.run writes one)")
flags.DEFINE_string("export_dir", None, "where versions are published (default <workdir>/export)")
flags.DEFINE_bool("tflite", False, "also write <version>/tflite/: a .tflite file for each signature "
                  "that converts with TFLite's builtin ops, and manifest.json saying why the "
                  "others do not")


def check_workdir(workdir, isdir=os.path.isdir, isfile=os.path.isfile):
  """Fails unless `workdir` holds a training run with a checkpoint. Reads only.

  `isdir`, `isfile`: export/storage.py's for a URL (gs://, ram://, ...)."""
  if not workdir:
    fail(f"--workdir is required; usage: {USAGE}")
  if cli.is_url(workdir) and isdir is os.path.isdir:
    return  # checked again once TensorFlow, which reads URLs, is imported
  if not isdir(workdir):
    fail(f"--workdir={workdir} does not exist; give the workdir of a training run "
         "(python -m training.run --model=... --data=... writes one)")
  for name in ("run.json", "config.json"):
    if not isfile(os.path.join(workdir, name)):
      fail(f"--workdir={workdir} has no {name}, so it is not a training run's workdir; "
           "give the directory python -m training.run wrote")
  if not isfile(os.path.join(workdir, "checkpoints", "checkpoint")):
    fail(f"--workdir={workdir} has no checkpoint in {workdir}/checkpoints; "
         "train first (rerun python -m training.run with this workdir)")


def main(argv):
  if len(argv) > 1:
    fail(f"unexpected arguments {' '.join(argv[1:])}; usage: {USAGE}")
  workdir = flags.FLAGS.workdir
  check_workdir(workdir)
  export_dir = flags.FLAGS.export_dir or os.path.join(workdir, "export")
  cli.check_writable_dir(export_dir, "export_dir")
  # Imported only now: TF, Keras and the zoo take seconds, and bad input fails fast.
  with cli.quiet_stderr():
    from export import saved_model  # pylint: disable=g-import-not-at-top
    from export import storage  # pylint: disable=g-import-not-at-top
    from export import trained  # pylint: disable=g-import-not-at-top
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.list_logical_devices()  # the runtime's start-up notices (cuInit), hidden too
  for path, flag in ((workdir, "workdir"), (export_dir, "export_dir")):
    cli.check_filesystem(path, flag)
  check_workdir(workdir, storage.isdir, storage.isfile)
  try:
    _, config, model = trained.restore(workdir)
  except (FileNotFoundError, ValueError, KeyError) as e:  # e.g. an unknown model name in run.json
    fail(f"cannot restore the run in --workdir={workdir}: {cli.first_line(e)}")
  version_dir = saved_model.export(model, config, export_dir, tflite=flags.FLAGS.tflite,
                                   run=trained.run_card(workdir))
  if flags.FLAGS.tflite:
    manifest = storage.read_json(os.path.join(version_dir, "tflite", "manifest.json"))
    for name, entry in manifest.items():
      if "file" in entry:
        how = ", ".join(f"{k} {v}" for k, v in entry["compared"].items())
        print(f"  {name}: {entry['file']} (against the SavedModel: {how})")
      else:
        print(f"  {name}: {entry['reason']}")
  print(version_dir)


if __name__ == "__main__":
  cli.run(main, cli.flags_parser(USAGE))
