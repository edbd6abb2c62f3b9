"""The export contract (shared/DESIGN.md): a tiny MCGSM exported once, then checked.

Both loading paths run in a fresh process in which Keras, TFP and the zoo are marked
absent: `tf.saved_model.load` (plain TF code) and the TF1 SignatureDef + Session path
that TF Serving's C++ uses; models with `ancestral` (MCGSM, RIDE) also export
`inpaint`, checked the same way. About 100 s on 2 CPU cores (45 s before `inpaint`: its
tracing, warmup replay and checks cost about 5 s per export and 10 s per model).
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from unittest import mock

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.tools import saved_model_utils  # pylint: disable=g-direct-tensorflow-import
from tensorflow_serving.apis import prediction_log_pb2

from export import saved_model
from tests.conftest import registry_variants
from tests.conftest import tiny_config
from tests.conftest import tiny_model
from training import steps

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ABSENT = ("keras", "tf_keras", "tensorflow_probability", "zoo")
SEEDS_A = np.array([[1, 2], [3, 4]], np.int64)
SEEDS_B = np.array([[1, 2], [5, 6]], np.int64)  # row 0 shared with SEEDS_A

# Runs first in every fresh process. TF 2.21 imports Keras at `import tensorflow`
# whenever it is installed, so "never imports Keras" is checked by marking these
# modules absent, as on a serving machine without them: any use of them fails.
PRELUDE = f"""
import sys
for name in {ABSENT!r}:
  sys.modules[name] = None
import numpy as np
import tensorflow as tf
export_path, inputs_path, out_path = sys.argv[1:4]
inputs = dict(np.load(inputs_path))
results = {{}}
"""
EPILOGUE = f"""
used = sorted(m for m in sys.modules if m.split(".")[0] in {ABSENT!r} and sys.modules[m] is not None)
assert not used, f"the fresh process imported {{used}}"
np.savez(out_path, **results)
"""

# Plain TF code: tf.saved_model.load and the signatures, loaded twice.
# Conditioning inputs (label, code) travel in the inputs file as sample_cond_<name>
# (rows of seeds_a / seeds_b) and images_cond_<name> (rows of images).
LOAD_SCRIPT = """
cond = lambda prefix: {k[len(prefix):]: tf.constant(v) for k, v in inputs.items() if k.startswith(prefix)}
first, second = tf.saved_model.load(export_path), tf.saved_model.load(export_path)
out = first.signatures["log_prob"](images=tf.constant(inputs["images"]), **cond("images_cond_"))
results.update(log_prob=out["log_prob"].numpy(), bits_per_dim=out["bits_per_dim"].numpy())
out = first.signatures["sample"](seed=tf.constant(inputs["seeds_a"]), **cond("sample_cond_"))
results.update(sample_a=out["images"].numpy(),
               png_a=np.stack([tf.io.decode_png(b).numpy() for b in out["png_bytes"]]))
results["sample_a_second_load"] = second.signatures["serving_default"](
    seed=tf.constant(inputs["seeds_a"]), **cond("sample_cond_"))["images"].numpy()
results["sample_b"] = second.signatures["sample"](seed=tf.constant(inputs["seeds_b"]),
                                                  **cond("sample_cond_"))["images"].numpy()
"""

# What TF Serving's C++ does: load the `serve` meta graph into a Session, feed each
# signature's input tensor names, fetch its output tensor names.
SESSION_SCRIPT = """
def run(sess, meta_graph, name, **feeds):
  signature = meta_graph.signature_def[name]
  fetches = {k: v.name for k, v in signature.outputs.items()}
  return sess.run(fetches, {signature.inputs[k].name: v for k, v in feeds.items()})

cond = lambda prefix: {k[len(prefix):]: v for k, v in inputs.items() if k.startswith(prefix)}
with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as sess:
  meta_graph = tf.compat.v1.saved_model.loader.load(sess, ["serve"], export_path)
  out = run(sess, meta_graph, "log_prob", images=inputs["images"], **cond("images_cond_"))
  results.update(log_prob=out["log_prob"], bits_per_dim=out["bits_per_dim"])
  out = run(sess, meta_graph, "serving_default", seed=inputs["seeds_a"], **cond("sample_cond_"))
  results["sample_a"], png_bytes = out["images"], out["png_bytes"]
  results["sample_b"] = run(sess, meta_graph, "sample", seed=inputs["seeds_b"],
                            **cond("sample_cond_"))["images"]
results["png_a"] = np.stack([tf.io.decode_png(b).numpy() for b in png_bytes])
"""


# Inpainting, for the models that have it: the same inputs twice (determinism), seeds
# sharing row 0 with inputs_a, row 0 alone, and row 1's image changed.
INPAINT_SCRIPT = """
inpaint = tf.saved_model.load(export_path).signatures["inpaint"]
run = lambda images, mask, seed: inpaint(images=tf.constant(images), mask=tf.constant(mask),
                                         seed=tf.constant(seed))["images"].numpy()
