"""Gated PixelCNN: causality without a blind spot, normalisation, cached sampling.

All on random initial weights, before any training: causality must come from the
geometry, not from a constraint an optimiser step would apply. Tests parametrised by
`gated` check the ungated (ReLU) baseline the same way.
"""
import itertools

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from configs import pixelcnn as pixelcnn_config
from zoo import distributions
from zoo import pixelcnn


def make_model(shape, levels=256, layers=2, conditional="", spatial=False, num_classes=0,
               hidden=6, first_kernel=3, output_hidden=None, seed=0, compute_dtype="float32",
               gated=True, output="softmax", mixtures=3, context=0, context_features=4,
               weight_norm=False, gate="tanh", vertical_residual=False):
  """Returns an untrained PixelCNN for images of `shape` (H, W, C); weights from `seed`."""
  config = pixelcnn_config.get_config("tiny")
  config.train.compute_dtype = compute_dtype
  config.data.image_shape = shape
  config.data.num_classes = num_classes
  config.model.update(levels=levels, layers=layers, conditional=conditional, spatial=spatial,
                      hidden=hidden, first_kernel=first_kernel,
                      output_hidden=output_hidden or hidden, gated=gated, output=output,
                      mixtures=mixtures, context=context, context_features=context_features,
                      weight_norm=weight_norm, gate=gate, vertical_residual=vertical_residual)
  tf.keras.utils.set_random_seed(seed)
  model = pixelcnn.Model(config)
  # Random, not zero, biases: a zero could hide a dependence. Kernels keep their Glorot
  # scale: larger weights saturate tanh and sigmoid to exact zero gradients in float32.
  rng = np.random.RandomState(seed)
  for v in model.weights:
    if v.trainable and len(v.shape) == 1:  # weight norm's scales near 1
      v.assign(rng.normal(v.path.endswith("_scale"), 0.1, v.shape).astype(np.float32))
  return model


def raster_index(i, j, c, width, channels):
  return (i * width + j) * channels + c


GATED_AND_UNGATED = (("gated", True), ("ungated", False))


class CausalityTest(tf.test.TestCase, parameterized.TestCase):

  def jacobian_mask(self, model, cond=None, spatial=None, draws=8):
    """Returns bool [H, W, C, H, W, C]: does logit (i, j, c) depend on input (i', j', c')?

    Gradients at `draws` random inputs, OR-ed: a ReLU in the head can switch a path
    off at one input, but a dependence is real if any input shows it.
    """
    h, w, c = model.height, model.width, model.channels
    x = tf.random.stateless_uniform([draws, h, w, c], [1, 2], -1, 1)
    probe = tf.random.stateless_normal([model.levels], [3, 4])
    if cond is not None:
      cond = tf.repeat(cond, draws, 0)
      spatial = None if spatial is None else tf.repeat(spatial, draws, 0)
    with tf.GradientTape() as tape:
      tape.watch(x)
      logits = model.logits(x, cond, spatial)  # [D, H, W, C, L]
      targets = tf.reshape(tf.reduce_sum(logits * probe, -1), [draws, -1])  # [D, H*W*C]
    jacobian = tape.batch_jacobian(targets, x, unconnected_gradients="zero")  # [D, HWC, H, W, C]
    depends = np.any(jacobian.numpy() != 0, axis=0)
    return depends.reshape([h, w, c, h, w, c])

  def check_causal_without_blind_spot(self, model, **conditioning):
    h, w, c = model.height, model.width, model.channels
    # Keep the head's ReLUs on: a ReLU that is off for every probe input would hide a
    # dependence the geometry has (shifting biases changes no mask or tap).
    model.blocks[-1].out_bias.assign_add(tf.fill(model.blocks[-1].out_bias.shape, 5.0))
    model.head[0].bias.assign_add(tf.fill(model.head[0].bias.shape, 5.0))
    depends = self.jacobian_mask(model, **conditioning)
    for i, j, k in itertools.product(range(h), range(w), range(c)):
      t = raster_index(i, j, k, w, c)
      for i2, j2, k2 in itertools.product(range(h), range(w), range(c)):
        earlier = raster_index(i2, j2, k2, w, c) < t
        if depends[i, j, k, i2, j2, k2] != earlier:
          self.fail(f"sub-pixel {(i, j, k)} {'depends on' if not earlier else 'ignores'} "
                    f"{'later' if not earlier else 'earlier'} sub-pixel {(i2, j2, k2)}")

  @parameterized.named_parameters(*GATED_AND_UNGATED)
  def test_rgb_subpixel_sees_exactly_the_earlier_subpixels(self, gated):
    # 8 blocks of 3x3 reach every earlier pixel of an 8x8 image: any blind spot shows.
    # 4 units per group before the head's ReLUs, 8 inside: all of a group's units
    # switched off by the ReLU for every probe input would hide a dependence.
    model = make_model((8, 8, 3), layers=8, hidden=12, output_hidden=24, gated=gated)
    self.check_causal_without_blind_spot(model)

  def test_grey_pixel_sees_exactly_the_earlier_pixels_with_a_7x7_first_block(self):
    model = make_model((6, 7, 1), layers=4, hidden=8, output_hidden=16, first_kernel=7)
    self.check_causal_without_blind_spot(model)

  @parameterized.named_parameters(*GATED_AND_UNGATED)
  def test_conditioning_does_not_break_causality(self, gated):
    model = make_model((5, 5, 3), layers=5, conditional="class", spatial=True, num_classes=3,
                       hidden=12, output_hidden=24, gated=gated)
    cond, spatial = model._conditioning(tf.zeros([1, 5, 5, 3], tf.uint8), label=tf.constant([2]))
    self.check_causal_without_blind_spot(model, cond=cond, spatial=spatial)



