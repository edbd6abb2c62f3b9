"""MultiWorkerMirroredStrategy for real: two worker processes over loopback, one loop.

The same command with --strategy=multi_worker and a TF_CONFIG per process trains one
model across both; the chief writes the workdir, both workers end with bit-identical
weights, and the run ends with the same loss, metrics and weights as one process on the
same global batch (about 40 s).
"""
import json
import os
import re
import socket
import subprocess
import sys

import tensorflow as tf

from tests.test_training import ROOT
from tests.test_training import TINY_XLA

# XLA-compiled, as the MCGSM trains by default.
ARGS = ["--model=mcgsm", "--data=deadleaves", "--export=false", "--config.train.steps=6",
        "--config.train.checkpoint_every=3", "--config.train.optimizer=sgd",
        "--config.train.learning_rate=0.05", *TINY_XLA]


def free_ports(count):
  """Returns `count` TCP ports free on localhost right now."""
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("localhost", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def env_for(tf_config=None):
  env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  if tf_config is not None:
    env["TF_CONFIG"] = json.dumps(tf_config)
  return env


class MultiWorkerTest(tf.test.TestCase):

  def run_workers(self, tmp, *extra):
    """Runs two workers over loopback (workdirs tmp/worker0, tmp/worker1); returns their
    [(exit code, output)]."""
    workers = [f"localhost:{port}" for port in free_ports(2)]
    procs, logs = [], []
    # Output goes to files: a full pipe would stall a worker that nobody is reading yet.
    for index in range(2):
      workdir = os.path.join(tmp, f"worker{index}")
      tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
      logs.append(open(os.path.join(tmp, f"worker{index}.log"), "w+"))
      procs.append(subprocess.Popen(
          [sys.executable, "-m", "training.run", *ARGS, *extra, "--strategy=multi_worker",
           f"--workdir={workdir}"], cwd=ROOT, env=env_for(tf_config),
          stdout=logs[-1], stderr=subprocess.STDOUT, text=True))
    try:
      for proc in procs:
        proc.wait(timeout=300)
    finally:
      for proc in procs:
        if proc.poll() is None:
          proc.kill()
          proc.wait()
    results = []
    for proc, log in zip(procs, logs):
      log.seek(0)
      results.append((proc.returncode, log.read()))
      log.close()
    return results

  def test_two_workers_over_loopback_match_one_process(self):
    tmp = self.get_temp_dir()
    results = self.run_workers(tmp)
    digests = []
    for returncode, text in results:
      self.assertEqual(returncode, 0, text[-3000:])
      digests.append(re.search(r"weights sha256 ([0-9a-f]{16})", text).group(1))
    self.assertEqual(digests[0], digests[1])  # both workers end with identical weights

    single = subprocess.run([sys.executable, "-m", "training.run", *ARGS, "--strategy=default",
                             f"--workdir={os.path.join(tmp, 'single')}"], cwd=ROOT, env=env_for(),
                            capture_output=True, text=True, timeout=300)
    self.assertEqual(single.returncode, 0, single.stderr[-3000:])

    read = lambda name: json.load(open(os.path.join(tmp, name, "metrics.json")))
    chief, alone = read("worker0"), read("single")
    self.assertEqual(chief["steps"], 6)
    # Worker 1 trained too, but only the chief writes the workdir.
    self.assertFalse(os.path.exists(os.path.join(tmp, "worker1", "metrics.json")))
    self.assertAllClose(chief["final_train_loss"], alone["final_train_loss"], rtol=1e-4)
    self.assertAllClose(chief["bit_per_px_rate"], alone["bit_per_px_rate"], rtol=1e-4)
    # ... equal to one process's (up to the order in which the all-reduce sums).
    weights = lambda name: tf.train.load_checkpoint(tf.train.latest_checkpoint(
        os.path.join(tmp, name, "checkpoints")))
    chief_ckpt, alone_ckpt = weights("worker0"), weights("single")
    names = [n for n in alone_ckpt.get_variable_to_shape_map()
             if n.startswith(("model/", "weights/"))]  # contract.checkpoint
    self.assertNotEmpty(names)
    for name in names:
      self.assertAllClose(chief_ckpt.get_tensor(name), alone_ckpt.get_tensor(name),
                          rtol=1e-4, atol=1e-6, msg=name)

    # The chief's verdict on its workdir ends every worker: none waits for a chief that left.
    (chief_code, chief_text), (other_code, other_text) = self.run_workers(
        tmp, "--config.model.components=3")
    self.assertEqual((chief_code, other_code), (2, 2), chief_text[-2000:] + other_text[-2000:])
    self.assertIn("config.model.components: 2 -> 3", chief_text)
    self.assertIn("the chief refused", other_text)
    for code, text in self.run_workers(tmp):
      self.assertEqual(code, 0, text[-2000:])
      self.assertIn("already finished", text)


if __name__ == "__main__":
  tf.test.main()
