"""Files under a workdir or an export dir, on any filesystem TensorFlow has.

A path is either local (no scheme, or `file://`) or a URL of one of TensorFlow's
filesystems: `ram://` (in memory, one process), `gs://`, `hdfs://`, and `s3://` once
tensorflow-io is imported. Local paths go through Python's `os`, exactly as before
this module existed (atomic renames, flock, fsync); URLs go through `tf.io.gfile`.
TensorFlow's own writers (checkpoints, summaries, SavedModels, `tf.io.write_file`)
take either kind as they are.

What differs off a local disk, and what the callers do about it:
  * a rename is not atomic (an object store copies, then deletes), and renaming a
    directory is not even reliable (on TF 2.21's `ram://` a renamed SavedModel
    directory loses its saved_model.pb): `write_bytes` renames single files only (an
    object store's server-side copy of one object, seen whole or not at all), and
    `copy_tree` copies a directory file by file (export/saved_model.py copies
    saved_model.pb last, once every other file is there);
  * there are no file locks (training/rundir.py's `Lock` degrades to a note of who
    holds the workdir);
  * there are no process IDs to check across machines (the export's clean-up of a
    crashed export trusts only markers written from this host).
"""
import json
import os
import shutil
import tempfile

import tensorflow as tf

gfile = tf.io.gfile

# Errors a filesystem operation may raise, locally (OSError) or through tf.io.gfile.
ERRORS = (OSError, tf.errors.OpError)


def is_local(path):
  """Returns True for a path on the local filesystem (no scheme, or file://)."""
  path = os.fspath(path)
  return "://" not in path or path.startswith("file://")


def _local(path):
  path = os.fspath(path)
  return path[len("file://"):] if path.startswith("file://") else path


def normalize(path):
  """Returns `path` with a file:// prefix removed (a plain local path), else as it is."""
  return _local(path)


def join(path, *parts):
  """Returns `path` joined with `parts` by "/" (URLs included)."""
  return os.path.join(path, *parts)


def check_filesystem(path):
  """Returns None if TensorFlow can reach `path`'s filesystem, else one line saying why
  (an unknown scheme such as s3:// without tensorflow-io, an unreachable bucket)."""
  if is_local(path):
    return None
  try:
    gfile.exists(path)
  except tf.errors.UnimplementedError:
    scheme = os.fspath(path).split("://", 1)[0]
    return (f"TensorFlow has no filesystem for {scheme}:// (s3:// and others need `pip install "
            "tensorflow-io` and `import tensorflow_io`); give a local path or one of gs://, "
            "hdfs://, ram://")
  except tf.errors.OpError as e:
    return f"cannot reach {path}: {e.message.splitlines()[0] if e.message else type(e).__name__}"
  return None


def exists(path):
  return os.path.exists(_local(path)) if is_local(path) else gfile.exists(path)


def isdir(path):
  return os.path.isdir(_local(path)) if is_local(path) else gfile.isdir(path)


def isfile(path):
  if is_local(path):
    return os.path.isfile(_local(path))
  return gfile.exists(path) and not gfile.isdir(path)


def listdir(path):
  """Returns the names in directory `path` (directories without a trailing "/")."""
  if is_local(path):
    return os.listdir(_local(path))
  return [name.rstrip("/") for name in gfile.listdir(path)]


def makedirs(path):
  if is_local(path):
    os.makedirs(_local(path), exist_ok=True)
  else:
    gfile.makedirs(path)


def rmtree(path):
  """Removes the directory `path` and everything under it; ignores errors."""
  if is_local(path):
    shutil.rmtree(_local(path), ignore_errors=True)
    return
  try:
    gfile.rmtree(path)
  except tf.errors.OpError:
    pass


def remove(path):
  """Removes the file `path` if it is there."""
  try:
    if is_local(path):
      os.remove(_local(path))
    else:
      gfile.remove(path)
  except (FileNotFoundError, tf.errors.NotFoundError):
    pass


def read_bytes(path):
  """Returns the bytes of file `path`; FileNotFoundError if there is none, on any filesystem."""
  if is_local(path):
    with open(_local(path), "rb") as f:
      return f.read()
  try:
    with gfile.GFile(path, "rb") as f:
      return f.read()
  except tf.errors.NotFoundError as e:
    raise FileNotFoundError(f"no such file: {path}") from e


def read_json(path):
  """Returns the JSON value in file `path` (OSError, OpError or ValueError if it cannot)."""
  return json.loads(read_bytes(path).decode())


def write_bytes(path, data):
  """Writes `data` to `path` whole or not at all, through a temporary file and a rename
  (a reader sees the old or the new file, never a part); a failure removes the
  temporary file and re-raises."""
  if is_local(path):
    local = _local(path)
    tmp = f"{local}.tmp-{os.getpid()}"
    try:
      with open(tmp, "wb") as f:
        f.write(data)
      os.replace(tmp, local)
    except OSError:
      if os.path.exists(tmp):
        os.remove(tmp)
      raise
    return
  # A temporary file, then a rename: atomic on HDFS; on an object store the rename is
  # a server-side copy of one object, which appears whole or not at all (a crash
  # before the delete leaves only the temporary object behind).
  tmp = f"{path}.tmp-{os.getpid()}"
  try:
    with gfile.GFile(tmp, "wb") as f:
      f.write(data)
    gfile.rename(tmp, path, overwrite=True)
  except tf.errors.OpError:
    remove(tmp)
    raise


def write_json(path, payload):
  """Writes `payload` as indented JSON to `path`, whole or not at all (`write_bytes`)."""
  write_bytes(path, json.dumps(payload, indent=2).encode())


def walk_files(path):
  """Returns the paths of every file under directory `path`, relative to it, sorted."""
  if is_local(path):
    return sorted(os.path.relpath(os.path.join(root, name), _local(path))
                  for root, _, files in os.walk(_local(path)) for name in files)
  found = []
  for root, _, files in gfile.walk(path):
    rel = root[len(path):].strip("/")
    found += [os.path.normpath(os.path.join(rel, name)) for name in files]
  # TF 2.21's ram:// lists phantom children where one name is a prefix of another
  # ("assets/.extra" beside "assets" and "assets.extra"): keep the files that exist.
  return sorted(p for p in found if gfile.exists(join(path, p)) and not gfile.isdir(join(path, p)))


def copy_file(src, dst):
  """Copies file `src` to `dst` (replacing it), making `dst`'s directory if needed."""
  makedirs(os.path.dirname(dst))
  gfile.copy(src, dst, overwrite=True)


def copy_tree(src, dst, skip=()):
  """Copies every file under directory `src` to the same place under `dst`, except those
  named in `skip` (paths relative to `src`)."""
  for rel in walk_files(src):
    if rel not in skip:
      copy_file(join(src, rel), join(dst, rel))


def local_scratch(prefix):
  """Returns a new local temporary directory (for what a non-chief worker writes)."""
  return tempfile.mkdtemp(prefix=prefix)
