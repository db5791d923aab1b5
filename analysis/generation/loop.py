"""Token-by-token generation with the key/value cache, then one forward pass for attention.

:func:`generate_steps` runs the decoder one token at a time, reusing its key/value cache,
and records at each step the chosen token, its probability and rank, the top candidates and
the logit lens (:mod:`analysis.generation.lens`); it calls ``on_token(step)`` as each token
is ready and stops at its next step once ``cancelled()`` returns True, keeping what it has.
Greedy decoding (``sample=False``) picks the argmax of the logits, exactly as
``model.generate(do_sample=False)`` does, token for token. Sampling draws from
``softmax(logits / temperature)`` restricted to the ``top_k`` most likely tokens and the
smallest set whose probability reaches ``top_p`` (the order and meaning of transformers'
``TopKLogitsWarper`` and ``TopPLogitsWarper``), with a ``torch.Generator`` seeded by
``seed``, so the same seed gives the same text.

:func:`generation_run` then runs prompt + generation through the model once
(:func:`analysis.attention.extract.extract_ids`), which gives an ordinary
:class:`analysis.run.AttentionRun` whose ``prompt_length`` and ``generation`` are set, so
every view, graph and export works on it. :func:`generate` does both.

Cost (``benchmarks/bench_generate.py``, the chat model, 32 tokens, one torch thread on this
2-core machine): 1.14x ``model.generate`` with the same settings, greedy or sampled; without
the lens 1.02x. The logit lens is most of the difference (a 576 x 49,152 unembedding read
for 29 layers per token), computed exactly with a bfloat16 screen, in chunks of steps, on a
worker thread.

Encoder-decoder models (T5, BART) do not generate here yet: only decoders with a
language-model head (``facts.can_generate``).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache

import torch

from analysis.attention.extract import InputError, extract_ids
from analysis.generation.lens import logit_lens_for
from analysis.generation.records import Generation, GenerationStep
from analysis.models.loading import LoadedModel
from analysis.run import AttentionRun

__all__ = [
    "GenerationError",
    "build_prompt",
    "end_of_turn_ids",
    "generate",
    "generate_steps",
    "generation_run",
]

# Tokens that end a chat turn in common templates (used when the tokenizer has them).
_END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>")


class GenerationError(InputError):
    """A generation cannot run (model, prompt or setting); the message says why in one line."""


@lru_cache(maxsize=64)
def _forward_parameters(model_class: type) -> frozenset[str]:
    return frozenset(inspect.signature(model_class.forward).parameters)


def _generator_model(loaded: LoadedModel):
    """The model with the language-model head, or GenerationError saying why there is none."""
    facts = loaded.facts
    lm = getattr(loaded, "lm_model", None)
    if lm is not None and facts.can_generate:
        return lm
    if facts.architecture == "encoder":
        raise GenerationError(
            f"{facts.name} is an encoder: it reads text but cannot generate it; "
            "choose a decoder such as the embedded chat model (smollm2)"
        )
    if facts.architecture == "encoder-decoder":
        raise GenerationError(
            f"{facts.name} is an encoder-decoder model; generation is implemented for "
            "decoders only so far"
        )
    raise GenerationError(f"{facts.name} has no language-model head, so it cannot generate text")


def build_prompt(loaded: LoadedModel, prompt: str, chat: bool | None = None):
    """``(ids, prompt_text, chat)``: what the model reads for ``prompt``.

    Parameters
    ----------
    loaded : LoadedModel
    prompt : str
        What the person typed.
    chat : bool or None
        Put the prompt in the tokenizer's chat template as one user message followed by the
        start of the assistant's turn; None: when the model has a chat template.

    Returns
    -------
    (list of int, str, bool)
        The ids (special tokens included), the text they spell and whether the chat
        template was used.

    Examples
    --------
    >>> from analysis.models.loading import load_model
    >>> ids, text, chat = build_prompt(load_model("smollm2"), "Hi")
    >>> chat, text.endswith("<|im_start|>assistant\\n")
    (True, True)
    """
    if not isinstance(prompt, str):
        raise GenerationError(f"the prompt must be a string, not {type(prompt).__name__}")
    if not prompt.strip():
        raise GenerationError("the prompt is empty: type something for the model to answer")
    tokenizer = loaded.tokenizer
    has_template = bool(getattr(tokenizer, "chat_template", None))
    chat = has_template if chat is None else bool(chat)
    if chat:
        if not has_template:
            raise GenerationError(
                f"{loaded.facts.name} has no chat template; generate without chat "
                "(the prompt is then continued as plain text)"
            )
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    else:
        ids = tokenizer(prompt)["input_ids"]
        text = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    return [int(i) for i in ids], text, chat


def end_of_turn_ids(loaded: LoadedModel, chat: bool = True) -> frozenset[int]:
    """The token ids that end a generation: the generation config's and the config's
    ``eos_token_id``, the tokenizer's end-of-sequence token and, for chat, the end-of-turn
    markers of common templates that the vocabulary has.

    Examples
    --------
    >>> from analysis.models.loading import load_model
    >>> sorted(end_of_turn_ids(load_model("smollm2")))
    [2]
    """
    ids: set[int] = set()
    lm = getattr(loaded, "lm_model", None) or loaded.model
    for source in (getattr(lm, "generation_config", None), lm.config):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    tokenizer = loaded.tokenizer
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    if chat:
        vocab = tokenizer.get_vocab()
        template = str(getattr(tokenizer, "chat_template", "") or "")
        for token in _END_OF_TURN_TOKENS:
            if token in vocab and token in template:
                ids.add(int(vocab[token]))
    return frozenset(ids)


def _check_settings(max_new_tokens, temperature, top_k, top_p, top) -> None:
    def whole(value, name, least):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise GenerationError(
                f"{name} must be a whole number of at least {least}, not {value!r}"
            )

    whole(max_new_tokens, "the number of new tokens", 1)
    whole(top_k, "top-k", 0)
    whole(top, "the number of candidates shown", 0)
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise GenerationError(f"the temperature must be a number above 0, not {temperature!r}")
    if not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        raise GenerationError(f"top-p must be above 0 and at most 1, not {top_p!r}")


def _sample(logits: torch.Tensor, temperature: float, top_k: int, top_p: float, generator) -> int:
    """One token drawn from the temperature-scaled, top-k then top-p filtered distribution."""
    scores = logits / temperature
    if top_k > 0 and top_k < scores.shape[-1]:
        kth = torch.topk(scores, top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=False)
        cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        remove = cumulative <= (1 - top_p)
        remove[-1] = False  # always keep the most likely token
        scores = scores.masked_fill(remove.scatter(0, order, remove), float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


def _returned_cache(output):
    for name in ("cache", "past_key_values"):
        value = getattr(output, name, None)
        if value is not None:
            return value
    raise GenerationError(
        "the model returned no key/value cache, so it cannot generate step by step"
    )


# Steps whose logit lens is computed in one matrix product (see ``generate_steps``).
LENS_CHUNK = 8
# Compute the lens on a worker thread of the generation's own (it reads the unembedding
# while the calling thread runs the next steps; both only read the weights). False: in the
# calling thread, between steps.
LENS_THREAD = True


class _InlineExecutor:
    """``submit`` runs at once, in the calling thread (``LENS_THREAD = False``)."""

    def submit(self, function, *args) -> Future:
        future: Future = Future()
        future.set_result(function(*args))
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        return None


def _lens_ids(lens, rows: torch.Tensor) -> list[int]:
    """The logit lens of a chunk's rows (steps x layers 1 .. L-1); runs on the lens thread."""
    with torch.inference_mode():
        return [int(i) for i in lens.predict(rows)]


