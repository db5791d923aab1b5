"""Generation: greedy equals model.generate, steps equal the model's own numbers, the run
equals raw transformers, sampling is reproducible, cancelling keeps what was generated, CLI."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest
import torch

from analysis.attention import extract as extract_module
from analysis.attention.views import ViewSpec, make_view
from analysis.generation import (
    Generation,
    GenerationError,
    GenerationStep,
    build_prompt,
    end_of_turn_ids,
    generate,
    generate_steps,
    generation_run,
)
from analysis.generation.lens import LogitLens, logit_lens_for
from analysis.models.loading import load_model
from tests.tiny_models import DECODER_FAMILIES

QUESTION = "What is the capital of France?"
STORY = "Write one sentence about the sea."


def _reference(lm, ids):
    """Logits and hidden states of one uncached forward pass over ``ids`` (last position)."""
    with torch.inference_mode():
        out = lm(input_ids=torch.tensor([list(ids)]), output_hidden_states=True, use_cache=False)
    return out.logits[0, -1].float(), [h[0, -1] for h in out.hidden_states]


def _lens_reference(lm, hidden_states):
    """float32 logit lens of layers 1 .. L-1 and each row's top-2 margin."""
    base = lm.base_model
    norm = getattr(base, "norm", None) or base.ln_f
    weight = lm.get_output_embeddings().weight.float()
    with torch.inference_mode():
        logits = norm(torch.stack(hidden_states[1:-1])) @ weight.T
    top2 = torch.topk(logits, 2, dim=-1).values
    return logits.argmax(dim=-1).tolist(), (top2[:, 0] - top2[:, 1]).tolist()


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One intra-op thread: one-token steps are dispatch-bound, and on a shared machine two
    spinning OpenMP threads make them many times slower; restored after the module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _without_lens(steps):
    """The steps as ``on_token`` saw them: the lens is filled in when the loop ends."""
    return [dataclasses.replace(s, lens=(), lens_ids=()) for s in steps]


@pytest.fixture(scope="module")
def greedy(chat_loaded):
    """A short greedy chat generation of the embedded model, and its run."""
    return generate(chat_loaded, QUESTION, max_new_tokens=12)


@pytest.fixture(scope="module")
def tiny_decoder(tiny_model_dir):
    def get(family):
        return load_model(str(tiny_model_dir(family)))

    return get


# --- the embedded chat model ---------------------------------------------------------------


def test_greedy_equals_model_generate_token_for_token(chat_loaded, greedy):
    generation = greedy.generation
    ids = torch.tensor([list(generation.prompt_ids)])
    with torch.inference_mode():
        expected = chat_loaded.lm_model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False
        )
    assert list(generation.generated_ids) == expected[0, ids.shape[1] :].tolist()
    assert generation.chat and generation.prompt_text.endswith("<|im_start|>assistant\n")
    assert generation.stop_reason == "end_of_turn"
    assert generation.steps[-1].token == "<|im_end|>"
    assert "Paris" in generation.text and "<|im_end|>" not in generation.text
    assert generation.text == "".join(step.text for step in generation.steps)
    assert all(step.rank == 0 for step in generation.steps)


def test_the_run_equals_raw_transformers_on_the_same_ids(chat_loaded, greedy):
    run = greedy
    generation = run.generation
    assert run.prompt_length == generation.prompt_length
    assert run.num_tokens == generation.prompt_length + len(generation.steps)
    np.testing.assert_array_equal(run.input_ids, np.asarray(generation.ids))
    assert run.generated_mask.sum() == len(generation.steps)
    assert not run.generated_mask[: run.prompt_length].any()
    assert run.tokens[run.prompt_length :] == tuple(s.token for s in generation.steps)
    assert all(run.tokens[s.position] == s.token for s in generation.steps)
    assert run.attentions.dtype == np.float32
    assert run.attentions.shape == (30, 9, run.num_tokens, run.num_tokens)
    with torch.inference_mode():
        out = chat_loaded.model(
            input_ids=torch.tensor([list(generation.ids)]), output_attentions=True
        )
    raw = np.stack([a[0].numpy() for a in out.attentions])
    np.testing.assert_allclose(run.attentions, raw, atol=1e-5, rtol=0)
    assert run.timings["generate"] == pytest.approx(generation.seconds)
    assert set(run.timings) >= {"load", "forward", "generate"}
    # the template's markers are special tokens; the text spells every token's offsets
    assert run.special_mask[0] and run.tokens[0] == "<|im_start|>"
    for i in np.flatnonzero(~run.special_mask):
        piece = run.text[slice(*run.offsets[i])]
        assert piece and (piece.strip() in ("", piece))  # a newline token keeps its "\n"
    assert "Paris" in run.text[run.offsets[run.prompt_length, 0] :]


