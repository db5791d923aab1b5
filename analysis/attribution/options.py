"""Attribution option lists and what each method's numbers mean (no torch: the window's
widgets may import this module).

Each list is a tuple of ``(key, label, tip)`` like those of :mod:`analysis.options`;
``METHOD_DESCRIPTIONS`` maps a method to one sentence on what its scores mean.

Examples
--------
>>> from analysis.attribution.options import METHODS, METHOD_DESCRIPTIONS, DEFAULT_BASELINE
>>> METHODS[0], DEFAULT_BASELINE
('saliency', 'pad')
>>> METHOD_DESCRIPTIONS["integrated_gradients"].startswith("Signed share")
True
"""

from __future__ import annotations

Option = tuple[str, str, str]

METHOD_ITEMS: tuple[Option, ...] = (
    ("saliency", "Gradient saliency", "L2 norm of the target's gradient with respect to each token's embedding"),
    ("input_x_gradient", "Input x Gradient", "Embedding times gradient, summed over the embedding: a first-order estimate of each token's effect"),
    ("integrated_gradients", "Integrated Gradients", "Gradients integrated along the straight path from the baseline to the text; the scores add up to f(x) - f(baseline)"),
    ("occlusion", "Occlusion", "How much the target drops when one token (or word) is replaced by the baseline"),
    ("lime", "LIME", "Coefficients of a weighted linear surrogate fitted to the target on random token masks"),
    ("kernel_shap", "KernelSHAP", "Shapley values estimated from random token masks with the Shapley kernel"),
)
METHODS: tuple[str, ...] = tuple(key for key, _, _ in METHOD_ITEMS)
GRADIENT_METHODS = ("saliency", "input_x_gradient", "integrated_gradients")
PERTURBATION_METHODS = ("occlusion", "lime", "kernel_shap")

#: One sentence per method: what its numbers mean (units are those of the target function).
METHOD_DESCRIPTIONS: dict[str, str] = {
    "saliency": (
        "Unsigned sensitivity: the length (L2 norm) of the gradient of the target with "
        "respect to the token's embedding; large means a small change of that token moves "
        "the target a lot, in either direction."
    ),
    "input_x_gradient": (
        "Signed first-order effect: the token's embedding times the target's gradient, "
        "summed over the embedding dimensions (positive raises the target)."
    ),
    "integrated_gradients": (
        "Signed share of f(x) - f(baseline): gradients averaged along the straight path from "
        "the baseline embeddings to the text's, times the embedding difference; the scores add "
        "up to f(x) - f(baseline) up to the reported delta."
    ),
    "occlusion": (
        "Signed drop: f(x) minus the target when only this token (or word) is replaced by "
        "the baseline; positive means the token supports the target."
    ),
    "lime": (
        "Signed coefficient of a local linear surrogate: how much the target changes, on "
        "average over random masks weighted by closeness to the text, when this token is "
        "kept rather than replaced by the baseline."
    ),
    "kernel_shap": (
        "Signed Shapley value estimate: the token's average contribution to f(x) - "
        "f(baseline) over random coalitions of kept tokens (the scores add up to about "
        "f(x) - f(baseline))."
    ),
}

BASELINE_ITEMS: tuple[Option, ...] = (
    ("pad", "PAD embedding", "Every token but the special ones replaced by the padding token's embedding (the end-of-text token's when the tokenizer has no padding token)"),
    ("unk", "UNK embedding", "Every token but the special ones replaced by the unknown token's embedding"),
    ("zero", "Zero embedding", "Every token but the special ones replaced by a zero vector"),
)
BASELINES: tuple[str, ...] = tuple(key for key, _, _ in BASELINE_ITEMS)
#: The default baseline: the padding token's embedding. It is an input the model has
#: seen and carries no content, so "text minus baseline" is the content; a zero vector is
#: no input the model has seen and starts the path at RMSNorm/LayerNorm's 0/0 (the
#: normalised embedding jumps from 0 to full size within the first few per cent of the
#: path); UNK is often a delimiter (SmolLM2's is <|endoftext|>). Measured on SmolLM2 with
#: the first token kept (see analysis.attribution.integrated), PAD and zero both converge,
#: PAD in fewer evaluations on the rows tried.
DEFAULT_BASELINE = "pad"

TARGET_FUNCTION_ITEMS: tuple[Option, ...] = (
    ("log_prob", "log-probability", "Natural log of the target's probability (the default)"),
    ("prob", "probability", "The target's probability"),
    ("logit", "logit", "The target's logit (before the softmax)"),
)
TARGET_FUNCTIONS: tuple[str, ...] = tuple(key for key, _, _ in TARGET_FUNCTION_ITEMS)

TARGET_ITEMS: tuple[Option, ...] = (
    ("next_token", "Next token", "The next token of a causal language model (or of a decoder after its prefix)"),
    ("generation", "Generated tokens", "Every generated token, each over the prompt and the tokens generated before it"),
    ("masked_token", "Masked token", "The token a masked-language-model head predicts at a [MASK]"),
    ("class", "Class", "A class of a sequence-classification head"),
    ("qa_start", "Answer start", "The start of a question-answering head's answer span"),
    ("qa_end", "Answer end", "The end of a question-answering head's answer span"),
    ("similarity", "Similarity", "Cosine similarity of the two texts' mean-pooled embeddings"),
)
TARGET_KINDS: tuple[str, ...] = tuple(key for key, _, _ in TARGET_ITEMS)

#: ERASER bins: shares of the input tokens removed (comprehensiveness) or kept (sufficiency).
FAITHFULNESS_BINS: tuple[float, ...] = (0.01, 0.05, 0.10, 0.20, 0.50)

DEFAULT_STEPS = 32  # Integrated Gradients: Gauss-Legendre nodes without --adaptive
DEFAULT_MAX_STEPS = 1024  # Integrated Gradients: the adaptive mode's step cap
DEFAULT_TOLERANCE = 0.05  # adaptive IG: |delta| <= 5% of |f(x) - f(baseline)|
DEFAULT_SAMPLES = 200  # LIME / KernelSHAP