images, mask = inputs["images"], inputs["mask"]
results["inpaint_a"] = run(images, mask, inputs["inpaint_seeds_a"])
results["inpaint_a_again"] = run(images, mask, inputs["inpaint_seeds_a"])
results["inpaint_b"] = run(images, mask, inputs["inpaint_seeds_b"])
results["inpaint_alone"] = run(images[:1], mask[:1], inputs["inpaint_seeds_a"][:1])
changed = images.copy()
changed[1] = 255 - changed[1]
results["inpaint_changed"] = run(changed, mask, inputs["inpaint_seeds_a"])
"""


def hash_tree(path):
  """Returns {relative path: sha256} of every file under `path`."""
  hashes = {}
  for root, _, files in os.walk(path):
    for name in files:
      with open(os.path.join(root, name), "rb") as f:
        hashes[os.path.relpath(os.path.join(root, name), path)] = hashlib.sha256(f.read()).hexdigest()
  return hashes


class ToyDiscreteModel(tf.Module):
  """The least a model needs to be exported: 4 grey levels, a product of uniform pixels, and
  the contract's declarations (no conditioning, no optional capability)."""

  channels, levels, continuous, fixed_size = 1, 4, False, None
  conditional_inputs, capabilities = (), frozenset()

  def __init__(self):
    super().__init__()
    self.log_p = tf.Variable(-np.log(4.0), dtype=tf.float32)  # per pixel

  def sample(self, seeds):
    noise = tf.map_fn(lambda s: tf.random.stateless_uniform([3, 5, 1], s, maxval=4, dtype=tf.int32),
                      seeds, fn_output_signature=tf.int32)  # [N, 3, 5, 1], row n from seed n
    return tf.cast(noise, tf.uint8)

  def log_prob(self, images):
    return tf.reduce_sum(tf.ones_like(images, tf.float32), axis=[1, 2, 3]) * self.log_p


# The auto-encoder's own signatures: the code of each image, and samples given it.
AUTOENCODER_SCRIPT = """
loaded = tf.saved_model.load(export_path)
images = tf.constant(inputs["images"])
results["code"] = loaded.signatures["encode"](images=images)["code"].numpy()
seeds = tf.constant(inputs["inpaint_seeds_a"])  # one row per image
results["reconstruct"] = loaded.signatures["reconstruct"](images=images, seed=seeds)["images"].numpy()
results["sample_given_code"] = loaded.signatures["sample"](
    seed=seeds, code=tf.constant(results["code"]))["images"].numpy()
"""


# A latent-variable model's own signatures: posterior, decoder, reconstructions.
LATENT_SCRIPT = """
loaded = tf.saved_model.load(export_path)
images = tf.constant(inputs["images"])
encoded = loaded.signatures["encode"](images=images)
results["mean"], results["stddev"] = encoded["mean"].numpy(), encoded["stddev"].numpy()
results["decode"] = loaded.signatures["decode"](latents=encoded["mean"])["images"].numpy()
seeds = tf.constant(inputs["inpaint_seeds_a"])  # one row per image
reconstruct = loaded.signatures["reconstruct"]
results["reconstruct"] = reconstruct(images=images, seed=seeds)["images"].numpy()
results["reconstruct_last"] = reconstruct(images=images[-1:], seed=seeds[-1:])["images"].numpy()
"""


