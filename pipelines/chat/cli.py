"""Talk to a twin from a terminal: one question (a recording or a text) -> the twin's spoken, animated
answer as an MP4, the transcript printed, and every stage's timing as JSON next to the video.

    python -m pipelines.twin_chat --profile Me --question "What is the capital of France?" --out answer.mp4
    python -m pipelines.twin_chat --photo me.jpg --question-audio question.wav --out answer.mp4

It runs the same live pipeline as the studio's "Talk to my twin" tab (pipelines.chat.Conversation),
records the answer's frames and sound, and writes ``answer.timings.json`` (seconds from the end of the
question) beside ``answer.mp4``. Running it declares that you have the right to animate the face; the
video carries a visible "AI-generated" label.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..core.errors import ModelLoadError, UserError
from ..core.runtime import Runtime
from .conversation import ChatConfig, ChatTwin, Conversation

ANSWER_TIMEOUT = 300.0  # seconds: even a slow machine answers one question within this


def answer_one(twin: ChatTwin, out: Path, *, question: str | None = None, question_audio: str | None = None,
               config: ChatConfig | None = None, runtime: Runtime | None = None) -> dict:
    """Ask one question (text, or a recording), record the answer to ``out``; returns a summary dict."""
    from ..core.media import load_audio

    if not question and not question_audio:
        raise UserError("Give a question: --question \"...\" or --question-audio FILE.",
                        zh="请给出问题：--question \"...\" 或 --question-audio 文件。")
    if question_audio:
        samples, rate = load_audio(question_audio)  # a clear error for a missing or unreadable file
    conversation = Conversation(twin, config or ChatConfig(), runtime).start()
    try:
        conversation.start_recording(out, accept=lambda frame: frame.kind == "answer" and frame.turn == 1)
        if question_audio:
            if not conversation.hear(samples, rate):  # the whole recording is the question, pauses included
                raise UserError(f"No speech was heard in {Path(question_audio).name}.",
                                zh=f"在 {Path(question_audio).name} 中没有听到说话声。")
        else:
            conversation.ask(question)
        turn = _wait_for_turn(conversation)
        recorded = conversation.stop_recording()
        notices = [n.en for n in conversation.notices]
        if turn is None or turn.dropped or not turn.answer:
            why = "; ".join(notices) or "no question was heard"
            raise UserError(f"The twin did not answer: {why}.", zh=f"数字分身没有回答：{why}。")
        timings = turn.timings.seconds()
        summary = {"question": turn.question, "answer": turn.answer, "video": str(recorded),
                   "answer_seconds": round(turn.answer_seconds, 2), "timings_s": timings,
                   "asr_model": conversation.asr_model, "notices": notices}
        timings_path = out.with_name(out.stem + ".timings.json")
        timings_path.write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
        summary["timings_file"] = str(timings_path)
        return summary
    finally:
        conversation.close()


def _wait_for_turn(conversation: Conversation):
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while time.monotonic() < deadline:
        turns = conversation.turns
        if turns and (turns[0].dropped or turns[0].timings.done is not None):
            return turns[0]
        time.sleep(0.05)
    return conversation.turns[0] if conversation.turns else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.twin_chat",
        description="Ask your digital twin one question and get its answer as a video. Running it declares that "
                    "you have the right to animate this face; the video carries a visible 'AI-generated' label.")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--profile", help="a saved twin profile (photo, voice, persona)")
    who.add_argument("--photo", help="a photo with a face")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--question", help="the question, typed")
    what.add_argument("--question-audio", help="the question, spoken (a WAV/MP3/... recording)")
    parser.add_argument("--out", required=True, help="where to write the answer's MP4")
    parser.add_argument("--voice", default=None, help="voice name (default: the profile's, else by language)")
    parser.add_argument("--persona", default=None, help="who the twin is (default: the profile's)")
    parser.add_argument("--language", default="en", help="the question's language: en, zh, ... or auto")
    parser.add_argument("--asr-model", default=None, help="speech recognition model (default: by language)")
    parser.add_argument("--text-model", default=None, help="text model (default: the best offline one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    runtime = Runtime.default()
    try:
        twin = ChatTwin.from_profile(args.profile, runtime) if args.profile else ChatTwin(args.photo)
        if args.voice:
            twin.voice = args.voice
        if args.persona is not None:
            twin.persona = args.persona
        config = ChatConfig(language=args.language, asr_model=args.asr_model, text_model=args.text_model,
                            seed=args.seed)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        summary = answer_one(twin, out, question=args.question, question_audio=args.question_audio, config=config,
                             runtime=runtime)
    except (UserError, ModelLoadError) as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    for note in summary["notices"]:
        print(f"note: {note}", file=sys.stderr)
    print(f"You:  {summary['question']}")
    print(f"Twin: {summary['answer']}")
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in summary["timings_s"].items() if v is not None)
    print(f"{summary['video']} ({summary['answer_seconds']:.1f} s of answer); from the end of the question: {stages}")
    print(f"timings: {summary['timings_file']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