def _with_lens(steps, chunks, predictions, tokenizer) -> list[GenerationStep]:
    """The steps with their lens filled in from the chunks' results."""
    out = list(steps)
    for first, count, future in chunks:
        ids = future.result()
        per_step = len(ids) // count
        for offset in range(count):
            index = first + offset
            lens = [*ids[offset * per_step : (offset + 1) * per_step], predictions[index]]
            out[index] = dataclasses.replace(
                out[index], lens=tuple(tokenizer.convert_ids_to_tokens(lens)), lens_ids=tuple(lens)
            )
    return out


def _top_candidates(tokenizer, probs: torch.Tensor, top: int) -> dict:
    if not top:
        return {"top": (), "top_ids": ()}
    values, ids = torch.topk(probs, min(top, probs.shape[-1]))
    id_list = [int(i) for i in ids]
    tokens = tokenizer.convert_ids_to_tokens(id_list)
    return {
        "top": tuple(zip(tokens, (float(p) for p in values), strict=True)),
        "top_ids": tuple(id_list),
    }


class _TextStream:
    """The text each new token adds, holding back bytes of an unfinished character."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.emitted = 0

    def add(self, token_id: int) -> str:
        self.ids.append(token_id)
        text = self.tokenizer.decode(
            self.ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        if text.endswith("\ufffd"):
            return ""
        piece = text[self.emitted :]
        self.emitted = len(text)
        return piece

    def text(self) -> str:
        return self.tokenizer.decode(
            self.ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )


def generate_steps(
    loaded: LoadedModel,
    prompt: str,
    *,
    chat: bool | None = None,
    max_new_tokens: int = 32,
    sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int | None = None,
    stop_at_end_of_turn: bool = True,
    on_token: Callable[[GenerationStep], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    top: int = 10,
    lens: bool = True,
) -> Generation:
    """Generate up to ``max_new_tokens`` tokens one by one and record every step.

    Parameters
    ----------
    loaded : LoadedModel
        A decoder that can generate (``loaded.facts.can_generate``).
    prompt : str
        What the person typed.
    chat : bool or None
        Wrap the prompt in the chat template (default: when the model has one).
    max_new_tokens : int
        At most this many tokens (fewer when the model's context is full).
    sample : bool
        Draw each token (True) or take the most likely one (False, greedy).
    temperature : float
        Divides the logits: the recorded probabilities are ``softmax(logits / temperature)``
        in both modes, and sampling draws from that distribution (filtered as below).
        Greedy choices do not depend on it.
    top_k : int
        Sampling only: keep the ``top_k`` most likely tokens (0: all).
    top_p : float
        Sampling only: keep the smallest set of most likely tokens whose probability
        reaches ``top_p`` (1.0: all).
    seed : int or None
        Sampling only: seeds the draws; None draws a seed (recorded in ``settings``).
    stop_at_end_of_turn : bool
        Stop after an end-of-turn / end-of-sequence token (:func:`end_of_turn_ids`); that
        token is kept as the last step, as ``model.generate`` keeps it.
    on_token : callable, optional
        ``on_token(step)`` with each :class:`GenerationStep` as soon as it is ready (the
        window's stream of partial results), called on the calling thread. These records
        have everything but the logit lens (``lens == ()``): the lens is computed in chunks
        of :data:`LENS_CHUNK` steps on a worker thread and is in the returned steps.
    cancelled : callable, optional
        Checked before each step; when it returns True the loop stops and the steps so far
        are kept (``stop_reason == "cancelled"``).
    top : int
        How many candidates each step records.
    lens : bool
        Record the logit lens (see :mod:`analysis.generation.lens`; in chunks of steps, on
        a worker thread, which overlaps the token loop where a core is free).

    Returns
    -------
    Generation
        The prompt, the steps and why the loop ended.

    Raises
    ------
    GenerationError
        A model that cannot generate, an empty prompt, a setting out of range, a prompt
        longer than the model reads.

    Examples
    --------
    >>> from analysis.models.loading import load_model
    >>> loaded = load_model("smollm2")
    >>> gen = generate_steps(loaded, "What is the capital of France?", max_new_tokens=8)
    >>> gen.text  # doctest: +SKIP
    'The capital of France is Paris.'
    >>> step = gen.steps[0]
    >>> step.rank, len(step.top), len(step.lens) == loaded.facts.num_layers
    (0, 10, True)
    """
    lm = _generator_model(loaded)
    _check_settings(max_new_tokens, temperature, top_k, top_p, top)
    prompt_ids, prompt_text, chat = build_prompt(loaded, prompt, chat)
    limit = loaded.facts.max_positions
    if len(prompt_ids) >= limit:
        raise GenerationError(
            f"the prompt has {len(prompt_ids)} tokens; {loaded.facts.name} reads at most {limit}, "
            "so there is no room to generate"
        )
    budget = min(int(max_new_tokens), limit - len(prompt_ids))
    if sample and seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    generator = torch.Generator().manual_seed(int(seed)) if sample else None
    stops = end_of_turn_ids(loaded, chat) if stop_at_end_of_turn else frozenset()
    logit_lens = logit_lens_for(lm) if lens else None
    use_lens = logit_lens is not None and logit_lens.available
    tokenizer = loaded.tokenizer
    stream = _TextStream(tokenizer)
    accepted = _forward_parameters(type(lm))
    cache_argument = "cache" if "cache" in accepted else "past_key_values"  # renamed in 5.x
    options: dict = {"use_cache": True, "return_dict": True}
    if "logits_to_keep" in accepted:
        options["logits_to_keep"] = 1
    if use_lens:
        options["output_hidden_states"] = True
    device = loaded.device
    steps: list[GenerationStep] = []
    reason = "length" if budget == max_new_tokens else "context"
    started = time.perf_counter()
    first_token_s = 0.0
    current = torch.tensor([prompt_ids], dtype=torch.long, device=device)
    cache = None
    # The logit lens is computed in chunks of LENS_CHUNK steps, one matrix product per chunk
    # on a worker thread (the GIL is released inside it, so it overlaps the token loop where
    # a core is free); a product of 8 x 29 rows costs less than half of 8 products of 29
    # rows. Steps reach ``on_token`` at once, without their lens; it is filled in when the
    # loop ends (the hidden states are those the loop computed, so the lens is exact).
    worker = ThreadPoolExecutor(1, thread_name_prefix="atlas-lens") if use_lens else None
    if worker is not None and not LENS_THREAD:
        worker.shutdown()
        worker = _InlineExecutor()
    chunks: list[tuple[int, int, Future]] = []  # (first step, steps, future of their lens ids)
    waiting: list[torch.Tensor] = []  # per step: [L - 1, d] residual streams, last position
    predictions: list[int] = []  # per step: the model's own argmax, the last layer's lens

    def submit_waiting() -> None:
        if waiting:
            first = len(predictions) - len(waiting)
            future = worker.submit(_lens_ids, logit_lens, torch.cat(waiting))
            chunks.append((first, len(waiting), future))
            waiting.clear()

    try:
        with torch.inference_mode():
            for index in range(budget):
                if cancelled is not None and cancelled():
                    reason = "cancelled"
                    break
                output = lm(input_ids=current, **{cache_argument: cache}, **options)
                cache = _returned_cache(output)
                logits = output.logits[0, -1].to(torch.float32)
                predicted = int(torch.argmax(logits))
                if sample:
                    chosen = _sample(
                        logits, float(temperature), int(top_k), float(top_p), generator
                    )
                else:
                    chosen = predicted
                if use_lens:
                    hidden = output.hidden_states or ()  # embeddings, layers 1 .. L (last normed)
                    if len(hidden) < 3 and index == 0:  # no inner layers to read: no lens
                        use_lens = False
                    else:
                        waiting.append(torch.stack([h[0, -1] for h in hidden[1:-1]]))
                        predictions.append(predicted)
                        if len(waiting) >= LENS_CHUNK:
                            submit_waiting()
                del output
                probs = torch.softmax(logits / float(temperature), dim=-1)
                chosen_prob = probs[chosen]
                step = GenerationStep(
                    index=index,
                    position=len(prompt_ids) + index,
                    token=tokenizer.convert_ids_to_tokens(chosen),
                    id=chosen,
                    text=stream.add(chosen),
                    prob=float(chosen_prob),
                    rank=int((probs > chosen_prob).sum()),
                    **_top_candidates(tokenizer, probs, int(top)),
                    lens=(),
                    lens_ids=(),
                    seconds=time.perf_counter() - started,
                )
                if index == 0:
                    first_token_s = step.seconds
                steps.append(step)
                if on_token is not None:
                    on_token(step)
                if chosen in stops:
                    reason = "end_of_turn"
                    break
                current = torch.tensor([[chosen]], dtype=torch.long, device=device)
            else:
                if budget < max_new_tokens:
                    reason = "context"
            if use_lens:
                submit_waiting()
                steps = _with_lens(steps, chunks, predictions, tokenizer)
    finally:
        if worker is not None:
            worker.shutdown(wait=True, cancel_futures=True)
    seconds = time.perf_counter() - started
    return Generation(
        prompt=prompt,
        prompt_text=prompt_text,
        prompt_ids=tuple(prompt_ids),
        chat=chat,
        steps=tuple(steps),
        text=stream.text(),
        stop_reason=reason,
        settings={
            "max_new_tokens": int(max_new_tokens),
            "sample": bool(sample),
            "temperature": float(temperature),
            "top_k": int(top_k),
            "top_p": float(top_p),
            "seed": None if seed is None else int(seed),
            "stop_at_end_of_turn": bool(stop_at_end_of_turn),
            "top": int(top),
        },
        seconds=seconds,
        first_token_seconds=first_token_s,
        lens_kernel=logit_lens.kernel if use_lens else "none",
    )


_NOTICES = {
    "cancelled": "The generation was cancelled after {n} tokens; they are kept.",
    "context": "The generation stopped after {n} tokens: the model's longest input was reached.",
}


def generation_run(loaded: LoadedModel, generation: Generation) -> AttentionRun:
    """The one forward pass over prompt + generation: an :class:`AttentionRun` with
    ``prompt_length`` and ``generation`` set.

    Parameters
    ----------
    loaded : LoadedModel
        The model that generated.
    generation : Generation
        From :func:`generate_steps`.

    Returns
    -------
    AttentionRun
        Tokens ``[0, prompt_length)`` are the prompt (template included), the rest were
        generated (``run.generated_mask``). Its text is the ids decoded with special tokens
        written out. Timings add ``generate`` (the token loop, seconds).

    Examples
    --------
    >>> from analysis.models.loading import load_model
    >>> loaded = load_model("smollm2")
    >>> run = generation_run(loaded, generate_steps(loaded, "Hi", max_new_tokens=4))
    >>> int(run.generated_mask.sum()) <= 4, run.prompt_length == run.generation.prompt_length
    (True, True)
    """
    run = extract_ids(
        loaded, list(generation.ids), prompt_length=generation.prompt_length, generation=generation
    )
    notice = _NOTICES.get(generation.stop_reason)
    return dataclasses.replace(
        run,
        notice=notice.format(n=len(generation.steps)) if notice else run.notice,
        timings={**run.timings, "generate": float(generation.seconds)},
    )


def generate(
    loaded: LoadedModel,
    prompt: str,
    *,
    chat: bool | None = None,
    max_new_tokens: int = 32,
    sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int | None = None,
    stop_at_end_of_turn: bool = True,
    on_token: Callable[[GenerationStep], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    top: int = 10,
    lens: bool = True,
) -> AttentionRun:
    """Generate from ``prompt`` and return the run of prompt + generation.

    :func:`generate_steps` (same parameters) followed by :func:`generation_run`. A cancelled
    generation still returns the run of the tokens generated until then; to skip that
    forward pass after a cancel, call the two functions yourself.

    Returns
    -------
    AttentionRun
        ``run.generation`` is the :class:`Generation` (steps, text, stop reason, settings);
        ``run.prompt_length`` its prompt's length.

    Examples
    --------
    >>> from analysis.models.loading import load_model
    >>> loaded = load_model("smollm2")
    >>> run = generate(loaded, "Name a colour.", max_new_tokens=6)
    >>> run.num_tokens == run.prompt_length + len(run.generation.steps)
    True
    >>> run.attentions.shape[:2]
    (30, 9)
    """
    generation = generate_steps(
        loaded,
        prompt,
        chat=chat,
        max_new_tokens=max_new_tokens,
        sample=sample,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
        stop_at_end_of_turn=stop_at_end_of_turn,
        on_token=on_token,
        cancelled=cancelled,
        top=top,
        lens=lens,
    )
    return generation_run(loaded, generation)
