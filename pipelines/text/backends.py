"""Two ways to run a causal language model behind one small interface, for text_generation.py.

- ``LlamaCppLLM``: a GGUF file on llama-cpp-python (the fast CPU path; GPU layers when the build has them).
- ``TransformersLLM``: ``AutoModelForCausalLM`` from a hub id or a local folder (on the GPU when there is one).

Both give: ``chat`` (does the model carry a chat template), ``context_length``, token counting and
left-trimming, and ``stream(prompt, sampling, stop)`` which yields ``(text, new_tokens)`` pairs
as tokens come (a piece may hold several tokens: a word, or a character made of several bytes).
A prompt is a list of chat messages for chat models, a plain string for base models.

Neither object is thread-safe underneath, so each holds a lock for the whole of one generation.
This module does not choose models, check user input or know about the UI: text_generation.py does.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Union

from ..core.jobs import StopToken

Prompt = Union[str, list[dict]]  # plain text (base models) or chat messages (instruct models)


@dataclass(frozen=True)
class Sampling:
    """Decoding settings shared by both backends. temperature 0 = greedy; top_k 0 = off."""

    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 40
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    seed: int = 0


def cpu_threads() -> int:
    """Cores this process may use (containers often allow fewer than the machine has)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def banned_ngram_tokens(tokens: list[int], n: int) -> set[int]:
    """Tokens that would repeat an n-gram already present in ``tokens`` (like transformers'
    no_repeat_ngram_size), so both backends honour the same setting."""
    if n <= 0 or len(tokens) < n:
        return set()
    prefix = tuple(tokens[len(tokens) - n + 1:]) if n > 1 else ()
    return {tokens[i + n - 1] for i in range(len(tokens) - n + 1) if tuple(tokens[i:i + n - 1]) == prefix}


