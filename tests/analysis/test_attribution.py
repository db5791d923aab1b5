"""Attribution on tiny random models of every family: targets, methods, completeness,
perturbation methods against hand-made computations, the shared generation path."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from analysis.attention.extract import InputError  # noqa: E402
from analysis.attribution import (  # noqa: E402
    METHOD_DESCRIPTIONS,
    METHODS,
    Target,
    attribute,
    attribute_generation,
    available_targets,
    build_objective,
    encode,
    explain_mask_function,
    from_ids,
    generate_greedy,
    integrate,
)
from analysis.attribution.words import aggregate, word_units  # noqa: E402
from analysis.progress import Cancelled  # noqa: E402
from tests.tiny_models import FAMILIES, build_tokenizer  # noqa: E402

TEXT = "the cat sat on the mat"
PAIR = "a dog slept by the door"


def case(family):
    """(text, pair, target) that the tiny model of ``family`` can be asked."""
    if family in ("gpt2", "llama", "qwen2"):
        return TEXT, None, Target()
    if family in ("t5", "bart"):
        return TEXT, "the dog", Target()
    if family == "roberta":
        return "the cat <mask> on the mat", None, Target()
    return TEXT, PAIR, Target("similarity")


# --- targets ---------------------------------------------------------------------------


def test_every_method_has_a_description():
    assert set(METHOD_DESCRIPTIONS) == set(METHODS)
    assert all(isinstance(s, str) and s.endswith(".") for s in METHOD_DESCRIPTIONS.values())


@pytest.mark.parametrize(
    "family, kinds",
    [
        ("gpt2", ("next_token", "generation")),
        ("llama", ("next_token", "generation")),
        ("t5", ("next_token",)),
        ("roberta", ("masked_token", "similarity")),
        ("bert", ("similarity",)),
    ],
)
def test_available_targets_follow_the_checkpoint(tiny, family, kinds):
    assert available_targets(tiny(family)) == kinds


@pytest.mark.parametrize("family", FAMILIES)
def test_objective_at_the_input_is_the_model_output(tiny, family):
    """The objective evaluated at the input's embeddings equals the head model's own
    output for the ids (so the embedding path is the model's)."""
    loaded = tiny(family)
    text, pair, target = case(family)
    inputs = encode(loaded, text, pair, separate=target.kind == "similarity")
    objective = build_objective(loaded, inputs, target)
    value = float(objective.values(objective.x[None])[0, 0])
    ids = torch.as_tensor(np.array(inputs.input_ids))[None]
    with torch.no_grad():
        if family in ("gpt2", "llama", "qwen2"):
            logits = objective.model(input_ids=ids).logits[0, -1]
            expected = torch.log_softmax(logits, -1)[objective.rows[0].index]
        elif family in ("t5", "bart"):
            dec = torch.as_tensor(np.array(inputs.decoder_ids))[None]
            logits = objective.model(input_ids=ids, decoder_input_ids=dec).logits[0, -1]
            expected = torch.log_softmax(logits, -1)[objective.rows[0].index]
        elif family == "roberta":
            logits = objective.model(input_ids=ids).logits[0, objective.rows[0].position]
            expected = torch.log_softmax(logits, -1)[objective.rows[0].index]
        else:
            seq = np.asarray(inputs.sequence_ids)
            a = loaded.model(input_ids=ids[:, seq == 0]).last_hidden_state.mean(1)
            b = loaded.model(input_ids=ids[:, seq == 1]).last_hidden_state.mean(1)
            expected = torch.nn.functional.cosine_similarity(a, b)[0]
    assert value == pytest.approx(float(expected), abs=1e-5)


def test_next_token_defaults_to_the_prediction_and_takes_a_given_token(tiny):
    loaded = tiny("gpt2")
    predicted = attribute(loaded, TEXT, Target(), "saliency")
    ids = torch.as_tensor(np.array(predicted.inputs.input_ids))[None]
    with torch.no_grad():
        from analysis.attribution.heads import CAUSAL_LM, head_model

        logits = head_model(loaded, CAUSAL_LM)(input_ids=ids).logits[0, -1]
    assert predicted.target.token_id == int(logits.argmax())
    given = attribute(loaded, TEXT, Target(token=" dog"), "saliency")
    assert given.target.token == " dog"
    assert given.f_x == pytest.approx(float(torch.log_softmax(logits, -1)[given.target.token_id]), abs=1e-5)


def test_target_functions_and_contrast(tiny):
    loaded = tiny("llama")
    log_prob = attribute(loaded, TEXT, Target(token="the"), "saliency")
    prob = attribute(loaded, TEXT, Target(token="the", function="prob"), "saliency")
    logit = attribute(loaded, TEXT, Target(token="the", function="logit"), "saliency")
    assert prob.f_x == pytest.approx(np.exp(log_prob.f_x), rel=1e-5)
    assert log_prob.target.description.startswith("log p(")
    contrast = attribute(loaded, TEXT, Target(token="the", contrast="dog", function="logit"), "saliency")
    other = attribute(loaded, TEXT, Target(token="dog", function="logit"), "saliency")
    assert contrast.f_x == pytest.approx(logit.f_x - other.f_x, abs=1e-5)
    # log p(A) - log p(B) is the same logit difference
    contrast_lp = attribute(loaded, TEXT, Target(token="the", contrast="dog"), "saliency")
    assert contrast_lp.f_x == pytest.approx(contrast.f_x, abs=1e-4)
    assert "rather" not in contrast.target.description and " - " in contrast.target.description


def test_a_multi_token_target_is_refused_with_its_pieces(tiny):
    with pytest.raises(InputError, match="tokens for this tokenizer"):
        attribute(tiny("gpt2"), TEXT, Target(token=" hippopotamus"), "saliency")


def test_similarity_needs_a_second_text(tiny):
    with pytest.raises(InputError, match="give a second text"):
        attribute(tiny("bert"), TEXT, Target("similarity"), "saliency")


def test_a_target_the_model_cannot_do_is_named(tiny):
    with pytest.raises(InputError, match="no masked-language-model head"):
        attribute(tiny("bert"), "the [MASK] sat", Target("masked_token"), "saliency")
    with pytest.raises(InputError, match="its targets are"):
        attribute(tiny("gpt2"), TEXT, Target("class"), "saliency")


def test_masked_token_target_reads_the_mask(tiny):
    loaded = tiny("roberta")
    result = attribute(loaded, "the cat <mask> on the mat", Target(), "integrated_gradients")
    assert result.target.kind == "masked_token"
    assert result.inputs.tokens[result.target.position] == "<mask>"
    assert result.scores[result.target.position] == 0.0  # a special token stays as it is
    with pytest.raises(InputError, match="has no <mask> token"):
        attribute(loaded, TEXT, Target("masked_token"), "saliency")


@pytest.fixture(scope="module")
def head_models(tmp_path_factory):
    """Tiny BERT checkpoints with a classification head and a QA head."""
    import transformers as tf

    from analysis.models.loading import load_model

    tokenizer = build_tokenizer("bert")
    made = {}
    for name, cls in (("class", tf.BertForSequenceClassification), ("qa", tf.BertForQuestionAnswering)):
        labels = {"num_labels": 3, "id2label": {0: "neg", 1: "neu", 2: "pos"},
                  "label2id": {"neg": 0, "neu": 1, "pos": 2}} if name == "class" else {}
        config = tf.BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                               num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
                               **labels)
        torch.manual_seed(1)
        model = cls(config).eval()
        folder = tmp_path_factory.mktemp(f"tiny-bert-{name}")
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        made[name] = load_model(str(folder))
    return made


