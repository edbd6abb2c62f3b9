"""Any zoo model -> a versioned SavedModel that TF Serving and plain TF code can load.

  version_dir = export(model, config, "serving/mcgsm")   # -> "serving/mcgsm/3"

The export contract (shared/DESIGN.md, "Export contract"):

  * `<export_dir>/<version>/`, version = 1 + the largest integer-named entry (1 if
    none), written to a sibling `.tmp-<version>-<pid>` and `os.rename`d into place, so a
    polling TF Serving never sees half a model (off a local disk: copied with
    saved_model.pb last; "versioned, atomic publishing" below). Published versions are
    never touched.
  * `assets.extra/model_card.json` says what the version is (`model_card`).
  * Tag `serve`, method `tensorflow/serving/predict`, one signature per entry of
    `SIGNATURES` that the model supports (`serving_default` = `sample`).
  * Only standard TF ops: no py_function, no stateful random op, no XLA-must-compile
    function (`forbidden_ops`), so it loads without the zoo, Keras or TFP.
  * Every input has a leading batch dimension N and is validated inside the graph:
    wrong rank, size or value range fails with an InvalidArgument message naming the
    signature, the input, what was wrong and what is allowed. The functions' input
    specs leave every dimension free (only rank and dtype are fixed) so that these
    checks, not a Python-side shape error or a Grappler-folded shape, answer every
    caller alike; the SignatureDefs declare every fixed dimension (`seed` [-1, 2],
    `images` [-1, H, W, C] for a model of one size), so clients know what to send.
  * Inputs are named parameters: `loaded.sample(seed=s, label=l)`, and Keras'
    `TFSMLayer(path, call_endpoint="sample")(s, label=l)`.
  * `assets.extra/tf_serving_warmup_requests` holds one PredictionLog per signature;
    each is replayed through the SignatureDef + Session path (what TF Serving's C++
    does) before publishing, because a failing warmup record fails the version load.

Adding a signature is one entry in `SIGNATURES`; adding an input kind is one entry in
`INPUTS`. What a model has comes from its declarations (`zoo/contract.py`): conditioning inputs
follow `model.conditional_inputs`: a class-conditional
model's `sample` and `log_prob` take `label` int32 [N]; an auto-encoder's `sample`
takes `code` float32 [N, m], its `log_prob` scores p(x | encode(x)), and it also has
`encode` (images -> code) and `reconstruct` (images, seed -> images). `inpaint` (models with the INPAINT capability: MCGSM,
RIDE) takes `images`, `mask` (1 = known) and `seed`, with sweeps etc. from
`config.inpaint` (INPAINT_DEFAULTS otherwise).
"""
import dataclasses
import datetime
import errno
import importlib.metadata
import inspect
import json
import os
import re
import socket
import subprocess
from typing import Callable

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.saved_model import fingerprinting_utils  # pylint: disable=g-direct-tensorflow-import
from tensorflow.python.util import deprecation  # pylint: disable=g-direct-tensorflow-import
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2

from export import storage
from zoo import contract
from zoo import inpaint as inpainting
from zoo import units

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MODEL_CARD_FILE = os.path.join("assets.extra", "model_card.json")
MODEL_CARD_FORMAT = "genzoo model card 1"
WARMUP_SEEDS = np.array([[0, 0], [0, 1]], np.int64)  # [N, 2]: the warmup batch
DEFAULT_SIGNATURE = "sample"  # also published as serving_default

# Ops that make an export depend on Python or on hidden random state.
FORBIDDEN_OPS = frozenset({
    "PyFunc", "PyFuncStateless", "EagerPyFunc",
    "RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal",
    "ParameterizedTruncatedNormal", "Multinomial", "RandomShuffle", "RandomCrop",
    "RandomGamma", "RandomPoisson", "RandomPoissonV2", "RandomBinomial",
    "RandomShuffleQueue", "RandomShuffleQueueV2", "RandomDataset", "RandomDatasetV2",
    "ShuffleDataset", "ShuffleDatasetV2", "ShuffleDatasetV3", "ShuffleAndRepeatDataset",
    "NonDeterministicInts", "RngSkip", "RngReadAndSkip",
    "StatefulUniform", "StatefulUniformInt", "StatefulUniformFullInt",
    "StatefulStandardNormal", "StatefulStandardNormalV2", "StatefulTruncatedNormal",
    "StatefulRandomBinomial", "AnonymousSeedGenerator", "DummySeedGenerator",
})
_XLA_MUST_COMPILE = "_XlaMustCompile"


# -- inputs: spec, in-graph checks, warmup example ------------------------------------

def _check(condition, message, *data):
  """Returns an Assert op: InvalidArgument "`message` `data`" unless `condition`."""
  # tf.Assert with only string/int32 data is a bare Assert op (no tf.cond), and unlike
  # tf.debugging.assert_* it is never evaluated away at trace time.
  return tf.Assert(condition, [message, *data], summarize=8)