class ExportContract:
  """The export contract, checked for one model of the registry (MODEL)."""

  MODEL = None
  OVERRIDES = {}  # config.model fields of this variant (e.g. a conditional PixelCNN)
  # Whether Keras' TFSMLayer is checked too (eager and in a functional model): in the
  # variants of KERAS_VARIANTS, which between them have every signature and input name
  # (each TFSMLayer loads the SavedModel again; keyword calls are checked everywhere).
  KERAS = False

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.tmp = tempfile.mkdtemp(prefix="genzoo-export-test-")
    cls.config = tiny_config(cls.MODEL, **cls.OVERRIDES)
    cls.model = tiny_model(cls.config, cls.MODEL)
    cls.export_path = saved_model.export(cls.model, cls.config, os.path.join(cls.tmp, "export"))
    rng = np.random.RandomState(1)
    images = rng.randint(0, 256, [3, 8, 10, 1]).astype(np.uint8)  # H != W on purpose
    mask = np.ones([3, 8, 10, 1], np.uint8)  # row 0: a hole, row 1: scattered, row 2: none missing
    mask[0, 2:6, 3:8] = 0
    mask[1] = rng.rand(8, 10, 1) > 0.3
    cls.inputs = {"images": images, "seeds_a": SEEDS_A, "seeds_b": SEEDS_B, "mask": mask,
                  "inpaint_seeds_a": np.array([[1, 2], [3, 4], [5, 6]], np.int64),
                  "inpaint_seeds_b": np.array([[1, 2], [7, 8], [9, 10]], np.int64)}
    names = cls.model.conditional_inputs
    if "label" in names:  # rows of seeds (2) and of images (3)
      cls.inputs.update(sample_cond_label=np.array([2, 0], np.int32),
                        images_cond_label=np.array([1, 2, 0], np.int32))
    if "code" in names:
      cls.inputs["sample_cond_code"] = rng.normal(size=[2, cls.model.code_size]).astype(np.float32)
    cls.inputs_path = os.path.join(cls.tmp, "inputs.npz")
    np.savez(cls.inputs_path, **cls.inputs)
    cls._fresh, cls._cached = {}, {}

  @classmethod
  def tearDownClass(cls):
    tf.io.gfile.rmtree(cls.tmp)
    super().tearDownClass()

  def scripts(self):
    """Returns the fresh-process scripts this class's tests read (by its signatures)."""
    signatures = self.signatures()
    out = [LOAD_SCRIPT, SESSION_SCRIPT]
    if "inpaint" in signatures:
      out.append(INPAINT_SCRIPT)
    if "encode" in signatures and "decode" not in signatures:
      out.append(AUTOENCODER_SCRIPT)
    if "decode" in signatures:
      out.append(LATENT_SCRIPT)
    return out

  def fresh(self, script):
    """Returns the results of `script` run on the export in a fresh process.

    All of the class's `scripts` run in one fresh process, each from an empty `results`
    (TensorFlow's start-up is most of a process's cost).
    """
    if not self._fresh:
      scripts = self.scripts()
      out = os.path.join(self.tmp, "results.npz")
      body = "".join(
          f"results = {{}}\n{textwrap.dedent(s)}\n"
          f"everything.update({{f's{i}__{{k}}': v for k, v in results.items()}})\n"
          for i, s in enumerate(scripts))
      code = (PRELUDE + "everything = {}\n" + body
              + EPILOGUE.replace("**results", "**everything"))
      env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
      env["TF_CPP_MIN_LOG_LEVEL"] = "2"
      proc = subprocess.run([sys.executable, "-c", code, self.export_path, self.inputs_path, out],
                            cwd=self.tmp, env=env, capture_output=True, text=True, timeout=600)
      self.assertEqual(proc.returncode, 0, f"fresh process failed:\n{proc.stderr[-3000:]}")
      everything = dict(np.load(out))
      for i, s in enumerate(scripts):
        self._fresh[s] = {k.split("__", 1)[1]: v for k, v in everything.items()
                          if k.startswith(f"s{i}__")}
    return self._fresh[script]

  def loaded(self):
    """Returns tf.saved_model.load of the export, loaded once per class (in this process;
    `fresh` loads it without the zoo)."""
    if "loaded" not in self._cached:
      self._cached["loaded"] = tf.saved_model.load(self.export_path)
    return self._cached["loaded"]

  def replayed(self):
    """Returns saved_model.replay_warmup of the export (a TF1 session, as TF Serving runs
    it), replayed once per class."""
    if "replayed" not in self._cached:
      self._cached["replayed"] = saved_model.replay_warmup(self.export_path)
    return self._cached["replayed"]

  def cond(self, prefix):
    """Returns the conditioning inputs stored under `prefix` (sample_cond_ / images_cond_)."""
    return {k[len(prefix):]: v for k, v in self.inputs.items() if k.startswith(prefix)}

  def in_process(self):
    """Returns the values the Keras model itself computes on the test inputs."""
    sample = tf.function(self.model.sample)
    return {"log_prob": self.model.log_prob(self.inputs["images"], **self.cond("images_cond_")).numpy(),
            "sample_a": sample(self.inputs["seeds_a"], **self.cond("sample_cond_")).numpy()}

  # -- loading without the zoo ----------------------------------------------------------

  def check_roundtrip(self, results):
    expected = self.in_process()
    self.assertAllClose(results["log_prob"], expected["log_prob"], rtol=1e-5, atol=0)
    dims = np.prod(self.inputs["images"].shape[1:])
    bits = -expected["log_prob"] / (dims * np.log(2))  # a continuous density adds the bin width
    self.assertAllClose(results["bits_per_dim"],
                        bits + (np.log2(self.model.levels) if self.model.continuous else 0.0), rtol=1e-5)
    self.assertEqual(results["sample_a"].dtype, np.uint8)
    self.assertEqual(results["sample_a"].shape, (2, *self.sample_size(), self.model.channels))
    self.assertAllEqual(results["sample_a"], expected["sample_a"])
    self.assertAllEqual(results["png_a"], results["sample_a"])
    self.assertAllEqual(results["sample_b"][0], results["sample_a"][0])
    self.assertNotAllEqual(results["sample_b"][1], results["sample_a"][1])

  def test_saved_model_load_without_zoo_matches_model(self):
    results = self.fresh(LOAD_SCRIPT)
    self.check_roundtrip(results)
    self.assertAllEqual(results["sample_a_second_load"], results["sample_a"])

  def test_session_signature_path_without_zoo_matches_model(self):
    self.check_roundtrip(self.fresh(SESSION_SCRIPT))

  def test_inpaint_without_zoo_keeps_known_pixels_and_is_seeded_per_row(self):
    if "inpaint" not in self.signatures():
      self.skipTest(f"{self.MODEL} has no inpaint signature")
    results = self.fresh(INPAINT_SCRIPT)
    images, mask = self.inputs["images"], self.inputs["mask"]
    out = results["inpaint_a"]
    self.assertEqual(out.dtype, np.uint8)
    self.assertEqual(out.shape, images.shape)
    self.assertAllEqual(out[mask == 1], images[mask == 1])
    self.assertAllEqual(out[2], images[2])  # nothing missing, nothing changed
    self.assertNotAllEqual(out[0][mask[0] == 0], images[0][mask[0] == 0])
    self.assertAllEqual(results["inpaint_a_again"], out)
    self.assertAllEqual(results["inpaint_b"][0], out[0])  # same seed row, other rows differ
    self.assertNotAllEqual(results["inpaint_b"][1], out[1])
    self.assertAllEqual(results["inpaint_alone"][0], out[0])  # alone or in a batch
    self.assertAllEqual(results["inpaint_changed"][0], out[0])  # another row's image changed
    self.assertAllEqual(results["inpaint_changed"][2], images[2])

  def sample_size(self):
    """Returns (H, W) of the model's samples."""
    if hasattr(self.model, "sample_size"):  # MCGSM, RIDE: square samples of config.sample.size
      return (self.model.sample_size,) * 2
    return (self.model.height, self.model.width)

  def test_encode_and_reconstruct_without_zoo_match_the_model(self):
    if "encode" not in self.signatures() or "decode" in self.signatures():
      self.skipTest(f"{self.MODEL} {self.OVERRIDES} is not an auto-encoder")
    results = self.fresh(AUTOENCODER_SCRIPT)
    images = self.inputs["images"]
    self.assertAllClose(results["code"], self.model.encode(images).numpy(), rtol=1e-5, atol=1e-6)
    self.assertEqual(results["code"].shape, (len(images), self.model.code_size))
    # reconstruct(images, seed) = sample(seed, code=encode(images)), row by row.
    self.assertAllEqual(results["reconstruct"], results["sample_given_code"])
    self.assertEqual(results["reconstruct"].shape, images.shape)

  def test_latent_signatures_without_zoo_match_the_model(self):
    if "decode" not in self.signatures():
      self.skipTest(f"{self.MODEL} {self.OVERRIDES} has no latents")
    results = self.fresh(LATENT_SCRIPT)
    images, seeds = self.inputs["images"], self.inputs["inpaint_seeds_a"]
    encoded = self.model.encode(images)
    for key in ("mean", "stddev"):
      self.assertAllClose(results[key], encoded[key].numpy(), rtol=1e-5, atol=1e-6)
      self.assertEqual(results[key].shape, (len(images), self.model.latent_size))
    self.assertTrue(np.all(results["stddev"] > 0))
    self.assertAllEqual(results["decode"], self.model.decode(encoded["mean"]).numpy())
    self.assertAllEqual(results["reconstruct"], self.model.reconstruct(images, seeds).numpy())
    # A row's reconstruction depends on its own image and seed only.
    self.assertAllEqual(results["reconstruct_last"], results["reconstruct"][-1:])
    self.assertEqual(results["reconstruct"].shape, images.shape)
    decode = self.loaded().signatures["decode"]
    m = self.model.latent_size
    for what, latents, message in [
        ("wrong size", tf.zeros([2, m + 1]), r"decode: `latents` must be float32 \[N, %d\].*wrong latents size" % m),
        ("NaN", tf.fill([2, m], float("nan")), r"got a NaN or infinity")]:
      with self.subTest(what):
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, message):
          decode(latents=latents)

  def test_bad_conditioning_fails_with_clear_invalid_argument(self):
    names = self.model.conditional_inputs
    if not names:
      self.skipTest(f"{self.MODEL} {self.OVERRIDES} has no conditioning inputs")
    sample = self.loaded().signatures["sample"]
    seeds = tf.zeros([2, 2], tf.int64)
    if "label" in names:
      cases = [("label 3 of 3 classes", dict(label=tf.constant([0, 3], tf.int32)),
                r"sample: `label` must be int32 \[N\], one class in \[0, 3\).*got min and max\] \[0\] \[3\]"),
               ("one label for two seeds", dict(label=tf.constant([1], tf.int32)),
                r"sample: `label` must have one row per `seed` row")]
    else:
      m = self.model.code_size
      cases = [("wrong code size", dict(code=tf.zeros([2, m + 1])), r"sample: `code` must be float32 \[N, %d\].*wrong code size" % m),
               ("NaN code", dict(code=tf.fill([2, m], float("nan"))), r"got a NaN or infinity")]
    for what, feeds, message in cases:
      with self.subTest(what):
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, message):
          sample(seed=seeds, **feeds)

  def signatures(self):
    """Returns the names of the signatures the export of MODEL has."""
    return {name for name, s in saved_model.SIGNATURES.items() if s.applies(self.model)}

  # -- servable ops -----------------------------------------------------------------------

  def test_export_holds_only_servable_ops(self):
    self.assertEqual(saved_model.forbidden_ops(self.export_path), [])

  def test_warmup_records_parse_and_replay(self):
    path = os.path.join(self.export_path, "assets.extra", "tf_serving_warmup_requests")
    records = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
               for r in tf.data.TFRecordDataset(path)]
    requests = {r.predict_log.request.model_spec.signature_name: r.predict_log.request
                for r in records}
    self.assertEqual(set(requests), self.signatures())
    self.assertEqual(tf.make_ndarray(requests["sample"].inputs["seed"]).shape, (2, 2))
    shape = (2, *self.sample_size(), 1)
    self.assertEqual(tf.make_ndarray(requests["log_prob"].inputs["images"]).shape, shape)
    outputs = self.replayed()
    self.assertEqual(outputs["sample"]["images"].shape, shape)
    self.assertEqual(outputs["log_prob"]["log_prob"].shape, (2,))
    if "inpaint" in requests:
      mask = tf.make_ndarray(requests["inpaint"].inputs["mask"])
      self.assertEqual(mask.shape, (2, 8, 8, 1))  # the 8 x 8 samples (warmup crop: 12)
      self.assertEqual(mask.min(), 0)
      known = tf.make_ndarray(requests["inpaint"].inputs["images"])[mask == 1]
      self.assertAllEqual(outputs["inpaint"]["images"][mask == 1], known)

  # -- what every TF consumer reads and calls ----------------------------------------------

  def warmup_feeds(self):
    """Returns {signature: {input: tf.Tensor}}: the inputs of the export's warmup requests."""
    return {name: {k: tf.constant(v) for k, v in inputs.items()}
            for name, inputs in saved_model.warmup_inputs(self.export_path).items()}

  def test_signature_defs_declare_every_fixed_dimension(self):
    # What `saved_model_cli show` and TF Serving's model metadata read.
    meta_graph = saved_model_utils.get_meta_graph_def(self.export_path, "serve")
    model, channels = self.model, self.model.channels
    image = [-1, *(model.fixed_size or (-1, -1)), channels]
    vector = lambda attribute: lambda: [-1, getattr(model, attribute)]
    wanted = {"seed": lambda: [-1, 2], "label": lambda: [-1], "images": lambda: image,
              "mask": lambda: image, "code": vector("code_size"), "latents": vector("latent_size"),
              "coarse": lambda: [-1, -1, -1, channels]}
    replayed = self.replayed()
    dims = lambda info: [d.size for d in info.tensor_shape.dim]
    self.assertEqual(set(meta_graph.signature_def) - {"__saved_model_init_op", "serving_default"},
                     self.signatures())
    for name in self.signatures() | {"serving_default"}:
      signature = meta_graph.signature_def[name]
      with self.subTest(name):
        for key, info in signature.inputs.items():
          self.assertEqual(dims(info), wanted[key](), key)
        for key, info in signature.outputs.items():
          declared = dims(info)
          actual = replayed["sample" if name == "serving_default" else name][key].shape
          self.assertEqual(declared[0], -1, key)  # any batch
          self.assertLen(actual, len(declared))
          for d, a in zip(declared, actual):
            self.assertIn(d, (-1, a), f"{key}: declared {declared}, got {actual}")
          if key == "images":
            self.assertEqual(declared[-1], channels)
          if key == "images" and name in ("sample", "serving_default", "decode"):
            self.assertEqual(declared[1:], [*self.sample_size(), channels])  # all known

  def test_keyword_calls_and_keras_tfsm_layer_match_the_signatures(self):
    loaded = self.loaded()
    for name, feeds in self.warmup_feeds().items():
      with self.subTest(name):
        expected = loaded.signatures[name](**feeds)
        names = saved_model.input_names(self.model, saved_model.SIGNATURES[name])
        outputs = {"keywords": getattr(loaded, name)(**feeds),
                   "positions": getattr(loaded, name)(*[feeds[k] for k in names])}
        if self.KERAS:
          first, rest = feeds[names[0]], {k: feeds[k] for k in names[1:]}
          layer = keras.layers.TFSMLayer(self.export_path, call_endpoint=name)
          symbolic = {k: keras.Input(shape=v.shape[1:], dtype=v.dtype.name, name=k)
                      for k, v in feeds.items()}
          functional = keras.Model(symbolic, layer(symbolic[names[0]],
                                                   **{k: symbolic[k] for k in names[1:]}))
          outputs.update({"TFSMLayer": layer(first, **rest), "functional model": functional(feeds)})
        for how, out in outputs.items():
          self.assertEqual(set(out), set(expected), how)
          for key in expected:
            self.assertAllEqual(out[key], expected[key], msg=f"{how}: {key}")

  # -- versions ---------------------------------------------------------------------------


