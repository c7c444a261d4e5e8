"""Where each encoder's pre-trained weights come from, and how they become a local file.

Every registry row names its upstream weights (:class:`WeightsSource`), fetched through the
cache of the ecosystem that publishes them, so weights a user already has are found and nothing
is downloaded twice:

* ``model zoo``: a checkpoint URL (pytorchvideo's Kinetics-400 zoo), in torch.hub's cache
  ``$TORCH_HOME/hub/checkpoints/<upstream file name>``, downloaded with torch.hub's
  ``download_url_to_file`` (a progress bar), as ``load_state_dict_from_url`` does for
  pytorchvideo's own hub functions;
* ``torchvision``: a weights enum; the same cache and file name as ``weights.get_state_dict``,
  whose ``-<hash>`` suffix is the sha256 prefix torchvision publishes, checked on every load;
* ``hub``: a model-hub id (transformers models), a snapshot in the hub cache under ``HF_HOME``
  through ``huggingface_hub.snapshot_download``, the cache ``from_pretrained`` reads.

``encoder_checkpoint`` is ``pretrained`` (the row's source), ``random``, a local file or folder, a
hub id (``ORG/NAME``) or a URL. ``HF_HUB_OFFLINE=1`` (or ``TRANSFORMERS_OFFLINE=1``) means
offline for all three: what is not cached is then an error naming the file or id, the URL, the
cache path a file downloaded elsewhere goes to, and the ``random`` opt-out. The environment is
read at each call, so a process may point ``TORCH_HOME`` or ``HF_HOME`` elsewhere at any time.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from recbole_microlens.encoders.formats import HF_WEIGHT_FILES
from recbole_microlens.errors import CheckpointError, MissingInputError
from recbole_microlens.io import atomic_open, sha256_file

PRETRAINED, RANDOM = "pretrained", "random"
# A trained model being reloaded brings its encoder's weights itself (checkpoint.py).
TRAINED = "trained"
KINDS = ("model zoo", "torchvision", "hub")
# What a hub snapshot needs: the config, one weights file, the tokenizer (text models).
HUB_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
             "special_tokens_map.json")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
WEIGHT_SUFFIXES = (".pyth", ".pth", ".pt", ".bin", ".safetensors", ".ckpt")
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
SHA_SHOWN = 12


class WeightsUnavailable(CheckpointError):
    """Pre-trained weights that are neither cached nor downloadable now."""


@dataclass(frozen=True)
class WeightsSource:
    """An encoder's upstream weights: ``location`` is a URL (``model zoo``, ``torchvision``) or
    a hub id (``hub``); ``file_name`` the file a user downloads (for a hub id, its weights
    file); ``size_mb`` its size, published (torchvision) or float32 parameters x 4 bytes;
    ``sha256_prefix`` the hash upstream publishes, if any; ``detail`` what the weights are."""

    kind: str
    location: str
    file_name: str
    size_mb: float
    detail: str
    sha256_prefix: str | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"weights kind {self.kind!r} is unknown; choose one of {KINDS}")

    @property
    def downloads_a_file(self) -> bool:
        return self.kind != "hub"

    def cache_path(self) -> Path:
        """Where the cache keeps (or will keep) these weights."""
        if self.downloads_a_file:
            return torch_hub_checkpoints() / self.file_name
        return hub_cache() / ("models--" + self.location.replace("/", "--"))

    @property
    def name(self) -> str:
        """What a user looks for: the upstream file name, or the hub id."""
        return self.file_name if self.downloads_a_file else self.location

    def label(self) -> str:
        return f"{self.kind} {self.name}"


def model_zoo(url: str, size_mb: float, detail: str) -> WeightsSource:
    """A checkpoint URL of pytorchvideo's model zoo (upstream publishes no hash)."""
    return WeightsSource("model zoo", url, _url_file_name(url), size_mb, detail)


def torchvision_weights(weights) -> WeightsSource:
    """A torchvision weights enum member: its URL, published size and sha256 prefix."""
    from torch.hub import HASH_REGEX

    name = _url_file_name(weights.url)
    found = HASH_REGEX.search(name)
    return WeightsSource("torchvision", weights.url, name, weights.meta["_file_size"],
                         f"torchvision {type(weights).__name__}.{weights.name}",
                         sha256_prefix=found.group(1) if found else None)


def hub_weights(repo_id: str, file_name: str, size_mb: float, detail: str) -> WeightsSource:
    """A model-hub repository (config, weights file, tokenizer)."""
    return WeightsSource("hub", repo_id, file_name, size_mb, detail)