def _checked(tensor, rank, message, checks):
  """Returns `tensor` gated on: rank == `rank`, then every (condition, problem) in checks(dims).

  `dims` int32 [rank] is the tensor's shape. The returned identity runs only after
  every check has passed, so the model never sees a bad input.
  """
  # The shape is read as a value padded with -1, never indexed by the declared rank:
  # Grappler folds anything derived from the declared rank (tf.rank, tf.size of the
  # shape) to a constant, yet a TF Serving request, or a loaded signature's caller, may
  # send any rank. A missing dim then reads -1 instead of failing as an
  # out-of-bounds slice with no word of what was wrong.
  shape = tf.shape(tensor)  # [actual rank]
  padded = tf.concat([shape, tf.fill([rank + 1], -1)], 0)[:rank + 1]  # [rank + 1]
  dims = padded[:rank]  # [rank], -1 where the tensor has fewer dims
  rank_op = _check(tf.logical_and(tf.reduce_all(dims >= 0), tf.equal(padded[rank], -1)),
                   f"{message}; wrong rank, got shape", shape)
  with tf.control_dependencies([rank_op]):
    ops = [_check(condition, f"{message}; {problem}, got shape", shape)
           for condition, problem in checks(dims)]
  with tf.control_dependencies(ops):
    return tf.identity(tensor)


def _check_seed(model, signature, seed):
  """Returns `seed` int64 [N, 2] gated on its shape."""
  del model
  what = f"{signature}: `seed` must be int64 [N, 2], one seed pair per image, N >= 1"
  return _checked(seed, 2, what, lambda dims: [
      (dims[0] >= 1, "empty batch"),
      (tf.equal(dims[1], 2), "wrong seed size"),
  ])


def _check_images(model, signature, images):
  """Returns `images` uint8 [N, H, W, C] gated on shape and (when levels < 256) values.

  A model tied to one image size (`model.fixed_size` = (H, W), e.g. a PixelCNN with a
  spatial conditioning map) gets its size checked too.
  """
  c, levels = model.channels, model.levels
  fixed = model.fixed_size
  size = f"{fixed[0]}, {fixed[1]}" if fixed else "H, W"
  what = (f"{signature}: `images` must be uint8 [N, {size}, {c}] ({c} channel"
          f"{'s' if c > 1 else ''}, values in [0, {levels})) with N{'' if fixed else ', H, W'} >= 1")
  images = _checked(images, 4, what, lambda dims: [
      (tf.reduce_all(dims[:3] >= 1), "empty batch or image"),
      (tf.equal(dims[3], c), "wrong number of channels"),
  ] + ([(tf.reduce_all(tf.equal(dims[1:3], fixed)), "wrong image size")] if fixed else []))
  if levels < 256:
    top = tf.cast(tf.reduce_max(images), tf.int32)
    with tf.control_dependencies([_check(top < levels, f"{what}; got max value", top)]):
      images = tf.identity(images)
  return images


def _check_mask(model, signature, mask):
  """Returns `mask` uint8 [N, H, W, C] gated on shape and values in {0, 1}."""
  c = model.channels
  what = (f"{signature}: `mask` must be uint8 [N, H, W, {c}], the shape of `images`, "
          f"with 1 for a known pixel and 0 for a missing one")
  mask = _checked(mask, 4, what, lambda dims: [
      (tf.reduce_all(dims[:3] >= 1), "empty batch or image"),
      (tf.equal(dims[3], c), "wrong number of channels"),
  ])
  top = tf.cast(tf.reduce_max(mask), tf.int32)
  with tf.control_dependencies([_check(top <= 1, f"{what}; got max value", top)]):
    return tf.identity(mask)