class ExportTest(ExportContract, tf.test.TestCase):
  """The contract for the MCGSM, and the export mechanics, which do not depend on the model."""

  KERAS = True

  MODEL = "mcgsm"

  def test_forbidden_ops_finds_py_function_stateful_random_and_xla(self):
    module = tf.Module()
    module.bad = tf.function(
        lambda x: tf.py_function(tf.identity, [x + tf.random.uniform([])], tf.float32),
        input_signature=[tf.TensorSpec([], tf.float32)])
    module.xla = tf.function(lambda x: x * 2.0, input_signature=[tf.TensorSpec([], tf.float32)],
                             jit_compile=True)
    path = os.path.join(self.tmp, "bad_toy")
    tf.saved_model.save(module, path, signatures={"bad": module.bad, "xla": module.xla})
    found = " ".join(saved_model.forbidden_ops(path))
    for op in ("EagerPyFunc", "RandomUniform", "_XlaMustCompile"):
      self.assertIn(op, found)

  # -- warmup -----------------------------------------------------------------------------

  def test_versions_increase_and_are_never_touched(self):
    export_dir = os.path.join(self.tmp, "versions")
    first = saved_model.export(self.model, self.config, export_dir)
    self.assertEqual(first, os.path.join(export_dir, "1"))
    before = hash_tree(first)
    self.assertEqual(saved_model.export(self.model, self.config, export_dir),
                     os.path.join(export_dir, "2"))
    self.assertEqual(hash_tree(first), before)

    failures = {"replay_warmup": RuntimeError("warmup replay failed"),
                "forbidden_ops": ["graph: RandomUniform (x)"]}
    for name, failure in failures.items():
      with self.subTest(failing=name):
        patch = (dict(side_effect=failure) if isinstance(failure, Exception)
                 else dict(return_value=failure))
        with mock.patch.object(saved_model, name, **patch):
          with self.assertRaises((RuntimeError, ValueError)):
            saved_model.export(self.model, self.config, export_dir)
        self.assertEqual(sorted(os.listdir(export_dir)), ["1", "2"])  # no new version, no temp dir
    self.assertEqual(hash_tree(first), before)

  # -- bad inputs -------------------------------------------------------------------------

  def test_bad_inputs_fail_with_clear_invalid_argument(self):
    loaded = self.loaded()
    log_prob, sample = loaded.signatures["log_prob"], loaded.signatures["sample"]

    def inpaint(**bad):
      inputs = dict(images=tf.zeros([2, 8, 8, 1], tf.uint8), mask=tf.ones([2, 8, 8, 1], tf.uint8),
                    seed=tf.zeros([2, 2], tf.int64))
      return loaded.signatures["inpaint"](**{**inputs, **bad})

    cases = [
        ("3 channels", lambda: log_prob(images=tf.zeros([2, 8, 8, 3], tf.uint8)),
         r"log_prob: `images` must be uint8 \[N, H, W, 1\].*wrong number of channels, got shape\] \[2 8 8 3\]"),
        ("empty images", lambda: log_prob(images=tf.zeros([0, 8, 8, 1], tf.uint8)),
         r"log_prob: .*empty batch or image, got shape\] \[0 8 8 1\]"),
        ("zero-height images", lambda: log_prob(images=tf.zeros([1, 0, 8, 1], tf.uint8)),
         r"log_prob: .*empty batch or image"),
        # A loaded signature, like TF Serving, does not check the rank: the graph does.
        ("rank-3 images", lambda: log_prob(images=tf.zeros([2, 8, 8], tf.uint8)),
         r"log_prob: .*wrong rank, got shape\] \[2 8 8\]"),
        ("seed [N, 3]", lambda: sample(seed=tf.zeros([2, 3], tf.int64)),
         r"sample: `seed` must be int64 \[N, 2\].*wrong seed size, got shape\] \[2 3\]"),
        ("empty seed batch", lambda: sample(seed=tf.zeros([0, 2], tf.int64)),
         r"sample: .*empty batch, got shape\] \[0 2\]"),
        ("rank-1 seed", lambda: sample(seed=tf.zeros([2], tf.int64)),
         r"sample: .*wrong rank, got shape\] \[2\]"),
        ("mask value 2", lambda: inpaint(mask=tf.fill([2, 8, 8, 1], tf.constant(2, tf.uint8))),
         r"inpaint: `mask` must be uint8 \[N, H, W, 1\].*1 for a known pixel.*got max value\] \[2\]"),
        ("mask of another size", lambda: inpaint(mask=tf.ones([2, 8, 9, 1], tf.uint8)),
         r"inpaint: `mask` must have the shape of `images`; got shapes\] \[2 8 8 1\] \[2 8 9 1\]"),
        ("rank-3 mask", lambda: inpaint(mask=tf.ones([2, 8, 8], tf.uint8)),
         r"inpaint: `mask` .*wrong rank, got shape\] \[2 8 8\]"),
        ("one seed for two images", lambda: inpaint(seed=tf.zeros([1, 2], tf.int64)),
         r"inpaint: `seed` must have one row per image; got shapes\] \[2 8 8 1\] \[1 2\]"),
    ]
    for what, call, message in cases:
      with self.subTest(what):
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, message):
          call()

  def test_the_readmes_saved_model_cli_commands_run_as_written(self):
    with open(os.path.join(REPO, "README.md")) as f:
      readme = f.read()
    block = readme.split("<!-- saved_model_cli commands -->\n```\n", 1)[1].split("```", 1)[0]
    commands = block.strip().splitlines()
    self.assertLen(commands, 3)
    # The README's run is RIDE's; this export is a tiny MCGSM with the same signatures.
    cli = shutil.which("saved_model_cli") or f"{sys.executable} -m tensorflow.python.tools.saved_model_cli"
    cwd = tempfile.mkdtemp(dir=self.tmp)
    outputs = []
    for command in commands:
      command = command.replace("runs/ride-deadleaves/export/1", self.export_path)
      proc = subprocess.run(cli + command[len("saved_model_cli"):], shell=True, cwd=cwd,
                            capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
      self.assertEqual(proc.returncode, 0, f"{command}\n{proc.stderr[-3000:]}")
      outputs.append(proc.stdout)
    self.assertRegex(outputs[0], r"inputs\['seed'\] tensor_info:\s+dtype: DT_INT64\s+shape: \(-1, 2\)")
    samples = np.load(os.path.join(cwd, "samples", "images.npy"))
    self.assertEqual((samples.shape, samples.dtype), ((2, *self.sample_size(), 1), np.uint8))
    self.assertIn("Result for output key bits_per_dim", outputs[2])

  def test_inpaint_options_come_from_the_config_or_defaults(self):
    self.assertEqual(saved_model.inpaint_options(None), saved_model.INPAINT_DEFAULTS)
    options = saved_model.inpaint_options(self.config)  # tiny_config sets inpaint.sweeps
    self.assertEqual(options, {**saved_model.INPAINT_DEFAULTS, "sweeps": 2})

  def test_any_model_with_the_api_exports_and_its_values_are_checked(self):
    path = saved_model.export(ToyDiscreteModel(), None, os.path.join(self.tmp, "toy"))
    self.assertEqual(saved_model.forbidden_ops(path), [])
    loaded = tf.saved_model.load(path)
    samples = loaded.signatures["serving_default"](seed=tf.constant(SEEDS_A))["images"]
    self.assertEqual(samples.shape, (2, 3, 5, 1))
    out = loaded.signatures["log_prob"](images=samples)
    self.assertAllClose(out["log_prob"], [-15 * np.log(4.0)] * 2)
    self.assertAllClose(out["bits_per_dim"], [2.0, 2.0])  # discrete: no log2(levels) added
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                r"values in \[0, 4\).*got max value\] \[4\]"):
      loaded.signatures["log_prob"](images=tf.fill([1, 3, 5, 1], tf.constant(4, tf.uint8)))

  # -- command line -----------------------------------------------------------------------

  def run_cli(self, *args):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "export.run", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)

  def test_cli_rejects_bad_workdir_with_one_line_and_writes_nothing(self):
    not_trained = os.path.join(self.tmp, "not_trained")
    os.makedirs(not_trained)
    for name in ("run.json", "config.json"):
      with open(os.path.join(not_trained, name), "w") as f:
        f.write("{}")
    cases = {"missing": (os.path.join(self.tmp, "missing"), "does not exist"),
             "no checkpoint": (not_trained, "no checkpoint")}
    for what, (workdir, message) in cases.items():
      with self.subTest(what):
        export_dir = os.path.join(self.tmp, f"cli-export-{what}")
        proc = self.run_cli(f"--workdir={workdir}", f"--export_dir={export_dir}")
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertLen(proc.stderr.strip().splitlines(), 1, proc.stderr)
        self.assertIn(message, proc.stderr)
        self.assertFalse(os.path.exists(export_dir))
    self.assertFalse(os.path.exists(os.path.join(self.tmp, "missing")))
    self.assertEqual(sorted(os.listdir(not_trained)), ["config.json", "run.json"])

  def test_cli_exports_a_trained_run(self):
    workdir = os.path.join(self.tmp, "run")
    os.makedirs(workdir)
    with open(os.path.join(workdir, "run.json"), "w") as f:
      json.dump({"model": "mcgsm", "data": "deadleaves"}, f)
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(self.config.to_json_best_effort())
    _, _, checkpoint = steps.build("mcgsm", self.config)
    tf.train.CheckpointManager(checkpoint, os.path.join(workdir, "checkpoints"), 1).save()
    proc = self.run_cli(f"--workdir={workdir}", "--tflite")
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    self.assertEqual(proc.stderr, "")  # quiet: no converter logs
    self.assertEqual(proc.stdout.strip().splitlines()[-1], os.path.join(workdir, "export", "1"))
    self.assertEqual(saved_model.forbidden_ops(os.path.join(workdir, "export", "1")), [])
    # --tflite: one line per signature, a file or why there is none (MCGSM: none converts).
    with open(os.path.join(workdir, "export", "1", "tflite", "manifest.json")) as f:
      manifest = json.load(f)
    self.assertEqual(set(manifest), {"sample", "log_prob", "inpaint"})
    for name, entry in manifest.items():
      self.assertIn(f"  {name}: {entry.get('file') or entry['reason']}", proc.stdout)
    # The model card: what the workdir says, and no metrics (the run was never evaluated).
    card = saved_model.read_model_card(os.path.join(workdir, "export", "1"))
    # steps: the latest checkpoint's number (training saves ckpt-<step>; this one is ckpt-1).
    self.assertEqual((card["model"], card["data"], card["steps"]), ("mcgsm", "deadleaves", 1))
    self.assertIsNone(card["metrics"])
    self.assertIn("metrics.json is absent", card["metrics_note"])
    self.assertEqual(card["config"]["model"], json.loads(self.config.to_json_best_effort())["model"])
    self.assertEqual(set(card["signatures"]), {"serving_default", "sample", "log_prob", "inpaint"})


