"""compare_explanations: one target explained by attribution methods, attention and
contributions, each scored for faithfulness; similarity faithfulness over two texts.

References are independent of the comparison's own path: the functions it composes called
directly, leave-one-out effects and similarities from plain model calls on token ids, and a
similarity whose every number is worked out by hand below.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from analysis.attention.extract import InputError, extract, extract_ids  # noqa: E402
from analysis.attention.flow import attention_flow  # noqa: E402
from analysis.attention.rollout import attention_rollout  # noqa: E402
from analysis.attribution import (  # noqa: E402
    DEFAULT_VIEWS,
    VIEWS,
    Target,
    attribute,
    compare_explanations,
    encode,
    faithfulness,
    from_run,
    rank_correlation,
)
from analysis.attribution.heads import head_model  # noqa: E402
from analysis.attribution.targets import baseline_token_id  # noqa: E402
from analysis.contributions import contributions_for_run  # noqa: E402
from analysis.progress import Cancelled  # noqa: E402

TEXT = "the cat sat on the mat"
METHODS = ("integrated_gradients", "input_x_gradient", "occlusion")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread (the machine's cores are shared), restored after the module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def gpt2_case(tiny):
    loaded = tiny("gpt2")
    run = extract(loaded, TEXT)
    comparison = compare_explanations(loaded, run, Target(), methods=METHODS, views=VIEWS, steps=16)
    return loaded, run, comparison


def log_prob_of(loaded, ids, token):
    """log p(token | ids) from the causal LM head called on token ids (no embeddings path)."""
    model = head_model(loaded, "causal_lm")
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([list(ids)]), use_cache=False).logits[0, -1]
    return float(torch.log_softmax(logits.double(), -1)[token])


# --- the comparison's rows are the functions it composes ------------------------------------


def test_rows_equal_the_functions_called_directly(gpt2_case):
    loaded, run, comparison = gpt2_case
    inputs = from_run(run, loaded)
    assert comparison.names == (*METHODS, *VIEWS) and comparison.reference == "integrated_gradients"
    last = run.num_tokens - 1
    assert comparison.position == last and comparison.target.position == last
    for method in METHODS:
        direct = attribute(loaded, inputs, Target(), method, steps=16)
        row = comparison[method]
        assert row.kind == "attribution" and row.attribution.target == direct.target
        np.testing.assert_allclose(row.attribution.scores, direct.scores, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(row.importance, direct.token_scores, rtol=1e-6, atol=1e-9)
    contributions = contributions_for_run(loaded, run)
    views = {
        "attention": run.attentions[-1].astype(np.float64).mean(axis=0)[last],
        "rollout": attention_rollout(run.attentions)[last],
        "flow": attention_flow(run.attentions, last),
        "value_norm": contributions["value_norm_sum"][-1][last],
        "alti": contributions["alti_rollout"][-1][last],
        "value_zeroing": contributions["value_zeroing_rollout"][-1][last],
    }
    for name, expected in views.items():
        np.testing.assert_allclose(comparison[name].importance, expected, rtol=1e-6, atol=1e-9)
    target = comparison.target
    reference = comparison["integrated_gradients"].importance
    for row in comparison.explanations:
        direct = faithfulness(loaded, target, inputs, row.importance)
        np.testing.assert_allclose(row.faithfulness.comprehensiveness, direct.comprehensiveness, atol=1e-6)
        np.testing.assert_allclose(row.faithfulness.sufficiency, direct.sufficiency, atol=1e-6)
        assert row.faithfulness.aopc_comprehensiveness == pytest.approx(direct.aopc_comprehensiveness, abs=1e-6)
        assert row.spearman == pytest.approx(rank_correlation(reference, row.importance, comparison.candidates),
                                             nan_ok=True)
    assert comparison["integrated_gradients"].spearman == pytest.approx(1.0)
    encoded = json.loads(json.dumps(comparison.to_dict()))
    assert [e["name"] for e in encoded["explanations"]] == list(comparison.names)
    assert encoded["explanations"][0]["attribution"]["converged"] in (True, False)


def test_the_true_leave_one_out_effect_ranks_best(gpt2_case):
    """Comprehensiveness of the top token is that token's leave-one-out effect, so the
    importance *equal* to the leave-one-out effects (computed here from plain model calls)
    is the most comprehensive explanation at one token, and occlusion is that importance."""
    loaded, run, comparison = gpt2_case
    ids = [int(i) for i in run.input_ids]
    token = comparison.target.token_id
    pad = baseline_token_id(loaded.tokenizer, "pad")
    full = log_prob_of(loaded, ids, token)
    loo = np.array([full - log_prob_of(loaded, ids[:j] + [pad] + ids[j + 1:], token) for j in range(len(ids))])
    np.testing.assert_allclose(comparison["occlusion"].importance, loo, atol=1e-4)
    given = compare_explanations(loaded, run, Target(token=token), methods=(), views=DEFAULT_VIEWS,
                                 importances={"leave_one_out": loo}, reference="leave_one_out", bins=(0.01,))
    best = given["leave_one_out"].faithfulness.comprehensiveness[0]
    assert best == pytest.approx(loo.max(), abs=1e-4)
    for row in given.explanations:
        top = int(np.nanargmax(row.importance))
        assert row.faithfulness.comprehensiveness[0] == pytest.approx(loo[top], abs=1e-4)
        assert row.faithfulness.comprehensiveness[0] <= best + 1e-6
    assert given.ranked()[0].faithfulness.comprehensiveness[0] == pytest.approx(best)


def test_cancel_between_explanations(tiny):
    loaded = tiny("gpt2")
    run = extract(loaded, TEXT)
    delivered, steps = [], []
    with pytest.raises(Cancelled):
        compare_explanations(loaded, run, Target(), methods=("input_x_gradient", "occlusion"), views=("rollout",),
                             cancelled=lambda: bool(delivered), on_explanation=delivered.append,
                             on_step=steps.append)
    assert [e.name for e in delivered] == ["input_x_gradient"]
    assert steps == ["Attributing with Input x Gradient…"]


def test_progress_rises_to_one(tiny):
    loaded = tiny("gpt2")
    seen = []
    compare_explanations(loaded, extract(loaded, TEXT), Target(), methods=("saliency",),
                         views=("attention", "alti"), progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)


def test_a_generated_token_is_read_at_the_position_that_predicted_it(tiny):
    loaded = tiny("gpt2")
    ids = loaded.tokenizer(TEXT)["input_ids"]
    run = extract_ids(loaded, ids, prompt_length=3)  # tokens 3.. play the generated ones
    row = 1
    generated = 3 + row
    comparison = compare_explanations(loaded, run, Target("generation"), row=row, methods=("input_x_gradient",),
                                      views=("attention", "rollout"))
    assert comparison.position == generated - 1
    assert comparison.target.token_id == ids[generated]
    np.testing.assert_allclose(comparison["attention"].importance[:generated],
                               run.attentions[-1].astype(np.float64).mean(0)[generated - 1, :generated])
    for e in comparison.explanations:  # the token itself and what follows are no sources
        assert np.isnan(e.importance[generated:]).all() and np.isfinite(e.importance[:generated]).all()
    assert not comparison.candidates[generated:].any()
    same = compare_explanations(loaded, run, Target("next_token", token=ids[generated], position=generated - 1),
                                methods=("input_x_gradient",), views=("attention", "rollout"))
    for a, b in zip(comparison.explanations, same.explanations, strict=True):
        np.testing.assert_allclose(a.faithfulness.comprehensiveness, b.faithfulness.comprehensiveness)
    with pytest.raises(InputError, match="row must be in"):
        compare_explanations(loaded, run, Target("generation"), row=99)


def test_a_masked_token_is_read_at_the_mask(tiny):
    loaded = tiny("roberta")
    run = extract(loaded, "the cat <mask> on the mat")
    mask = list(run.input_ids).index(loaded.tokenizer.mask_token_id)
    comparison = compare_explanations(loaded, run, Target(), methods=("saliency",), views=("attention",))
    assert comparison.target.kind == "masked_token" and comparison.position == mask
    np.testing.assert_allclose(comparison["attention"].importance,
                               run.attentions[-1].astype(np.float64).mean(0)[mask])


def test_the_runs_own_contributions_are_reused(tiny):
    """A run whose contributions the window computed (the view's array under the kind)
    is read, not recomputed: a planted array comes back as the view's importance."""
    loaded = tiny("gpt2")
    run = extract(loaded, TEXT)
    t = run.num_tokens
    planted = np.random.default_rng(0).random((run.num_layers, t, t)).astype(np.float32)
    with_alti = replace(run, contributions={"alti": planted})
    comparison = compare_explanations(loaded, with_alti, Target(), methods=(), views=("alti",))
    np.testing.assert_allclose(comparison["alti"].importance, planted[-1, t - 1])


def test_encoder_decoder_views_are_skipped_with_a_reason(tiny):
    loaded = tiny("t5")
    run = extract(loaded, TEXT, "the dog")
    comparison = compare_explanations(loaded, run, Target(), methods=("input_x_gradient",), views=("attention",))
    assert comparison.names == ("input_x_gradient",)
    assert "decoder" in comparison.skipped["attention"]


def test_options_are_checked(tiny):
    loaded = tiny("gpt2")
    run = extract(loaded, TEXT)
    with pytest.raises(InputError, match="unknown view"):
        compare_explanations(loaded, run, Target(), views=("gradcam",))
    with pytest.raises(InputError, match="unknown method"):
        compare_explanations(loaded, run, Target(), methods=("deeplift",))
    with pytest.raises(ValueError, match="not compared"):
        compare_explanations(loaded, run, Target(), methods=("saliency",), views=(), reference="alti")


# --- similarity faithfulness: a case worked out by hand -----------------------------------


class _SumOfEmbeddings(torch.nn.Module):
    """An "encoder" whose output is its input embeddings: a text's mean-pooled embedding is
    the mean of its tokens' vectors, so every similarity is a cosine of two 2-vectors."""

    def __init__(self, vectors: dict[int, tuple[float, float]], vocab: int):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, 2)
        with torch.no_grad():
            self.embed.weight.zero_()
            for token, vector in vectors.items():
                self.embed.weight[token] = torch.tensor(vector)
        self.config = SimpleNamespace(hidden_size=2, intermediate_size=2, num_hidden_layers=1,
                                      num_attention_heads=1, architectures=None)

    def get_input_embeddings(self):
        return self.embed

    def forward(self, inputs_embeds=None, **_):
        return SimpleNamespace(last_hidden_state=inputs_embeds)