def all_images(shape, levels):
  """Returns uint8 [levels ** (H W C), H, W, C]: every image of that shape."""
  n = int(np.prod(shape))
  values = np.array(list(itertools.product(range(levels), repeat=n)), np.uint8)
  return values.reshape([-1, *shape])


class NormalisationTest(tf.test.TestCase, parameterized.TestCase):

  def check_sums_to_one(self, model, images, **cond):
    log_probs = tf.concat([model.log_prob(images[k:k + 1024], **{
        key: value[k:k + 1024] for key, value in cond.items()}) for k in range(0, len(images), 1024)], 0)
    self.assertAllClose(tf.reduce_logsumexp(log_probs), 0.0, atol=1e-5)

  @parameterized.named_parameters(*GATED_AND_UNGATED)
  def test_probabilities_of_all_rgb_binary_images_sum_to_one(self, gated):
    model = make_model((2, 2, 3), levels=2, layers=3, gated=gated)
    self.check_sums_to_one(model, all_images((2, 2, 3), 2))

  def test_probabilities_of_all_grey_images_sum_to_one(self):
    model = make_model((2, 3, 1), levels=4, layers=2, hidden=4)
    self.check_sums_to_one(model, all_images((2, 3, 1), 4))

  @parameterized.named_parameters(*GATED_AND_UNGATED)
  def test_class_conditional_probabilities_sum_to_one_for_every_class(self, gated):
    model = make_model((2, 2, 3), levels=2, layers=2, conditional="class", spatial=True,
                       num_classes=3, gated=gated)
    images = all_images((2, 2, 3), 2)
    totals = []
    for label in range(3):
      self.check_sums_to_one(model, images, label=np.full([len(images)], label, np.int32))
      totals.append(model.log_prob(images[:5], label=np.full([5], label, np.int32)).numpy())
    self.assertNotAllClose(totals[0], totals[1])  # the label matters

  def test_autoencoder_decoder_sums_to_one_given_a_code(self):
    model = make_model((2, 2, 3), levels=2, layers=2, conditional="autoencoder", spatial=True)
    images = all_images((2, 2, 3), 2)
    code = np.tile(np.array([[0.3, -1.0, 2.0]], np.float32), [len(images), 1])
    self.check_sums_to_one(model, images, code=code)


