"""benchmarks/pixelcnn_vs_tfp.py counts parameters the same way for both models: trainable
scalars less the kernel entries that a causal mask or constraint holds at zero."""
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from benchmarks import pixelcnn_vs_tfp as race
from configs import pixelcnn as pixelcnn_config
from zoo import pixelcnn


class ParameterCountTest(tf.test.TestCase):

  def test_tfp_parameters_are_the_entries_that_training_moves(self):
    """TFP's constrained kernels keep 6 or 4 of 9 taps: after training steps (which apply
    the constraints), exactly the entries that `tfp_parameters` leaves out are zero."""
    dist = tfp.distributions.PixelCNN((8, 8, 3), num_resnet=1, num_hierarchies=2,
                                      num_filters=4, num_logistic_mix=2, dropout_p=0.0)
    images = tf.constant(np.random.RandomState(0).randint(0, 256, (4, 8, 8, 3)), tf.float32)
    dist.log_prob(images)  # builds the network (and runs its data-dependent init)
    variables = dist.network.trainable_variables
    optimizer = tf_keras.optimizers.Adam(1e-2)
    for _ in range(2):
      with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(dist.log_prob(images, training=True))
      optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    nonzero = sum(int(np.count_nonzero(v.numpy())) for v in variables)
    self.assertEqual(race.tfp_parameters(dist), nonzero)
    self.assertLess(race.tfp_parameters(dist), race.count(variables))  # it has masked zeros

  def test_our_parameters_are_the_entries_the_loss_depends_on(self):
    """Our masked entries get no gradient; every other scalar does (RGB softmax: the
    channel-group masks of the blocks and the head)."""
    config = pixelcnn_config.get_config("tiny")
    config.data.image_shape = (4, 4, 3)
    config.model.update(levels=256, layers=2, hidden=6, output_hidden=6, first_kernel=3)
    model = pixelcnn.Model(config)
    # A large bias keeps every unit of the head's second ReLU alive: one dead on every
    # pixel of the batch would leave its weights without gradient, though they are
    # parameters.
    model.head[0].bias.assign(tf.fill(model.head[0].bias.shape, 50.0))
    images = tf.constant(np.random.RandomState(0).randint(0, 256, (8, 4, 4, 3)), tf.uint8)
    with tf.GradientTape() as tape:
      loss = -tf.reduce_sum(model.log_prob(images))
    gradients = tape.gradient(loss, model.trainable_variables)
    moved = sum(int(np.count_nonzero(g.numpy())) for g in gradients)
    self.assertEqual(race.our_parameters(model), moved)
    self.assertLess(race.our_parameters(model), race.count(model.trainable_variables))


if __name__ == "__main__":
  tf.test.main()
