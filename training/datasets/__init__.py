"""TFDS builders for generated data sets.

`training.data` imports each builder module it uses; nothing is imported here, so that
`python -m training.datasets.deadleaves` does not register the builder twice.
"""