class SamplingTest(tf.test.TestCase, parameterized.TestCase):

  def check_cached_equals_naive(self, model, seeds, **cond):
    cached = tf.function(model.sample)(seeds, **cond).numpy()
    naive = tf.function(model.sample_naive)(seeds, **cond).numpy()
    self.assertEqual(cached.dtype, np.uint8)
    self.assertEqual(cached.shape, (len(seeds), model.height, model.width, model.channels))
    self.assertAllEqual(cached, naive)
    self.assertLess(cached.max(), model.levels)
    return cached

  @parameterized.named_parameters(*GATED_AND_UNGATED)
  def test_cached_sampling_equals_naive_rgb(self, gated):
    model = make_model((5, 6, 3), layers=3, gated=gated)
    seeds = np.array([[1, 2], [3, 4]], np.int64)
    samples = self.check_cached_equals_naive(model, seeds)
    self.assertNotAllEqual(samples[0], samples[1])

  @parameterized.named_parameters(*GATED_AND_UNGATED)
  def test_cached_sampling_equals_naive_with_class_and_spatial_conditioning(self, gated):
    model = make_model((4, 5, 1), levels=4, layers=3, conditional="class", spatial=True,
                       num_classes=3, first_kernel=7, gated=gated)
    self.check_cached_equals_naive(model, np.array([[5, 6], [7, 8], [9, 9]], np.int64),
                                   label=np.array([0, 1, 2], np.int32))

  @parameterized.named_parameters(*GATED_AND_UNGATED)
  def test_cached_sampling_equals_naive_given_a_code(self, gated):
    model = make_model((4, 4, 3), levels=4, layers=2, conditional="autoencoder", gated=gated)
    code = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5]], np.float32)
    self.check_cached_equals_naive(model, np.array([[1, 1], [2, 2]], np.int64), code=code)