def _mask_example(model, images):
  """Returns uint8 [N, H, W, C]: all known but a centred square of side max(1, min(H, W) // 5)."""
  del model
  _, h, w, _ = images.shape
  side = max(1, min(h, w) // 5)
  mask = np.ones(images.shape, np.uint8)
  mask[:, (h - side) // 2:(h + side) // 2, (w - side) // 2:(w + side) // 2] = 0
  return mask


def _check_label(model, signature, label):
  """Returns `label` int32 [N] gated on shape and values in [0, num_classes)."""
  k = model.num_classes
  what = f"{signature}: `label` must be int32 [N], one class in [0, {k}) per image, N >= 1"
  label = _checked(label, 1, what, lambda dims: [(dims[0] >= 1, "empty batch")])
  low, high = tf.reduce_min(label), tf.reduce_max(label)
  with tf.control_dependencies([_check(tf.logical_and(low >= 0, high < k),
                                       f"{what}; got min and max", low, high)]):
    return tf.identity(label)


def _vector_check(name, size, source):
  """Returns a check of input `name`: float32 [N, size(model)], finite."""

  def check(model, signature, vector):
    m = size(model)
    what = (f"{signature}: `{name}` must be float32 [N, {m}], one finite {name[:-1] if name.endswith('s') else name} "
            f"per image ({source}), N >= 1")
    vector = _checked(vector, 2, what, lambda dims: [
        (dims[0] >= 1, "empty batch"),
        (tf.equal(dims[1], m), f"wrong {name} size"),
    ])
    finite = tf.reduce_all(tf.math.is_finite(vector))
    with tf.control_dependencies([_check(finite, f"{what}; got a NaN or infinity")]):
      return tf.identity(vector)

  return check


def _check_coarse(model, signature, coarse):
  """Returns `coarse` uint8 [N, h, w, C] gated on shape: (h, w) one of the model's coarse sizes."""
  sizes = sorted(model.coarse_sizes().values(), reverse=True)
  c = model.channels
  what = (f"{signature}: `coarse` must be uint8 [N, h, w, {c}], a coarse image of one of the "
          f"sizes {', '.join(f'{h}x{w}' for h, w in sizes)} (pyramid levels 1..{len(sizes)}), N >= 1")
  return _checked(coarse, 4, what, lambda dims: [
      (dims[0] >= 1, "empty batch"),
      (tf.equal(dims[3], c), "wrong number of channels"),
      (tf.reduce_any([tf.reduce_all(tf.equal(dims[1:3], hw)) for hw in sizes]), "wrong size"),
  ])


_check_code = _vector_check("code", lambda model: model.code_size, "from `encode`")
_check_latents = _vector_check("latents", lambda model: model.latent_size,
                               "e.g. `mean` from `encode`")


@dataclasses.dataclass(frozen=True)
class Input:
  """A kind of signature input: its dtype and shape, its in-graph checks, and a warmup value."""
  dtype: tf.DType
  shape: Callable  # model -> [None, ...]: the accepted shape, None for a free dimension
  check: Callable  # (model, signature name, tensor) -> the tensor, gated on its checks
  example: Callable  # (model, samples of WARMUP_SEEDS uint8 [N, H, W, C]) -> np.ndarray [N, ...]

  def spec(self, model, name=None):
    """Returns the tf.function's TensorSpec: rank and dtype fixed, every dimension free
    (the in-graph checks, not a Python-side or Grappler-folded shape, answer every caller)."""
    return tf.TensorSpec([None] * len(self.shape(model)), self.dtype, name=name)


def _image_shape(model):
  """Returns [None, H, W, C] for a model tied to one size, else [None, None, None, C]."""
  return [None, *(model.fixed_size or (None, None)), model.channels]


INPUTS = {
    "seed": Input(tf.int64, lambda model: [None, 2], check=_check_seed,
                  example=lambda model, images: WARMUP_SEEDS),
    "images": Input(tf.uint8, _image_shape, check=_check_images,
                    example=lambda model, images: images),
    "mask": Input(tf.uint8, _image_shape, check=_check_mask, example=_mask_example),
    # Conditioning (`model.conditional_inputs`): a class label, or an auto-encoder's code.
    "label": Input(tf.int32, lambda model: [None], check=_check_label,
                   example=lambda model, images: np.arange(len(WARMUP_SEEDS), dtype=np.int32)
                   % model.num_classes),
    "code": Input(tf.float32, lambda model: [None, model.code_size], check=_check_code,
                  example=lambda model, images: np.zeros([len(WARMUP_SEEDS), model.code_size],
                                                         np.float32)),
    # LapCVAE's coarse image (`sample_from_coarse`), of one of several sizes; the warmup
    # uses the coarsest.
    "coarse": Input(tf.uint8, lambda model: [None, None, None, model.channels],
                    check=_check_coarse,
                    example=lambda model, images: images[:, ::2 ** (len(model.coarse_sizes())),
                                                         ::2 ** (len(model.coarse_sizes()))]),
    # A latent-variable model's latents (`decode`).
    "latents": Input(tf.float32, lambda model: [None, model.latent_size], check=_check_latents,
                     example=lambda model, images: np.zeros([len(WARMUP_SEEDS), model.latent_size],
                                                            np.float32)),
}

# The shape of every output (None: free), merged with what tracing knows (e.g. a
# sample's H and W).
OUTPUTS = {
    "images": lambda model: [None, None, None, model.channels],
    "png_bytes": lambda model: [None],
    "log_prob": lambda model: [None],
    "bits_per_dim": lambda model: [None],
    "code": lambda model: [None, model.code_size],
    "mean": lambda model: [None, model.latent_size],
    "stddev": lambda model: [None, model.latent_size],
}
_conditioning = contract.conditioning  # label and code; log_prob takes only a label


# -- signatures -------------------------------------------------------------------------

def _rows_match(signature, first, *others):
  """Returns `others` gated on having as many rows as `first` (name, tensor pairs)."""
  (name, tensor), checked = first, []
  for other_name, other in others:
    same = tf.equal(tf.shape(tensor)[0], tf.shape(other)[0])
    message = f"{signature}: `{other_name}` must have one row per `{name}` row; got shapes"
    with tf.control_dependencies([_check(same, message, tf.shape(tensor), tf.shape(other))]):
      checked.append(tf.identity(other))
  return checked


def _sample(model, seed, **cond):
  """Returns {images: uint8 [N, H, W, C], png_bytes: string [N]}; `cond`: label or code [N, ...]."""
  cond = dict(zip(cond, _rows_match("sample", ("seed", seed), *cond.items())))
  images = model.sample(seed, **cond)
  if images.dtype != tf.uint8:
    raise TypeError(f"{type(model).__name__}.sample returned {images.dtype}; the contract is uint8")
  png = tf.map_fn(tf.io.encode_png, images, fn_output_signature=tf.string)  # [N]
  return {"images": images, "png_bytes": png}


def _log_prob(model, images, **cond):
  """Returns {log_prob: float32 [N] nats, bits_per_dim: float32 [N]}.

  For a discrete model bits_per_dim = -log_prob / (H W C ln 2). For a continuous
  density on [0, 1)^D (`model.continuous`, e.g. MCGSM, RIDE) each of the `levels` bins
  has width 1 / levels, so log2(levels) is added: bits_per_dim is then the density at
  the bins' centres in discrete units (8 - the RIDE bit/px rate for 8-bit grey images),
  an estimate of the quantised image's bits/dim comparable across models, not a bound.
  """
  cond = dict(zip(cond, _rows_match("log_prob", ("images", images), *cond.items())))
  log_prob = tf.cast(model.log_prob(images, **cond), tf.float32)  # [N]
  dims = tf.cast(tf.reduce_prod(tf.shape(images)[1:]), tf.float32)
  bits = units.discrete_bits_per_dim(log_prob, dims, model.levels, model.continuous)
  return {"log_prob": log_prob, "bits_per_dim": bits}


def _sample_from_coarse(model, coarse, seed):
  """Returns {images: uint8 [N, H, W, C]}: for each coarse image (level j of the pyramid,
  j from its size), an image with that coarse level and finer levels drawn from the
  model (LapCVAE section 5.2)."""
  (seed,) = _rows_match("sample_from_coarse", ("coarse", coarse), ("seed", seed))
  sizes = model.coarse_sizes()  # {j: (h, w)}
  shape = tf.shape(coarse)
  branches, index = [], tf.constant(0)
  for n, (j, (h, w)) in enumerate(sorted(sizes.items())):
    index += n * tf.cast(tf.logical_and(tf.equal(shape[1], h), tf.equal(shape[2], w)), tf.int32)
    branches.append(lambda h=h, w=w: model.sample_from_coarse(
        tf.ensure_shape(coarse, [None, h, w, model.channels]), seed)[0])
  return {"images": tf.switch_case(index, branches)}


INPAINT_DEFAULTS = dict(sweeps=10, block=5, window=19, candidates=5)  # config.inpaint overrides


def inpaint_options(config):
  """Returns inpaint's keyword options: INPAINT_DEFAULTS updated by `config.inpaint` (if any)."""
  section = (config.get("inpaint") if config is not None else None) or {}
  return {k: int(section.get(k, v)) for k, v in INPAINT_DEFAULTS.items()}


def _inpaint(model, images, mask, seed, **options):
  """Returns {images: uint8 [N, H, W, C]}: the pixels where mask == 0 sampled from the posterior.

  `zoo.inpaint.inpaint` (RIDE section 3.4); `options` (sweeps, block, window,
  candidates) are fixed at export time. Known pixels come back unchanged.
  """
  shapes = tf.shape(images), tf.shape(mask), tf.shape(seed)
  same = tf.reduce_all(tf.equal(shapes[0], shapes[1]))
  rows = tf.equal(shapes[0][0], shapes[2][0])
  checks = [_check(same, "inpaint: `mask` must have the shape of `images`; got shapes", *shapes[:2]),
            _check(rows, "inpaint: `seed` must have one row per image; got shapes", shapes[0], shapes[2])]
  with tf.control_dependencies(checks):
    images, mask, seed = tf.identity(images), tf.identity(mask), tf.identity(seed)
  return {"images": inpainting.inpaint(model, images, mask, seed, **options)}


def _encode(model, images):
  """Returns {code: float32 [N, m]} (a PixelCNN auto-encoder's code of each image), or a
  latent-variable model's posterior {mean, stddev: float32 [N, latent_size]}."""
  encoded = model.encode(images)
  if isinstance(encoded, dict):
    return {k: tf.cast(v, tf.float32) for k, v in encoded.items()}
  return {"code": tf.cast(encoded, tf.float32)}


def _decode(model, latents):
  """Returns {images: uint8 [N, H, W, C]}: the decoder's image of each latent row."""
  return {"images": model.decode(latents)}


def _reconstruct(model, images, seed):
  """Returns {images: uint8 [N, H, W, C]}: each image through the model's code or latents
  (a sample given the code, or the decoding of a posterior sample)."""
  (seed,) = _rows_match("reconstruct", ("images", images), ("seed", seed))
  if contract.has(model, contract.DECODE):  # a latent-variable model
    return {"images": model.reconstruct(images, seed)}
  return {"images": model.sample(seed, code=model.encode(images))}


@dataclasses.dataclass(frozen=True)
class Signature:
  """One exported signature: its inputs (keys of INPUTS), outputs, and which models have it.

  `inputs` is a tuple, or a function of the model (conditioning inputs vary by model).
  """
  inputs: object
  compute: Callable  # (model, **checked inputs, **options(config)) -> {output name: tensor [N, ...]}
  applies: Callable = lambda model: True
  options: Callable = lambda config: {}  # config (or None) -> keyword options fixed at export
  warmup_size: int = None  # crop the warmup images to this size (a costly signature)


_has = lambda capability: lambda model: contract.has(model, capability)

SIGNATURES = {
    "sample": Signature(lambda model: ("seed",) + _conditioning(model), _sample),
    "log_prob": Signature(lambda model: ("images",) + _conditioning(model, from_data=True), _log_prob),
    "encode": Signature(("images",), _encode, applies=_has(contract.ENCODE)),
    "decode": Signature(("latents",), _decode, applies=_has(contract.DECODE)),
    "reconstruct": Signature(("images", "seed"), _reconstruct, applies=_has(contract.ENCODE)),
    "sample_from_coarse": Signature(("coarse", "seed"), _sample_from_coarse,
                                    applies=_has(contract.COARSE)),
    # 12 x 12 warmup images keep the warmup replay at about a second.
    "inpaint": Signature(("images", "mask", "seed"), _inpaint,
                         applies=_has(contract.INPAINT),
                         options=inpaint_options, warmup_size=12),
}


def input_names(model, signature):
  """Returns the names of `signature`'s inputs for `model`, in order."""
  return signature.inputs(model) if callable(signature.inputs) else signature.inputs


def _function(model, name, signature, config=None):
  """Returns the tf.function of signature `name` for `model`, inputs named by INPUTS.

  Its parameters carry the inputs' names, so the restored function takes keywords
  (`loaded.sample(seed=..., label=...)`) as well as positions, and Keras' TFSMLayer can
  pass every input after the first by name. Outputs get their OUTPUTS shapes.
  """
  names = input_names(model, signature)
  options = signature.options(config)

  def fn(*args):
    checked = {k: INPUTS[k].check(model, name, x) for k, x in zip(names, args)}
    outputs = signature.compute(model, **checked, **options)
    for key, tensor in outputs.items():
      tensor.set_shape(OUTPUTS[key](model))
    return outputs

  return named_function(fn, name, names, [INPUTS[k].spec(model, name=k) for k in names])


def named_function(fn, name, names, specs):
  """Returns tf.function(fn) with `specs` as its input signature and its parameters named
  `names` (so that callers, and the restored function, can pass them by keyword)."""
  fn.__name__ = name
  fn.__signature__ = inspect.Signature(
      [inspect.Parameter(k, inspect.Parameter.POSITIONAL_OR_KEYWORD) for k in names])
  return tf.function(fn, input_signature=specs, autograph=False)


def tf_variables(model):
  """Returns the model's variables as tf.Variables: a Keras 3 variable wraps one (`.value`),
  and a module that tracks those saves plain variables."""
  return [v if isinstance(v, tf.Variable) else v.value for v in model.variables]


def build_module(model, config=None):
  """Returns (tf.Module holding `model`'s variables and one tf.function per signature, signatures).

  `signatures` maps signature key -> tf.function, `serving_default` included;
  `config` (optional) sets signatures' options (e.g. `config.inpaint.sweeps`).
  """
  module = tf.Module()
  module.model_variables = tf_variables(model)
  signatures = {}
  for name, signature in SIGNATURES.items():
    if signature.applies(model):
      signatures[name] = _function(model, name, signature, config)
      setattr(module, name, signatures[name])
  signatures["serving_default"] = signatures[DEFAULT_SIGNATURE]
  return module, signatures


# -- checks on a saved model ------------------------------------------------------------

def _read_saved_model(export_path):
  """Returns the SavedModel proto of `export_path`."""
  proto = saved_model_pb2.SavedModel()
  proto.ParseFromString(storage.read_bytes(os.path.join(export_path, "saved_model.pb")))
  return proto


def forbidden_ops(export_path):
  """Returns ["<function>: <op> (<node>)", ...]: every non-servable op in the SavedModel.

  Looks at the graph and every library function of every meta graph for FORBIDDEN_OPS
  and for functions or calls marked `_XlaMustCompile`. Empty means servable.
  """
  found = set()

  def scan(where, nodes):
    for node in nodes:
      if node.op in FORBIDDEN_OPS:
        found.add(f"{where}: {node.op} ({node.name})")
      if _XLA_MUST_COMPILE in node.attr and node.attr[_XLA_MUST_COMPILE].b:
        found.add(f"{where}: {_XLA_MUST_COMPILE} ({node.name})")

  for meta_graph in _read_saved_model(export_path).meta_graphs:
    scan("graph", meta_graph.graph_def.node)
    for function in meta_graph.graph_def.library.function:
      name = function.signature.name
      scan(name, function.node_def)
      if _XLA_MUST_COMPILE in function.attr and function.attr[_XLA_MUST_COMPILE].b:
        found.add(f"{name}: {_XLA_MUST_COMPILE}")
  return sorted(found)


def declare_input_shapes(export_path, model):
  """Writes every input's INPUTS shape into the SignatureDefs of the SavedModel at
  `export_path` (and renews its fingerprint).

  The functions' placeholders keep every dimension free, so the in-graph checks see
  what a caller really sent; the SignatureDefs, which `saved_model_cli show` and TF
  Serving's model metadata report, say what to send: `seed` [-1, 2], `images`
  [-1, H, W, C] for a model of one size, -1 only where any size is accepted.
  """
  proto = _read_saved_model(export_path)
  for meta_graph in proto.meta_graphs:
    for signature in meta_graph.signature_def.values():
      for key, info in signature.inputs.items():
        info.tensor_shape.CopyFrom(tf.TensorShape(INPUTS[key].shape(model)).as_proto())
  storage.write_bytes(os.path.join(export_path, "saved_model.pb"), proto.SerializeToString())
  fingerprinting_utils.write_fingerprint(export_path)


# -- the model card -----------------------------------------------------------------------

def code_version():
  """Returns {"genzoo": installed version or None, "git_revision": the checkout's commit
  or None, "git_dirty": True if tracked files differ from it (None without git)}."""
  try:
    version = importlib.metadata.version("genzoo")
  except importlib.metadata.PackageNotFoundError:
    version = None
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  revision = dirty = None
  if os.path.exists(os.path.join(root, ".git")):
    git = lambda *args: subprocess.run(["git", "-C", root, *args], capture_output=True, text=True,
                                       timeout=30, check=True).stdout.strip()
    try:
      revision = git("rev-parse", "HEAD")
      dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):  # no git, or not a repository after all
      revision = dirty = None
  return {"genzoo": version, "git_revision": revision, "git_dirty": dirty}


def _tensor_info(info):
  shape = tf.TensorShape(info.tensor_shape)
  return {"dtype": tf.as_dtype(info.dtype).name,  # -1: any size, as saved_model_cli shows it
          "shape": None if shape.rank is None else [-1 if d is None else d for d in shape.as_list()]}


def model_card(export_path, run=None):
  """Returns the model card of the SavedModel at `export_path` (a JSON-able dict).

  `run` (optional) says what was trained: {"model", "data", "config", "steps", "metric",
  "metrics"}, the metrics in the run's units (metrics.json); the card adds every
  signature's inputs and outputs as its SignatureDef declares them, the code's version
  and the date.
  """
  signatures = {}
  for meta_graph in _read_saved_model(export_path).meta_graphs:
    for name, signature in sorted(meta_graph.signature_def.items()):
      if name.startswith("__"):  # __saved_model_init_op: the loader's, not a caller's
        continue
      signatures[name] = {
          "method": signature.method_name,
          "inputs": {k: _tensor_info(v) for k, v in sorted(signature.inputs.items())},
          "outputs": {k: _tensor_info(v) for k, v in sorted(signature.outputs.items())}}
  run = dict(run or {})
  return {"format": MODEL_CARD_FORMAT,
          **{key: run.pop(key, None) for key in ("model", "data", "steps", "metric", "metrics",
                                                 "config")},
          **run,
          "signatures": signatures,
          "default_signature": DEFAULT_SIGNATURE,
          "code": code_version(),
          "tensorflow": tf.__version__,
          "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def read_model_card(version_dir):
  """Returns the model card of an exported version (`assets.extra/model_card.json`)."""
  return storage.read_json(os.path.join(version_dir, MODEL_CARD_FILE))


# -- warmup -----------------------------------------------------------------------------

def warmup_requests(model, signatures):
  """Returns [PredictionLog], one PredictRequest per signature, batch len(WARMUP_SEEDS).

  Image inputs are the model's own samples, so they have the size it serves
  (cropped to the signature's `warmup_size` where it has one).
  """
  default = SIGNATURES[DEFAULT_SIGNATURE]
  feeds = [tf.constant(INPUTS[k].example(model, None)) for k in input_names(model, default)]
  images = signatures[DEFAULT_SIGNATURE](*feeds)["images"].numpy()  # feeds need no images
  logs = []
  for name, signature in SIGNATURES.items():
    if name not in signatures:
      continue
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name=name))
    size = signature.warmup_size
    examples = images if size is None else images[:, :size, :size]
    for key in input_names(model, signature):
      value = INPUTS[key].example(model, examples)
      request.inputs[key].CopyFrom(tf.make_tensor_proto(value, dtype=INPUTS[key].dtype))
    logs.append(prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)))
  return logs