class TFLiteTest(tf.test.TestCase):
  """`export(..., tflite=True)`: what converts with builtin ops runs in tf.lite.Interpreter
  and agrees with the SavedModel (the same images for the same seeds, log_prob within
  1e-4 relative); the rest is named with its reason. On tiny models whose signatures
  between them need every portable op: the VAE (Philox normals, the discretised
  Gaussian), the class-conditional PixelCNN (uniforms in a while-loop sampler, the
  softmax) and the MCGSM (its sampler and inpainting do not convert)."""

  def export(self, name, **overrides):
    config = tiny_config(name, **overrides)
    model = tiny_model(config, name)
    version = saved_model.export(model, config, os.path.join(self.get_temp_dir(), name),
                                 tflite=True)
    with open(os.path.join(version, "tflite", "manifest.json")) as f:
      return version, json.load(f)

  def check_files(self, version, manifest, feeds):
    """Runs every file of `manifest` on `feeds` ({signature: {input: array}}, other than
    the warmup requests export compared on) against the SavedModel."""
    loaded = tf.saved_model.load(version)
    for name, entry in manifest.items():
      if "file" not in entry:
        continue
      with self.subTest(name):
        self.assertEqual(entry["file"], f"{name}.tflite")
        runner = tf.lite.Interpreter(
            model_path=os.path.join(version, "tflite", entry["file"])).get_signature_runner(name)
        lite = runner(**feeds[name])
        expected = loaded.signatures[name](**{k: tf.constant(v) for k, v in feeds[name].items()})
        self.assertEqual(set(lite), set(expected) - {"png_bytes"})
        for key in lite:
          if expected[key].dtype == tf.uint8:
            self.assertAllEqual(lite[key], expected[key], msg=key)  # the same pixels
          else:
            self.assertAllClose(lite[key], expected[key], rtol=1e-4, atol=0, msg=key)
        self.assertEqual(set(entry["compared"]), set(lite))  # export's own comparison

  def test_the_vae_family_samples_scores_and_codes_on_a_device(self):
    version, manifest = self.export("vae")
    self.assertEqual({k: "file" in v for k, v in manifest.items()},
                     {k: True for k in ("sample", "log_prob", "encode", "decode", "reconstruct")})
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, [3, 8, 10, 1]).astype(np.uint8)
    seeds = np.array([[5, 6], [-1, 2 ** 40], [7, 8]], np.int64)  # any int64, as the SavedModel
    self.check_files(version, manifest, {
        "sample": {"seed": seeds}, "log_prob": {"images": images},
        "encode": {"images": images}, "reconstruct": {"images": images, "seed": seeds},
        "decode": {"latents": rng.normal(size=[3, 3]).astype(np.float32)}})

  def test_the_pixelcnn_samples_and_scores_on_a_device_with_its_label(self):
    version, manifest = self.export("pixelcnn", conditional="class", spatial=True)
    self.assertEqual(set(manifest), {"sample", "log_prob"})
    images = np.random.RandomState(1).randint(0, 256, [2, 8, 10, 1]).astype(np.uint8)
    self.check_files(version, manifest, {
        "sample": {"seed": np.array([[3, 4], [9, 9]], np.int64), "label": np.array([2, 0], np.int32)},
        "log_prob": {"images": images, "label": np.array([1, 2], np.int32)}})

  def test_the_pixelcnn_with_the_logistic_mixture_head_samples_and_scores_on_a_device(self):
    version, manifest = self.export("pixelcnn", output="logistic_mixture", mixtures=2)
    self.assertEqual({k: "file" in v for k, v in manifest.items()}, {"sample": True, "log_prob": True})
    images = np.random.RandomState(3).randint(0, 256, [2, 8, 10, 1]).astype(np.uint8)
    images[0, :2] = 0  # the tails
    images[1, :2] = 255
    self.check_files(version, manifest, {"sample": {"seed": np.array([[3, 4], [-9, 9]], np.int64)},
                                         "log_prob": {"images": images}})

  def test_what_does_not_convert_says_why(self):
    version, manifest = self.export("mcgsm")
    self.assertEqual(set(manifest), {"sample", "log_prob", "inpaint"})
    # The pixel-by-pixel sampler's while loop stacks a tensor per step.
    self.assertIn("TensorListReserve (a while loop", manifest["sample"]["reason"])
    self.assertIn("shape is only known when it runs", manifest["inpaint"]["reason"])
    # log_prob converts, for images of the samples' size (TFLite fixes all but the batch).
    images = np.random.RandomState(2).randint(0, 256, [2, 8, 8, 1]).astype(np.uint8)
    self.check_files(version, manifest, {"log_prob": {"images": images}})


