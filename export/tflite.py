"""TensorFlow Lite files for the signatures that run on a device.

  python -m export.run --workdir=runs/vae-mnist5k --tflite

writes `<version>/tflite/<signature>.tflite` for every signature of the SavedModel that
converts with TFLite's builtin ops alone, and `<version>/tflite/manifest.json` saying,
for each signature, its file and how it compared with the SavedModel, or why it has none.
Builtin ops only: the tf.lite.Interpreter of the TensorFlow wheel has no Flex delegate,
nor have most device runtimes, so a file that needs one would not run.

The models are traced for TFLite inside `zoo.portable.ops()`: TF's stateless random
numbers (Philox), the discretised Gaussian's Erfc and the softmax's sparse cross-entropy
are computed from builtin ops there, so sampling with a seed gives the SavedModel's
images and log_prob its values. Each file computes what its SavedModel signature
computes, on the same inputs (by name), with two differences:
  * no in-graph input checks (TFLite has no Assert op; its interpreter checks dtypes and
    shapes itself) and every dimension but the batch fixed: images of the model's one
    size (its fixed size, else the size of its samples), coarse images of level 1;
  * no `png_bytes` (EncodePng is not a TFLite op).

Every file is run in tf.lite.Interpreter on the export's warmup requests and compared
with the SavedModel's replies before it is kept: float outputs within `RTOL` relative,
and the share of image values that differ (float rounding at a level's edge) recorded.
"""
import os
import re
import tempfile
import warnings

import numpy as np
import tensorflow as tf

from export import cli
from export import saved_model
from export import storage
from zoo import portable

# Outputs a TFLite file leaves out (no TFLite op makes them).
LEFT_OUT = ("png_bytes",)
MANIFEST = "manifest.json"
RTOL = 1e-4  # a file's float outputs vs the SavedModel's, relative

# What the TensorFlow ops that TFLite lacks stand for in our models.
WHY = {"TensorListReserve": "a while loop that stacks one tensor per step, as the MCGSM's "
                            "and RIDE's pixel-by-pixel samplers do",
       "Ndtri": "the normal's inverse CDF",
       "EncodePng": "PNG encoding"}


def _image_size(model, signatures):
  """Returns (H, W): the model's one size, else the size of its samples."""
  if model.fixed_size:
    return tuple(model.fixed_size)
  images = signatures[saved_model.DEFAULT_SIGNATURE].get_concrete_function().structured_outputs
  return tuple(images["images"].shape[1:3])


def _shape(model, key, size):
  """Returns input `key`'s TFLite shape: its SavedModel shape with the sizes filled in."""
  shape = saved_model.INPUTS[key].shape(model)
  if key == "coarse":
    return [None, size[0] // 2, size[1] // 2, model.channels]
  if len(shape) == 4:
    return [None, *size, model.channels]
  return shape


def _function(model, name, signature, size, config):
  """Returns the tf.function of signature `name` as converted to TFLite."""
  names = saved_model.input_names(model, signature)
  options = signature.options(config)

  def fn(*args):
    with portable.ops():  # TF's random numbers, Erfc and softmax from builtin ops
      outputs = signature.compute(model, **dict(zip(names, args)), **options)
    return {k: v for k, v in outputs.items() if k not in LEFT_OUT}

  return saved_model.named_function(fn, name, names, [
      tf.TensorSpec(_shape(model, k, size), saved_model.INPUTS[k].dtype, name=k) for k in names])


def _missing_ops(error):
  """Returns the TensorFlow ops a ConverterError names as lacking in TFLite ('' if none),
  each with what it stands for where known (`WHY`)."""
  ops = sorted(set(re.findall(r"'tf\.(\w+)'", str(error))) | set(re.findall(
      r"\btf\.(\w+)\(", str(error))))
  return ", ".join(f"{op} ({WHY[op]})" if op in WHY else op for op in ops)


def compare(flatbuffer, name, feeds, expected):
  """Runs signature `name` of a .tflite flatbuffer on `feeds` and returns (agrees, what):
  whether its float outputs are within RTOL of `expected` (the SavedModel's outputs), and
  {output: "equal" | "max relative difference ..." | "... of the values differ"}."""
  with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated" (for ai-edge-litert)
    warnings.simplefilter("ignore")
    runner = tf.lite.Interpreter(model_content=flatbuffer).get_signature_runner(name)
  outputs = runner(**feeds)
  agrees, what = True, {}
  for key, want in expected.items():
    if key in LEFT_OUT:
      continue
    got = outputs[key]
    if got.shape != want.shape:
      agrees, what[key] = False, f"shape {list(got.shape)}, the SavedModel's {list(want.shape)}"
    elif want.dtype.kind == "f":
      worst = float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-30), initial=0.0))
      agrees &= worst <= RTOL
      what[key] = "equal" if worst == 0 else f"max relative difference {worst:.1e}"
    else:
      share = float(np.mean(got != want))
      what[key] = "equal" if share == 0 else f"{share:.2%} of the values differ"
  return agrees, what