def write_warmup(export_path, logs):
  """Writes PredictionLog records to `<export_path>/assets.extra/tf_serving_warmup_requests`."""
  path = os.path.join(export_path, WARMUP_FILE)
  storage.makedirs(os.path.dirname(path))
  with tf.io.TFRecordWriter(path) as writer:
    for log in logs:
      writer.write(log.SerializeToString())


def read_warmup(export_path):
  """Returns the [PredictionLog] records of an export's warmup file."""
  path = os.path.join(export_path, WARMUP_FILE)
  return [prediction_log_pb2.PredictionLog.FromString(r.numpy())
          for r in tf.data.TFRecordDataset(path)]


def warmup_inputs(export_path):
  """Returns {signature: {input: np.ndarray}}: the inputs of an export's warmup requests."""
  return {log.predict_log.request.model_spec.signature_name:
          {k: tf.make_ndarray(v) for k, v in log.predict_log.request.inputs.items()}
          for log in read_warmup(export_path)}


def replay_warmup(export_path):
  """Returns {signature: {output: np.ndarray}} from replaying every warmup record.

  Replays through the TF1 SignatureDef + Session path, as TF Serving's C++ does (it
  loads the `serve` meta graph, feeds the signature's input tensor names and fetches
  its outputs); raises RuntimeError naming the record if one fails.
  """
  logs = read_warmup(export_path)
  if not logs:
    raise RuntimeError(f"{export_path}/{WARMUP_FILE} holds no records")
  results = {}
  with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as sess:
    with deprecation.silence():  # the TF1 loader is deprecated, but it is what Serving does
      meta_graph = tf.compat.v1.saved_model.loader.load(sess, ["serve"], export_path)
    for i, log in enumerate(logs):
      request = log.predict_log.request
      name = request.model_spec.signature_name or "serving_default"
      try:
        signature = meta_graph.signature_def[name]
        if set(request.inputs) != set(signature.inputs):
          raise ValueError(f"inputs {sorted(request.inputs)} != signature's {sorted(signature.inputs)}")
        feeds = {signature.inputs[k].name: tf.make_ndarray(v) for k, v in request.inputs.items()}
        fetches = {k: v.name for k, v in signature.outputs.items()}
        outputs = sess.run(fetches, feeds)
        batch = {len(v) for v in feeds.values()} | {len(v) for v in outputs.values()}
        if len(batch) != 1:
          raise ValueError(f"inputs and outputs disagree on the batch size: {sorted(batch)}")
      except Exception as e:
        raise RuntimeError(f"warmup record {i} ({name}) failed on {export_path}: "
                           f"{type(e).__name__}: {e}") from e
      results[name] = outputs
  return results