def test_class_target(head_models):
    loaded = head_models["class"]
    assert "class" in available_targets(loaded)
    result = attribute(loaded, TEXT, Target("class", label="pos"), "integrated_gradients", steps=64)
    assert result.target.label == 2 and result.target.label_name == "pos"
    assert abs(result.scores.sum() - (result.f_x - result.f_baseline)) == pytest.approx(result.delta, abs=1e-9)
    assert result.delta <= 0.05 * abs(result.f_x - result.f_baseline) + 1e-4
    predicted = attribute(loaded, TEXT, Target("class"), "saliency")
    assert predicted.target.label in (0, 1, 2)


def test_qa_targets(head_models):
    loaded = head_models["qa"]
    kinds = available_targets(loaded)
    assert "qa_start" in kinds and "qa_end" in kinds
    start = attribute(loaded, "where is the cat", Target("qa_start"), "integrated_gradients",
                      pair="the cat sat on the mat", steps=64)
    assert start.inputs.segment_ids[start.target.position] >= 0
    assert start.delta <= 0.05 * abs(start.f_x - start.f_baseline) + 1e-4
    end = attribute(loaded, "where is the cat", Target("qa_end", position=3), "occlusion",
                    pair="the cat sat on the mat")
    assert end.target.position == 3
    with pytest.raises(InputError, match="question and a context"):
        attribute(loaded, "where is the cat", Target("qa_start"), "saliency")