def test_every_view_works_on_a_generation(greedy):
    for spec in (ViewSpec(kind="head", layer=3, head=2), ViewSpec(kind="mean"),
                 ViewSpec(kind="rollout", layer=5), ViewSpec(kind="mean", merge_words=True, drop_special=True)):  # fmt: skip
        view = make_view(greedy, spec)
        assert np.isfinite(view.matrix).all()


def test_the_top_candidates_are_the_softmax_of_the_logits(chat_loaded):
    generation = generate_steps(chat_loaded, STORY, max_new_tokens=5, temperature=0.7, top=8)
    for step in generation.steps:
        logits, _ = _reference(chat_loaded.lm_model, generation.ids[: step.position])
        probs = torch.softmax(logits / 0.7, dim=-1)
        assert len(step.top) == 8 and step.top[0][1] >= step.top[-1][1]
        assert list(step.top_ids) == torch.topk(probs, 8).indices.tolist()
        np.testing.assert_allclose(
            [p for _, p in step.top], torch.topk(probs, 8).values.numpy(), atol=1e-5
        )
        assert step.prob == pytest.approx(float(probs[step.id]), abs=1e-5)
        assert [t for t, _ in step.top] == chat_loaded.tokenizer.convert_ids_to_tokens(
            list(step.top_ids)
        )


def test_the_logit_lens_of_the_last_layer_is_the_models_prediction(chat_loaded, greedy):
    lm = chat_loaded.lm_model
    generation = greedy.generation
    for step in generation.steps:
        assert len(step.lens) == len(step.lens_ids) == 30
        logits, hidden = _reference(lm, generation.ids[: step.position])
        assert step.lens_ids[-1] == int(logits.argmax()) == step.id  # greedy: the chosen token
        expected, margins = _lens_reference(lm, hidden)
        for layer, (got, want, margin) in enumerate(
            zip(step.lens_ids[:-1], expected, margins, strict=True)
        ):
            assert got == want or margin < 1e-3, (step.index, layer)
        assert list(step.lens) == chat_loaded.tokenizer.convert_ids_to_tokens(list(step.lens_ids))


def test_the_screened_lens_equals_the_float32_lens(chat_loaded):
    lm = chat_loaded.lm_model
    ids = chat_loaded.tokenizer("The quick brown fox jumps over the lazy dog; then it sleeps.")[
        "input_ids"
    ]
    with torch.inference_mode():
        out = lm(input_ids=torch.tensor([ids]), output_hidden_states=True)
    hidden = torch.cat([h[0] for h in out.hidden_states[1:-1]])  # every layer, every position
    screened = LogitLens(lm, screen=True)
    exact = LogitLens(lm, screen=False)
    assert screened.kernel == "bfloat16-screened" and exact.kernel == "float32"
    assert torch.equal(screened.predict(hidden), exact.predict(hidden))
    noise = torch.randn(64, hidden.shape[1], generator=torch.Generator().manual_seed(1)) * 3
    assert torch.equal(screened.predict(noise), exact.predict(noise))
    assert logit_lens_for(lm) is logit_lens_for(lm)


def test_sampling_with_a_seed_is_reproducible(chat_loaded):
    options = dict(sample=True, temperature=0.9, top_k=40, top_p=0.95, max_new_tokens=5, lens=False)
    first = generate_steps(chat_loaded, STORY, seed=7, **options)
    again = generate_steps(chat_loaded, STORY, seed=7, **options)
    assert first.generated_ids == again.generated_ids
    assert [s.prob for s in first.steps] == [s.prob for s in again.steps]
    assert first.settings["seed"] == 7 and first.settings["sample"]
    drawn = generate_steps(chat_loaded, STORY, seed=None, **options)
    assert isinstance(drawn.settings["seed"], int)  # a drawn seed is recorded ...
    repeat = generate_steps(chat_loaded, STORY, seed=drawn.settings["seed"], **options)
    assert repeat.generated_ids == drawn.generated_ids  # ... and repeats the generation
    for step in first.steps:  # every draw respects top-k
        assert step.rank < 40


def test_sampling_with_top_k_one_is_greedy(chat_loaded):
    greedy = generate_steps(chat_loaded, STORY, max_new_tokens=4, lens=False)
    sampled = generate_steps(
        chat_loaded, STORY, max_new_tokens=4, sample=True, top_k=1, seed=3, lens=False
    )
    assert sampled.generated_ids == greedy.generated_ids


