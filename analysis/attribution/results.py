"""What an attribution returns: plain, immutable value types (numpy, no torch).

The window reads these; they carry everything a view or an export needs: the scores and
the units they are over, the target and its function, f(x), f(baseline), the
Integrated-Gradients delta and whether it converged, the method's parameters and timings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.attribution.words import WordUnits, spread


@dataclass(frozen=True)
class AttributionInput:
    """The tokens an attribution is over (one text, a text pair, or prompt + generation).

    Attributes
    ----------
    text, pair : str, str or None
        The texts the offsets refer to (``pair`` is the second text: the context of a
        question, the other sentence of a similarity, an encoder-decoder's decoder prefix).
    input_ids : int64 [T]
    tokens : the tokens as the tokenizer writes them; ``labels`` for display.
    offsets : int64 [T, 2], character spans in the token's segment text ((0, 0) for specials).
    word_ids : word index within its segment, None for special tokens.
    special_mask : bool [T]; special tokens are never perturbed nor interpolated.
    segment_ids : int64 [T]: 0 = text, 1 = pair, -1 = special token.
    sequence_ids : int64 [T]: which model input the token is in: 0, or 1 for the second
        text of a similarity (encoded on its own); for encoder-decoder models 0 = encoder.
    token_type_ids : int64 [T] or None, for models that take them (BERT pairs).
    prompt_length : for a generation, tokens ``[0, prompt_length)`` are the prompt.
    decoder_ids : encoder-decoder models: the decoder's input (start token + prefix).
    """

    text: str
    pair: str | None
    input_ids: np.ndarray
    tokens: tuple[str, ...]
    labels: tuple[str, ...]
    offsets: np.ndarray
    word_ids: tuple[int | None, ...]
    special_mask: np.ndarray
    segment_ids: np.ndarray
    sequence_ids: np.ndarray
    token_type_ids: np.ndarray | None = None
    prompt_length: int | None = None
    decoder_ids: np.ndarray | None = None
    truncated: bool = False

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)


@dataclass(frozen=True)
class TargetInfo:
    """The resolved target: what the scores explain.

    ``kind`` is one of ``analysis.attribution.options.TARGET_KINDS``; ``function`` is
    ``log_prob``, ``prob`` or ``logit`` for token, class and span targets and ``cosine``
    for a similarity; ``description`` reads like ``log p(" Spain" | text)``.
    ``token_id``/``token``: the explained token (next, masked or generated);
    ``contrast_id``/``contrast``: the foil of a contrastive target, f(A) - f(B);
    ``position``: the input index whose output is read (the last prompt token for a next
    token, the [MASK], the answer position); ``label``: a class's index and ``label_name``.
    """

    kind: str
    function: str
    description: str
    token_id: int | None = None
    token: str | None = None
    contrast_id: int | None = None
    contrast: str | None = None
    position: int | None = None
    label: int | None = None
    label_name: str | None = None


@dataclass(frozen=True)
class Attribution:
    """Signed (or, for saliency, unsigned) scores of one target over the input's units.

    Attributes
    ----------
    method : str
        One of ``analysis.attribution.options.METHODS``; ``description`` says what its
        numbers mean.
    target : TargetInfo
    baseline : str
        ``pad``, ``unk`` or ``zero``: what replaced the tokens (interpolation start for
        IG, the removed tokens' stand-in for the perturbation methods).
    inputs : AttributionInput
    units : WordUnits
        The units the scores are over: tokens, or words with ``unit == "word"``.
    scores : float64 [U]
        Positive = the unit raises the target, negative = it lowers it (saliency is a
        norm, never negative). Special tokens score 0 for IG and the perturbation methods.
    f_x, f_baseline : float
        The target function at the text and at the baseline input.
    delta : float or None
        ``|sum(scores) - (f_x - f_baseline)|`` for Integrated Gradients (always) and
        KernelSHAP; None for the other methods.
    converged : bool or None
        IG: whether ``delta <= tolerance * |f_x - f_baseline|``; with ``adaptive`` it is
        the reason the step doubling stopped (True: tolerance reached; False: step cap).
    steps : int or None
        IG: gradient evaluations used (Gauss-Legendre nodes over all path segments).
    samples : int or None
        Forward evaluations of the perturbation methods.
    params : dict
        Every setting that produced the scores (JSON-serialisable).
    timings : dict
        Seconds: ``prepare``, ``attribute``, ``total``.
    """

    method: str
    target: TargetInfo
    baseline: str
    inputs: AttributionInput
    units: WordUnits
    scores: np.ndarray
    f_x: float
    f_baseline: float
    delta: float | None = None
    converged: bool | None = None
    steps: int | None = None
    samples: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    description: str = ""

    @property
    def unit(self) -> str:
        return "token" if self.units.num_units == self.inputs.num_tokens and np.array_equal(
            self.units.token_units, np.arange(self.inputs.num_tokens)
        ) else "word"

    @property
    def token_scores(self) -> np.ndarray:
        """float64 [T]: each token's score (its word's score when merged to words)."""
        return spread(self.scores, self.units)


@dataclass(frozen=True)
class GenerationAttribution:
    """Every generated token attributed to the prompt and the tokens generated before it
    (as Inseq shows it): a matrix ``[generated tokens x (prompt + generated) units]``.

    Attributes
    ----------
    scores : float64 [R, U]
        Row ``r`` explains generated token ``r`` (input index ``target_positions[r]``);
        NaN where a unit is not a source of that row (it is the token itself or comes
        after it: causal, shown as "masked").
    target_positions : int64 [R]
        Input index of each generated token.
    target_labels : tuple of str [R]
    f_x, f_baseline, delta : float64 [R] (``delta`` NaN for methods without one)
    converged : bool [R] (all True for methods without a delta)
    steps : int or None
        IG: gradient evaluations of the shared path (one batched forward serves all rows).
    Other fields as :class:`Attribution`.
    """

    method: str
    target_function: str
    baseline: str
    inputs: AttributionInput
    units: WordUnits
    scores: np.ndarray
    target_positions: np.ndarray
    target_labels: tuple[str, ...]
    f_x: np.ndarray
    f_baseline: np.ndarray
    delta: np.ndarray
    converged: np.ndarray
    steps: int | None = None
    samples: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    description: str = ""

    @property
    def num_rows(self) -> int:
        return int(self.scores.shape[0])


@dataclass(frozen=True)
class FaithfulnessResult:
    """ERASER faithfulness of one importance vector (DeYoung et al. 2020).

    Attributes
    ----------
    bins : float64 [B]
        Shares of the candidate tokens (non-special) removed or kept: 0.01 ... 0.5.
    counts : int64 [B]
        Tokens that share makes (``ceil(share * candidates)``, at least 1).
    comprehensiveness : float64 [B]
        ``f(x) - f(x without its top-k tokens)``: high = the top tokens were needed.
    sufficiency : float64 [B]
        ``f(x) - f(only the top-k tokens)``: low = the top tokens alone suffice.
    aopc_comprehensiveness, aopc_sufficiency : float
        Means over the bins (area over the perturbation curve).
    f_x : float
    removed_by : str
        What a removed token became (the baseline: ``pad``, ``unk`` or ``zero``).
    """

    bins: np.ndarray
    counts: np.ndarray
    comprehensiveness: np.ndarray
    sufficiency: np.ndarray
    aopc_comprehensiveness: float
    aopc_sufficiency: float
    f_x: float
    removed_by: str
    target: TargetInfo | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "bins": [float(b) for b in self.bins],
            "counts": [int(c) for c in self.counts],
            "comprehensiveness": [float(v) for v in self.comprehensiveness],
            "sufficiency": [float(v) for v in self.sufficiency],
            "aopc_comprehensiveness": float(self.aopc_comprehensiveness),
            "aopc_sufficiency": float(self.aopc_sufficiency),
            "f_x": float(self.f_x),
            "removed_by": self.removed_by,
        }
