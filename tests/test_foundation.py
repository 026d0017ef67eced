"""Settings, device choice, the catalog, safe loading: the ground every tab stands on."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from pipelines.core.catalog import Catalog, availability, scan_models_dir
from pipelines.core.errors import ModelLoadError, UserError
from pipelines.core.settings import AppConfig, parse_args

ROOT = Path(__file__).resolve().parent.parent


def test_flags_and_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("AIGC_PORT", "7999")
    monkeypatch.setenv("AIGC_LANGUAGE", "zh")
    config = parse_args(["--host", "0.0.0.0", "--auth", "ann:secret", "--models-dir", str(tmp_path / "m"),
                         "--outputs-dir", str(tmp_path / "o"), "--device", "cpu", "--share"])
    assert (config.host, config.port, config.language) == ("0.0.0.0", 7999, "zh")
    assert config.auth == ("ann", "secret") and config.share and config.device == "cpu"
    assert config.models_dir == (tmp_path / "m").resolve()
    assert parse_args(["--port", "7001"]).port == 7001  # a flag wins over the environment


def test_bad_auth_flag_is_refused(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--auth", "no-colon"])
    assert "user:password" in capsys.readouterr().err


def test_device_and_dtype_choice():
    import torch

    from pipelines.core.devices import default_dtype, resolve_device

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert default_dtype("cpu") == torch.float32
    assert default_dtype("cuda") == torch.float16
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")


def test_every_task_has_models_with_licence_languages_and_size():
    catalog = Catalog(Path("/nonexistent"))
    for task in ("text", "face", "image", "voice", "twin"):
        specs = catalog.models(task)
        assert specs, task
        for spec in specs:
            assert spec.licence and spec.languages, spec.name
            # builtin entries may hold no weights of their own (the portrait preset borrows an image model);
            # cloud services (D-ID) keep theirs online
            assert spec.size_mb > 0 or spec.source_kind in ("builtin", "cloud"), spec.name
    flagged = [s.name for s in catalog.models() if not s.commercial_use]
    assert "piper-joe-en" in flagged and "dcgan-faces-64" in flagged


def test_hub_models_offline_say_how_to_add_them(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = Catalog(Path("/nonexistent")).get("image", "sd-turbo")
    state = availability(spec)
    assert not state.ok
    assert "no network" in state.reason and "models/image/" in state.reason
    assert "models/image/" in state.reason_zh


def test_bundled_package_model_is_available():
    spec = Catalog(Path("/nonexistent")).get("text", "smollm2-135m-instruct")
    assert availability(spec).ok


def test_models_folder_is_scanned(tmp_path):
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "my-llm.gguf").write_bytes(b"GGUF" + b"\0" * 100)
    (tmp_path / "image" / "my-sd").mkdir(parents=True)
    (tmp_path / "image" / "my-sd" / "model_index.json").write_text("{}")
    (tmp_path / "voices").mkdir()
    (tmp_path / "voices" / "zh_CN-voice.onnx").write_bytes(b"onnx")
    (tmp_path / "voices" / "zh_CN-voice.onnx.json").write_text(json.dumps({"language": {"code": "zh_CN"}}))
    found = {(s.task, s.name, s.backend) for s in scan_models_dir(tmp_path)}
    assert found == {("text", "my-llm", "llama_cpp"), ("image", "my-sd", "diffusers"),
                     ("voice", "zh_CN-voice", "piper")}
    catalog = Catalog(tmp_path)
    assert catalog.get("voice", "zh_CN-voice").languages == ("zh",)
    assert availability(catalog.get("text", "my-llm")).ok


def test_unknown_model_explains_where_to_put_it():
    with pytest.raises(ModelLoadError) as info:
        Catalog(Path("/nonexistent")).get("text", "no-such-model")
    assert "models/text/" in info.value.message and "models/text/" in info.value.zh


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def test_no_code_unpickles_arbitrary_files():
    """torch.load only with weights_only=True; no pickle.load anywhere in the studio's code."""
    offenders = []
    for path in list((ROOT / "pipelines").rglob("*.py")) + list((ROOT / "aigc_ui").rglob("*.py")) + [ROOT / "app.py"]:
        for call in _calls(ast.parse(path.read_text(encoding="utf-8"))):
            name = ast.unparse(call.func)
            if name.endswith("pickle.load") or name.endswith("pickle.loads"):
                offenders.append(f"{path.name}: {name}")
            if name == "torch.load":
                safe = any(k.arg == "weights_only" and ast.unparse(k.value) == "True" for k in call.keywords)
                if not safe:
                    offenders.append(f"{path.name}:{call.lineno} torch.load without weights_only=True")
    assert offenders == []