def test_cancelling_mid_generation_keeps_the_tokens_so_far(chat_loaded):
    streamed = []

    def on_token(step):
        streamed.append(step)

    run = generate(
        chat_loaded, STORY, max_new_tokens=20, stop_at_end_of_turn=False,
        on_token=on_token, cancelled=lambda: len(streamed) >= 3,
    )  # fmt: skip
    generation = run.generation
    assert generation.stop_reason == "cancelled" and generation.cancelled
    assert len(generation.steps) == 3 and _without_lens(generation.steps) == streamed
    assert run.num_tokens == generation.prompt_length + 3
    assert "cancelled after 3 tokens" in run.notice
    uncancelled = generate_steps(
        chat_loaded, STORY, max_new_tokens=3, stop_at_end_of_turn=False, lens=False
    )
    assert uncancelled.generated_ids == generation.generated_ids
    nothing = generate_steps(chat_loaded, STORY, cancelled=lambda: True)
    assert nothing.steps == () and nothing.stop_reason == "cancelled"


def test_on_token_streams_every_step_in_order(chat_loaded):
    seen: list[GenerationStep] = []
    generation = generate_steps(chat_loaded, QUESTION, max_new_tokens=4, on_token=seen.append)
    assert seen == _without_lens(generation.steps)
    assert all(s.lens == () for s in seen) and all(len(s.lens) == 30 for s in generation.steps)
    assert [s.index for s in seen] == list(range(len(seen)))
    assert [s.position for s in seen] == [generation.prompt_length + i for i in range(len(seen))]
    assert all(a.seconds <= b.seconds for a, b in zip(seen, seen[1:], strict=False))
    assert generation.first_token_seconds == seen[0].seconds


def test_without_stopping_it_goes_on_past_the_end_of_turn(chat_loaded):
    generation = generate_steps(
        chat_loaded, QUESTION, max_new_tokens=10, stop_at_end_of_turn=False, lens=False, top=0
    )
    assert len(generation.steps) == 10 and generation.stop_reason == "length"
    assert 2 in generation.generated_ids[:-1]  # the end of turn (after "Paris.") did not stop it
    assert generation.steps[0].top == () and generation.steps[0].lens == ()
    assert end_of_turn_ids(chat_loaded) == {2}


def test_chat_is_on_by_default_and_can_be_off(chat_loaded):
    ids, text, chat = build_prompt(chat_loaded, "Hi")
    assert chat and text.startswith("<|im_start|>system")
    plain, plain_text, chat = build_prompt(chat_loaded, "Once upon a time", chat=False)
    assert not chat and plain == chat_loaded.tokenizer("Once upon a time")["input_ids"]
    generation = generate_steps(chat_loaded, "Once upon a time", chat=False, max_new_tokens=3)
    assert generation.prompt_ids == tuple(plain) and not generation.chat


def test_a_long_text_is_stored_as_float16_within_1e3(chat_loaded, monkeypatch):
    generation = generate_steps(chat_loaded, QUESTION, max_new_tokens=3)
    monkeypatch.setattr(extract_module, "FLOAT16_ABOVE_BYTES", 1024)
    run = generation_run(chat_loaded, generation)
    assert run.attentions.dtype == np.float16 and not run.attentions.flags.writeable
    with torch.inference_mode():
        out = chat_loaded.model(
            input_ids=torch.tensor([list(generation.ids)]), output_attentions=True
        )
    raw = np.stack([a[0].numpy() for a in out.attentions])
    np.testing.assert_allclose(run.attentions.astype(np.float32), raw, atol=1e-3, rtol=0)
    assert extract_module.attention_dtype(30, 9, 1024) == np.float16


def test_the_generation_record_as_json(greedy):
    data = greedy.generation.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["prompt"] == QUESTION and data["prompt_tokens"] == greedy.prompt_length
    step = data["steps"][0]
    assert set(step) >= {"token", "id", "prob", "top", "lens"}
    assert len(step["lens"]) == 30 and all(len(pair) == 2 for pair in step["top"])


# --- refusals ---------------------------------------------------------------------------


def test_an_encoder_cannot_generate(default_loaded):
    assert not default_loaded.facts.can_generate
    with pytest.raises(
        GenerationError, match=r"^all-MiniLM-L6-v2 \(embedded\) is an encoder: .*cannot generate"
    ):
        generate(default_loaded, "Hello")


