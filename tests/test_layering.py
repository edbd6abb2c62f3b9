"""The packages' layering: zoo <- export <- training (<- benchmarks, tests), read from the
source with `ast`, and the loop and exporter knowing models only through zoo/contract.py."""
import ast
import os

import tensorflow as tf

import zoo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A package may import those of a lower or equal rank only. configs imports none of ours.
RANK = {"configs": 0, "zoo": 0, "export": 1, "training": 2, "benchmarks": 3, "tests": 3}
FIRST_PARTY = frozenset(RANK)


def python_files(package):
  """Yields the paths of `package`'s .py files, relative to the repository."""
  for root, _, files in os.walk(os.path.join(REPO, package)):
    for name in sorted(files):
      if name.endswith(".py"):
        yield os.path.relpath(os.path.join(root, name), REPO)


def parse(path):
  with open(os.path.join(REPO, path)) as f:
    return ast.parse(f.read(), path)


def imported_packages(tree):
  """Returns {(first-party top-level package, line)} of every import in `tree`, those
  inside functions included."""
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      names = [node.module]
    else:
      continue
    found.update((name.split(".")[0], node.lineno) for name in names
                 if name.split(".")[0] in FIRST_PARTY)
  return found


class LayeringTest(tf.test.TestCase):

  def test_no_package_imports_a_higher_one(self):
    edges = []
    for package, rank in RANK.items():
      for path in python_files(package):
        edges += [f"{path}:{line} imports {other}" for other, line in imported_packages(parse(path))
                  if RANK[other] > rank or (package == "configs" and other != "configs")]
    self.assertEqual(edges, [], "imports against zoo <- export <- training <- benchmarks, tests")

  def test_the_check_sees_an_upward_import(self):
    tree = ast.parse("def f():\n  from training import loop\nimport zoo.units\n")
    self.assertEqual(imported_packages(tree), {("training", 2), ("zoo", 3)})

  def test_loop_and_exporter_never_probe_a_model_or_name_one(self):
    """They read the model's declarations (zoo/contract.py): no hasattr/getattr on a
    model, and no model's registry name in their code."""
    problems = []
    for package in ("training", "export"):
      for path in python_files(package):
        for node in ast.walk(parse(path)):
          if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("hasattr", "getattr") and node.args
              and isinstance(node.args[0], ast.Name) and "model" in node.args[0].id):
            problems.append(f"{path}:{node.lineno} {node.func.id}({node.args[0].id}, ...)")
          if isinstance(node, ast.Constant) and node.value in zoo.NAMES:
            problems.append(f"{path}:{node.lineno} names the model {node.value!r}")
    self.assertEqual(problems, [])


if __name__ == "__main__":
  tf.test.main()
