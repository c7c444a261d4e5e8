"""RecBole 1.2.1 on today's numpy / pandas / torch / ray: every fix in one place, each tested.

Nothing here edits RecBole's files. Fixes are applied by ``apply()`` (idempotent), which
``recbole_microlens.config.configurator`` calls before RecBole builds anything.
"""
from __future__ import annotations

import contextlib
import functools
import os
from importlib import metadata
from pathlib import Path

import numpy as np
from scipy import sparse

# Aliases RecBole's ``Config.compatibility_settings`` reads; numpy 2 removed them.
NUMPY2_ALIASES = {
    "float_": "float64",
    "complex_": "complex128",
    "unicode_": "str_",
    "string_": "bytes_",
}

# The newest ray that recbole 1.2.1 declares (``ray<=2.6.3``); a newer one makes pip backtrack.
RAY_MAX_FOR_RECBOLE = (2, 6, 3)


def add_numpy2_aliases(numpy_module=np) -> list[str]:
    """Restore the numpy-1 scalar aliases RecBole dereferences at import of its Config."""
    added = []
    for old, new in NUMPY2_ALIASES.items():
        if not hasattr(numpy_module, old):
            setattr(numpy_module, old, getattr(numpy_module, new))
            added.append(old)
    return added


def fill_nan_without_chained_inplace(dataset) -> None:
    """Copy-on-write-safe replacement of ``Dataset._fill_nan`` (pandas 3 turns RecBole's
    ``feat[field].fillna(inplace=True)`` into a silent no-op, leaving NaN ids and floats)."""
    from recbole.utils import FeatureType

    for feat_name in dataset.feat_name_list:
        feat = getattr(dataset, feat_name)
        for field in feat:
            ftype = dataset.field2type[field]
            if ftype == FeatureType.TOKEN:
                feat[field] = feat[field].fillna(value=0)
            elif ftype == FeatureType.FLOAT:
                feat[field] = feat[field].fillna(value=feat[field].mean())
            else:
                dtype = np.int64 if ftype == FeatureType.TOKEN_SEQ else np.float64
                feat[field] = feat[field].apply(
                    lambda x: np.array([], dtype=dtype) if isinstance(x, float) else x
                )


class PandasCompatDatasetMixin:
    """Mix into a RecBole ``Dataset`` subclass to route NaN filling through the CoW-safe version."""

    def _fill_nan(self):
        fill_nan_without_chained_inplace(self)


def torch_load(path, *, trusted: bool = False, map_location="cpu"):
    """``torch.load`` with an explicit ``weights_only``.

    torch >= 2.6 defaults to ``weights_only=True``; RecBole's checkpoints pickle its Config and
    fail to load. Our trainer writes weights-only checkpoints and reads them safely; ``trusted``
    is for RecBole-written files the caller created itself.
    """
    import torch

    return torch.load(path, map_location=map_location, weights_only=not trusted)


def allow_trusted_recbole_checkpoints() -> None:
    """Process-wide: every ``torch.load`` without ``weights_only`` unpickles (torch's documented
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``). Prefer :func:`trusted_recbole_checkpoints`, which
    trusts one folder only. Calls that pass ``weights_only`` explicitly (ours) are unaffected.
    """
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"


@contextlib.contextmanager
def trusted_recbole_checkpoints(checkpoint_dir: str | os.PathLike = "saved"):
    """While active, stock RecBole can reload the checkpoints it writes into ``checkpoint_dir``.

    RecBole's ``Trainer`` saves its pickled ``Config`` with pickle protocol 4 and reloads it with
    a bare ``torch.load``; torch >= 2.6 defaults to ``weights_only=True``, whose unpickler
    rejects both the Config classes and protocol 4's framing ("Unsupported operand 149"), so no
    allow-list of classes (``torch.serialization.add_safe_globals``) can admit these files.
    This switch is explicit and narrow: only a bare ``torch.load`` of a file inside
    ``checkpoint_dir`` (the folder the run writes its own checkpoints to) unpickles; any other
    path, and any call that passes ``weights_only``, keeps torch's safe default.
    """
    import torch

    trusted = Path(checkpoint_dir).resolve()
    original = torch.load

    @functools.wraps(original)
    def load(f, *args, **kwargs):
        if "weights_only" not in kwargs and isinstance(f, (str, os.PathLike)) \
                and Path(f).resolve().is_relative_to(trusted):
            kwargs["weights_only"] = False
        return original(f, *args, **kwargs)

    torch.load = load
    try:
        yield trusted
    finally:
        torch.load = original