def test_an_encoder_decoder_says_generation_is_for_decoders(tiny_decoder):
    with pytest.raises(
        GenerationError, match="encoder-decoder model; generation is implemented for decoders only"
    ):
        generate_steps(tiny_decoder("t5"), "Hello")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_new_tokens": 0}, "the number of new tokens must be a whole number of at least 1"),
        ({"temperature": 0}, "the temperature must be a number above 0"),
        ({"top_p": 1.5}, "top-p must be above 0 and at most 1"),
        ({"top_k": -1}, "top-k must be a whole number of at least 0"),
    ],
)
def test_settings_out_of_range_are_one_sentence(tiny_decoder, options, message):
    with pytest.raises(GenerationError, match=message):
        generate_steps(tiny_decoder("gpt2"), "Hello", **options)


def test_an_empty_prompt_and_a_missing_template_are_refused(tiny_decoder):
    loaded = tiny_decoder("gpt2")
    with pytest.raises(GenerationError, match="the prompt is empty"):
        generate_steps(loaded, "   ")
    assert not loaded.facts.has_chat_template
    with pytest.raises(GenerationError, match="has no chat template"):
        generate_steps(loaded, "Hello", chat=True)


def test_a_prompt_that_fills_the_context_is_refused_and_generation_stops_at_it(tiny_decoder):
    loaded = tiny_decoder("gpt2")  # reads 64 tokens
    with pytest.raises(GenerationError, match="there is no room to generate"):
        generate_steps(loaded, "word " * 80)
    prompt = "word"
    while len(loaded.tokenizer(prompt + " word")["input_ids"]) < 60:
        prompt += " word"
    generation = generate_steps(loaded, prompt, max_new_tokens=10, stop_at_end_of_turn=False)
    assert 55 <= generation.prompt_length < 60
    assert generation.prompt_length + len(generation.steps) == 64
    assert generation.stop_reason == "context"


# --- tiny decoders of every family --------------------------------------------------------


@pytest.mark.parametrize("family", DECODER_FAMILIES)
def test_tiny_decoders_generate_like_model_generate(family, tiny_decoder):
    loaded = tiny_decoder(family)
    assert loaded.facts.can_generate and loaded.lm_model.base_model is loaded.model
    generation = generate_steps(loaded, "The quick brown fox", max_new_tokens=8)
    ids = torch.tensor([list(generation.prompt_ids)])
    with torch.inference_mode():
        expected = loaded.lm_model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=8,
            do_sample=False,
            pad_token_id=loaded.tokenizer.eos_token_id,
        )
    assert list(generation.generated_ids) == expected[0, ids.shape[1] :].tolist()
    for step in generation.steps:
        logits, hidden = _reference(loaded.lm_model, generation.ids[: step.position])
        assert step.lens_ids[-1] == int(logits.argmax())
        expected_lens, margins = _lens_reference(loaded.lm_model, hidden)
        assert all(
            g == w or m < 1e-4
            for g, w, m in zip(step.lens_ids[:-1], expected_lens, margins, strict=True)
        )
    run = generation_run(loaded, generation)
    with torch.inference_mode():
        out = loaded.model(input_ids=torch.tensor([list(generation.ids)]), output_attentions=True)
    np.testing.assert_allclose(
        run.attentions, np.stack([a[0].numpy() for a in out.attentions]), atol=1e-5
    )


def test_records_need_no_torch():
    step = GenerationStep(0, 3, "Ġhi", 5, " hi", 0.5, 0, (("Ġhi", 0.5),), (5,), ("Ġhi",), (5,), 0.1)
    generation = Generation("p", "p", (1, 2, 3), False, (step,), " hi", "length")
    assert generation.ids == (1, 2, 3, 5) and generation.prompt_length == 3
    assert generation.to_dict()["steps"][0]["top"] == [["Ġhi", 0.5]]


# --- the command line ------------------------------------------------------------------------


