"""TensorFlow Lite files for the signatures that run on a device.

  python -m export.run --workdir=runs/vae-mnist5k --tflite

writes `<version>/tflite/<signature>.tflite` for every signature of the SavedModel that
converts with TFLite's builtin ops alone, and `<version>/tflite/manifest.json` saying,
for each signature, its file or why it has none (the TensorFlow ops TFLite lacks).
Builtin ops only: the tf.lite.Interpreter of the TensorFlow wheel has no Flex delegate,
nor have most device runtimes, so a file that needs one would not run.

Each file computes what its SavedModel signature computes, on the same inputs (by
name), with two differences:
  * no in-graph input checks (TFLite has no Assert op; its interpreter checks dtypes and
    shapes itself) and every dimension but the batch fixed: images of the model's one
    size (its fixed size, else the size of its samples), coarse images of level 1;
  * no `png_bytes` (EncodePng is not a TFLite op).
"""
import json
import os
import re
import tempfile

import tensorflow as tf

from export import saved_model

# Outputs a TFLite file leaves out (no TFLite op makes them).
LEFT_OUT = ("png_bytes",)
MANIFEST = "manifest.json"


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
    outputs = signature.compute(model, **dict(zip(names, args)), **options)
    return {k: v for k, v in outputs.items() if k not in LEFT_OUT}

  return saved_model.named_function(fn, name, names, [
      tf.TensorSpec(_shape(model, k, size), saved_model.INPUTS[k].dtype, name=k) for k in names])


def _missing_ops(error):
  """Returns the TensorFlow ops a ConverterError names as lacking in TFLite ('' if none)."""
  ops = sorted(set(re.findall(r"'tf\.(\w+)'", str(error))) | set(re.findall(
      r"\btf\.(\w+)\(", str(error))))
  return ", ".join(ops)


def convert(model, config, version_dir, signatures):
  """Writes <version_dir>/tflite/: a .tflite file per signature that converts with builtin
  ops, and manifest.json ({signature: {"file": name} or {"reason": why not}}). Returns
  the manifest. `signatures` are saved_model.build_module's."""
  directory = os.path.join(version_dir, "tflite")
  os.makedirs(directory, exist_ok=True)
  size = _image_size(model, signatures)
  functions = {name: _function(model, name, signature, size, config)
               for name, signature in saved_model.SIGNATURES.items() if name in signatures}
  # Converted from a SavedModel of these functions, so that the weights become constants
  # (from the functions themselves, Keras 3's resource variables stay variables that no
  # TFLite signature initialises).
  module = tf.Module()
  module.model_variables = saved_model.tf_variables(model)
  manifest = {}
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
                          else f"does not convert: {' '.join(str(e).split())[:300]}"}
        continue
      with open(os.path.join(directory, f"{name}.tflite"), "wb") as f:
        f.write(flatbuffer)
      manifest[name] = {"file": f"{name}.tflite"}
  with open(os.path.join(directory, MANIFEST), "w") as f:
    json.dump(manifest, f, indent=2)
  return manifest
