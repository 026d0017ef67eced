"""The tabs' event handlers, called as Gradio calls them (a context, the UI values, a request) but
without a browser: real pipelines (MediaPipe, the bundled voices, the DCGAN, ffmpeg), no mocks."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from pipelines.core.settings import ASSETS_DIR
from tests.conftest import copy_dcgan

PHOTO = ASSETS_DIR / "astronaut.jpg"


class FakeRequest:
    """What the handlers use of gr.Request: the headers (page language) and the browser session."""

    def __init__(self, lang: str = "en", session: str = "session-1"):
        self.headers = {"cookie": f"aigc-lang={lang}", "accept-language": "en-US" if lang == "en" else "zh-CN"}
        self.session_hash = session


class Select:
    """What gr.SelectData carries for a click on a gallery tile."""

    def __init__(self, index: int):
        self.index = index


EN, ZH = FakeRequest("en"), FakeRequest("zh")


def make_context(root: Path, catalog=None):
    from aigc_ui.common import StudioContext
    from pipelines.core.runtime import Runtime
    from pipelines.core.settings import AppConfig

    config = AppConfig(models_dir=root / "models", outputs_dir=root / "outputs")
    config.ensure_dirs()
    runtime = Runtime.from_config(config)
    if catalog is not None:
        runtime = replace(runtime, catalog=catalog)
    return StudioContext(config=config, runtime=runtime)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, dcgan_models):
    import aigc_ui.app  # noqa: F401 - registers every tab's strings

    root = tmp_path_factory.mktemp("ui")
    copy_dcgan(dcgan_models, root / "models")
    return make_context(root)


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory) -> Path:
    """A photo with two faces: the bigger on the left (face 1), the smaller on the right (face 2)."""
    head = Image.open(PHOTO).crop((120, 10, 330, 260))
    canvas = Image.new("RGB", (640, 400), (200, 200, 200))
    canvas.paste(head.resize((315, 375)), (0, 10))
    canvas.paste(head, (380, 80))
    path = tmp_path_factory.mktemp("photos") / "two.png"
    canvas.save(path)
    return path


def tone(path: Path, seconds: float = 1.5, rate: int = 16000) -> Path:
    """A voice-like test recording: a 220 Hz tone whose loudness rises and falls three times a second."""
    from pipelines.core.media import write_wav

    t = np.arange(int(seconds * rate)) / rate
    return write_wav(path, (0.3 * np.sin(2 * np.pi * 3 * t) ** 2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32),
                     rate)


# ---------------------------------------------------------------- wiring
def test_every_handler_gets_its_request_from_gradio(tmp_path):
    """Gradio passes gr.Request only to parameters whose type hint it can read: check every event."""
    import inspect

    from gradio import utils

    from aigc_ui.app import build_app
    from pipelines.core.settings import AppConfig

    demo = build_app(AppConfig(models_dir=tmp_path / "m", outputs_dir=tmp_path / "o"))
    checked = 0
    for block_fn in demo.fns.values():
        if block_fn.fn is None or "request" not in inspect.signature(block_fn.fn).parameters:
            continue
        assert utils.get_type_hints(block_fn.fn).get("request") is gr.Request, block_fn.name
        checked += 1
    assert checked >= 20


def test_use_as_twin_opens_the_wizard_on_the_step_that_shows_the_value(tmp_path):
    from aigc_ui.app import build_app, send_to_twin
    from pipelines.core.settings import AppConfig

    value, main_tabs, step = send_to_twin("/tmp/face.png", step="photo")
    assert value == "/tmp/face.png" and main_tabs.selected == "twin" and step.selected == "photo"
    assert send_to_twin("Hello!", step="script")[2].selected == "script"

    demo = build_app(AppConfig(models_dir=tmp_path / "m", outputs_dir=tmp_path / "o"))
    wizard = next(b for b in demo.blocks.values() if isinstance(b, gr.Tabs) and b.selected == "photo")
    twin_inputs = {getattr(b, "label", None): b for b in demo.blocks.values()}
    sent = {}
    for block_fn in demo.fns.values():
        if getattr(block_fn.fn, "func", None) is send_to_twin:
            step = block_fn.fn.keywords["step"]
            target = block_fn.outputs[0]
            assert block_fn.outputs[2] is wizard  # the wizard opens on that step
            sent.setdefault(step, set()).add(type(target).__name__)
    # face + image tabs send photos, voice sends audio, text sends a script
    assert sent == {"photo": {"Image"}, "voice": {"Audio"}, "script": {"Textbox"}}
    assert twin_inputs  # the app built


def test_notices_become_toasts_by_level_in_the_users_language(capsys):
    from aigc_ui.common import show_notices
    from pipelines.core.notices import Notice

    # Outside a running event Gradio prints gr.Info and warns gr.Warning: the same calls, observable here.
    with pytest.warns(UserWarning, match="^乙$"):
        show_notices([Notice("a", "甲", "info"), Notice("b", "乙", "warning")], "zh")
    assert capsys.readouterr().out.strip() == "甲"


# ---------------------------------------------------------------- the twin wizard
def test_find_faces_numbers_the_faces_largest_first(ctx, two_faces):
    from aigc_ui import twin_tab

    annotated, dropdown, info = twin_tab.find_faces(ctx, str(two_faces), EN)
    assert annotated.shape == (400, 640, 3)
    assert [value for _, value in dropdown.choices] == [0, 1] and dropdown.value == 0
    assert info == "2 face(s) found."
    _, _, info_zh = twin_tab.find_faces(ctx, str(two_faces), ZH)
    assert info_zh == "找到 2 张人脸。"


def test_create_refuses_without_consent_in_the_users_language(ctx):
    from aigc_ui import twin_tab

    args = dict(photo=str(PHOTO), script="Hello.", voice="auto", recording=None, consent=False, face_index=0,
                size="face", expression=1.0, still=False, subtitles=False, ai_label=True, seed=-1, engine="classic")
    with pytest.raises(gr.Error, match="consent box"):
        twin_tab.create_video(ctx, **args, request=EN)
    with pytest.raises(gr.Error, match="同意框"):
        twin_tab.create_video(ctx, **args, request=ZH)
    assert not list((ctx.runtime_for(EN).outputs_dir / "twin").glob("*.mp4"))


@pytest.mark.slow
def test_create_with_consent_animates_the_chosen_face_with_subtitles(ctx, two_faces):
    from aigc_ui import twin_tab

    video, download, message, history = twin_tab.create_video(
        ctx, photo=str(two_faces), script="Hello there.", voice="auto", recording=None, consent=True,
        face_index=1, size="face", expression=1.0, still=False, subtitles=True, ai_label=True, seed=-1,
        engine="classic", request=EN)
    assert video == download and Path(video).is_file() and video in history
    params = json.loads(Path(video + ".json").read_text())  # the parameters beside the video
    assert params["face_index"] == 1 and params["faces_found"] == 2 and params["subtitles"] is True
    assert params["seed"] >= 0 and f"seed {params['seed']}" in message  # -1 became a seed, shown, not written back
    assert message.startswith("Done:") and "voice piper-joe-en," in message  # the voice "auto" picked


@pytest.mark.slow
def test_api_handler_takes_an_engine_and_a_recording(ctx, tmp_path):
    from aigc_ui import twin_tab

    from pipelines.twin.overlays import cjk_font_path

    path = twin_tab.create_twin_video(ctx, str(PHOTO), "", "auto", str(tone(tmp_path / "v.wav")), "classic", ZH)
    params = json.loads(Path(path + ".json").read_text())
    assert params["engine"] == "classic" and params["audio"] == "recording" and params["ai_label"] is True
    # the burned-in label follows the page's language (Chinese needs a CJK font, else it stays English)
    assert params["label"] == ("AI 生成" if cjk_font_path() else "AI-generated")


def test_an_engine_that_cannot_run_is_listed_with_its_reason_and_refused(tmp_path):
    from aigc_ui import twin_tab
    from pipelines.core.catalog import Catalog, ModelSpec

    class WithMissingEngine(Catalog):
        def models(self, task=None):
            missing = ModelSpec("musetalk", "twin", "musetalk", "local", str(tmp_path / "models/twin/musetalk"),
                                "MIT", languages=("*",))
            return super().models(task) + ([missing] if task in (None, "twin") else [])

    ctx = make_context(tmp_path, WithMissingEngine(tmp_path / "models"))
    choices = twin_tab.engine_choices(ctx)
    assert choices[0] == ("classic", "classic")
    label, value = choices[-1]
    assert value == "musetalk" and label.startswith("musetalk — ") and "models/" in label
    with pytest.raises(gr.Error, match="engine \"musetalk\" cannot run here"):
        twin_tab.create_video(ctx, photo=str(PHOTO), script="Hi.", voice="auto", recording=None, consent=True,
                              face_index=0, size="face", expression=1.0, still=False, subtitles=False,
                              ai_label=True, seed=-1, engine="musetalk", request=EN)
    with pytest.warns(UserWarning, match="cannot run here"):  # said as soon as it is picked
        twin_tab.warn_if_engine_cannot_run(ctx, "musetalk", EN)


def test_profiles_save_load_and_delete(ctx, tmp_path):
    from aigc_ui import twin_tab

    recording = tone(tmp_path / "me.wav")
    dropdown, overwrite, info = twin_tab.save_profile(ctx, "Ms Collins", str(PHOTO), "piper-joe-en", str(recording),
                                                      "an astronaut", request=EN)
    assert "Ms Collins" in dropdown.choices[0] and dropdown.value == "Ms Collins"
    assert info == 'Saved profile "Ms Collins".'
    # the same name again: nothing changes until "Overwrite" is ticked (the box appears)
    _, overwrite, info = twin_tab.save_profile(ctx, "Ms Collins", str(PHOTO), "auto", None, "x", request=EN)
    assert overwrite.visible is True and "already exists" in info
    _, overwrite, info = twin_tab.save_profile(ctx, "Ms Collins", str(PHOTO), "piper-joe-en", str(recording),
                                               "an astronaut", True, request=EN)
    assert overwrite.value is False and info == 'Saved profile "Ms Collins".'
    photo, voice, loaded_recording, persona, name, info = twin_tab.load_profile(ctx, "Ms Collins", ZH)
    assert Path(photo).is_file() and Path(loaded_recording).is_file()
    assert (voice, persona, name) == ("piper-joe-en", "an astronaut", "Ms Collins")
    assert info == "已载入档案“Ms Collins”。"
    with pytest.raises(gr.Error, match="Choose a profile"):
        twin_tab.load_profile(ctx, None, EN)
    dropdown, info = twin_tab.delete_profile(ctx, "Ms Collins", EN)
    assert dropdown.choices == [] and info == 'Deleted profile "Ms Collins".'
    with pytest.raises(gr.Error, match="No saved profile"):
        twin_tab.load_profile(ctx, "Ms Collins", EN)


# ---------------------------------------------------------------- face synthesis
@pytest.mark.slow
def test_reroll_replaces_only_the_picked_face(ctx):
    from aigc_ui import face_tab

    tiles, notes, grid, picked, picked_seed = face_tab.generate_faces(ctx, "dcgan-faces-64", 3, 40, 1.0, True, ZH)
    assert notes.startswith("使用的种子：40 到 42。")
    assert [caption for _, caption in tiles] == ["种子 40", "种子 41", "种子 42"] and picked_seed == 40
    grid, picked, picked_seed = face_tab.pick_face(grid, Select(1))
    assert picked_seed == 41 and picked == grid["paths"][1]
    tiles, grid, picked, picked_seed = face_tab.reroll_face(ctx, "dcgan-faces-64", 1.0, grid, EN)
    assert grid["seeds"][0] == 40 and grid["seeds"][2] == 42 and grid["seeds"][1] == picked_seed != 41
    assert Path(picked).is_file() and tiles[1] == (picked, f"seed {picked_seed}")
    with pytest.raises(gr.Error, match="click one first"):
        face_tab.reroll_face(ctx, "dcgan-faces-64", 1.0, dict(face_tab.EMPTY_GRID), EN)


@pytest.mark.slow
def test_interpolate_faces_makes_a_gif_and_an_mp4(ctx):
    from aigc_ui import face_tab
    from pipelines.core.media import probe_video

    gif, mp4 = face_tab.interpolate_faces(ctx, "dcgan-faces-64", 1, 2, 6, 1.0, True, EN)
    assert Image.open(gif).n_frames == 6
    assert probe_video(Path(mp4)).frames == 6


# ---------------------------------------------------------------- voice
def test_save_my_voice_cleans_and_keeps_the_recording(ctx, tmp_path):
    from aigc_ui import voice_tab

    cleaned, for_twin, message, kept = voice_tab.save_my_voice(ctx, str(tone(tmp_path / "rec.wav", 2.0)),
                                                               "my voice", EN)
    assert cleaned == for_twin and Path(cleaned).name == "my-voice.wav"
    import soundfile as sf

    assert sf.info(cleaned).samplerate == 22050
    assert message.startswith("Kept as `my-voice.wav`") and kept.value == "my-voice"  # names, never paths
    assert voice_tab.kept_recording(ctx, "my-voice", EN) == cleaned
    with pytest.raises(gr.Error, match="请先上传或录制"):
        voice_tab.save_my_voice(ctx, None, "x", ZH)


# ---------------------------------------------------------------- text-to-image
def test_generate_is_disabled_until_a_text_to_image_model_can_run(tmp_path, tiny_sd_dir):
    import shutil

    from aigc_ui import image_tab

    ctx = make_context(tmp_path)
    dropdown, notice, generate = image_tab.list_models(ctx, EN)
    assert generate.interactive is False and notice.visible is True  # the notice says how to add one
    assert all("(" in label for label, _ in dropdown.choices)  # every model says why it cannot run
    shutil.copytree(tiny_sd_dir, ctx.config.models_dir / "image" / "tiny-sd")
    dropdown, notice, generate = image_tab.refresh_models(ctx, None, EN)
    assert generate.interactive is True and notice.visible is False and dropdown.value == "tiny-sd"


def test_text_tab_suggests_a_better_model_only_for_the_bundled_one(tmp_path, tiny_gpt2_dir):
    import shutil

    from aigc_ui import text_tab

    ctx = make_context(tmp_path)
    hint_en = text_tab.model_hint(ctx, "smollm2-135m-instruct", EN)
    assert "Models tab" in hint_en and "qwen2.5" in hint_en
    assert "模型" in text_tab.model_hint(ctx, "smollm2-135m-instruct", ZH)
    assert text_tab.model_hint(ctx, "gpt2", EN) == ""
    # a model of the user's own in models/text/ becomes the default over the tiny bundled one
    shutil.copytree(tiny_gpt2_dir, ctx.config.models_dir / "text" / "my-gpt2")
    from pipelines.text.generation import default_model

    assert default_model(ctx.runtime) != "smollm2-135m-instruct"


@pytest.mark.slow
def test_the_watermark_setting_and_the_check_a_file_tab(ctx):
    """Create video with the setting on: the checker finds the mark and valid credentials, in the
    user's language; with it off: no mark, no credentials, and the report never says "not AI"."""
    from aigc_ui import provenance_tab, twin_tab

    def render(provenance: bool) -> str:
        video, *_ = twin_tab.create_video(
            ctx, photo=str(ASSETS_DIR / "astronaut.jpg"), script="Hello there, this is a test.", voice="auto",
            recording=None, consent=True, face_index=None, size="face", expression=1.0, still=True,
            subtitles=False, ai_label=True, seed=1, engine="classic", label_corner="bottom-right",
            provenance=provenance, request=EN)
        return video

    marked = render(True)
    summary, report = provenance_tab.check_provenance(ctx, marked, request=ZH)
    assert report["watermark"] is True and report["c2pa"] == "valid"
    assert report["parameters"].get("engine") == "classic" and "水印" in summary
    plain = render(False)
    summary, report = provenance_tab.check_provenance(ctx, plain, request=EN)
    assert report["watermark"] is False and report["c2pa"] == "absent"
    assert "does not show that this is not AI-generated" in summary
    with pytest.raises(gr.Error, match="Choose a file"):
        provenance_tab.check_provenance(ctx, None, request=EN)