# --- Integrated Gradients ------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_integrated_gradients_completeness_on_every_family(tiny, family):
    """sum(scores) = f(x) - f(baseline) within the reported delta; f(x) and f(baseline)
    as an independent forward pass gives them; adaptive reaches its tolerance."""
    loaded = tiny(family)
    text, pair, target = case(family)
    result = attribute(loaded, text, target, "integrated_gradients", pair=pair, steps=32)
    assert result.params["first_token_kept"] == (family in ("gpt2", "llama", "qwen2") and not result.inputs.special_mask[0])
    objective = build_objective(loaded, result.inputs, target, keep_first=result.params["first_token_kept"])
    ends = objective.values(torch.stack([objective.baseline, objective.x]))
    assert result.f_x == pytest.approx(float(ends[1, 0]), abs=1e-5)
    assert result.f_baseline == pytest.approx(float(ends[0, 0]), abs=1e-5)
    gap = abs(result.scores.sum() - (result.f_x - result.f_baseline))
    assert gap == pytest.approx(result.delta, abs=1e-7)
    assert result.steps == 32 and result.converged == (result.delta <= max(0.05 * abs(result.f_x - result.f_baseline), 1e-4))

    adaptive = attribute(loaded, text, target, "integrated_gradients", pair=pair, adaptive=True, steps=8)
    tolerance = max(0.05 * abs(adaptive.f_x - adaptive.f_baseline), 1e-4)
    assert adaptive.converged is True and adaptive.params["stopped"] == "tolerance"
    assert adaptive.delta <= tolerance
    assert abs(adaptive.scores.sum() - (adaptive.f_x - adaptive.f_baseline)) <= tolerance


def test_adaptive_reports_the_step_cap_honestly(tiny):
    """The tiny Qwen2's path needs more than 16 nodes: with that cap, converged is False,
    the reason is the cap, and the delta really is above the tolerance."""
    loaded = tiny("qwen2")
    result = attribute(loaded, TEXT, Target(), "integrated_gradients", adaptive=True, steps=8, max_steps=16,
                       keep_first=False)
    tolerance = 0.05 * abs(result.f_x - result.f_baseline)
    assert result.converged is False and result.params["stopped"] == "step cap"
    assert result.steps <= 16
    assert result.params["error_bound"] > tolerance
    assert abs(result.scores.sum() - (result.f_x - result.f_baseline)) == pytest.approx(result.delta, abs=1e-9)


def test_the_first_token_of_a_causal_model_is_kept_for_integrated_gradients(tiny):
    """The attention sink stays as it is on the path (score 0) unless asked otherwise; the
    baseline then starts from the real first token."""
    loaded = tiny("llama")  # its tokenizer adds <s>: the first token is special anyway
    assert attribute(loaded, TEXT, Target(), "integrated_gradients", steps=8).params["first_token_kept"] is False
    loaded = tiny("gpt2")  # no BOS: the first token is a word
    kept = attribute(loaded, TEXT, Target(), "integrated_gradients", steps=16)
    moved = attribute(loaded, TEXT, Target(), "integrated_gradients", steps=16, keep_first=False)
    assert kept.params["first_token_kept"] is True and moved.params["first_token_kept"] is False
    assert kept.scores[0] == 0.0 and moved.scores[0] != 0.0
    assert kept.f_x == moved.f_x and kept.f_baseline != moved.f_baseline
    occlusion = attribute(loaded, TEXT, Target(), "occlusion")
    assert "first_token_kept" not in occlusion.params and occlusion.scores[0] != 0.0