# ------------------------------------------------------------------------------------ llama.cpp
class LlamaCppLLM:
    """A GGUF model on llama.cpp, kept in the model cache; ``close()`` frees its memory."""

    backend = "llama_cpp"

    def __init__(self, path: Path, *, chat: bool = True, n_ctx: int = 4096, n_threads: int | None = None,
                 gpu: bool = False):
        import llama_cpp

        self.path = Path(path)
        self.size_bytes = self.path.stat().st_size
        self.lock = threading.Lock()
        gpu_layers = -1 if gpu and llama_cpp.llama_supports_gpu_offload() else 0
        self.llm = llama_cpp.Llama(model_path=str(self.path), n_ctx=n_ctx, n_threads=n_threads or cpu_threads(),
                                   n_gpu_layers=gpu_layers, verbose=False)
        trained = int(self.llm.metadata.get(f"{self.llm.metadata.get('general.architecture', '')}.context_length",
                                            n_ctx) or n_ctx)
        if trained < n_ctx:  # never run past what the model was trained on
            self.llm.close()
            self.llm = llama_cpp.Llama(model_path=str(self.path), n_ctx=trained,
                                       n_threads=n_threads or cpu_threads(), n_gpu_layers=gpu_layers, verbose=False)
        self.context_length = self.llm.n_ctx()
        # The GGUF carries its chat template; without one, fall back to plain continuation.
        self.chat = chat and "tokenizer.chat_template" in self.llm.metadata

    def tokens(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def count_tokens(self, text: str) -> int:
        return len(self.tokens(text))

    def trim_left(self, text: str, max_tokens: int) -> str:
        kept = self.tokens(text)[-max_tokens:] if max_tokens > 0 else []
        return self.llm.detokenize(kept).decode("utf-8", errors="ignore").lstrip()

    def prompt_tokens(self, prompt: Prompt) -> int:
        if isinstance(prompt, str):
            return self.count_tokens(prompt) + 1
        # The template adds a few tokens per message (role markers); 8 is generous for common templates.
        return sum(self.count_tokens(m["content"]) + 8 for m in prompt) + 8

    def stream(self, prompt: Prompt, sampling: Sampling, stop: StopToken | None = None,
               keep_cache: bool = False) -> Iterator[tuple[str, int]]:
        kwargs = dict(max_tokens=sampling.max_new_tokens, temperature=max(0.0, sampling.temperature),
                      top_p=sampling.top_p, top_k=sampling.top_k, repeat_penalty=sampling.repetition_penalty,
                      seed=sampling.seed, stream=True)
        if sampling.no_repeat_ngram_size > 0:
            kwargs["logits_processor"] = self._no_repeat_processor(sampling.no_repeat_ngram_size)
        with self.lock:
            # Start from an empty KV cache: reusing a cached prompt prefix changes the logits slightly,
            # and then the same seed would not give the same text. A conversation asks to keep it
            # (``keep_cache``): each turn's prompt starts with the last one, so only the new words are read.
            if not keep_cache:
                self.llm.reset()
            if isinstance(prompt, str):
                chunks = self.llm.create_completion(prompt, **kwargs)
            else:
                chunks = self.llm.create_chat_completion(messages=prompt, **kwargs)
            try:
                for chunk in chunks:
                    choice = chunk["choices"][0]
                    piece = choice["delta"].get("content") if "delta" in choice else choice.get("text")
                    if piece:  # one chunk per token (the first, role-only, chunk and the last carry none)
                        yield piece, 1
                    if stop is not None and stop.stopped:
                        break
            finally:
                chunks.close()  # ends llama.cpp's loop now, also when the caller stops reading

    def _no_repeat_processor(self, n: int):
        import numpy as np
        from llama_cpp import LogitsProcessorList

        start: list[int] = []  # prompt length, learnt at the first step

        def ban_repeats(input_ids, scores):
            # Only generated tokens count: chat templates repeat role markers, which must stay allowed.
            if not start:
                start.append(len(input_ids))
            banned = banned_ngram_tokens([int(t) for t in input_ids[start[0]:]], n)
            if banned:
                scores = np.array(scores, copy=True)
                scores[list(banned)] = -np.inf
            return scores

        return LogitsProcessorList([ban_repeats])

    def close(self) -> None:
        with self.lock:
            if self.llm is not None:
                self.llm.close()
                self.llm = None


# ------------------------------------------------------------------------------------ transformers
class TransformersLLM:
    """AutoModelForCausalLM + AutoTokenizer; streams through TextIteratorStreamer."""

    backend = "transformers"

    def __init__(self, source: str, *, device: str = "cpu", dtype=None, local_files_only: bool = False):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.source = source
        self.device = device
        self.lock = threading.Lock()
        self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
        # safetensors only: never unpickle downloaded weights.
        self.model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, local_files_only=local_files_only,
                                                          use_safetensors=True).to(device).eval()
        self.chat = bool(getattr(self.tokenizer, "chat_template", None))
        config = self.model.config
        self.context_length = int(getattr(config, "max_position_embeddings", None)
                                  or getattr(config, "n_positions", None) or 2048)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def trim_left(self, text: str, max_tokens: int) -> str:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        kept = ids[-max_tokens:] if max_tokens > 0 else []
        return self.tokenizer.decode(kept, skip_special_tokens=True).lstrip()

    def _encode(self, prompt: Prompt):
        if isinstance(prompt, str):
            encoded = self.tokenizer(prompt, return_tensors="pt")
        else:
            encoded = self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_dict=True,
                                                         return_tensors="pt")
        return encoded["input_ids"], encoded["attention_mask"]

    def prompt_tokens(self, prompt: Prompt) -> int:
        return int(self._encode(prompt)[0].shape[-1])

    def stream(self, prompt: Prompt, sampling: Sampling,
               stop: StopToken | None = None,
               keep_cache: bool = False) -> Iterator[tuple[str, int]]:
        # keep_cache: no prompt cache is kept between calls here; every call reads its whole prompt
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        abandoned = threading.Event()  # the caller stopped reading: end generate() too

        class StopWhenAsked(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                halt = abandoned.is_set() or (stop is not None and stop.stopped)
                return torch.full((input_ids.shape[0],), halt, dtype=torch.bool, device=input_ids.device)

        input_ids, attention_mask = self._encode(prompt)
        class CountingStreamer(TextIteratorStreamer):
            """Text comes out word by word; count the tokens behind it too."""

            tokens = 0

            def put(self, value):
                if not (self.skip_prompt and self.next_tokens_are_prompt):
                    self.tokens += int(value.numel())
                super().put(value)

        streamer = CountingStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        options = dict(input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device),
                       max_new_tokens=sampling.max_new_tokens, streamer=streamer,
                       stopping_criteria=StoppingCriteriaList([StopWhenAsked()]),
                       repetition_penalty=sampling.repetition_penalty,
                       no_repeat_ngram_size=sampling.no_repeat_ngram_size,
                       pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None
                       else self.tokenizer.eos_token_id)
        if sampling.temperature > 0:
            options.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p,
                           top_k=sampling.top_k)
        else:  # greedy: the sampling knobs mean nothing (and transformers warns about them)
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        errors: list[BaseException] = []

        def generate():
            try:
                torch.manual_seed(sampling.seed)  # same seed + settings -> same text
                with torch.inference_mode():
                    self.model.generate(**options)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(exc)
                streamer.end()

        with self.lock:
            worker = threading.Thread(target=generate, name="text-generation", daemon=True)
            worker.start()
            counted = 0
            try:
                for piece in streamer:
                    tokens, counted = streamer.tokens - counted, streamer.tokens
                    yield piece, tokens
            finally:
                abandoned.set()
                worker.join()
            if streamer.tokens > counted:
                yield "", streamer.tokens - counted
        if errors:
            raise errors[0]

    def close(self) -> None:
        self.model = None
        self.tokenizer = None