# -- versioned, atomic publishing -------------------------------------------------------
#
# On a local disk a version is written to `.tmp-<version>-<pid>` and renamed into place:
# one atomic step, so a polling TF Serving sees no version or a whole one. Elsewhere (an
# object store, HDFS, ram://) directory renames are neither atomic nor, on some
# filesystems, reliable, so the verified temporary dir `.tmp-<version>-<host>-<pid>` is
# copied file by file into `<version>/` with saved_model.pb last: until that one object
# lands, the version holds no SavedModel, and a TF Serving that polls meanwhile fails
# to load it (and retries) rather than loading half of it. A marker file
# `.publishing-<version>-<host>-<pid>` lives for the copy, so that the next export on
# this host can tell a copy cut short by a crash from a finished version.

_SAVED_MODEL = "saved_model.pb"
_LOCAL_TMP = r"\.tmp-(\d+)-(\d+)"
_REMOTE_TMP = r"\.(tmp|publishing)-(\d+)-(.+)-(\d+)"


def _tmp_name(export_dir, version, pid=None):
  """Returns the name of the temporary dir of `version` written by process `pid` (default: this one)."""
  pid = os.getpid() if pid is None else pid
  if storage.is_local(export_dir):
    return f".tmp-{version}-{pid}"
  return f".tmp-{version}-{socket.gethostname()}-{pid}"