@pytest.mark.parametrize("share_forward", [True, False])
@pytest.mark.parametrize("split_head", [True, False])
@pytest.mark.parametrize("keep_first", [True, False])
def test_path_evaluator_equals_one_backward_per_point_and_row(tiny, share_forward, split_head, keep_first,
                                                              monkeypatch):
    """Points asked for by different rows, mixed in batches (one backward pass per rank of the
    requested rows; the head applied per pass or not; the kept first token read from a cache or
    not): every (point, row) gets the gradient and value that a backward pass of that row alone
    at that point gives, to 1e-5."""
    from analysis.attribution import integrated

    loaded = tiny("gpt2")
    inputs = generate_greedy(loaded, TEXT, 3)
    objective = build_objective(loaded, inputs, Target("generation"), keep_first=keep_first)
    parts = objective._split_head()
    assert parts is not None  # GPT-2's logits are its head on the stack
    assert parts[2] == (1 if keep_first else 0)  # the kept first token is the same at every point
    if not split_head:
        objective._split = False
    monkeypatch.setattr(integrated, "SHARE_FORWARD", share_forward)
    requests = {0.0: {0, 1, 2}, 0.25: {2}, 0.5: {0, 2}, 0.625: {1}, 1.0: {0, 1, 2}}
    evaluator = integrated.PathEvaluator(objective, batch_size=2)
    evaluator.run(requests)
    diff = (objective.x - objective.baseline).double()
    for alpha, rows in requests.items():
        for k in rows:
            point = (objective.baseline + alpha * (objective.x - objective.baseline))[None].detach().requires_grad_(True)
            with torch.enable_grad():
                value = objective(point)[0, k]
                (grad,) = torch.autograd.grad(value, point)
            expected = (grad[0].double() * diff).sum(-1).numpy()
            np.testing.assert_allclose(evaluator.products[(alpha, k)], expected, atol=1e-5)
            assert evaluator.values[(alpha, k)] == pytest.approx(float(value.detach()), abs=1e-5)
    assert set(evaluator.products) == {(a, k) for a, rows in requests.items() for k in rows}
    assert evaluator.points == set(requests)


def test_parameters_require_grad_again_after_integrated_gradients(tiny):
    """IG freezes the model's parameters while it runs (only the path points need gradients)
    and gives them back as they were: after a run, after a cancel, and a parameter that was
    frozen before stays frozen."""
    loaded = tiny("gpt2")
    from analysis.attribution.heads import CAUSAL_LM, head_model

    model = head_model(loaded, CAUSAL_LM)
    params = list(model.parameters())
    before = [p.requires_grad for p in params]
    assert any(before)
    seen = []

    def watch(fraction):
        seen.append(any(p.requires_grad for p in params))

    attribute(loaded, TEXT, Target(), "integrated_gradients", adaptive=True, steps=4, batch_size=2, progress=watch)
    assert seen and not any(seen[:-1])  # frozen while it ran
    assert [p.requires_grad for p in params] == before
    with pytest.raises(Cancelled):
        attribute(loaded, TEXT, Target(), "integrated_gradients", steps=8, batch_size=2, cancelled=lambda: True)
    assert [p.requires_grad for p in params] == before
    params[0].requires_grad_(False)
    try:
        attribute(loaded, TEXT, Target(), "saliency")
        assert params[0].requires_grad is False and [p.requires_grad for p in params[1:]] == before[1:]
    finally:
        params[0].requires_grad_(before[0])


def test_integrated_gradients_equals_captum(tiny):
    """Our engine with one segment of n Gauss-Legendre nodes is Captum's IntegratedGradients
    (method="gausslegendre") on the same embeddings and baseline."""
    from captum.attr import IntegratedGradients

    loaded = tiny("gpt2")
    inputs = encode(loaded, TEXT)
    objective = build_objective(loaded, inputs, Target())
    ours = integrate(objective, steps=16)
    ig = IntegratedGradients(lambda X: objective(X)[:, 0])
    theirs, delta = ig.attribute(objective.x[None], baselines=objective.baseline[None], n_steps=16,
                                 method="gausslegendre", return_convergence_delta=True)
    np.testing.assert_allclose(ours.scores[0], theirs[0].sum(-1).double().numpy(), atol=1e-5)
    assert float(ours.delta[0]) == pytest.approx(abs(float(delta[0])), abs=1e-5)


def test_baselines_keep_special_tokens(tiny):
    loaded = tiny("bert")
    inputs = encode(loaded, TEXT, PAIR, separate=True)
    for baseline in ("pad", "unk", "zero"):
        objective = build_objective(loaded, inputs, Target("similarity"), baseline=baseline)
        special = np.array(inputs.special_mask)
        assert torch.equal(objective.baseline[special], objective.x[special])
        others = objective.baseline[~special]
        if baseline == "zero":
            assert float(others.abs().max()) == 0.0
        else:
            token = loaded.tokenizer.pad_token_id if baseline == "pad" else loaded.tokenizer.unk_token_id
            emb = loaded.model.get_input_embeddings().weight[token]
            assert torch.allclose(others, emb.expand_as(others))