def test_cli_generate_writes_the_folder_and_generation_json(
    chat_loaded, chat_cache_dir, monkeypatch, tmp_path, capsys
):
    from analysis.cli import command_main

    monkeypatch.setenv("ATLAS_CACHE_DIR", str(chat_cache_dir))
    out = tmp_path / "out"
    code = command_main("generate")(
        ["--model", "smollm2", "--prompt", QUESTION, "--max-new-tokens", "6", "--out", str(out)]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "wrote" in captured.out and "generation.json" in captured.out
    data = json.loads((out / "generation.json").read_text(encoding="utf-8"))
    assert data["prompt"] == QUESTION and data["prompt_tokens"] > 0
    assert data["text"].startswith("The capital of France") and data["text"] in captured.out
    assert len(data["steps"]) == 6
    step = data["steps"][0]
    assert isinstance(step["token"], str) and isinstance(step["id"], int) and 0 < step["prob"] <= 1
    assert len(step["top"]) == 10 and len(step["lens"]) == 30
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["timings"]["generate"] > 0
    assert summary["tokens"] == data["prompt_tokens"] + 6
    assert summary["generation"]["generated_tokens"] == 6
    with open(out / "tokens.csv", newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames.count("generated") == 1
    assert len(rows) == summary["tokens"]
    assert [int(r["generated"]) for r in rows] == [0] * data["prompt_tokens"] + [1] * 6
    with np.load(out / "attention.npz", allow_pickle=False) as npz:
        assert npz["attentions"].dtype == np.float32
        assert npz["attentions"].shape == (30, 9, summary["tokens"], summary["tokens"])
    assert (out / "edges.csv").is_file()


def test_cli_generate_errors_are_one_line_and_exit_2(tmp_path, capsys):
    from analysis.generation.cli import main

    assert main(["--model", "default", "--prompt", "Hi", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("attention-atlas generate: error: ") and "is an encoder" in err
    assert len(err.splitlines()) == 1
    assert main(["--prompt", "Hi", "--top-k", "5", "--out", str(tmp_path / "b")]) == 2
    assert "--top-k applies only with --sample" in capsys.readouterr().err


def test_the_lens_chunks_map_back_to_their_steps(tiny_decoder):
    """19 steps: two chunks of LENS_CHUNK (8) and a remainder of 3, each step its own lens."""
    from analysis.generation.loop import LENS_CHUNK

    loaded = tiny_decoder("llama")
    generation = generate_steps(loaded, "The cat", max_new_tokens=19, stop_at_end_of_turn=False)
    assert len(generation.steps) == 19 and LENS_CHUNK == 8
    for step in generation.steps:
        logits, hidden = _reference(loaded.lm_model, generation.ids[: step.position])
        expected, margins = _lens_reference(loaded.lm_model, hidden)
        assert len(step.lens_ids) == loaded.facts.num_layers
        assert step.lens_ids[-1] == int(logits.argmax())
        assert all(
            g == w or m < 1e-4
            for g, w, m in zip(step.lens_ids[:-1], expected, margins, strict=True)
        )


class _TinyHead(torch.nn.Module):
    """A stand-in language model: a final norm and an unembedding of ``vocab`` tokens."""

    def __init__(self, vocab: int, dim: int, bias: bool):
        super().__init__()
        self.norm = torch.nn.LayerNorm(dim)
        self.head = torch.nn.Linear(dim, vocab, bias=bias)
        torch.nn.init.normal_(self.head.weight, std=0.5)
        if bias:
            torch.nn.init.normal_(self.head.bias, std=2.0)

    @property
    def base_model(self):
        return self

    def get_output_embeddings(self):
        return self.head


@pytest.mark.parametrize(("vocab", "bias"), [(1000, False), (1000, True), (4096, False)])
def test_the_screened_lens_is_exact_for_any_vocabulary_and_bias(vocab, bias):
    torch.manual_seed(0)
    model = _TinyHead(vocab, 48, bias)
    screened, exact = LogitLens(model, screen=True), LogitLens(model, screen=False)
    assert screened.kernel == "bfloat16-screened"
    hidden = torch.randn(300, 48) * 4
    hidden[1] = hidden[0]  # equal rows, equal answers
    assert torch.equal(screened.predict(hidden), exact.predict(hidden))
    # near-ties: two tokens whose logits differ by far less than bfloat16 can resolve
    with torch.no_grad():
        model.head.weight[7] = model.head.weight[3] * (1 + 1e-6)
    assert torch.equal(LogitLens(model, screen=True).predict(hidden), exact.predict(hidden))


def test_the_lens_in_the_calling_thread_is_the_same(tiny_decoder, monkeypatch):
    from analysis.generation import loop

    loaded = tiny_decoder("qwen2")
    threaded = generate_steps(loaded, "The cat", max_new_tokens=10, stop_at_end_of_turn=False)
    monkeypatch.setattr(loop, "LENS_THREAD", False)
    inline = generate_steps(loaded, "The cat", max_new_tokens=10, stop_at_end_of_turn=False)
    assert [s.lens_ids for s in inline.steps] == [s.lens_ids for s in threaded.steps]
    assert all(len(s.lens_ids) == loaded.facts.num_layers for s in inline.steps)