def _marker_name(version, pid=None):
  """Returns the name of the marker of a copy into `<version>/` (not on a local disk)."""
  return f".publishing-{version}-{socket.gethostname()}-{os.getpid() if pid is None else pid}"


def versions(export_dir):
  """Returns the sorted integer versions published in `export_dir` ([] if none)."""
  if not storage.isdir(export_dir):
    return []
  return sorted(int(n) for n in storage.listdir(export_dir) if re.fullmatch(r"\d+", n))


def _fsync_tree(path):
  """Flushes every file under `path`, then `path` itself, to disk (a local path)."""
  for root, _, files in os.walk(path):
    for name in files:
      fd = os.open(os.path.join(root, name), os.O_RDONLY)
      try:
        os.fsync(fd)
      finally:
        os.close(fd)
  _fsync_dir(path)


def _fsync_dir(path):
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


def _publish(tmp, export_dir):
  """Returns `<export_dir>/<version>` after moving `tmp` there; retries if another exporter won."""
  if not storage.is_local(export_dir):
    return _publish_by_copy(tmp, export_dir)
  for _ in range(100):
    target = os.path.join(export_dir, str(max(versions(export_dir), default=0) + 1))
    try:
      os.rename(tmp, target)  # atomic; fails if a non-empty `target` appeared meanwhile
    except OSError as e:
      if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
        raise
      continue
    _fsync_dir(export_dir)
    return target
  raise RuntimeError(f"could not claim a new version in {export_dir}")