# --- gradients -----------------------------------------------------------------------


def test_saliency_and_input_x_gradient_equal_autograd_by_hand(tiny):
    loaded = tiny("gpt2")
    from analysis.attribution.heads import CAUSAL_LM, head_model

    model = head_model(loaded, CAUSAL_LM)
    saliency = attribute(loaded, TEXT, Target(token=" mat"), "saliency")
    ixg = attribute(loaded, TEXT, Target(token=" mat"), "input_x_gradient")
    ids = torch.as_tensor(np.array(saliency.inputs.input_ids))[None]
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    logp = torch.log_softmax(model(inputs_embeds=embeds).logits[0, -1], -1)[saliency.target.token_id]
    (grad,) = torch.autograd.grad(logp, embeds)
    np.testing.assert_allclose(saliency.scores, grad[0].norm(dim=-1).numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ixg.scores, (grad[0] * embeds[0]).sum(-1).detach().numpy(), rtol=1e-5, atol=1e-7)
    assert (saliency.scores >= 0).all()
    assert saliency.f_x == pytest.approx(float(logp.detach()), abs=1e-5)


def test_gradient_methods_equal_captum(tiny):
    from captum.attr import InputXGradient, Saliency

    loaded = tiny("llama")
    inputs = encode(loaded, TEXT)
    objective = build_objective(loaded, inputs, Target())
    fn = lambda X: objective(X)[:, 0]  # noqa: E731
    x = objective.x[None].clone()
    sal = Saliency(fn).attribute(x.clone().requires_grad_(True), abs=False)
    ixg = InputXGradient(fn).attribute(x.clone().requires_grad_(True))
    ours_sal = attribute(loaded, inputs, Target(), "saliency")
    ours_ixg = attribute(loaded, inputs, Target(), "input_x_gradient")
    np.testing.assert_allclose(ours_sal.scores, sal[0].norm(dim=-1).numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ours_ixg.scores, ixg[0].sum(-1).detach().numpy(), rtol=1e-5, atol=1e-7)


# --- perturbations -------------------------------------------------------------------


def test_occlusion_equals_manual_ablation(tiny):
    """Occlusion with the PAD baseline equals replacing each token's id by the pad id."""
    loaded = tiny("gpt2")
    from analysis.attribution.heads import CAUSAL_LM, head_model

    model = head_model(loaded, CAUSAL_LM)
    result = attribute(loaded, TEXT, Target(token=" mat"), "occlusion")
    ids = np.array(result.inputs.input_ids)
    pad = loaded.tokenizer.eos_token_id  # the tiny GPT-2 has no padding token: pad means end-of-text

    def f(token_ids):
        with torch.no_grad():
            logits = model(input_ids=torch.as_tensor(token_ids)[None]).logits[0, -1]
        return float(torch.log_softmax(logits, -1)[result.target.token_id])

    manual = []
    for i in range(len(ids)):
        ablated = ids.copy()
        ablated[i] = pad
        manual.append(f(ids) - f(ablated))
    np.testing.assert_allclose(result.scores, manual, atol=1e-5)
    assert result.samples == len(ids) + 1


def test_occlusion_of_words_ablates_every_piece(tiny):
    loaded = tiny("bert")
    text = "elephants sat sleepily"
    words = attribute(loaded, text, Target("similarity"), "occlusion", pair=PAIR, words=True)
    inputs = words.inputs
    objective = build_objective(loaded, inputs, Target("similarity"))
    base = float(objective.values(objective.x[None])[0, 0])
    for u, label in enumerate(words.units.labels):
        members = np.flatnonzero(words.units.token_units == u)
        if inputs.special_mask[members[0]]:
            assert words.scores[u] == 0.0
            continue
        keep = np.ones(inputs.num_tokens, dtype=bool)
        keep[members] = False
        ablated = float(objective.values(objective.at_masks(torch.as_tensor(keep)[None]))[0, 0])
        assert words.scores[u] == pytest.approx(base - ablated, abs=1e-6), label
    assert "elephants" in words.units.labels and "sleepily" in words.units.labels


