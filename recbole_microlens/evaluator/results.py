"""What a run reports: a JSON result file and a readable table."""
from __future__ import annotations

import functools
import platform
import resource
import subprocess
from importlib import metadata
from pathlib import Path

from tabulate import tabulate

from recbole_microlens.io import write_json_atomic

VERSIONED_PACKAGES = ("recbole-microlens", "recbole", "torch", "numpy", "pandas", "ray")


def package_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["source"] = source_revision()
    return versions


@functools.lru_cache(maxsize=None)
def source_revision(package_dir: Path = Path(__file__).resolve().parents[1]) -> str | None:
    """The git commit the package's code came from, ``+modified`` when tracked files differ
    from it; None unless the package sits at the top of a git checkout (an installed wheel, or
    a site-packages inside some other project's repository). Two results of one version number
    can come from different code: this says which. Read once per process (checkpoints ask on
    every save), so it names the code the process imported."""
    def git(*args):
        return subprocess.run(["git", "-C", str(package_dir), *args], capture_output=True,
                              text=True, timeout=10)
    try:
        top = git("rev-parse", "--show-toplevel")
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != package_dir.parent:
            return None
        head = git("rev-parse", "--short=12", "HEAD")
        if head.returncode != 0:
            return None
        modified = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("+modified" if modified else "")


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def jsonable_config(config) -> dict:
    """The resolved config as plain JSON values (enums and devices as strings)."""
    plain = {}
    for key, value in config.final_config_dict.items():
        if isinstance(value, (str, int, float, bool, type(None), list, dict)):
            plain[key] = value
        else:
            plain[key] = str(value)
    return plain


def metrics_table(rows: dict) -> str:
    """``{'valid': {...}, 'test': {...}}`` -> a Markdown table, one column per metric.

    A split evaluated with a content tower whose store holds fallback inputs gets a second row:
    the metrics over the targets that show their own media (``real_content``), with the number
    of targets left out; n/a when no target is left."""
    rows = {split: values for split, values in rows.items() if values}
    if not rows:
        return "(no metrics)"
    metric_names = [name for name in next(iter(rows.values())) if "@" in name]
    body = []
    for split, values in rows.items():
        body.append([split] + [values.get(m) for m in metric_names])
        if "real_content" in values:
            real = values["real_content"]
            body.append([f"{split}, real content only ({values['fallback_targets']} fallback "
                         "targets left out)"]
                        + [real.get(m) if real is not None else None for m in metric_names])
    return tabulate(body, headers=["split"] + metric_names, tablefmt="github", floatfmt=".4f",
                    missingval="n/a")


def write_result_file(path, result: dict) -> None:
    write_json_atomic(path, result)