class ModelTest(tf.test.TestCase, parameterized.TestCase):

  def test_autoencoder_trains_the_encoder_end_to_end(self):
    model = make_model((4, 4, 1), layers=2, conditional="autoencoder")
    images = tf.constant(np.random.RandomState(0).randint(0, 256, [3, 4, 4, 1]), tf.uint8)
    self.assertEqual(model.encode(images).shape, (3, model.encoder.layers[-1].units))
    with tf.GradientTape() as tape:
      loss, _ = model.train_loss(images)
    grads = tape.gradient(loss, model.encoder.trainable_variables)
    self.assertTrue(all(g is not None and np.any(g.numpy() != 0) for g in grads))

  def test_bad_configs_fail_with_one_clear_line(self):
    cases = {"hidden=4 for RGB": (dict(shape=(4, 4, 3), hidden=4), "multiple of the 3 channels"),
             "class without labels": (dict(shape=(4, 4, 1), conditional="class"), "labelled dataset"),
             "unknown conditional": (dict(shape=(4, 4, 1), conditional="text"), "valid: '', 'class'"),
             "float16": (dict(shape=(4, 4, 1), compute_dtype="float16"), "valid: 'float32', 'bfloat16'")}
    for what, (kwargs, message) in cases.items():
      with self.subTest(what):
        with self.assertRaisesRegex(ValueError, message):
          make_model(**kwargs)

  @parameterized.named_parameters(*GATED_AND_UNGATED)
  def test_bfloat16_training_loss_follows_float32_and_evaluation_stays_float32(self, gated):
    shape = (6, 6, 3)
    kwargs = dict(layers=3, hidden=12, conditional="class", num_classes=3, gated=gated)
    full, mixed = (make_model(shape, compute_dtype=d, **kwargs) for d in ("float32", "bfloat16"))
    for model in (full, mixed):  # trained-like scales: logits far from uniform
      model.head[1].kernel.assign(model.head[1].kernel * 20.0)
    images = tf.constant(np.random.RandomState(1).randint(0, 256, [4, *shape]), tf.uint8)
    label = tf.constant([0, 1, 2, 1])
    results = []
    for model in (full, mixed):
      with tf.GradientTape() as tape:
        loss, _ = model.train_loss(images, label=label)
        loss = tf.reduce_mean(loss)
      grads = tape.gradient(loss, model.trainable_variables)
      results.append((float(loss), tf.concat([tf.reshape(g, [-1]) for g in grads], 0).numpy(),
                      model.log_prob(images, label=label).numpy()))
    (loss32, grad32, lp32), (loss16, grad16, lp16) = results
    self.assertNotEqual(loss16, loss32)  # the network did compute in bfloat16
    self.assertAllClose(loss16, loss32, rtol=1e-2)
    cosine = grad16 @ grad32 / np.linalg.norm(grad16) / np.linalg.norm(grad32)
    self.assertGreater(cosine, 0.99)
    self.assertAllEqual(lp16, lp32)  # log_prob computes in float32 whatever the training dtype

  @parameterized.named_parameters(*GATED_AND_UNGATED)
  def test_training_loss_is_the_negative_log_prob_per_dimension(self, gated):
    # train_loss takes the XLA-compiled gates and log softmax, log_prob the plain ops.
    model = make_model((5, 4, 3), layers=3, hidden=12, conditional="class", num_classes=2,
                       gated=gated)
    model.head[1].kernel.assign(model.head[1].kernel * 100.0)
    images = tf.constant(np.random.RandomState(2).randint(0, 256, [3, 5, 4, 3]), tf.uint8)
    label = tf.constant([1, 0, 1])
    loss, _ = model.train_loss(images, label=label)
    expected = -model.log_prob(images, label=label) / (5 * 4 * 3)
    self.assertGreater(float(tf.reduce_max(tf.abs(expected - np.log(256)))), 0.1)  # not uniform
    self.assertAllClose(loss, expected, rtol=1e-5)

  def test_whole_gradient_under_xla_skips_the_nested_xla_pieces(self):
    # config.train.jit compiles the whole loss: XLA functions nested in it recompiled on
    # every step under a strategy, so the model must not nest them then.
    plain, whole = make_model((4, 4, 3), layers=2, hidden=6), make_model((4, 4, 3), layers=2, hidden=6)
    whole_config = pixelcnn_config.get_config("tiny")
    whole_config.data.image_shape, whole_config.train.jit = (4, 4, 3), True
    self.assertTrue(plain.fused)
    self.assertFalse(pixelcnn.Model(whole_config).fused)
    whole.fused = False
    images = tf.constant(np.random.RandomState(3).randint(0, 256, [2, 4, 4, 3]), tf.uint8)
    loss = tf.function(lambda x: whole.train_loss(x)[0], jit_compile=True)(images)
    self.assertAllClose(loss, plain.train_loss(images)[0], rtol=1e-5)

  def test_ungated_block_has_relu_on_hidden_preactivations_and_no_gate(self):
    p, d, s = 6, 3, 2  # hidden, classes, spatial features (the tiny config's)
    gated, ungated = (make_model((4, 4, 3), layers=2, hidden=p, conditional="class",
                                 spatial=True, num_classes=d, gated=g) for g in (True, False))
    pre = tf.random.stateless_normal([5, p], [0, 1])
    for block in ungated.blocks:
      self.assertEqual(block.pre, p)
      self.assertAllEqual(block.nonlinearity(pre), tf.nn.relu(pre))  # p in, p out: no split
    self.assertEqual(gated.blocks[0].pre, 2 * p)

    def expected(cin, n, q):  # a block's weights with q pre-activations (Block.build)
      rows = (n + 1) // 2
      return (rows * n * cin * q + q + rows * cin * q + q  # vertical, horizontal conv + bias
              + q * q + p * p + p  # link, output 1x1 + bias
              + 2 * d * q + 2 * s * q)  # eq. 4 and eq. 5 terms of both stacks

    for model, q in ((gated, 2 * p), (ungated, p)):
      for block, cin in zip(model.blocks, (3, p)):
        count = sum(int(np.prod(w.shape)) for w in block.trainable_weights)
        self.assertEqual(count, expected(cin, block.kernel, q), block.name)
    # Everything outside the blocks (deconv, head) is the same.
    outside = lambda m: sum(int(np.prod(w.shape)) for w in m.trainable_weights) - sum(
        int(np.prod(w.shape)) for b in m.blocks for w in b.trainable_weights)
    self.assertEqual(outside(gated), outside(ungated))

  def test_bits_per_dim_of_an_untrained_model_is_near_uniform(self):
    model = make_model((4, 4, 3), layers=2, hidden=6)
    for v in model.weights:
      v.assign(tf.zeros_like(v))  # all logits equal: exactly uniform
    images = np.zeros([2, 4, 4, 3], np.uint8)
    nats, dims = model.eval_terms(images)
    self.assertAllClose(-nats / dims / np.log(2), [8.0, 8.0], rtol=1e-6)