@pytest.mark.parametrize("method", ["lime", "kernel_shap"])
def test_sampling_methods_are_reproducible_with_a_seed(tiny, method):
    loaded = tiny("gpt2")
    first = attribute(loaded, TEXT, Target(), method, n_samples=60, seed=3)
    again = attribute(loaded, TEXT, Target(), method, n_samples=60, seed=3)
    other = attribute(loaded, TEXT, Target(), method, n_samples=60, seed=4)
    np.testing.assert_array_equal(first.scores, again.scores)
    assert not np.allclose(first.scores, other.scores)
    assert first.samples == 60 and first.params["seed"] == 3 and first.params["n_samples"] == 60
    rng_state = torch.random.get_rng_state()
    attribute(loaded, TEXT, Target(), method, n_samples=10, seed=5)
    assert torch.equal(rng_state, torch.random.get_rng_state())  # the global generator is untouched


def test_kernel_shap_recovers_a_linear_model():
    """A function linear in the token mask: KernelSHAP's scores are its coefficients, and
    they add up to f(all) - f(none)."""
    coefficients = np.array([0.5, -1.25, 2.0, 0.0, 0.75, -0.3, 1.1])
    w = torch.as_tensor(coefficients)

    def fn(keep):
        return keep.double() @ w + 4.0

    scores, count = explain_mask_function(fn, len(coefficients), "kernel_shap", n_samples=120, seed=0)
    np.testing.assert_allclose(scores, coefficients, atol=1e-6)
    assert count == 120
    occlusion, _ = explain_mask_function(fn, len(coefficients), "occlusion")
    np.testing.assert_allclose(occlusion, coefficients, atol=1e-9)


def test_kernel_shap_on_a_model_linear_in_the_token_mask():
    """A real objective over a model whose output is linear in which tokens are kept."""
    from analysis.attribution.methods import perturbation_scores
    from analysis.attribution.words import token_units

    class LinearObjective:
        num_rows = 1
        device = torch.device("cpu")

        def __init__(self, weights):
            self.w = torch.as_tensor(weights)
            n = len(weights)
            self.x = torch.ones(n, 1)
            self.baseline = torch.zeros(n, 1)
            self.fixed = np.zeros(n, dtype=bool)
            self.fixed[0] = True  # a special token: never a feature
            self.sources = np.ones((1, n), dtype=bool)

        def at_masks(self, keep):
            keep = keep.bool() | torch.as_tensor(self.fixed)[None]
            return torch.where(keep[..., None], self.x[None], self.baseline[None])

        def __call__(self, X, rows=None):
            return (X[..., 0].double() @ self.w.double())[:, None]

        def batch_size(self, grad):
            return 16

    weights = [9.0, 1.0, -2.0, 3.0, 0.5]
    objective = LinearObjective(weights)
    units = token_units(["s", "a", "b", "c", "d"], np.zeros((5, 2)), [-1, 0, 0, 0, 0])
    scores, _ = perturbation_scores(objective, units, "kernel_shap", n_samples=64, seed=1)
    np.testing.assert_allclose(scores, [0.0, 1.0, -2.0, 3.0, 0.5], atol=1e-6)


def test_perturbation_scores_of_special_tokens_are_zero(tiny):
    loaded = tiny("bert")
    result = attribute(loaded, TEXT, Target("similarity"), "kernel_shap", pair=PAIR, n_samples=80)
    special = np.asarray(result.inputs.special_mask)
    assert (result.scores[special] == 0).all()
    assert result.delta == pytest.approx(abs(result.scores.sum() - (result.f_x - result.f_baseline)))


# --- words ---------------------------------------------------------------------------


def test_word_scores_are_sums_of_their_pieces(tiny):
    loaded = tiny("bert")
    text = "the elephants sat sleepily"
    tokens = attribute(loaded, text, Target("similarity"), "integrated_gradients", pair=PAIR)
    words = attribute(loaded, text, Target("similarity"), "integrated_gradients", pair=PAIR, words=True)
    assert words.units.num_units < tokens.units.num_units
    np.testing.assert_allclose(words.scores, aggregate(tokens.scores, words.units), atol=1e-12)
    for u in range(words.units.num_units):
        members = words.units.token_units == u
        assert words.scores[u] == pytest.approx(tokens.scores[members].sum())
    np.testing.assert_allclose(words.token_scores[words.units.token_units == 1],
                               words.scores[1])
    assert words.scores.sum() == pytest.approx(tokens.scores.sum())


