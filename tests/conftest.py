"""Test-session set-up: two logical CPU devices, so MirroredStrategy has 2 replicas.

Logical devices must be configured before TensorFlow initialises its runtime, so this
runs when pytest imports the test package, before any test module.
"""
import tensorflow as tf

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
