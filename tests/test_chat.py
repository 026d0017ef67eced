"""Talk to my twin: the live conversation pipeline (VAD, Whisper, the text model, Piper, the classic engine
on a continuing timeline), its bad inputs, its sessions, its CLI, the tab's handlers, and a real browser
asking the question through a fake microphone. Real models throughout (bundled, offline); no mocks.

The question is Piper's "What is the capital of France?", so the words are known.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pipelines.core.settings import ASSETS_DIR

PHOTO = ASSETS_DIR / "astronaut.jpg"
QUESTION = "What is the capital of France?"
ROOT = Path(__file__).resolve().parent.parent


def wait_for(condition, timeout: float = 180.0, what: str = "condition"):
    """Poll ``condition`` until it is true (no fixed sleeps); fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    from pipelines.core.cache import ModelCache
    from pipelines.core.catalog import Catalog
    from pipelines.core.runtime import Runtime

    root = tmp_path_factory.mktemp("chat")
    return Runtime(cache=ModelCache(budget_bytes=4 * 2**30), catalog=Catalog(root / "models"),
                   outputs_dir=root / "outputs")


@pytest.fixture(scope="module")
def question(runtime, tmp_path_factory) -> tuple[np.ndarray, int, Path]:
    """Piper's question with half a second of silence before and one after: (samples, rate, wav path)."""
    from pipelines.core.media import write_wav
    from pipelines.voice.synthesis import synthesize_speech

    speech = synthesize_speech(QUESTION, voice="piper-joe-en", runtime=runtime, save=False)
    rate = speech.sample_rate
    audio = np.concatenate([np.zeros(rate // 2), speech.audio, np.zeros(rate)]).astype(np.float32)
    path = write_wav(tmp_path_factory.mktemp("question") / "question.wav", audio, rate)
    return audio, rate, path


def new_conversation(runtime, photo=PHOTO, **config):
    from pipelines.chat import ChatConfig, ChatTwin, Conversation

    return Conversation(ChatTwin(photo, voice="piper-joe-en", persona="a friendly astronaut"),
                        ChatConfig(**config), runtime)


def feed(conversation, audio: np.ndarray, rate: int, piece: float = 0.1) -> None:
    """Microphone audio in pieces, as a browser sends it (faster than real time: the VAD does not mind)."""
    step = int(rate * piece)
    for i in range(0, len(audio), step):
        conversation.feed_audio(audio[i:i + step], rate)


def finished(conversation, number: int):
    turns = conversation.turns
    return len(turns) >= number and (turns[number - 1].timings.done is not None or turns[number - 1].dropped)


@pytest.fixture(scope="module")
def talk(runtime, question):
    """One started conversation, its frames collected, shared by the pipeline tests below."""
    conversation = new_conversation(runtime).start()
    frames: list = []
    conversation.add_sink(frames.append)
    yield conversation, frames
    conversation.close()


# ---------------------------------------------------------------- the pieces


def test_vad_finds_the_question_and_ignores_silence_and_noise(question):
    from pipelines.chat.vad import VAD_RATE, VoiceActivityDetector
    from pipelines.voice.audio_dsp import resample

    audio, rate, _ = question
    detector = VoiceActivityDetector()
    events = []
    audio16k = resample(audio, rate, VAD_RATE)
    for i in range(0, len(audio16k), 1600):
        events += detector.feed(audio16k[i:i + 1600])
    assert [e.kind for e in events] == ["start", "pause", "end"]
    assert np.array_equal(events[1].audio, events[2].audio)  # recognition may start at the pause
    spoken = events[2].audio
    assert 1.0 < len(spoken) / VAD_RATE < 2.8  # the question (about 1.8 s), not all the silence around it
    assert 0.4 < events[0].sample / VAD_RATE < 1.0  # it starts after the half second of silence
    assert detector.feed(np.zeros(VAD_RATE * 3, np.float32)) == []
    noise = np.random.default_rng(0).normal(0, 0.05, VAD_RATE * 3).astype(np.float32)
    assert detector.feed(noise) == []


def test_vad_lets_a_comma_pause_go_on_and_starts_listening_early(runtime):
    """A question with pauses at its commas is one utterance (the end waits 0.45 s of silence; 0.25 cuts it
    after "Well,", and 0.35 often did), while each pause already hands over what was said so far
    (recognition may start)."""
    from pipelines.chat.vad import VAD_RATE, VadConfig, VoiceActivityDetector
    from pipelines.voice.audio_dsp import resample
    from pipelines.voice.synthesis import synthesize_speech

    speech = synthesize_speech("Well, I was wondering, what is the capital of France?", voice="piper-joe-en",
                               runtime=runtime, save=False)
    spoken = resample(np.asarray(speech.audio, np.float32), speech.sample_rate, VAD_RATE)
    audio = np.concatenate([np.zeros(VAD_RATE // 2, np.float32), spoken, np.zeros(VAD_RATE, np.float32)])

    def events(config=None):
        detector, out = VoiceActivityDetector(config), []
        for i in range(0, len(audio), 320):  # 20 ms pieces, as a microphone stream
            out += detector.feed(audio[i:i + 320])
        return out

    heard = events()
    kinds = [e.kind for e in heard]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("end") == 1 and kinds.count("start") == 1
    assert kinds.count("pause") >= 3  # at the two commas and at the end: recognition starts each time
    end = heard[-1]
    assert len(end.audio) / VAD_RATE > 0.9 * len(spoken) / VAD_RATE  # the whole question, not "Well,"
    pause = [e for e in heard if e.kind == "pause"][-1]
    assert pause.speech_end == end.speech_end and np.array_equal(pause.audio, end.audio)
    assert (end.sample - end.speech_end) / VAD_RATE >= 0.45 > 0.1 > (pause.sample - pause.speech_end) / VAD_RATE
    shorter = [e.kind for e in events(VadConfig(end_silence=0.25))]
    assert shorter.count("end") > 1  # why the end waits: 0.25 s ends the question at a comma


def test_vad_cuts_a_monologue_at_the_cap(question):
    from pipelines.chat.vad import VAD_RATE, VadConfig, VoiceActivityDetector
    from pipelines.voice.audio_dsp import resample

    audio, rate, _ = question
    speech = resample(audio[rate // 2: -rate], rate, VAD_RATE)
    monologue = np.concatenate([np.concatenate([speech, np.zeros(VAD_RATE // 10)])] * 4)  # ~8 s, short pauses
    detector = VoiceActivityDetector(VadConfig(max_utterance=3.0))
    events = detector.feed(monologue) + detector.feed(np.zeros(VAD_RATE, np.float32))
    events = [e for e in events if e.kind != "pause"]
    kinds = [e.kind for e in events]
    assert kinds[:2] == ["start", "cut"] and "end" not in kinds  # the rest of the monologue is not a new question
    assert len(events[1].audio) / VAD_RATE <= 3.0 + 0.3


def test_sentences_come_out_as_soon_as_they_are_written():
    from pipelines.chat.sentences import SentenceSplitter

    splitter = SentenceSplitter()
    out = []
    for piece in ["The", " capital of France is Paris, a", " city of light. It is **lovely**! Do", " you like it?"]:
        out.append(splitter.feed(piece))
    assert out[0] == []  # not yet a sentence
    assert out[1] == ["The capital of France is Paris,"]  # the first piece may end at a comma after six words
    assert out[2] == ["a city of light.", "It is lovely!"]  # later ones end at sentence ends
    assert out[3] == [] and splitter.flush() == ["Do you like it?"]
    # the first clause is spoken before its sentence ends: at a comma after four words, not fewer
    first = SentenceSplitter()
    assert first.feed("The largest planet is") == []
    assert first.feed(" Jupiter, but") == ["The largest planet is Jupiter,"]
    assert first.feed(" Saturn has rings. Bees make honey, yes. ") == ["but Saturn has rings.", "Bees make honey, yes."]
    assert SentenceSplitter().feed("Bees make honey, but ") == []  # three words: wait for the sentence
    assert SentenceSplitter().feed("你好！我是你的数字分身。今天") == ["你好！", "我是你的数字分身。"]
    # a long first sentence with no comma is spoken up to its first joining word (six words or more before it)
    joined = SentenceSplitter()
    assert joined.feed("The capital of France is Paris and") == []  # the next clause has not begun yet
    assert joined.feed(" it is famous") == ["The capital of France is Paris"]
    assert joined.feed(" for art. ") == ["and it is famous for art."]
    assert SentenceSplitter().feed("I like cats and dogs a lot") == []  # three words before "and": too short
    assert SentenceSplitter().feed("The weather in Paris today is so lovely") == []  # "so" meaning "very"
    assert SentenceSplitter().feed("My new phone runs android software and it works") == ["My new phone runs android software"]
    assert SentenceSplitter().feed("巴黎是法国的首都也是最大的城市因为它") == ["巴黎是法国的首都也是最大的城市"]


def test_timeline_clips_join_without_a_jump():
    """The engine option the conversation needs: clips [0, 25) + [25, 50) are the frames of one clip
    [0, 50) (blinks and head motion continue); a clip without start_frame behaves as before."""
    from pipelines.face import landmarks as fl
    from pipelines.twin.engines import AnimationJob, AnimationOptions
    from pipelines.twin.engines.classic import ClassicEngine
    from pipelines.twin.framing import frame_face
    from pipelines.twin.pipeline import load_photo

    image = load_photo(PHOTO)
    framing = frame_face(image, fl.detect_faces(image)[0], "face")
    engine = ClassicEngine()

    def clip(first, count, start_frame):
        audio = np.zeros(count * 882, np.float32)
        job = AnimationJob(framing.image, framing.face, audio, 22050, count,
                           options=AnimationOptions(seed=7, start_frame=start_frame))
        return list(engine.animate(job))

    whole = clip(0, 50, 0)
    pieces = clip(0, 25, 0) + clip(25, 25, 25)
    assert all(np.array_equal(a, b) for a, b in zip(whole, pieces))
    assert len({id(rig) for *_, rig in engine._rigs.values()}) == 1  # the photo's rig was built once
    moving = [float(np.abs(a.astype(int) - b.astype(int)).mean()) for a, b in zip(whole[:-1], whole[1:])]
    assert max(moving) > 0.05  # idle is not a still image: the head moves, the eyes blink
    standalone = list(engine.animate(AnimationJob(framing.image, framing.face, np.zeros(25 * 882, np.float32), 22050,
                                                  25, options=AnimationOptions(seed=7))))
    assert len(standalone) == 25


def test_the_text_model_sees_the_conversation_so_far(runtime):
    from pipelines.text.generation import stream_text

    stream = stream_text("And its population?", history=[(QUESTION, "Paris.")], max_new_tokens=1, seed=1,
                         runtime=runtime)
    stream.result()
    roles = [m["role"] for m in stream.prompt]
    assert roles[-3:] == ["user", "assistant", "user"] and stream.prompt[-3]["content"] == QUESTION


def test_speech_recognition_is_picked_by_language(tmp_path):
    """English: the bundled Whisper tiny.en. Chinese: a multilingual Whisper once one is in models/asr/
    (before that: none, and the conversation says to type)."""
    from pipelines.chat.conversation import pick_recognizer
    from pipelines.core.cache import ModelCache
    from pipelines.core.catalog import Catalog
    from pipelines.core.runtime import Runtime

    runtime = Runtime(cache=ModelCache(), catalog=Catalog(tmp_path / "models"), outputs_dir=tmp_path / "out")
    assert pick_recognizer("en", runtime) == "whisper-tiny-en"
    assert pick_recognizer("zh", runtime) is None
    assert pick_recognizer("auto", runtime) == "whisper-tiny-en"  # detection needs a multilingual model
    folder = tmp_path / "models" / "asr" / "my-whisper"
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"")  # a CTranslate2 folder; nothing is loaded to choose it
    runtime = Runtime(cache=ModelCache(), catalog=Catalog(tmp_path / "models"), outputs_dir=tmp_path / "out")
    assert pick_recognizer("zh", runtime) == "my-whisper" and pick_recognizer("auto", runtime) == "my-whisper"
    assert pick_recognizer("en", runtime) == "whisper-tiny-en"


# ---------------------------------------------------------------- one spoken turn, end to end


@pytest.mark.slow
def test_a_spoken_question_is_answered_with_voice_and_face_in_sync(talk, question, runtime):
    from pipelines.face import landmarks as fl
    from pipelines.twin.driving import loudness_envelope

    conversation, frames = talk
    audio, rate, _ = question
    feed(conversation, audio, rate)
    wait_for(lambda: finished(conversation, 1), what="the answer to be spoken")
    turn = conversation.turns[0]
    assert "capital of france" in turn.question.lower()
    assert turn.answer and not turn.dropped and not turn.interrupted
    lines = [(line.role, line.text) for line in conversation.transcript]
    assert lines == [("user", turn.question), ("twin", turn.answer)]
    # every stage happened, in pipeline order
    t = turn.timings
    assert t.speech_end <= t.vad_end <= t.first_token <= t.first_sentence <= t.first_speech
    assert t.speech_end <= t.asr_done <= t.first_token  # recognition may finish before the VAD is sure
    assert t.first_speech <= t.first_frame <= t.done
    # the answer's frames carry its sound: one frame per 1/25 s of speech, the mouth opening with the sound
    answer = [f for f in frames if f.turn == 1]
    assert len(answer) == turn.answer_frames > 25
    sound = np.concatenate([f.audio for f in answer])
    assert len(sound) == pytest.approx(len(answer) * 22050 / 25, abs=2)
    assert float(np.abs(sound).max()) > 0.1
    loud = loudness_envelope(sound, 22050, len(answer), 25)
    openings = [fl.detect_faces(f.image)[0].mouth_opening() for f in answer]
    assert np.corrcoef(openings, loud)[0, 1] > 0.5
    # while listening the mouth stays closed
    idle = [f for f in frames if f.kind == "idle"][:50:10]
    closed = fl.detect_faces(conversation.canvas)[0].mouth_opening()
    assert all(abs(fl.detect_faces(f.image)[0].mouth_opening() - closed) < 0.05 for f in idle)
    assert all(np.abs(f.audio).max() == 0 for f in frames if f.kind == "idle")
    # frames came out in order, one index after the other
    assert [f.index for f in frames] == list(range(frames[0].index, frames[0].index + len(frames)))


@pytest.mark.slow
def test_barge_in_stops_the_twin_and_answers_the_new_question(talk, question):
    conversation, frames = talk
    wait_for(lambda: finished(conversation, len(conversation.turns)), what="the earlier turn to end")
    conversation.ask("Tell me a long story about a dragon who lives by the sea and learns to sing.")
    number = len(conversation.turns) + 1
    wait_for(lambda: any(f.turn == number for f in frames), what="the twin to start speaking")
    audio, rate, _ = question
    feed(conversation, audio, rate)  # the user speaks over the twin
    wait_for(lambda: finished(conversation, number + 1), what="the new question's answer")
    cut, new = conversation.turns[number - 1], conversation.turns[number]
    assert cut.interrupted and "capital of france" in new.question.lower() and new.answer
    assert any(line.turn == number and line.interrupted for line in conversation.transcript)
    # once the stream went quiet after the barge-in, the interrupted answer never came back
    kinds = [(f.kind, f.turn) for f in frames]
    last_cut = max(i for i, (_, turn) in enumerate(kinds) if turn == number)
    first_new = min(i for i, (_, turn) in enumerate(kinds) if turn == number + 1)
    assert last_cut < first_new
    assert cut.answer_frames < 25 * 12  # it was stopped well before a long story ends


@pytest.mark.slow
def test_the_conversation_is_recorded_and_its_transcript_saved(talk):
    from pipelines.core.media import probe_video

    conversation, _ = talk
    wait_for(lambda: finished(conversation, len(conversation.turns)), what="the earlier turn to end")
    path = conversation.start_recording()
    conversation.ask("Hello! How are you?")
    number = len(conversation.turns) + 1
    wait_for(lambda: finished(conversation, number), what="the answer")
    recorded = conversation.stop_recording()
    assert recorded == path and recorded.parent.name == "twin"  # listed with the twin videos
    info = probe_video(recorded)
    assert (info.video_codec, info.pixel_format, info.audio_codec) == ("h264", "yuv420p", "aac")
    assert info.frames > 25 and abs(info.audio_seconds - info.video_seconds) < 0.1
    assert info.tags["title"] == "AI-generated digital twin conversation"
    assert json.loads(info.tags["comment"])["ai_generated"] is True
    params = json.loads(recorded.with_name(recorded.name + ".json").read_text())
    assert params["turns"][-1]["question"] == "Hello! How are you?"
    from pipelines.provenance import check_file

    marks = check_file(recorded)  # marked and signed as a twin video is
    # (the sound is marked too, but a short answer - under about 2 s of speech - is too short to read back)
    assert marks.c2pa == "valid" and marks.watermark and marks.watermark_in[0] == "frames"
    assert marks.payload["output_id"] == params["output_id"] == marks.credentials.generation["output_id"]
    assert marks.payload["output_id"] == conversation.output_id  # the frames came marked from the stage
    saved = conversation.save_transcript()
    text = saved.read_text(encoding="utf-8")
    assert "You: What is the capital of France?" in text and "Twin:" in text and "(interrupted)" in text
    assert "vad_end" in saved.with_name(saved.name + ".json").read_text()


def test_a_recording_marks_its_frames_and_its_sound(question, tmp_path):
    from PIL import Image

    from pipelines.chat.media import AvFrame, ConversationRecorder
    from pipelines.provenance import check_file
    from pipelines.voice.audio_dsp import resample

    from pipelines.provenance import video_frame_marker

    audio, rate, _ = question
    speech = np.tile(resample(audio, rate, 22050), 2)  # about 5 s: long enough to read the sound's mark back
    mark, output_id = video_frame_marker(True)  # as the conversation marks every frame it shows
    picture = mark(np.asarray(Image.open(PHOTO).convert("RGB").resize((256, 256))))
    per_frame = 22050 // 25
    recorder = ConversationRecorder(tmp_path / "talk.mp4", 256, 256, 25, 22050, metadata={"title": "test"},
                                    output_id=output_id)
    for i in range(len(speech) // per_frame):
        recorder(AvFrame(i, picture, speech[i * per_frame:(i + 1) * per_frame], "answer", 1))
    path = recorder.finish({"engine": "classic"})
    report = check_file(path)
    assert report.c2pa == "valid" and report.watermark_in == ("frames", "audio")
    assert report.payload["output_id"] == recorder.output_id == report.credentials.generation["output_id"]
    plain = ConversationRecorder(tmp_path / "plain.mp4", 256, 256, 25, 22050, metadata={})
    for i in range(50):
        plain(AvFrame(i, picture, speech[i * per_frame:(i + 1) * per_frame], "answer", 1))
    assert (check_file(plain.finish()).c2pa, plain.output_id) == ("absent", None)


# ---------------------------------------------------------------- bad input


@pytest.mark.slow
def test_silence_noise_and_speaking_while_loading_get_clear_messages(runtime, question):
    conversation = new_conversation(runtime)
    audio, rate, _ = question
    feed(conversation, audio[: rate // 2], rate)  # before start(): the twin is loading
    assert "still getting ready" in conversation.notices[-1].en and "准备" in conversation.notices[-1].zh
    conversation.start()
    try:
        assert conversation.hear(np.zeros(rate * 2, np.float32), rate) is False  # push-to-talk of silence
        assert "heard nothing" in conversation.notices[-1].en
        noise = np.random.default_rng(1).normal(0, 0.05, rate * 3).astype(np.float32)
        feed(conversation, noise, rate)
        assert conversation.turns == [] and conversation.status == "listening"
        conversation.ask("   ")  # an empty typed question is no question
        assert conversation.turns == []
    finally:
        conversation.close()
    assert conversation.alive_threads() == []


@pytest.mark.slow
def test_a_monologue_over_the_cap_is_cut_with_a_message(runtime, question):
    from pipelines.chat.vad import VadConfig

    audio, rate, _ = question
    speech = audio[rate // 2: -rate]
    monologue = np.concatenate([np.concatenate([speech, np.zeros(rate // 10)])] * 3 + [np.zeros(rate)])
    conversation = new_conversation(runtime, vad=VadConfig(max_utterance=3.0)).start()
    try:
        feed(conversation, monologue, rate)
        wait_for(lambda: conversation.turns and finished(conversation, 1), what="the cut question's answer")
        assert any("more than 3 seconds" in n.en for n in conversation.notices)
        assert len(conversation.turns) == 1 and "capital" in conversation.turns[0].question.lower()
    finally:
        conversation.close()


def test_a_profile_whose_photo_was_deleted_and_a_photo_without_a_face_are_refused(runtime, tmp_path):
    from PIL import Image

    from pipelines.chat import ChatTwin
    from pipelines.core.errors import UserError
    from pipelines.twin import profiles

    profile = profiles.save_profile("Gone", photo=str(PHOTO), voice="piper-joe-en", runtime=runtime)
    profile.photo.unlink()
    with pytest.raises(UserError) as refused:
        ChatTwin.from_profile("Gone", runtime)
    assert "was deleted" in refused.value.message and "已被删除" in refused.value.zh
    blank = tmp_path / "wall.png"
    Image.new("RGB", (400, 400), (200, 190, 180)).save(blank)
    with pytest.raises(UserError) as no_face:
        new_conversation(runtime, photo=blank).start()
    assert "No face" in no_face.value.message


# ---------------------------------------------------------------- sessions


@pytest.mark.slow
def test_two_conversations_run_side_by_side_without_mixing(runtime, tmp_path):
    from PIL import Image

    mirrored = tmp_path / "mirrored.png"
    Image.open(PHOTO).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mirrored)
    before = set(threading.enumerate())
    first, second = new_conversation(runtime).start(), new_conversation(runtime, photo=mirrored).start()
    frames = {1: [], 2: []}
    first.add_sink(frames[1].append)
    second.add_sink(frames[2].append)
    try:
        first.ask("What is the capital of Italy?")
        second.ask("How many legs does a spider have?")
        wait_for(lambda: finished(first, 1) and finished(second, 1), what="both answers")
        assert [t.question for t in first.turns] == ["What is the capital of Italy?"]
        assert [t.question for t in second.turns] == ["How many legs does a spider have?"]
        assert first.turns[0].answer != second.turns[0].answer
        # each conversation shows its own photo
        assert not np.array_equal(first.canvas, second.canvas)
        for number, conversation in ((1, first), (2, second)):
            other = second if conversation is first else first
            frame = frames[number][-1].image.astype(int)
            assert np.abs(frame - conversation.canvas).mean() < np.abs(frame - other.canvas).mean()
        first.close()
        assert first.alive_threads() == [] and all(t.is_alive() for t in second._threads)
        count = len(frames[2])
        wait_for(lambda: len(frames[2]) > count + 5, what="the other conversation to keep going")
    finally:
        first.close()
        second.close()
    leaked = [t for t in set(threading.enumerate()) - before if t.name.startswith("chat-")]
    assert leaked == []


# ---------------------------------------------------------------- from a terminal


@pytest.mark.slow
def test_the_command_answers_one_spoken_turn(question, tmp_path):
    from pipelines.core.media import probe_video

    _, _, wav = question
    out = tmp_path / "answer.mp4"
    proc = subprocess.run([sys.executable, "-m", "pipelines.twin_chat", "--photo", str(PHOTO), "--question-audio",
                           str(wav), "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "AIGC_OUTPUTS_DIR": str(tmp_path / "outputs")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "You:  What is the capital of France?" in proc.stdout and "Twin: " in proc.stdout
    timings = json.loads((tmp_path / "answer.timings.json").read_text())
    assert set(timings["timings_s"]) >= {"vad_end", "asr_done", "first_sentence", "first_speech", "first_frame"}
    info = probe_video(out)
    assert info.audio_codec == "aac" and info.frames == round(timings["answer_seconds"] * 25)
    bad = subprocess.run([sys.executable, "-m", "pipelines.twin_chat", "--photo", str(PHOTO), "--question-audio",
                          str(tmp_path / "missing.wav"), "--out", str(out)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "not found" in bad.stderr


# ---------------------------------------------------------------- the tab's handlers (no browser)


class FakeRequest:
    def __init__(self, session: str, lang: str = "en", username: str | None = None):
        self.headers = {"cookie": f"aigc-lang={lang}", "accept-language": "en-US" if lang == "en" else "zh-CN"}
        self.session_hash = session
        self.username = username


@pytest.fixture
def desk(runtime, tmp_path):
    import aigc_ui.app  # noqa: F401 - registers every tab's strings
    from aigc_ui.chat_tab import ChatDesk, ChatSeats
    from aigc_ui.common import StudioContext
    from pipelines.core.settings import AppConfig

    config = AppConfig(models_dir=tmp_path / "models", outputs_dir=tmp_path / "outputs")
    from dataclasses import replace

    return ChatDesk(StudioContext(config=config, runtime=replace(runtime, outputs_dir=config.outputs_dir)),
                    ChatSeats(limit=2))


def test_each_person_sees_and_loads_only_their_own_profiles(desk):
    from aigc_ui.chat_tab import load_chat_profile, on_open
    from pipelines.core.errors import UserError
    from pipelines.twin import profiles

    alice, bob = FakeRequest("alice-tab"), FakeRequest("bob-tab")
    profiles.save_profile("Astro", photo=str(PHOTO), voice="piper-joe-en", persona="a friendly astronaut",
                          runtime=desk.studio.runtime_for(alice))
    names = lambda dropdown: [c[0] if isinstance(c, tuple) else c for c in dropdown.choices]  # noqa: E731
    assert names(on_open(desk, "", alice)[0]) == ["Astro"] and names(on_open(desk, "", bob)[0]) == []
    # the default persona follows the page's language; one the person wrote stays
    assert on_open(desk, "a friendly digital twin", FakeRequest("carol-tab", "zh"))[2] == "一个友好的数字分身"
    assert on_open(desk, "a pirate", FakeRequest("carol-tab", "zh"))[2] == {"__type__": "update"}  # gr.skip()
    photo, voice, persona = load_chat_profile(desk, "Astro", alice)
    assert Path(photo).is_file() and voice == "piper-joe-en" and persona == "a friendly astronaut"
    with pytest.raises(UserError):  # friendly_errors shows it in the page; bob has no such profile
        load_chat_profile.__wrapped__(desk, "Astro", bob)


def test_seats_cap_the_room_and_a_second_tab_takes_over(desk, runtime):
    from aigc_ui.chat_tab import LiveChat
    from pipelines.chat.media import SegmentStream
    from pipelines.core.errors import UserError

    def live(session, browser):
        return LiveChat(new_conversation(runtime), SegmentStream(25, 22050), session, browser, "hands_free")

    seats = desk.seats
    a = live("tab-a", "browser-1")
    assert seats.reserve("tab-a", "browser-1") == []
    seats.settle("tab-a", a)
    b = live("tab-b", "browser-2")
    seats.reserve("tab-b", "browser-2")
    seats.settle("tab-b", b)
    with pytest.raises(UserError) as full:
        seats.reserve("tab-c", "browser-3")
    assert "All 2 conversation places" in full.value.message and "名额" in full.value.zh
    replaced = seats.reserve("tab-a2", "browser-1")  # a second tab of browser 1
    assert replaced == [a] and a.moved and seats.get("tab-a") is None
    assert seats.release("tab-b") is b and seats.count() == 1
    for each in (a, b):
        each.close()


@pytest.mark.slow
def test_the_tab_starts_streams_answers_typing_and_cleans_up_when_the_tab_closes(desk):
    from aigc_ui.chat_tab import ask_typed, close_session, converse, start_conversation, transcript_messages

    request = FakeRequest("browser-tab-1")
    live, status, _ = start_conversation(desk, str(PHOTO), "piper-joe-en", "a friendly astronaut", "en", "typing",
                                         False, "ok", "browser-1", None, request)
    assert "ready" in status and desk.seats.get("browser-tab-1") is live
    stream = converse(desk, live, request)
    path, _, _ = next(stream)
    assert Path(path).suffix == ".mp4" and Path(path).is_file()
    assert ask_typed(desk, QUESTION, live, request) == ""
    seen = []

    def answered() -> bool:
        turns = live.conversation.turns
        return bool(turns and turns[0].timings.done and turns[0].timings.first_sent)

    while not answered():  # until the answer is spoken and its first segment has gone out
        _, transcript, status = next(stream)  # each segment goes out with the transcript when it changed
        if isinstance(transcript, list):
            seen = transcript
    assert seen[0] == {"role": "user", "content": QUESTION} and seen[1]["role"] == "assistant"
    assert transcript_messages(live.conversation, "en")[1]["content"]
    close_session(desk, request)  # the browser tab closed
    assert live.conversation.closed and live.conversation.alive_threads() == []
    assert desk.seats.get("browser-tab-1") is None
    rest = list(stream)  # the stream ends by itself
    assert len(rest) == 1


def test_the_stream_out_knows_its_segments_and_uses_the_bundled_ffmpeg(tmp_path):
    """What LiveVideo tells Gradio about a segment, instead of running ffprobe, is what ffprobe says; the
    segments then go out through Gradio's streaming with the bundled ffmpeg first on the PATH, sound included."""
    import asyncio
    import shutil

    import gradio as gr

    from aigc_ui.live_video import LiveVideo
    from pipelines.chat.media import AvFrame, SegmentStream
    from pipelines.core.media import bundled_ffmpeg_first_on_path, ffmpeg_exe

    bundled_ffmpeg_first_on_path()
    assert Path(shutil.which("ffmpeg")).resolve() == Path(ffmpeg_exe()).resolve()
    (tmp_path / "segments").mkdir()
    segments = SegmentStream(25, 22050, first_answer_frames=6, folder=tmp_path / "segments")
    image = np.random.default_rng(0).integers(0, 255, (128, 128, 3), np.uint8)
    tone = 0.2 * np.sin(np.arange(882) / 882 * 2 * np.pi * 10).astype(np.float32)
    kinds = ["idle"] * 25 + ["idle"] * 25 + ["idle"] * 10 + ["answer"] * 6 + ["answer"] * 25
    for k, kind in enumerate(kinds):  # idle (sound), idle (silent), idle + the answer's first frames, answer
        segments(AvFrame(k, image, tone if kind == "answer" else np.zeros(882, np.float32), kind,
                         1 if kind == "answer" else None))
    video = LiveVideo(streaming=True)
    assert video.get_block_name() == "video"  # the page draws it with gr.Video's own frontend
    sent = []

    async def send_all():
        for number in range(4):
            segment = segments.next(timeout=30)
            LiveVideo.expect(segment, segments.sample_rate)
            assert LiveVideo._expected[str(segment.path)] == gr.Video.probe_chunk(str(segment.path))
            chunk, _ = await video.stream_output(str(segment.path), "test-chat-stream", number == 0)
            assert str(segment.path) not in LiveVideo._expected  # taken by Gradio instead of probing
            sent.append((segment, chunk))
        video.end_stream_output("test-chat-stream")

    try:
        asyncio.run(send_all())
    finally:
        segments.close()
    assert [(s.frames, s.has_audio) for s, _ in sent] == [(25, True), (25, False), (16, True), (25, True)]
    for segment, chunk in sent:
        assert chunk["extension"] == ".ts" and chunk["data"][:1] == b"\x47"  # MPEG-TS
        assert abs(chunk["duration"] - segment.seconds) < 0.05
    answer = tmp_path / "answer.ts"
    answer.write_bytes(sent[2][1]["data"] + sent[3][1]["data"])
    decoded = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(answer), "-f", "s16le", "-ac", "1", "-"],
                             capture_output=True, check=True).stdout
    assert np.abs(np.frombuffer(decoded, np.int16)).max() > 3000  # the answer's sound went out with its frames


# ---------------------------------------------------------------- a real browser


CHROMIUM = "/usr/bin/chromium"


def conversation_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in ("chat-stage", "chat-turns", "chat-voice", "chat-segments")]


@pytest.mark.slow
@pytest.mark.browser
def test_a_browser_asks_through_its_microphone_and_the_video_plays(studio, question, tmp_path):
    """Chromium with a fake microphone playing Piper's question: push to talk, the question appears in
    the transcript and the twin's video element receives frames."""
    from playwright.sync_api import sync_playwright

    from dataclasses import replace

    from pipelines.core import owners
    from pipelines.core.media import write_wav
    from pipelines.core.runtime import Runtime
    from pipelines.twin import profiles
    from pipelines.voice.audio_dsp import resample

    assert shutil.which(CHROMIUM), "Debian's chromium is required"
    before = set(conversation_threads())  # other tests' conversations
    _, url, config = studio
    # the profile belongs to whoever holds this key; the browser sends it with every request
    key = owners.new_key()
    mine = owners.owner_dir(config.outputs_dir, owners.owner_id(owners.load_secret(config.outputs_dir), "k", key))
    profiles.save_profile("Astro", photo=str(PHOTO), voice="piper-joe-en", persona="a friendly astronaut",
                          runtime=replace(Runtime.from_config(config), outputs_dir=mine))
    audio, rate, _ = question
    microphone = write_wav(tmp_path / "microphone.wav", np.concatenate(
        [np.zeros(48000), resample(audio, rate, 48000), np.zeros(48000 * 30)]), 48000)
    args = ["--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone}%noloop", "--autoplay-policy=no-user-gesture-required"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        page = browser.new_page(locale="en-US", viewport={"width": 1280, "height": 1100},
                                extra_http_headers={"X-Profile-Key": key})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "?lang=en", wait_until="load")
        page.get_by_role("tab", name="Talk to my twin").click()
        page.get_by_label("Saved profile").click()
        page.get_by_role("option", name="Astro").click()
        page.wait_for_function("() => [...document.querySelectorAll('#chat-push, textarea')].length > 0 && "
                               "[...document.querySelectorAll('textarea')].some(t => t.value.includes('astronaut'))",
                               timeout=60000)
        page.get_by_label("Push to talk (record, speak, stop)").check()
        page.locator("#chat-start").click()
        page.wait_for_function("() => document.querySelector('#chat-status').innerText.includes('ready')",
                               timeout=240000)
        page.locator("#chat-push button").filter(has_text="Record").first.click()
        # the recorder's clock passes the question (1 s of silence, then about 2 s of speech)
        page.wait_for_function("() => /0:0[4-9]/.test(document.querySelector('#chat-push').innerText)", timeout=60000)
        page.locator("#chat-push button").filter(has_text="Stop").first.click()
        page.wait_for_function("() => document.querySelector('#chat-transcript').innerText.toLowerCase()"
                               ".includes('capital of france')", timeout=240000)
        page.wait_for_function("() => { const v = document.querySelector('#chat-video video');"
                               " return v && v.getVideoPlaybackQuality().totalVideoFrames > 25; }", timeout=120000)
        page.wait_for_function("() => document.querySelector('#chat-transcript').innerText.replace('Transcript', '')"
                               ".replace(/what is the capital of france\\?/i, '').trim().length > 3",
                               timeout=240000)  # the twin's answer is in the transcript too
        (ROOT / "tests" / "artifacts").mkdir(exist_ok=True)
        page.screenshot(path=str(ROOT / "tests" / "artifacts" / "chat-browser.png"), full_page=True)
        assert errors == []
        browser.close()
    # the tab is gone: its conversation's threads stop (Gradio's unload), none is left behind
    wait_for(lambda: not set(conversation_threads()) - before, timeout=120,
             what="the closed tab's conversation to stop")


@pytest.mark.slow
@pytest.mark.browser
def test_a_denied_microphone_is_explained_and_typing_still_works(studio):
    """The browser refuses the microphone: Start says how to allow it, and a typed question is answered."""
    from playwright.sync_api import sync_playwright

    _, url, _ = studio
    before = set(conversation_threads())  # other tests' conversations
    args = ["--no-sandbox", "--disable-gpu", "--use-fake-device-for-media-stream", "--deny-permission-prompts"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        context = browser.new_context(locale="en-US", permissions=[])
        page = context.new_page()
        page.goto(url + "?lang=en", wait_until="load")
        page.get_by_role("tab", name="Talk to my twin").click()
        page.locator("#chat-start").wait_for(timeout=60000)
        page.locator("input[type=file]").first.set_input_files(str(PHOTO))  # the tab's own photo field
        page.wait_for_function("() => document.querySelector('img[src*=\"astronaut\"]') !== null", timeout=60000)
        page.locator("#chat-start").click()
        page.get_by_text("The browser blocked the microphone").first.wait_for(timeout=240000)
        page.wait_for_function("() => document.querySelector('#chat-status').innerText.includes('ready')",
                               timeout=240000)
        page.locator("#chat-question textarea").fill(QUESTION)
        page.locator("#chat-question textarea").press("Enter")
        page.wait_for_function("() => document.querySelector('#chat-transcript').innerText.toLowerCase()"
                               ".includes('capital of france')", timeout=240000)
        context.close()
        browser.close()
    wait_for(lambda: not set(conversation_threads()) - before, timeout=120,
             what="the closed tab's conversation to stop")