def test_word_units_of_a_pair_keep_segments_apart():
    units = word_units((None, 0, 0, None, 0, None), (-1, 0, 0, -1, 1, -1),
                       labels=("[CLS]", "a", "b", "[SEP]", "c", "[SEP]"))
    assert units.labels == ("[CLS]", "ab", "[SEP]", "c", "[SEP]")
    assert units.segments.tolist() == [-1, 0, -1, 1, -1]


# --- generation ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def generation(tiny):
    loaded = tiny("llama")
    return loaded, generate_greedy(loaded, TEXT, 4)


@pytest.mark.parametrize("method", ["integrated_gradients", "saliency", "occlusion"])
def test_shared_forward_generation_equals_a_per_target_loop(generation, method):
    """One batched forward over the whole sequence for every row gives the same matrix as
    attributing each generated token on its own prefix."""
    loaded, inputs = generation
    rows = []
    result = attribute_generation(loaded, inputs, method, steps=16, on_row=lambda r, s: rows.append(r))
    assert result.scores.shape == (4, inputs.num_tokens)
    assert sorted(rows) == [0, 1, 2, 3]
    ids = np.array(inputs.input_ids)
    for r, g in enumerate(result.target_positions):
        prefix = from_ids(loaded, ids[:g])
        alone = attribute(loaded, prefix, Target(token=int(ids[g])), method, steps=16)
        np.testing.assert_allclose(result.scores[r, :g], alone.scores, atol=2e-5)
        assert np.isnan(result.scores[r, g:]).all()
        assert result.f_x[r] == pytest.approx(alone.f_x, abs=1e-5)
        if method == "integrated_gradients":
            assert result.delta[r] == pytest.approx(alone.delta, abs=2e-5)


def test_generation_adaptive_rows_arrive_when_final(generation):
    loaded, inputs = generation
    seen = {}
    result = attribute_generation(loaded, inputs, "integrated_gradients", adaptive=True, steps=8,
                                  on_row=lambda r, s: seen.setdefault(r, s))
    assert sorted(seen) == [0, 1, 2, 3]
    for r, row in seen.items():
        np.testing.assert_array_equal(row, result.scores[r])
    tolerance = np.maximum(0.05 * np.abs(result.f_x - result.f_baseline), 1e-4)
    assert (result.converged == (result.delta <= tolerance) | result.converged).all()
    assert result.converged.all() and (result.delta <= tolerance).all()
    assert len(result.params["row_steps"]) == 4 and result.steps >= max(result.params["row_steps"])


def test_generate_greedy_matches_generate(tiny):
    loaded = tiny("gpt2")
    from analysis.attribution.heads import CAUSAL_LM, head_model

    inputs = generate_greedy(loaded, TEXT, 5)
    ids = torch.as_tensor(np.array(inputs.input_ids[: inputs.prompt_length]))[None]
    expected = head_model(loaded, CAUSAL_LM).generate(ids, max_new_tokens=5, do_sample=False,
                                                       pad_token_id=loaded.tokenizer.eos_token_id)
    n = inputs.num_tokens
    assert inputs.input_ids.tolist() == expected[0].tolist()[:n]


# --- progress, cancel ----------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_progress_rises_to_one_and_cancel_stops(tiny, method):
    loaded = tiny("gpt2")
    seen = []
    attribute(loaded, TEXT, Target(), method, steps=8, n_samples=20, batch_size=4, progress=seen.append)
    assert seen and seen[-1] == pytest.approx(1.0)
    assert all(0.0 <= a <= b <= 1.0 for a, b in zip(seen, seen[1:], strict=False))
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 1

    if method in ("saliency", "input_x_gradient"):
        with pytest.raises(Cancelled):
            attribute(loaded, TEXT, Target(), method, cancelled=lambda: True)
    else:
        with pytest.raises(Cancelled):
            attribute(loaded, TEXT, Target(), method, steps=8, n_samples=20, batch_size=4, cancelled=cancelled)


def test_options_are_checked(tiny):
    loaded = tiny("gpt2")
    with pytest.raises(InputError, match="unknown method"):
        attribute(loaded, TEXT, Target(), "deeplift")
    with pytest.raises(InputError, match="unknown baseline"):
        attribute(loaded, TEXT, Target(), "saliency", baseline="mean")
    with pytest.raises(InputError, match="steps"):
        attribute(loaded, TEXT, Target(), "integrated_gradients", steps=0)
    with pytest.raises(InputError, match="unknown target function"):
        attribute(loaded, TEXT, Target(function="entropy"), "saliency")