# The variants whose contract tests check Keras' TFSMLayer too (ExportTest: the MCGSM's
# sample, log_prob and inpaint with its mask); KerasCoverageTest checks that they hold
# every signature and every input name of the registry.
KERAS_VARIANTS = {("pixelcnn", "Class"), ("pixelcnn", "Autoencoder"), ("lapcvae", "")}

# One contract test class per other model of the registry (and its conftest.VARIANTS): a
# new model is checked the day it is added.
for _name, _variant, _overrides in registry_variants():
  if (_name, _variant) != (ExportTest.MODEL, ""):
    _class = f"{_name.title()}{_variant}ExportContractTest"
    globals()[_class] = type(_class, (ExportContract, tf.test.TestCase),
                             {"MODEL": _name, "OVERRIDES": _overrides,
                              "KERAS": (_name, _variant) in KERAS_VARIANTS})


class KerasCoverageTest(tf.test.TestCase):

  def test_the_keras_checked_variants_hold_every_signature_and_input(self):
    covered, everything = set(), set()
    for name, variant, overrides in registry_variants():
      model = tiny_model(tiny_config(name, **overrides), name)
      found = {(signature, key) for signature, spec in saved_model.SIGNATURES.items()
               if spec.applies(model)
               for key in saved_model.input_names(model, spec)}
      everything |= found
      if (name, variant) in KERAS_VARIANTS | {(ExportTest.MODEL, "")}:
        covered |= found
    self.assertEqual(everything - covered, set())


if __name__ == "__main__":
  tf.test.main()
