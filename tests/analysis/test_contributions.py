"""Contributions beyond raw attention (analysis.contributions) on tiny models of each family.

References are written here independently of the package: value norms from the models' own
parameter tensors, value zeroing by literally re-running the model with one token's values
zeroed, ALTI from its formula on the explicit decomposition.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.contributions import (
    alti,
    alti_terms,
    capture_layers,
    contribution_rollout,
    contributions_for_run,
    normalise_rows,
    record_layers,
    rollout_layers,
    token_type_ids_of,
    value_norms,
    value_zeroing,
)
from analysis.progress import Cancelled
from tests.tiny_models import DECODER_FAMILIES, ENCODER_DECODER_FAMILIES, ENCODER_FAMILIES

FAMILIES = ENCODER_FAMILIES + DECODER_FAMILIES
TEXT = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a shared 2-core machine torch's
    thread barriers cost more than the work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    """``tiny(family)`` -> ``(loaded, input_ids [T])``, loaded once per family."""
    from analysis.models.loading import load_model

    cache = {}

    def get(family):
        if family not in cache:
            loaded = load_model(str(tiny_model_dir(family)))
            ids = np.asarray(loaded.tokenizer(TEXT)["input_ids"], dtype=np.int64)
            cache[family] = (loaded, ids)
        return cache[family]

    return get


def plain_forward(model, ids):
    with torch.inference_mode():
        return model(
            input_ids=torch.as_tensor(ids)[None],
            output_attentions=True,
            output_hidden_states=True,
            return_dict=True,
        )


def hook_count(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


# --- independent references from the models' parameters -------------------------------


def reference_layer(model, family: str, layer: int):
    """``(W_V [D, KV*dh], b_V, W_O [H*dh, D], input_norm or None, value module, layer
    module)`` read from the model's own modules, so that ``v = norm(x) @ W_V + b_V`` and the
    attention output is ``context @ W_O + b_O``."""
    base = model.base_model
    if family in ("bert", "roberta", "electra"):
        lay = base.encoder.layer[layer]
        value = lay.attention.self.value
        out = lay.attention.output.dense
        return value.weight.T, value.bias, out.weight.T, None, value, lay
    if family == "distilbert":
        lay = base.transformer.layer[layer]
        return (lay.attention.v_lin.weight.T, lay.attention.v_lin.bias,
                lay.attention.out_lin.weight.T, None, lay.attention.v_lin, lay)  # fmt: skip
    if family == "albert":
        lay = base.encoder.albert_layer_groups[0].albert_layers[0]
        att = lay.attention
        return att.value.weight.T, att.value.bias, att.dense.weight.T, None, att.value, lay
    if family == "gpt2":
        block = base.h[layer]
        d = model.config.n_embd
        ln = block.ln_1

        def norm(x):
            return torch.nn.functional.layer_norm(x, (d,), ln.weight, ln.bias, ln.eps)

        attn = block.attn
        return (attn.c_attn.weight[:, 2 * d :], attn.c_attn.bias[2 * d :], attn.c_proj.weight,
                norm, attn.c_attn, block)  # fmt: skip
    lay = base.layers[layer]  # llama, qwen2
    rms = lay.input_layernorm

    def norm(x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + rms.variance_epsilon) * rms.weight

    v = lay.self_attn.v_proj
    bias = v.bias if v.bias is not None else torch.zeros(v.out_features)
    return v.weight.T, bias, lay.self_attn.o_proj.weight.T, norm, v, lay


@torch.inference_mode()
def explicit_value_norms(model, family, plain, layer):
    """``(per_head [H, T, T], summed [T, T])`` by the definitions, with loops over heads."""
    wv, bv, wo, norm, _, _ = reference_layer(model, family, layer)
    x = plain.hidden_states[layer][0]
    h_in = norm(x) if norm is not None else x
    v = h_in @ wv + bv  # [T, KV*dh]
    alpha = plain.attentions[layer][0]  # [H, T, T]
    heads = alpha.shape[0]
    dh = wo.shape[0] // heads
    groups = heads // (v.shape[1] // dh)
    per_head = torch.empty_like(alpha)
    total = torch.zeros(alpha.shape[1], alpha.shape[2], wo.shape[1], dtype=torch.float64)
    for h in range(heads):
        kv = h // groups
        f = v[:, kv * dh : (kv + 1) * dh] @ wo[h * dh : (h + 1) * dh]  # [T_j, D]: f_h(x_j)
        weighted = alpha[h][:, :, None] * f[None]  # [T_i, T_j, D]
        per_head[h] = torch.linalg.vector_norm(weighted, dim=-1)
        total += weighted.double()
    return per_head.numpy(), torch.linalg.vector_norm(total, dim=-1).numpy()


# --- the capture -------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_hooks_leave_the_models_outputs_unchanged(tiny, family):
    loaded, ids = tiny(family)
    model = loaded.model
    plain = plain_forward(model, ids)
    hooks = hook_count(model)
    capture = capture_layers(loaded, ids)
    assert hook_count(model) == hooks, "the capture's hooks must be removed"
    out = capture.model_output
    assert len(out.attentions) == len(plain.attentions) == capture.num_layers
    for mine, theirs in zip(out.attentions, plain.attentions, strict=True):
        assert torch.equal(mine, theirs)
    for mine, theirs in zip(out.hidden_states, plain.hidden_states, strict=True):
        assert torch.equal(mine, theirs)
    assert torch.equal(out.last_hidden_state, plain.last_hidden_state)
    # what the capture says each layer read and wrote is what the model passed along
    for layer in range(capture.num_layers):
        assert torch.equal(capture.layer_inputs[layer], plain.hidden_states[layer][0])
        assert torch.equal(capture.attentions[layer], plain.attentions[layer][0])
        if layer < capture.num_layers - 1:  # the last hidden state may carry a final norm
            assert torch.equal(capture.layer_outputs[layer], plain.hidden_states[layer + 1][0])


@pytest.mark.parametrize("family", FAMILIES)
def test_a_capture_can_reuse_attentions_already_at_hand(tiny, family):
    loaded, ids = tiny(family)
    own = capture_layers(loaded, ids)
    stack = np.stack([a.numpy() for a in own.attentions])
    stack.setflags(write=False)  # like a run's arrays
    reused = capture_layers(loaded, ids, attentions=stack)
    assert not reused.model_output.attentions  # the model kept no second copy
    for mine, theirs in zip(reused.attentions, own.attentions, strict=True):
        assert torch.equal(mine, theirs)
    np.testing.assert_array_equal(alti(reused), alti(own))
    wrong = stack.copy()
    wrong[-1] = wrong[-1][:, ::-1, :]  # rows of the last layer swapped
    with pytest.raises(ValueError, match="not this model's"):
        capture_layers(loaded, ids, attentions=wrong)
    with pytest.raises(ValueError, match="do not fit"):
        capture_layers(loaded, ids, attentions=stack[:, :, :-1, :-1])


@pytest.mark.parametrize("family", ["bert", "albert", "gpt2", "qwen2"])
def test_recording_an_extraction_serves_the_contributions_without_a_second_pass(tiny, family):
    from analysis.attention.extract import extract

    loaded, _ = tiny(family)
    alone = extract(loaded, TEXT)
    hooks = hook_count(loaded.model)
    recorder = record_layers(loaded)
    with pytest.raises(RuntimeError, match="nothing was recorded"):
        recorder.capture(attentions=alone.attentions)
    with recorder:
        extract(loaded, "Another text first.")  # only the latest pass is kept
        run = extract(loaded, TEXT)
    assert hook_count(loaded.model) == hooks
    np.testing.assert_array_equal(run.attentions, alone.attentions)  # hooks change nothing
    recorded = recorder.capture(attentions=run.attentions)
    assert recorded.model_output is None
    np.testing.assert_array_equal(recorded.input_ids, run.input_ids)
    own = capture_layers(loaded, run.input_ids)
    np.testing.assert_array_equal(alti(recorded), alti(own))
    kinds = ("value_norm", "alti", "value_zeroing")
    fresh = contributions_for_run(loaded, run, kinds=kinds)
    reused = contributions_for_run(loaded, run, kinds=kinds, capture=recorded)
    for key, value in fresh.items():
        np.testing.assert_array_equal(reused[key], value, err_msg=key)
    other = extract(loaded, "Another text first.")
    with pytest.raises(ValueError, match="other tokens"):
        contributions_for_run(loaded, other, capture=recorded)
    with pytest.raises(ValueError, match="not this model's"):
        recorder.capture(attentions=np.ascontiguousarray(run.attentions[:, :, ::-1]))


@pytest.mark.parametrize("family", FAMILIES)
def test_contexts_are_attention_over_the_captured_values(tiny, family):
    """Grouped-query attention: query head h reads key/value head h // (H // KV)."""
    loaded, ids = tiny(family)
    capture = capture_layers(loaded, ids, keep_contexts=True)
    groups = capture.num_heads // capture.num_kv_heads
    if family in ("llama", "qwen2"):
        assert groups == 2
    for layer in range(capture.num_layers):
        values = capture.values[layer].repeat_interleave(groups, dim=0)  # [H, T, dh]
        expected = torch.bmm(capture.attentions[layer], values).transpose(0, 1)  # [T, H, dh]
        torch.testing.assert_close(capture.contexts[layer], expected, atol=1e-5, rtol=1e-5)