def test_similarity_faithfulness_by_hand(tiny):
    """Text "cat dog", pair "sat mat", each encoded on its own: [CLS] cat dog [SEP] and
    [CLS] sat mat [SEP]. Vectors: [CLS] (1, 1), cat (1, 0), dog (0, 1), sat (0, 2),
    mat (1, 0); [SEP] and the baseline (PAD) (0, 0). Text = (2, 2), pair = (2, 3) (sums;
    the mean's 1/4 does not change a cosine): f(x) = 5 / (sqrt 2 sqrt 13).

    Importance sat 4 > cat 3 > mat 2 > dog 1 (the specials' 100 must never count), over
    both texts: the top 1 is {sat} (of the pair), the top 2 {sat, cat} (one of each text).
    - without sat: (2, 2) vs (2, 1): 6 / (sqrt 8 sqrt 5); only sat: (1, 1) vs (1, 3):
      4 / (sqrt 2 sqrt 10);
    - without sat, cat: (1, 2) vs (2, 1): 4 / 5; only them: (2, 1) vs (1, 3): 5 / (sqrt 5 sqrt 10).
    """
    bert = tiny("bert")
    tok = bert.tokenizer
    ids = {w: tok.convert_tokens_to_ids(w) for w in ("cat", "dog", "sat", "mat")}
    assert tok.unk_token_id not in ids.values()
    vectors = {tok.cls_token_id: (1.0, 1.0), ids["cat"]: (1.0, 0.0), ids["dog"]: (0.0, 1.0),
               ids["sat"]: (0.0, 2.0), ids["mat"]: (1.0, 0.0)}
    loaded = replace(bert, model=_SumOfEmbeddings(vectors, len(tok)), lm_model=None)
    inputs = encode(loaded, "cat dog", "sat mat", separate=True)
    assert inputs.labels == ("[CLS]", "cat", "dog", "[SEP]", "[CLS]", "sat", "mat", "[SEP]")
    importance = np.array([100.0, 3.0, 1.0, 100.0, 100.0, 4.0, 2.0, 100.0])

    f_x = 5 / (math.sqrt(2) * math.sqrt(13))
    comprehensiveness = [f_x - 6 / (math.sqrt(8) * math.sqrt(5)), f_x - 4 / 5]
    sufficiency = [f_x - 4 / (math.sqrt(2) * math.sqrt(10)), f_x - 5 / (math.sqrt(5) * math.sqrt(10))]
    result = faithfulness(loaded, Target("similarity"), inputs, importance, bins=(0.25, 0.5))
    assert result.counts.tolist() == [1, 2]
    assert result.f_x == pytest.approx(f_x, abs=1e-6)
    np.testing.assert_allclose(result.comprehensiveness, comprehensiveness, atol=1e-6)
    np.testing.assert_allclose(result.sufficiency, sufficiency, atol=1e-6)
    assert result.aopc_comprehensiveness == pytest.approx(np.mean(comprehensiveness), abs=1e-6)

    # the same two texts given as ids (each with its specials)
    text_ids, pair_ids = tok("cat dog")["input_ids"], tok("sat mat")["input_ids"]
    again = faithfulness(loaded, Target("similarity"), text_ids, importance, pair_ids=pair_ids, bins=(0.25, 0.5))
    np.testing.assert_allclose(again.comprehensiveness, comprehensiveness, atol=1e-6)
    np.testing.assert_allclose(again.sufficiency, sufficiency, atol=1e-6)
    with pytest.raises(InputError, match="second text"):  # one text's ids: no similarity
        faithfulness(loaded, Target("similarity"), text_ids, importance[:4])


