"""Voice synthesis benchmark: real-time factor (synthesis time / audio duration) of each offline
engine on ten sentences, and the pipeline's speed against calling Piper directly in the same run.

    python -m bench.bench_voice      # prints the JSON

Target: the pipeline (planning, numbers, loudness, pauses, file writing, timings) runs Piper at
>= 0.95 of the speed of Piper called directly on the same text. Times are the best of a few
alternating runs, both with the voice already loaded (machines are noisy).
"""
from __future__ import annotations

import json
import os
import tempfile
import time
import wave
from pathlib import Path

ENGLISH = [
    "The quick brown fox jumps over the lazy dog.",
    "Digital twins speak with the voice and the face of their owner.",
    "Please call me back before five o'clock this afternoon.",
    "A photo, a script and a voice become a talking head video.",
    "The weather today is sunny with a light breeze from the west.",
    "She sells sea shells by the sea shore every summer.",
    "Our meeting has been moved to the large room on the second floor.",
    "Reading aloud helps children learn new words quickly.",
    "The train to the airport leaves every fifteen minutes.",
    "Thank you for listening, and have a wonderful day.",
]
CHINESE = [
    "今天天气很好，我们去公园散步吧。", "数字分身可以用你的声音说话。", "请在下午五点以前给我回电话。",
    "一张照片、一段脚本和一个声音就能生成视频。", "火车每十五分钟开往机场一次。", "读书可以帮助孩子学习新词。",
    "会议改到二楼的大会议室。", "谢谢你的收听，祝你愉快。", "这个城市的夜景非常漂亮。", "我们明天早上八点出发。",
]
TARGET_RATIO = 0.95
REPEATS = 2
ROUNDS = 4


def _runtime(root: Path):
    from pipelines.core.runtime import Runtime
    from pipelines.core.settings import AppConfig

    config = AppConfig(models_dir=root / "models", outputs_dir=root / "outputs")
    config.ensure_dirs()
    return Runtime.from_config(config)


def _rtf(runtime, voice: str, sentences: list[str]) -> dict:
    from pipelines.voice.synthesis import synthesize_speech

    started = time.perf_counter()
    synthesize_speech(sentences[0], voice=voice, runtime=runtime, save=False)  # loads the engine
    load_and_first = time.perf_counter() - started
    best, duration = float("inf"), 0.0
    for _ in range(REPEATS):
        started = time.perf_counter()
        result = synthesize_speech(" ".join(sentences), voice=voice, runtime=runtime, save=False, sentence_pause=0.0)
        best = min(best, time.perf_counter() - started)
        duration = result.duration
    return {"voice": voice, "audio_s": round(duration, 2), "synthesis_s": round(best, 3),
            "rtf": round(best / duration, 4), "first_call_incl_load_s": round(load_and_first, 3)}


def run() -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from piper import PiperVoice

    from pipelines.voice.engines import bundled_piper_voice
    from pipelines.voice.synthesis import synthesize_speech

    with tempfile.TemporaryDirectory() as tmp:
        runtime = _runtime(Path(tmp))
        engines = [_rtf(runtime, "piper-joe-en", ENGLISH), _rtf(runtime, "espeak-ng:en-us", ENGLISH),
                   _rtf(runtime, "espeak-ng:cmn", CHINESE)]

        # Piper directly (as its README shows) against the whole pipeline, same sentences, same process.
        # Each sentence is timed both ways back to back and the best of ROUNDS kept, so load from
        # other processes hits both sides alike.
        direct_voice = PiperVoice.load(bundled_piper_voice())
        list(direct_voice.synthesize(ENGLISH[0]))  # warm up both sides
        synthesize_speech(ENGLISH[0], voice="piper-joe-en", runtime=runtime, save=True)
        direct = [float("inf")] * len(ENGLISH)
        pipeline = [float("inf")] * len(ENGLISH)
        direct_audio = pipeline_audio = 0.0
        words = 0
        for _ in range(ROUNDS):
            direct_audio = pipeline_audio = 0.0
            for i, sentence in enumerate(ENGLISH):
                started = time.perf_counter()
                with wave.open(str(Path(tmp) / "direct.wav"), "wb") as wav_file:  # as Piper's README does
                    direct_voice.synthesize_wav(sentence, wav_file)
                direct[i] = min(direct[i], time.perf_counter() - started)
                with wave.open(str(Path(tmp) / "direct.wav"), "rb") as wav_file:
                    samples = wav_file.getnframes()
                started = time.perf_counter()
                result = synthesize_speech(sentence, voice="piper-joe-en", runtime=runtime, save=True)
                pipeline[i] = min(pipeline[i], time.perf_counter() - started)
                direct_audio += samples / direct_voice.config.sample_rate
                pipeline_audio += result.duration
                words += sum(t.kind == "word" for t in result.timings)
        direct_best, pipeline_best = sum(direct), sum(pipeline)
        ratio = direct_best / pipeline_best  # > 1: the pipeline is faster; 1: same speed
    return {
        "benchmark": "voice_synthesis",
        "sentences": len(ENGLISH),
        "engines": engines,
        "piper_direct_s": round(direct_best, 3),
        "piper_direct_audio_s": round(direct_audio, 2),
        "pipeline_s": round(pipeline_best, 3),
        "pipeline_audio_s": round(pipeline_audio, 2),
        "pipeline_word_timings": words // ROUNDS,
        "ratio": round(ratio, 3),
        "ratio_meaning": "Piper direct (synthesize_wav to a wav, as its README) time / pipeline time, "
                         "sentence by sentence, best of rounds; the pipeline also plans the text, spells "
                         "numbers, normalises loudness and reports word timings",
        "target": TARGET_RATIO,
        "passed": ratio >= TARGET_RATIO,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2, ensure_ascii=False))