def named_hub_id(repo_id: str) -> WeightsSource:
    """A hub id no registry row names (``encoder_checkpoint: ORG/NAME``)."""
    return hub_weights(repo_id, "", 0.0, "a model-hub id")


def _url_file_name(url: str) -> str:
    return Path(urlparse(url).path).name


# --------------------------------------------------------------------------- environment


def is_offline() -> bool:
    """Whether the user said there is no network (the hub's variables, read now)."""
    return any(os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")
               for name in OFFLINE_VARIABLES)


def torch_hub_checkpoints() -> Path:
    """torch.hub's checkpoint cache (``$TORCH_HOME/hub/checkpoints``), read now."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def hub_cache() -> Path:
    """The model hub's cache, by the hub's own rule (``HF_HUB_CACHE``, else ``HF_HOME/hub``),
    read now: ``huggingface_hub`` reads it once, at import."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("HF_HOME") or Path(xdg) / "huggingface").expanduser() / "hub"


# --------------------------------------------------------------------------- resolving


@dataclass(frozen=True)
class ResolvedWeights:
    """What ``encoder_checkpoint`` named, as a local file or folder (``path``; None: random)."""

    path: Path | None
    origin: str  # "random", "trained", "local", or the source's label

    @property
    def is_random(self) -> bool:
        return self.origin == RANDOM

    def describe(self) -> str:
        """For the log: source, file and sha256 prefix, or that the weights are random."""
        if self.path is None:
            return {RANDOM: "random weights (encoder_checkpoint: random)",
                    TRAINED: "weights of the trained model being loaded"}[self.origin]
        file = weights_file(self.path)
        return f"{self.origin}: {file} (sha256 {file_sha256(file)[:SHA_SHOWN]})"


def resolve_weights(encoder: str, checkpoint, source: WeightsSource | None,
                    *, download: bool = True) -> ResolvedWeights:
    """``encoder_checkpoint`` -> local weights, fetched into their cache when missing (unless
    ``download`` is off or the user is offline). ``source`` is the encoder's upstream row."""
    if checkpoint is None or str(checkpoint) in (RANDOM, TRAINED):
        return ResolvedWeights(None, str(checkpoint or RANDOM))
    text = str(checkpoint)
    if text == PRETRAINED:
        if source is None:
            raise CheckpointError(f"encoder {encoder} has no upstream weights in the registry; "
                                  f"give encoder_checkpoint a file or folder, or {RANDOM}")
        return ResolvedWeights(fetch(source, encoder, download=download), source.label())
    if Path(text).expanduser().exists():
        return ResolvedWeights(Path(text).expanduser(), "local")
    if urlparse(text).scheme in ("http", "https"):
        url = model_zoo(text, 0.0, "a checkpoint URL")
        return ResolvedWeights(fetch(url, encoder, download=download), url.label())
    if HUB_ID.match(text) and not text.endswith(WEIGHT_SUFFIXES):
        hub = source if source is not None and source.location == text else named_hub_id(text)
        return ResolvedWeights(fetch(hub, encoder, download=download), hub.label())
    return ResolvedWeights(Path(text), "local")  # loading says it does not exist, and what fits


def fetch(source: WeightsSource, encoder: str, *, download: bool = True) -> Path:
    """The cached file (or hub snapshot folder) of ``source``, downloaded first when missing."""
    if source.kind == "hub":
        return _hub_snapshot(source, encoder, download)
    path = source.cache_path()
    if not path.is_file():
        if not download or is_offline():
            raise unavailable(source, encoder, "offline (HF_HUB_OFFLINE is set)" if download
                              else "not cached")
        _download(source, path, encoder)
    check_published_hash(path, source)
    return path


def _download(source: WeightsSource, path: Path, encoder: str) -> None:
    """torch.hub's own download into its cache (temp file, then rename; progress bar)."""
    import torch.hub

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(source.location, str(path), source.sha256_prefix,
                                       progress=True)
    except (OSError, RuntimeError) as error:  # URLError is an OSError; a bad hash a RuntimeError
        raise unavailable(source, encoder, f"download failed: {error}") from error