def test_pipelines_never_import_gradio():
    for path in (ROOT / "pipelines").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n == "gradio" or n.startswith("gradio.") for n in names), path.name


def test_config_rejects_unknown_language(tmp_path):
    with pytest.raises(ValueError):
        AppConfig(language="fr", models_dir=tmp_path, outputs_dir=tmp_path)


def test_one_seed_rule_everywhere():
    """-1 (or nothing) = random; a range that fits every framework; a batch needs room for seed + i."""
    from pipelines.core.seeds import SEED_MAX, check_seed, resolve_seed

    assert check_seed(None) == check_seed("") == check_seed(-1) == check_seed(-1.0) == -1
    assert check_seed(7.0) == 7 and resolve_seed(7) == 7
    assert 0 <= resolve_seed(-1, span=64) <= SEED_MAX - 63
    for bad in (-2, 2.5, "x", float("nan"), SEED_MAX + 1):
        with pytest.raises(UserError, match="seed must be"):
            check_seed(bad)
    with pytest.raises(UserError, match=f"from 0 to {SEED_MAX - 3}"):
        check_seed(SEED_MAX, span=4)


def test_the_audio_loader_judges_length_from_the_header_before_decoding(tmp_path):
    """One loader for every upload: any format ffmpeg reads; a too-long file is refused from its header."""
    import subprocess

    import numpy as np

    from pipelines.core.media import ffmpeg_exe, load_audio, read_audio_header

    long_m4a = tmp_path / "twenty-minutes.m4a"  # AAC: libsndfile cannot read it, ffmpeg can
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "1200",
                    "-c:a", "aac", "-b:a", "8k", str(long_m4a)], check=True, timeout=120)
    header = read_audio_header(long_m4a)
    assert header.sample_rate == 8000 and abs(header.seconds - 1200) < 1
    with pytest.raises(UserError, match=r"too long \(20\.0 minutes\); the limit is 10 minutes"):
        load_audio(long_m4a, max_seconds=600)  # decoding would have stopped at 601 s and said 10.0
    short = tmp_path / "tone.m4a"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=f=440:r=16000:d=1.5", "-c:a", "aac",
                    str(short)], check=True, timeout=60)
    samples, rate = load_audio(short, max_seconds=600)
    assert rate == 16000 and abs(len(samples) / rate - 1.5) < 0.1 and 0.1 < np.abs(samples).max() <= 1.0  # lavfi sine: 1/8
    resampled, rate = load_audio(short, sample_rate=8000)
    assert rate == 8000 and abs(len(resampled) / rate - 1.5) < 0.1
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        load_audio(tmp_path / "empty.wav")
    (tmp_path / "junk.mp3").write_bytes(b"not audio at all" * 100)
    with pytest.raises(UserError, match="damaged or not audio"):
        load_audio(tmp_path / "junk.mp3")


def test_every_catalog_entry_reads_in_chinese():
    """The Chinese UI shows each model's description and licence in Chinese (names and ids stay)."""
    import re

    from pipelines.core.catalog import BUILTIN_MODELS

    english_words = re.compile(r"\b[a-z]{2,} [a-z]{2,}\b")  # two ordinary words in a row; names are capitalised
    for spec in BUILTIN_MODELS:
        assert not english_words.search(spec.licence_text("zh", flag=True)), spec.name
        assert not english_words.search(spec.description_text("zh")), spec.name


def test_native_log_lines_stay_out_of_command_line_output():
    """MediaPipe's C++ log lines are filtered from stderr; everything else passes, in order, to the end."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    code = ("import os, sys; from pipelines.core.native_logs import quiet_native_logs; quiet_native_logs(); "
            "os.write(2, b'W0000 00:00:1795530650.493849   28443 inference_feedback_manager.cc:114] noise\\n'); "
            "print('first', file=sys.stderr, flush=True); "
            "os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\nsecond\\n'); "
            "os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n'); "
            "print('error: the last line', file=sys.stderr); sys.exit(2)")
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.splitlines() == ["first", "second", "error: the last line"]
    found = subprocess.run([sys.executable, "-m", "pipelines.face_landmarks", "assets/astronaut.jpg"], cwd=root,
                           capture_output=True, text=True, timeout=120)
    assert found.returncode == 0 and found.stdout.startswith("face 0:")
    assert found.stderr == "", found.stderr  # no MediaPipe / TensorFlow Lite chatter