def _oneline(error):
  """Returns an error's message on one line, at most 300 characters."""
  return " ".join(str(error).split())[:300]


def convert(model, config, version_dir, signatures, replayed):
  """See `_convert`; run with C-level stderr hidden: the converter prints MLIR's
  diagnostics (which manifest.json sums up) and the interpreter its delegate notices."""
  with cli.quiet_stderr(show_on_error=False):
    return _convert(model, config, version_dir, signatures, replayed)


def _convert(model, config, version_dir, signatures, replayed):
  """Writes <version_dir>/tflite/: a .tflite file per signature that converts with builtin
  ops and agrees with the SavedModel on its warmup requests, and manifest.json
  ({signature: {"file": name, "compared": {output: how}} or {"reason": why not}}).
  Returns the manifest. `signatures` are saved_model.build_module's; `replayed` the
  SavedModel's replies to its warmup requests (saved_model.replay_warmup)."""
  feeds = saved_model.warmup_inputs(version_dir)
  directory = os.path.join(version_dir, "tflite")
  storage.makedirs(directory)
  size = _image_size(model, signatures)
  manifest, functions = {}, {}
  for name, signature in saved_model.SIGNATURES.items():
    if name not in signatures:
      continue
    function = _function(model, name, signature, size, config)
    try:  # traced here, so that one signature's failure leaves the others
      function.get_concrete_function()
    except Exception as e:  # pylint: disable=broad-except  (any model code's trace error)
      manifest[name] = {"reason": f"does not trace for TFLite: {_oneline(e)}"}
      continue
    functions[name] = function
  # Converted from a SavedModel of these functions, so that the weights become constants
  # (from the functions themselves, Keras 3's resource variables stay variables that no
  # TFLite signature initialises).
  module = tf.Module()
  module.model_variables = saved_model.tf_variables(model)
  with tempfile.TemporaryDirectory() as scratch:
    tf.saved_model.save(module, scratch, signatures=functions)
    for name in functions:
      converter = tf.lite.TFLiteConverter.from_saved_model(scratch, signature_keys=[name])
      converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
      try:
        flatbuffer = converter.convert()
      except Exception as e:  # pylint: disable=broad-except  (ConverterError, MLIR's errors)
        missing = _missing_ops(e)
        manifest[name] = {"reason": f"needs TensorFlow ops TFLite lacks: {missing}" if missing
                          else f"does not convert: {_oneline(e)}"}
        continue
      try:
        agrees, compared = compare(flatbuffer, name, feeds[name], replayed[name])
      except Exception as e:  # pylint: disable=broad-except  (the interpreter's errors)
        manifest[name] = {"reason": f"converts but does not run: {_oneline(e)}"}
        continue
      if not agrees:
        manifest[name] = {"reason": f"disagrees with the SavedModel: {compared}"}
        continue
      storage.write_bytes(os.path.join(directory, f"{name}.tflite"), flatbuffer)
      manifest[name] = {"file": f"{name}.tflite", "compared": compared}
  manifest = {name: manifest[name] for name in saved_model.SIGNATURES if name in manifest}
  storage.write_json(os.path.join(directory, MANIFEST), manifest)
  return manifest