# -- the logistic mixture head (PixelCNN++'s), `config.model.output=logistic_mixture` -------


def mixture_reference(values, logits, loc, log_scale, coefficients, levels):
  """Returns float64 [...]: log p(x) of PixelCNN++'s discretised logistic mixture, written
  as its paper states it (eqs. 2-3), in float64 with differences of sigmoids."""
  sigmoid = lambda t: 1.0 / (1.0 + np.exp(-t))
  x = values.astype(np.float64) * 2.0 / (levels - 1) - 1.0  # [..., C]
  half, channels = 1.0 / (levels - 1), values.shape[-1]
  log_pi = logits - np.log(np.sum(np.exp(logits), -1, keepdims=True))
  total = log_pi.astype(np.float64)  # [..., K]
  for c in range(channels):
    mean = loc[..., c, :].astype(np.float64)
    for earlier in range(c):
      mean = mean + coefficients[..., c * (c - 1) // 2 + earlier, :] * x[..., earlier, None]
    scale = np.exp(log_scale[..., c, :].astype(np.float64))
    a, b = (x[..., c, None] + half - mean) / scale, (x[..., c, None] - half - mean) / scale
    a = np.where(values[..., c, None] == levels - 1, np.inf, a)
    b = np.where(values[..., c, None] == 0, -np.inf, b)
    # sigma(a) - sigma(b) = sigma(-b) - sigma(-a): the form whose terms are not both near 1.
    total = total + np.log(np.where(a + b > 0, sigmoid(-b) - sigmoid(-a), sigmoid(a) - sigmoid(b)))
  return np.log(np.sum(np.exp(total), -1))


def random_mixture(batch, channels, mixtures, levels, seed, scale_range=(-4.0, 1.0)):
  """Returns (params (logits, loc, log_scale, coefficients) as numpy, the distribution)."""
  rng = np.random.default_rng(seed)
  params = (rng.normal(size=[batch, mixtures]), rng.normal(0, 0.6, [batch, channels, mixtures]),
            rng.uniform(*scale_range, [batch, channels, mixtures]),
            rng.uniform(-1, 1, [batch, channels * (channels - 1) // 2, mixtures]))
  params = tuple(p.astype(np.float32) for p in params)
  return params, distributions.DiscretizedLogisticMixture(*params, levels)


class LogisticMixtureTest(tf.test.TestCase, parameterized.TestCase):
  """`zoo.distributions.DiscretizedLogisticMixture` and the PixelCNN head that uses it."""

  @parameterized.named_parameters(("rgb_4_levels", 3, 4, (-4.0, 1.0)),
                                  ("rgb_sharp_and_flat", 3, 4, (-7.0, 3.0)),
                                  ("two_channels_256_levels", 2, 256, (-7.0, 1.0)))
  def test_probabilities_sum_to_one_and_factor_into_the_channel_conditionals(
      self, channels, levels, scale_range):
    _, dist = random_mixture(5, channels, 4, levels, seed=channels + levels, scale_range=scale_range)
    values = np.array(list(itertools.product(range(levels), repeat=channels)), np.int32)  # [N, C]
    values = np.repeat(values[:, None], 5, 1)  # [N, 5, C]: every value, every batch row
    log_probs = dist.log_prob(values).numpy()  # [N, 5]
    self.assertAllClose(np.exp(log_probs.astype(np.float64)).sum(0), np.ones(5), atol=2e-5)
    conditionals = dist.conditional_log_probs(values).numpy()  # [N, 5, C]
    self.assertAllClose(conditionals.sum(-1), log_probs, atol=1e-4)
    # Each factor is a distribution over its channel's values, for every earlier value.
    grid = np.exp(conditionals.astype(np.float64)).reshape([levels] * channels + [5, channels])
    for c in range(channels):
      index = (slice(None),) * channels + (slice(None), c)
      sums = grid[index].sum(axis=c)  # over x_c; x_<c fixed (x_>c does not matter)
      self.assertAllClose(sums, np.ones_like(sums), atol=2e-5, msg=f"channel {c}")

  def test_log_prob_is_pixelcnn_plus_plus_formula(self):
    params, dist = random_mixture(64, 3, 5, 256, seed=4, scale_range=(-5.0, 0.0))
    values = np.random.default_rng(5).integers(0, 256, [64, 3]).astype(np.int32)
    values[:8] = 0  # the tails
    values[8:16] = 255
    self.assertAllClose(dist.log_prob(values), mixture_reference(values, *params, 256),
                        rtol=2e-5, atol=2e-5)

  def test_samples_follow_the_probabilities(self):
    _, dist = random_mixture(1, 3, 3, 4, seed=6)
    values = np.array(list(itertools.product(range(4), repeat=3)), np.int32)[:, None]  # [64, 1, 3]
    p = np.exp(dist.log_prob(values).numpy()[:, 0].astype(np.float64))
    n = 40000
    drawn = dist.sample(n, seed=(7, 8)).numpy()[:, 0]  # [n, 3]
    counts = np.bincount((drawn[:, 0] * 4 + drawn[:, 1]) * 4 + drawn[:, 2], minlength=64)
    # Pearson's chi-square over the values expected at least 5 times (the rest pooled):
    # below its mean (the degrees of freedom) plus 5 standard deviations.
    expected, common = p * n, p * n >= 5
    observed = np.append(counts[common], counts[~common].sum())
    expected = np.append(expected[common], expected[~common].sum())
    chi_square, freedom = np.sum((observed - expected) ** 2 / expected), len(observed) - 1
    self.assertLess(chi_square, freedom + 5 * np.sqrt(2 * freedom))
    self.assertGreater(freedom, 20)  # not a test of a few values

  @parameterized.named_parameters(("plain", 0, False, {}), ("context_weight_norm", 2, True, {}),
                                  ("all_options", 2, True, dict(gate="linear", vertical_residual=True)))
  def test_pixel_outputs_see_exactly_the_earlier_pixels(self, context, weight_norm, options):
    # The head's parameters of pixel (i, j) come from pixels before it, all channels, and
    # nothing of (i, j) itself: its channels are coupled inside the distribution.
    h, w, c = 6, 6, 3
    model = make_model((h, w, c), layers=6, hidden=12, output_hidden=24, output="logistic_mixture",
                       context=context, weight_norm=weight_norm, **options)
    model.blocks[-1].out_bias.assign_add(tf.fill(model.blocks[-1].out_bias.shape, 5.0))
    model.head[0].bias.assign_add(tf.fill(model.head[0].bias.shape, 5.0))
    x = tf.random.stateless_uniform([8, h, w, c], [1, 2], -1, 1)
    probe = tf.random.stateless_normal([model.head_units], [3, 4])
    with tf.GradientTape() as tape:
      tape.watch(x)
      targets = tf.reshape(tf.reduce_sum(model.outputs(x) * probe, -1), [8, -1])  # [D, H*W]
    depends = np.any(tape.batch_jacobian(targets, x).numpy() != 0, axis=0)  # [HW, H, W, C]
    for t in range(h * w):
      for i2, j2, k2 in itertools.product(range(h), range(w), range(c)):
        earlier = i2 * w + j2 < t
        self.assertEqual(bool(depends[t, i2, j2, k2]), earlier, f"pixel {divmod(t, w)}, input {(i2, j2, k2)}")

  def test_a_sub_pixels_likelihood_ignores_every_later_sub_pixel(self):
    model = make_model((3, 3, 3), layers=3, output="logistic_mixture")
    rng = np.random.default_rng(9)
    image = rng.integers(0, 256, [1, 3, 3, 3]).astype(np.uint8)
    base = model.pixel_log_prob(image).numpy().reshape(-1)
    self.assertAllClose(base.sum(), model.log_prob(image).numpy()[0], rtol=1e-5)
    for t in range(27):
      changed = image.reshape(-1).copy()
      changed[t] = (int(changed[t]) + 100) % 256
      after = model.pixel_log_prob(changed.reshape(image.shape)).numpy().reshape(-1)
      self.assertAllEqual(after[:t], base[:t], msg=f"sub-pixel {t} changed an earlier one")
      self.assertNotEqual(after[t], base[t])

  @parameterized.named_parameters(("rgb_binary", (2, 2, 3), 2, {}),
                                  ("grey_4_levels", (2, 3, 1), 4, {}),
                                  ("class_and_spatial", (2, 2, 3), 2,
                                   dict(conditional="class", spatial=True, num_classes=3)),
                                  ("class_and_context", (2, 2, 3), 2,
                                   dict(conditional="class", num_classes=3, context=2,
                                        weight_norm=True)),
                                  ("class_context_linear_gate_vertical_residual", (2, 2, 3), 2,
                                   dict(conditional="class", num_classes=3, context=2,
                                        weight_norm=True, gate="linear", vertical_residual=True)))
  def test_probabilities_of_all_images_sum_to_one(self, shape, levels, conditioning):
    model = make_model(shape, levels=levels, layers=2, output="logistic_mixture", mixtures=2,
                       **conditioning)
    images = all_images(shape, levels)
    cond = {"label": np.full([len(images)], 2, np.int32)} if conditioning else {}
    log_probs = model.log_prob(images, **cond)
    self.assertAllClose(tf.reduce_logsumexp(log_probs), 0.0, atol=1e-5)

  @parameterized.named_parameters(("rgb", (5, 6, 3), {}),
                                  ("grey_class_spatial", (4, 5, 1),
                                   dict(conditional="class", spatial=True, num_classes=3)),
                                  ("rgb_class_context", (4, 6, 3),
                                   dict(conditional="class", num_classes=3, context=2,
                                        weight_norm=True)),
                                  ("rgb_class_all_options", (4, 6, 3),
                                   dict(conditional="class", num_classes=3, context=2,
                                        weight_norm=True, gate="linear", vertical_residual=True)))
  def test_cached_sampling_equals_naive(self, shape, conditioning):
    model = make_model(shape, layers=3, first_kernel=5, output="logistic_mixture", **conditioning)
    seeds = np.array([[1, 2], [3, 4], [5, 6]], np.int64)
    cond = {"label": np.array([0, 1, 2], np.int32)} if conditioning else {}
    cached = tf.function(model.sample)(seeds, **cond).numpy()
    self.assertAllEqual(cached, tf.function(model.sample_naive)(seeds, **cond).numpy())
    self.assertEqual(cached.dtype, np.uint8)
    self.assertNotAllEqual(cached[0], cached[1])

  def test_training_loss_is_the_negative_log_prob_per_dimension_in_both_dtypes(self):
    shape = (5, 4, 3)
    images = tf.constant(np.random.RandomState(2).randint(0, 256, [3, *shape]), tf.uint8)
    losses = {}
    for dtype in ("float32", "bfloat16"):
      model = make_model(shape, layers=3, hidden=12, output="logistic_mixture", compute_dtype=dtype,
                         context=1)  # one resolution: 5x4 images
      loss, _ = model.train_loss(images)
      losses[dtype] = loss.numpy()
      expected = -model.log_prob(images) / np.prod(shape)
      if dtype == "float32":
        self.assertAllClose(loss, expected, rtol=1e-5)
    self.assertAllClose(losses["bfloat16"], losses["float32"], rtol=2e-2)

  def test_bad_output_configs_fail_with_one_clear_line(self):
    for what, kwargs, message in (
        ("unknown output", dict(output="gaussian"), "valid: 'softmax', 'logistic_mixture'"),
        ("no components", dict(output="logistic_mixture", mixtures=0), "mixtures=0 must be positive"),
        ("context and spatial", dict(context=2, conditional="class", num_classes=2, spatial=True),
         "context does not combine with config.model.spatial"),
        ("context on odd sides", dict(context=3, shape=(4, 6, 3)), "multiples of 2\\^\\(context - 1\\)"),
        ("unknown gate", dict(gate="relu"), "valid: 'tanh', 'linear'")):
      with self.subTest(what):
        with self.assertRaisesRegex(ValueError, message):
          make_model(**{"shape": (4, 4, 3), **kwargs})


class WeightNormTest(tf.test.TestCase):
  """config.model.weight_norm: normalised kernels and the data-dependent initialisation."""

  def test_initialize_makes_every_head_output_zero_mean_unit_variance_on_its_batch(self):
    for context in (0, 2):
      with self.subTest(context=context):
        model = make_model((8, 8, 3), layers=3, hidden=12, output="logistic_mixture",
                           context=context, weight_norm=True)
        images = tf.constant(np.random.default_rng(context).integers(0, 256, [16, 8, 8, 3]), tf.uint8)
        model.initialize(images)
        mean, variance = tf.nn.moments(model.outputs(model.scale(images)), [0, 1, 2])
        self.assertAllClose(mean, tf.zeros_like(mean), atol=1e-4)
        self.assertAllClose(variance, tf.ones_like(variance), atol=1e-3)
        # Each term of a block's vertical pre-activation too (the conv, and the context's
        # term), and their sum with the bias is zero-mean.
        block = model.blocks[0]
        x = model.scale(images)
        r = block.kernel // 2
        terms = [tf.nn.conv2d(tf.pad(x, [[0, 0], [block.rows - 1, 0], [r, r], [0, 0]]),
                              block.weight("v_kernel"), 1, "VALID")]
        if context:
          terms.append(pixelcnn.dense(model.context(x), block.weight("spatial_v")))
        for term in terms:
          variance = tf.nn.moments(term, [0, 1, 2])[1]
          self.assertAllClose(variance, tf.ones_like(variance), atol=1e-3)
        mean = tf.nn.moments(tf.nn.bias_add(tf.add_n(terms), block.v_bias), [0, 1, 2])[0]
        self.assertAllClose(mean, tf.zeros_like(mean), atol=1e-4)
        # The kernels are applied normalised: scaling a direction changes nothing.
        before = model.log_prob(images)
        block.v_kernel.assign(block.v_kernel * 3.0)
        self.assertAllClose(model.log_prob(images), before, rtol=1e-5)

  def test_initialize_is_the_weight_normalised_models(self):
    with self.assertRaisesRegex(ValueError, "config.model.weight_norm"):
      make_model((4, 4, 3)).initialize(tf.zeros([2, 4, 4, 3], tf.uint8))


class ContextTest(tf.test.TestCase):
  """`zoo.pixelcnn.Context`: the multi-resolution summary of the rows above."""

  def test_a_row_sees_every_pixel_of_the_rows_above_and_nothing_else(self):
    h, w, c = 8, 8, 3
    model = make_model((h, w, c), output="logistic_mixture", context=3)
    x = tf.random.stateless_uniform([4, h, w, c], [5, 6], -1, 1)
    with tf.GradientTape() as tape:
      tape.watch(x)
      summary = tf.reshape(tf.reduce_sum(model.context(x), -1), [4, -1])  # [D, H*W]
    depends = np.any(tape.batch_jacobian(summary, x, unconnected_gradients="zero").numpy() != 0,
                     axis=0).reshape([h, w, h, w, c]).any(-1)  # [i, j, i2, j2]
    for i, j in itertools.product(range(h), range(w)):
      self.assertFalse(depends[i, j, i:].any(), f"context ({i}, {j}) sees row {i} or below")
    # The coarsest level is 2x2 here: through it, every pixel of row i sees every column
    # of the rows above its coarse cell (rows < 2 floor(i / 2)), where one of the paper's
    # blocks adds ceil(n/2) = 2 rows and columns.
    for i in range(h):
      self.assertTrue(depends[i, :, :2 * (i // 2)].all(), f"row {i}")


if __name__ == "__main__":
  tf.test.main()