def restore_dok_update() -> bool:
    """Give ``scipy.sparse.dok_matrix`` back the ``_update`` RecBole's graph models call.

    LightGCN, NGCF, GCMC, SpectralCF, NCL, KGIN and MCCLK fill their adjacency matrix with
    ``A._update(dict)``. scipy 1.13 moved a DOK matrix's entries into ``self._dict`` and removed
    ``_update``, so those models fail with AttributeError. The restored method is what scipy
    < 1.13 did: a bulk, unchecked insert of ``{(row, col): value}``. Returns whether it was added.
    """
    if hasattr(sparse.dok_matrix, "_update"):
        return False

    def _update(self, data) -> None:
        self._dict.update(data)

    sparse.dok_matrix._update = _update
    return True


def check_ray_version() -> str:
    """Fail early and clearly if ray is newer than recbole 1.2.1 supports."""
    version = metadata.version("ray")
    parts = tuple(int(p) for p in version.split(".")[:3] if p.isdigit())
    if parts > RAY_MAX_FOR_RECBOLE:
        raise RuntimeError(
            f"ray {version} is installed but recbole 1.2.1 requires ray<=2.6.3; "
            "reinstall with `pip install .` to get the pinned stack."
        )
    return version


def disable_import_time_anomaly_detection() -> bool:
    """Undo the ``torch.autograd.set_detect_anomaly(True)`` that RecBole's ``sine.py`` runs at
    import time (``recbole.model.sequential_recommender`` imports it, so any RecBole model
    lookup does). Anomaly mode checks every backward output for NaN: half the CPU time of an
    ID SASRec step. Imports the package first, so the side effect has happened and cannot
    come back (modules run once). Returns whether it had been on."""
    import recbole.model.sequential_recommender  # noqa: F401  (runs sine.py's side effect now)
    import torch

    was_on = torch.is_anomaly_enabled()
    torch.autograd.set_detect_anomaly(False)
    return was_on


#: every RecBole module that calls ``ensure_dir`` by a name it imported
ENSURE_DIR_MODULES = ("recbole.utils.utils", "recbole.utils", "recbole.utils.logger",
                      "recbole.trainer.trainer", "recbole.data.utils",
                      "recbole.data.dataset.dataset")


def makedirs_exist_ok(dir_path) -> None:
    os.makedirs(dir_path, exist_ok=True)


def race_free_ensure_dir() -> list[str]:
    """RecBole's ``ensure_dir`` checks, then creates: two runs starting together (sharing
    ``log/<model>`` or ``saved/``) crash with ``FileExistsError``. Every module's reference
    becomes ``os.makedirs(exist_ok=True)``; returns the modules changed."""
    import importlib

    patched = []
    for name in ENSURE_DIR_MODULES:
        module = importlib.import_module(name)
        if getattr(module, "ensure_dir", makedirs_exist_ok) is not makedirs_exist_ok:
            module.ensure_dir = makedirs_exist_ok
            patched.append(name)
    return patched


_applied = False


def apply() -> None:
    """Apply every process-wide fix once (cheap, idempotent)."""
    global _applied
    if _applied:
        return
    add_numpy2_aliases()
    restore_dok_update()
    disable_import_time_anomaly_detection()
    race_free_ensure_dir()
    # ray 2.6.3 imports pkg_resources at import time and warns on every worker; keep logs readable.
    os.environ.setdefault("PYTHONWARNINGS", "ignore::UserWarning:ray._private.parameter")
    _applied = True