def _hub_snapshot(source: WeightsSource, encoder: str, download: bool) -> Path:
    """The hub snapshot folder of ``source``: config, one weights file (safetensors preferred,
    else the pickle-free-loaded ``pytorch_model.bin``) and tokenizer files, nothing else."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    offline = not download or is_offline()
    folder = None
    for weights in HF_WEIGHT_FILES:
        try:
            folder = Path(snapshot_download(source.location, cache_dir=hub_cache(),
                                            local_files_only=offline,
                                            allow_patterns=[*HUB_FILES, weights]))
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as error:
            reason = "offline (HF_HUB_OFFLINE is set)" if offline else f"download failed: {error}"
            raise unavailable(source, encoder, reason) from error
        if _hub_weights_file(folder) is not None:
            return folder
    raise unavailable(source, encoder, f"snapshot {folder} holds none of {' / '.join(HF_WEIGHT_FILES)}")


def _hub_weights_file(folder: Path) -> Path | None:
    return next((folder / name for name in HF_WEIGHT_FILES if (folder / name).is_file()), None)


def unavailable(source: WeightsSource, encoder: str, reason: str) -> WeightsUnavailable:
    """The one error for missing weights: what, from where, where it goes, and the opt-out."""
    if source.downloads_a_file:
        what = f"{source.file_name} ({source.detail}, {_size(source)})"
        get = (f"download {source.location} and put it at {source.cache_path()} (or run "
               f"`recbole-microlens fetch-weights {encoder} --from DIR` with the file in DIR)")
    else:
        what = f"hub id {source.location} ({source.detail}, {_size(source)})"
        get = (f"on a machine online, run `recbole-microlens fetch-weights {source.location}` "
               f"and copy the {source.cache_path().name} folder of its hub cache into "
               f"{hub_cache()} here (or `fetch-weights {source.location} --from DIR`)")
    return WeightsUnavailable(
        f"encoder {encoder}: pre-trained weights {what} are not cached and cannot be fetched "
        f"({reason}); {get}; or train with encoder_checkpoint: {RANDOM} (random weights)")


def _size(source: WeightsSource) -> str:
    return f"about {source.size_mb:.0f} MB" if source.size_mb else "size unknown"


def check_published_hash(path: Path, source: WeightsSource) -> None:
    """A cached file whose sha256 does not start with the prefix upstream publishes is refused."""
    if source.sha256_prefix and not file_sha256(path).startswith(source.sha256_prefix):
        raise CheckpointError(
            f"{path} is not {source.detail}: its sha256 {file_sha256(path)[:SHA_SHOWN]} does not "
            f"start with the published {source.sha256_prefix}; delete it and fetch it again")


def weights_file(path: Path) -> Path:
    """The weights file itself: ``path``, or the weights file of a hub or HF folder."""
    return (_hub_weights_file(path) or path) if path.is_dir() else path


def file_sha256(path: Path) -> str:
    """sha256 of a file, computed once per process per (path, size, mtime)."""
    path = Path(path).resolve()
    stat = path.stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def is_cached(source: WeightsSource) -> bool:
    """Whether ``source`` can be loaded without the network."""
    try:
        fetch(source, "-", download=False)
    except CheckpointError:
        return False
    return True


# --------------------------------------------------------------------------- importing


def import_file(source: WeightsSource, folder: Path) -> Path:
    """Copy ``folder/<file name>`` (downloaded elsewhere) into the cache, hash checked."""
    found = sorted(Path(folder).rglob(source.file_name))
    if not found:
        raise MissingInputError(f"{folder} holds no {source.file_name} ({source.location})")
    target = source.cache_path()
    with atomic_open(target, "wb") as handle, open(found[0], "rb") as original:
        shutil.copyfileobj(original, handle)
    try:
        check_published_hash(target, source)
    except CheckpointError:
        target.unlink()
        raise
    return target


def import_hub_snapshot(source: WeightsSource, folder: Path) -> Path:
    """Copy a hub cache folder ``models--ORG--NAME`` found under ``folder`` (the cache of a
    machine online) into this machine's hub cache."""
    name = source.cache_path().name
    found = sorted(Path(folder).rglob(name))
    if not found:
        raise MissingInputError(f"{folder} holds no {name} (the hub cache folder of "
                                f"{source.location}, from a machine where it was fetched)")
    target = source.cache_path()
    shutil.copytree(found[0], target, symlinks=True, dirs_exist_ok=True)
    return target


def fill_cache(encoder: str, source: WeightsSource | None, from_dir: Path | None = None) -> Path:
    """``recbole-microlens fetch-weights``: the cached weights of ``encoder``, downloaded (or
    imported from ``from_dir``) when missing."""
    if source is None:
        raise CheckpointError(f"encoder {encoder} has no upstream weights in the registry")
    if from_dir is not None and not is_cached(source):
        if not Path(from_dir).is_dir():
            raise MissingInputError(f"--from {from_dir}: no such folder")
        (import_file if source.downloads_a_file else import_hub_snapshot)(source, Path(from_dir))
    return fetch(source, encoder)
