"""Shared fixtures: offline settings, temp models/ and outputs/ folders, tiny models, a running app."""
from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import pytest

# Tests never reach a model hub; the studio must say so clearly instead.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Content Credentials keys made during tests go to a temporary folder, never the user's config directory.
os.environ.setdefault("AIGC_PROVENANCE_DIR", tempfile.mkdtemp(prefix="aigc-provenance-test-"))

ARTIFACTS = Path(__file__).parent / "artifacts"


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
def studio(tmp_path_factory):
    """The whole studio launched in-process on a free port; yields (demo, url, config)."""
    from aigc_ui.app import build_app, launch_kwargs, queue_kwargs
    from pipelines.core.settings import AppConfig

    root = tmp_path_factory.mktemp("studio")
    config = AppConfig(models_dir=root / "models", outputs_dir=root / "outputs", port=free_port(),
                       max_upload_mb=5)
    demo = build_app(config)
    demo.queue(**queue_kwargs(config)).launch(prevent_thread_lock=True, quiet=True, **launch_kwargs(config))
    try:
        yield demo, f"http://127.0.0.1:{config.port}/", config
    finally:
        demo.close()


@pytest.fixture(scope="session")
def client(studio):
    from gradio_client import Client

    return Client(studio[1], verbose=False)