def _publish_by_copy(tmp, export_dir):
  """Returns `<export_dir>/<version>` after copying `tmp` there, saved_model.pb last and
  only once every other file is there (see above); the temporary dir is removed after.
  A failure removes the partial version."""
  version = max(versions(export_dir), default=0) + 1
  while storage.exists(storage.join(export_dir, str(version))):  # another exporter's, mid-copy
    version += 1
  target = storage.join(export_dir, str(version))
  marker = storage.join(export_dir, _marker_name(version))
  storage.write_bytes(marker, f"{tmp}\n".encode())
  try:
    written = storage.walk_files(tmp)
    storage.copy_tree(tmp, target, skip=(_SAVED_MODEL,))
    copied = storage.walk_files(target)
    if copied != [p for p in written if p != _SAVED_MODEL]:
      raise RuntimeError(f"the copy of {tmp} to {target} holds {len(copied)} files, not "
                         f"{len(written) - 1}")
    storage.copy_file(storage.join(tmp, _SAVED_MODEL), storage.join(target, _SAVED_MODEL))
  except BaseException:
    storage.rmtree(target)
    storage.remove(marker)
    raise
  storage.remove(marker)
  storage.rmtree(tmp)
  return target


def _dead(pid):
  """Returns True if no process `pid` runs on this host."""
  try:
    os.kill(pid, 0)  # raises if no such process
  except ProcessLookupError:
    return True
  except PermissionError:  # alive, another user's
    return False
  return False