# --- value-weighted attention ------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_value_norms_equal_an_explicit_per_head_computation(tiny, family):
    loaded, ids = tiny(family)
    plain = plain_forward(loaded.model, ids)
    capture = capture_layers(loaded, ids)
    per_head, summed = value_norms(capture, normalise=False)
    t = len(ids)
    assert per_head.shape == (capture.num_layers, capture.num_heads, t, t)
    assert summed.shape == (capture.num_layers, t, t)
    assert per_head.dtype == summed.dtype == np.float32
    for layer in range(capture.num_layers):
        ref_heads, ref_sum = explicit_value_norms(loaded.model, family, plain, layer)
        np.testing.assert_allclose(per_head[layer], ref_heads, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(summed[layer], ref_sum, rtol=1e-4, atol=1e-5)
    normed_heads, normed_sum = value_norms(capture)
    np.testing.assert_allclose(normed_heads.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(normed_sum.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(normed_sum, normalise_rows(summed), atol=1e-6)


# --- ALTI ----------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_alti_terms_reconstruct_the_block_output(tiny, family):
    loaded, ids = tiny(family)
    capture = capture_layers(loaded, ids)
    for layer in range(capture.num_layers):
        terms, bias = alti_terms(capture, layer)
        assert terms.shape == (len(ids), len(ids), capture.hidden_size)
        np.testing.assert_allclose(
            terms.sum(axis=1) + bias, capture.normed[layer].numpy(), atol=1e-5, rtol=0
        )
        if capture.is_causal:  # a query's terms from later tokens are exactly zero
            later = np.triu(np.ones((len(ids), len(ids)), dtype=bool), k=1)
            assert not terms[later].any()


@pytest.mark.parametrize("family", FAMILIES)
def test_alti_follows_its_formula(tiny, family):
    loaded, ids = tiny(family)
    capture = capture_layers(loaded, ids)
    scores = alti(capture)
    t = len(ids)
    assert scores.shape == (capture.num_layers, t, t) and scores.dtype == np.float32
    for layer in range(capture.num_layers):
        terms, _ = alti_terms(capture, layer)
        out = capture.normed[layer].numpy().astype(np.float64)
        distance = np.abs(out[:, None, :] - terms).sum(-1)
        raw = np.maximum(0.0, np.abs(out).sum(-1)[:, None] - distance)
        expected = raw / raw.sum(-1, keepdims=True)
        if capture.is_causal:
            expected[np.triu_indices(t, k=1)] = 0.0
        np.testing.assert_allclose(scores[layer], expected, atol=2e-5)
    np.testing.assert_allclose(scores.sum(-1), 1.0, atol=1e-5)
    if capture.is_causal:
        assert not scores[:, np.triu(np.ones((t, t), dtype=bool), k=1)].any()
    assert (np.diagonal(scores, axis1=1, axis2=2) > 0).all()  # the residual keeps a share


def test_alti_blocks_do_not_change_the_result(tiny, monkeypatch):
    """Small blocks of keys (many bmm calls, causal row offsets) give the same scores."""
    import analysis.contributions.measures as measures

    for family in ("bert", "llama"):
        loaded, ids = tiny(family)
        capture = capture_layers(loaded, ids)
        whole = alti(capture)
        monkeypatch.setattr(measures, "_BLOCK_BYTES", 1)  # one key per block
        np.testing.assert_allclose(alti(capture), whole, atol=1e-6)
        monkeypatch.undo()


def test_rollout_of_contributions_is_the_plain_matrix_product():
    rng = np.random.default_rng(0)
    layers = normalise_rows(rng.random((3, 5, 5)))
    rolled = rollout_layers(layers)
    np.testing.assert_allclose(rolled[0], layers[0], atol=1e-6)
    np.testing.assert_allclose(rolled[2], layers[2] @ layers[1] @ layers[0], atol=1e-6)
    np.testing.assert_allclose(rolled.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(contribution_rollout(layers, upto_layer=1), rolled[1])
    with pytest.raises(ValueError):
        contribution_rollout(layers, upto_layer=3)


# --- value zeroing ---------------------------------------------------------------------------


def zeroing_hook(family, value_module, token, *, at_call=0):
    """A forward hook that zeroes token ``token``'s value vectors (only on the
    ``at_call``-th call of a shared module, ALBERT)."""
    state = {"call": 0}

    def hook(module, args, output):
        index = state["call"]
        state["call"] += 1
        if index != at_call:
            return None
        output = output.clone()
        if family == "gpt2":
            d = output.shape[-1] // 3
            output[:, token, 2 * d :] = 0.0
        else:
            output[:, token, :] = 0.0
        return output

    return value_module.register_forward_hook(hook)


def layer_output_with_zeroed_values(loaded, family, ids, layer, token) -> torch.Tensor:
    """The layer's output when the whole model runs with token's values zeroed there."""
    shared = family == "albert"
    *_, value_module, layer_module = reference_layer(loaded.model, family, layer)
    seen = []
    handles = [
        zeroing_hook(family, value_module, token, at_call=layer if shared else 0),
        layer_module.register_forward_hook(
            lambda m, a, o: seen.append(o[0] if isinstance(o, tuple) else o)
        ),
    ]
    try:
        with torch.inference_mode():
            loaded.model(input_ids=torch.as_tensor(ids)[None])
    finally:
        for handle in handles:
            handle.remove()
    return seen[layer if shared else 0][0]


@torch.inference_mode()
def cosine_distance(a, b):
    """``1 - cos`` in float64, as half the squared distance of the unit vectors (the tiny
    random encoders move outputs by ~1e-6, below what ``1 - cos`` in float32 resolves)."""
    a = a.double() / torch.linalg.vector_norm(a.double(), dim=-1, keepdim=True)
    b = b.double() / torch.linalg.vector_norm(b.double(), dim=-1, keepdim=True)
    return 0.5 * torch.linalg.vector_norm(a - b, dim=-1).square()


@pytest.mark.parametrize("family", FAMILIES)
def test_value_zeroing_equals_re_running_the_layer(tiny, family):
    loaded, ids = tiny(family)
    capture = capture_layers(loaded, ids)
    raw = value_zeroing(loaded, capture, normalise=False)
    t = len(ids)
    assert raw.shape == (capture.num_layers, t, t)
    for layer in range(capture.num_layers):
        for token in (0, t // 2, t - 1):
            changed = layer_output_with_zeroed_values(loaded, family, ids, layer, token)
            expected = cosine_distance(changed, capture.layer_outputs[layer]).numpy()
            np.testing.assert_allclose(raw[layer, :, token], expected, rtol=2e-3, atol=1e-10)
    if capture.is_causal:
        assert not raw[:, np.triu(np.ones((t, t), dtype=bool), k=1)].any()
    scores = value_zeroing(loaded, capture)
    np.testing.assert_allclose(scores.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_value_zeroing_scores_zero_where_the_values_are_already_zero(tiny, family):
    loaded, ids = tiny(family)
    layer, token = 1, 2
    shared = family == "albert"
    *_, value_module, _ = reference_layer(loaded.model, family, layer)
    handle = zeroing_hook(family, value_module, token, at_call=layer if shared else 0)
    try:
        capture = capture_layers(loaded, ids)
    finally:
        handle.remove()
    assert not capture.values[layer][:, token].any()
    raw = value_zeroing(loaded, capture, normalise=False, layers=[layer])
    t = len(ids)
    seen = np.tril(np.ones((t, t), dtype=bool)) if capture.is_causal else np.ones((t, t), bool)
    others = seen.copy()
    others[:, token] = False
    assert raw[0][others].min() > 0  # every other visible token still counts
    assert raw[0, :, token].max() < 1e-6 * raw[0][others].min()
    scores = value_zeroing(loaded, capture, layers=[layer])
    assert scores[0, :, token].max() < 1e-6 * scores[0][others].min()


def test_value_zeroing_is_cancellable_and_reports_progress(tiny):
    loaded, ids = tiny("bert")
    capture = capture_layers(loaded, ids)
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 1  # False the first time, True after

    with pytest.raises(Cancelled):
        value_zeroing(loaded, capture, cancelled=cancelled, max_batch_bytes=1)
    assert len(calls) == 2
    fractions = []
    value_zeroing(loaded, capture, progress=fractions.append, max_batch_bytes=1)
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions) and len(fractions) > 2


def test_value_zeroing_batches_do_not_change_the_result(tiny):
    for family in ("distilbert", "qwen2"):
        loaded, ids = tiny(family)
        capture = capture_layers(loaded, ids)
        one = value_zeroing(loaded, capture, max_batch_bytes=1, normalise=False)
        many = value_zeroing(loaded, capture, normalise=False)
        np.testing.assert_allclose(one, many, atol=1e-6)


def test_value_zeroing_refuses_a_capture_of_another_model(tiny):
    bert, ids = tiny("bert")
    electra, _ = tiny("electra")
    with pytest.raises(ValueError, match="another model"):
        value_zeroing(electra, capture_layers(bert, ids))


# --- runs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["bert", "gpt2", "llama"])
def test_contributions_for_run_of_tiny_models(tiny, family):
    from analysis.attention.extract import extract

    loaded, _ = tiny(family)
    run = extract(loaded, TEXT)
    out = contributions_for_run(loaded, run)
    layers, heads, t = run.num_layers, run.num_heads, run.num_tokens
    assert set(out) == {"value_norm", "value_norm_sum", "alti", "alti_rollout",
                        "value_zeroing", "value_zeroing_rollout"}  # fmt: skip
    assert out["value_norm"].shape == (layers, heads, t, t)
    for key in ("value_norm_sum", "alti", "alti_rollout", "value_zeroing", "value_zeroing_rollout"):
        assert out[key].shape == (layers, t, t), key
        assert out[key].dtype == np.float32 and np.isfinite(out[key]).all(), key
        np.testing.assert_allclose(out[key].sum(-1), 1.0, atol=1e-4, err_msg=key)
        if run.model.is_causal:
            assert not out[key][:, np.triu(np.ones((t, t), dtype=bool), k=1)].any(), key
    np.testing.assert_allclose(
        out["alti_rollout"][-1], contribution_rollout(out["alti"]), atol=1e-6
    )


def test_the_default_model_end_to_end(default_loaded):
    """MiniLM on a sentence and on a pair (segment ids -> token_type_ids)."""
    from analysis.attention.extract import extract

    run = extract(default_loaded, "The cat sat on the mat because it was warm.")
    fractions = []
    out = contributions_for_run(default_loaded, run, progress=fractions.append)
    t = run.num_tokens
    assert out["value_norm"].shape == (6, 12, t, t)
    assert out["alti"].shape == out["value_zeroing"].shape == (6, t, t)
    for key in ("value_norm_sum", "alti", "value_zeroing", "alti_rollout"):
        np.testing.assert_allclose(out[key].sum(-1), 1.0, atol=1e-4, err_msg=key)
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    # the residual dominates ALTI's first layer: each token keeps the largest share
    assert (out["alti"][0].argmax(axis=1) == np.arange(t)).mean() > 0.5

    pair = extract(default_loaded, "Where is the cat?", "The cat sat on the mat.")
    ids = default_loaded.tokenizer("Where is the cat?", "The cat sat on the mat.")
    np.testing.assert_array_equal(token_type_ids_of(pair), ids["token_type_ids"])
    quick = contributions_for_run(default_loaded, pair, kinds=("value_norm", "alti"))
    assert set(quick) == {"value_norm", "value_norm_sum", "alti", "alti_rollout"}


def test_contributions_for_run_checks_its_arguments(tiny):
    from analysis.attention.extract import extract

    loaded, _ = tiny("bert")
    run = extract(loaded, TEXT)
    with pytest.raises(ValueError, match="unknown"):
        contributions_for_run(loaded, run, kinds=("saliency",))
    other, _ = tiny("electra")
    with pytest.raises(ValueError):
        contributions_for_run(other, run, kinds=("alti",))
    with pytest.raises(Cancelled):
        contributions_for_run(loaded, run, cancelled=lambda: True)


@pytest.mark.parametrize("family", ENCODER_DECODER_FAMILIES)
def test_encoder_decoders_are_refused_clearly(tiny_model_dir, family):
    from analysis.attention.extract import extract
    from analysis.models.loading import load_model

    loaded = load_model(str(tiny_model_dir(family)))
    message = "not encoder-decoders yet"
    with pytest.raises(ValueError, match=message):
        capture_layers(loaded, loaded.tokenizer(TEXT)["input_ids"])
    with pytest.raises(ValueError, match=message):
        contributions_for_run(loaded, extract(loaded, TEXT))


def test_importing_the_package_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, analysis.contributions as c; "
        "assert c.KINDS == ('value_norm', 'alti', 'value_zeroing'); "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.parametrize("module", ["capture", "measures", "zeroing", "combine", "compute"])
def test_the_docstring_examples_run(default_loaded, module):
    import doctest
    import importlib

    found = importlib.import_module(f"analysis.contributions.{module}")
    result = doctest.testmod(found, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_the_package_docstring_examples_run():
    """run_contributions' example, in the package itself (no model needed)."""
    import doctest

    import analysis.contributions as package

    result = doctest.testmod(package)
    assert result.attempted > 0 and result.failed == 0