# --- the embedded models ----------------------------------------------------------------


def pooled_cosine(loaded, first: list[int], second: list[int]) -> float:
    """cos of the mean-pooled last hidden states of two texts, each run on its own ids."""
    with torch.inference_mode():
        a, b = (loaded.model(input_ids=torch.tensor([ids])).last_hidden_state[0].double().mean(0)
                for ids in (first, second))
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def test_minilm_similarity_comparison(default_loaded):
    text, pair = "A man is playing a guitar.", "Someone performs music."
    run = extract(default_loaded, text, pair)  # the window's run: one joint pair encoding
    comparison = compare_explanations(default_loaded, run, Target("similarity"), methods=("input_x_gradient",),
                                      views=DEFAULT_VIEWS)
    assert comparison.names == ("input_x_gradient", *DEFAULT_VIEWS)
    assert comparison.target.kind == "similarity" and comparison.position is None
    first = [int(i) for i in default_loaded.tokenizer(text)["input_ids"]]
    second = [int(i) for i in default_loaded.tokenizer(pair)["input_ids"]]
    assert comparison.inputs.input_ids.tolist() == first + second
    # a view reads each text's own matrices: the mean of its rollout rows
    own = [extract(default_loaded, t) for t in (text, pair)]
    np.testing.assert_allclose(comparison["rollout"].importance,
                               np.concatenate([attention_rollout(r.attentions).mean(0) for r in own]), rtol=1e-6)
    # faithfulness against plain model calls: the top tokens across both texts become PAD
    pad = default_loaded.tokenizer.pad_token_id
    ids = np.array(first + second)
    f_x = pooled_cosine(default_loaded, first, second)
    n = len(first)
    for row in comparison.explanations:
        faith = row.faithfulness
        assert faith.f_x == pytest.approx(f_x, abs=1e-5)
        candidates = np.flatnonzero(comparison.candidates)
        order = candidates[np.argsort(-row.importance[candidates], kind="stable")]
        for k, comp, suff in zip(faith.counts, faith.comprehensiveness, faith.sufficiency, strict=True):
            without = ids.copy()
            without[order[:k]] = pad
            only = ids.copy()
            only[np.setdiff1d(candidates, order[:k])] = pad
            assert comp == pytest.approx(f_x - pooled_cosine(default_loaded, list(without[:n]), list(without[n:])),
                                         abs=1e-5)
            assert suff == pytest.approx(f_x - pooled_cosine(default_loaded, list(only[:n]), list(only[n:])),
                                         abs=1e-5)


def test_chat_model_next_token_comparison(chat_loaded):
    run = extract(chat_loaded, "The capital of France is")
    comparison = compare_explanations(chat_loaded, run, Target(), methods=("input_x_gradient",),
                                      views=DEFAULT_VIEWS)
    last = run.num_tokens - 1
    assert comparison.target.token == " Paris" and comparison.position == last
    assert comparison.names == ("input_x_gradient", *DEFAULT_VIEWS)
    np.testing.assert_allclose(comparison["attention"].importance,
                               run.attentions[-1].astype(np.float64).mean(0)[last], rtol=1e-6)
    for row in comparison.explanations:
        assert np.isfinite(row.faithfulness.comprehensiveness).all()
        assert np.isfinite(row.importance).all()
    # removing every token ranked is the baseline: one number for every explanation
    everything = compare_explanations(chat_loaded, run, Target(), methods=("input_x_gradient",),
                                      views=("rollout",), bins=(1.0,))
    ends = [row.faithfulness.comprehensiveness[0] for row in everything.explanations]
    assert ends[0] == pytest.approx(ends[1], abs=1e-5)
    ixg = everything["input_x_gradient"].attribution
    assert ends[0] == pytest.approx(ixg.f_x - ixg.f_baseline, abs=1e-4)