def _remove_abandoned(export_dir):
  """Removes what an export killed on this host left: its temporary dir (it never became
  a version) and, off a local disk, a version whose copy it did not finish (its marker
  is still there and the version has no saved_model.pb). What another host left is kept:
  its process cannot be checked from here."""
  host = socket.gethostname()
  for name in storage.listdir(export_dir):
    local = re.fullmatch(_LOCAL_TMP, name)
    remote = re.fullmatch(_REMOTE_TMP, name)
    if local:
      pid = int(local.group(2))
    elif remote and remote.group(3) == host:
      pid = int(remote.group(4))
    else:
      continue
    if pid == os.getpid() or not _dead(pid):
      continue
    if remote and remote.group(1) == "publishing":
      version = storage.join(export_dir, remote.group(2))
      if not storage.exists(storage.join(version, _SAVED_MODEL)):
        storage.rmtree(version)  # a copy cut short: never a SavedModel
      storage.remove(storage.join(export_dir, name))
    else:
      storage.rmtree(storage.join(export_dir, name))


def export(model, config, export_dir, tflite=False, run=None):
  """Returns the published version dir `<export_dir>/<version>` holding `model` as a SavedModel.

  `model` has `sample(seeds)`, `log_prob(images)`, `channels`, `levels` and
  `continuous` (the zoo's model API); `config` (may be None) sets signature options
  such as `config.inpaint.sweeps`. Nothing is published unless the SavedModel
  holds only servable ops and every warmup record replays; on any failure the
  temporary dir is removed and the error re-raised, and one left by a killed export is
  removed by the next. Versions already published are never touched. `tflite`: the
  version also holds TFLite files of the signatures that run on a device (export/tflite.py).
  `run` (optional): what was trained, for the version's model card (`model_card`:
  `assets.extra/model_card.json`); the config defaults to `config`.

  `export_dir` may be any TensorFlow filesystem's URL (gs://, hdfs://, ram://); see
  "versioned, atomic publishing" below for what differs off a local disk.
  """
  export_dir = storage.normalize(export_dir)  # file://x is x; other URLs stay URLs
  run = dict(run or {})
  if config is not None and run.get("config") is None:
    run["config"] = json.loads(config.to_json_best_effort())
  module, signatures = build_module(model, config)
  storage.makedirs(export_dir)
  _remove_abandoned(export_dir)
  version = max(versions(export_dir), default=0) + 1
  tmp = storage.join(export_dir, _tmp_name(export_dir, version))
  try:
    tf.saved_model.save(module, tmp, signatures=signatures)
    declare_input_shapes(tmp, model)
    bad = forbidden_ops(tmp)
    if bad:
      raise ValueError(f"export holds ops TF Serving cannot run deterministically: {', '.join(bad)}")
    write_warmup(tmp, warmup_requests(model, signatures))
    replayed = replay_warmup(tmp)
    if tflite:
      from export import tflite as tflite_lib  # pylint: disable=g-import-not-at-top
      tflite_lib.convert(model, config, tmp, signatures, replayed)
    storage.write_json(os.path.join(tmp, MODEL_CARD_FILE), model_card(tmp, run))
    if storage.is_local(tmp):
      _fsync_tree(tmp)
    return _publish(tmp, export_dir)
  except BaseException:
    storage.rmtree(tmp)
    raise
