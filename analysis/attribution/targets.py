"""Targets: the scalar (or, for a generation, the vector) an attribution explains, as a
differentiable function of the input's word embeddings.

A :class:`Target` says what a person asked for; :func:`build_objective` resolves it
against the loaded model and the input (the predicted token when none was given, the
first ``[MASK]``, the predicted class, ...) and returns an :class:`Objective`: the input's
word embeddings ``x``, the baseline embeddings, and ``objective(X) -> [batch, rows]`` for a
batch of embedding sequences ``X``.

Only word embeddings enter the path: position (and segment) embeddings are added inside
the model as for the real text, rotary positions are untouched. Logits are computed only
at the positions a target reads (``logits_to_keep`` for causal models); for a causal model
one forward of the whole sequence serves every target position (position ``t``'s output
does not depend on later tokens).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch

from analysis.attention.extract import InputError
from analysis.attribution import heads as H
from analysis.attribution.options import BASELINES, TARGET_FUNCTIONS, TARGET_KINDS
from analysis.attribution.results import AttributionInput, TargetInfo
from analysis.models.loading import LoadedModel
from analysis.run import DECODER, ENCODER, ENCODER_DECODER

# target kind -> the head it needs (None: the bare stack)
_TASK_OF_KIND = {
    "next_token": None,  # causal_lm or seq2seq_lm, by architecture
    "generation": H.CAUSAL_LM,
    "masked_token": H.MASKED_LM,
    "class": H.SEQUENCE_CLASSIFICATION,
    "qa_start": H.QUESTION_ANSWERING,
    "qa_end": H.QUESTION_ANSWERING,
    "similarity": None,
}


@dataclass(frozen=True)
class Target:
    """What to explain.

    Parameters
    ----------
    kind : str
        ``auto`` (what the model does: next token of a causal LM or a decoder, the masked
        token of an MLM head when the text has a mask, the class, the answer start, the
        similarity of an embedding model's two texts) or one of
        ``analysis.attribution.options.TARGET_KINDS``.
    token : int or str, optional
        Next/masked token: the token to explain (an id or a text that is one token,
        leading space included: ``" Spain"``); default the model's prediction.
    contrast : int or str, optional
        A foil: the target becomes f(token) - f(contrast) ("token rather than contrast");
        for ``log_prob`` and ``logit`` that is logit(token) - logit(contrast).
    position : int, optional
        Next token: the input index whose next token is explained (default the last);
        masked: the index of the mask (default the first mask); QA: the answer position
        (default the predicted one).
    label : int or str, optional
        Class: index or label name (default the predicted class).
    function : str
        ``log_prob`` (default), ``prob`` or ``logit``; ignored by ``similarity`` (cosine).

    Examples
    --------
    >>> Target("next_token", token=" Spain", contrast=" France")
    Target(kind='next_token', token=' Spain', contrast=' France', position=None, label=None, function='log_prob')
    """

    kind: str = "auto"
    token: int | str | None = None
    contrast: int | str | None = None
    position: int | None = None
    label: int | str | None = None
    function: str = "log_prob"


def check_target(target: Target) -> None:
    """Raise ``InputError`` for a target that no model can have (before loading one)."""
    if target.kind != "auto" and target.kind not in TARGET_KINDS:
        raise InputError(f"unknown target kind {target.kind!r}; expected one of {', '.join(TARGET_KINDS)}")
    if target.function not in TARGET_FUNCTIONS:
        raise InputError(
            f"unknown target function {target.function!r}; expected one of {', '.join(TARGET_FUNCTIONS)}"
        )
    if target.contrast is not None and target.kind not in ("auto", "next_token", "masked_token"):
        raise InputError("a contrast (A rather than B) needs a token target: next or masked token")


def available_targets(loaded: LoadedModel) -> tuple[str, ...]:
    """The target kinds the loaded model can be asked for.

    Decoders: ``next_token`` and ``generation``; encoder-decoders: ``next_token`` (of the
    decoder, over the encoder's tokens); encoders: ``masked_token`` (with an MLM head),
    ``class``, ``qa_start``/``qa_end`` (with those heads) and always ``similarity`` (of the
    mean-pooled embeddings of two texts, what a sentence-embedding model such as the default
    all-MiniLM-L6-v2 is for).

    Examples
    --------
    >>> from analysis.models.loading import load_model   # doctest: +SKIP
    >>> available_targets(load_model())                    # doctest: +SKIP
    ('similarity',)
    """
    architecture = loaded.facts.architecture
    if architecture == DECODER:
        return ("next_token", "generation")
    if architecture == ENCODER_DECODER:
        return ("next_token",)
    tasks = H.available_tasks(loaded)
    kinds = []
    if H.MASKED_LM in tasks:
        kinds.append("masked_token")
    if H.SEQUENCE_CLASSIFICATION in tasks:
        kinds.append("class")
    if H.QUESTION_ANSWERING in tasks:
        kinds += ["qa_start", "qa_end"]
    kinds.append("similarity")
    return tuple(kinds)


def auto_kind(loaded: LoadedModel, inputs_have_mask: bool = False, has_pair: bool = False) -> str:
    """The target kind ``auto`` means for this model."""
    kinds = available_targets(loaded)
    if "next_token" in kinds:
        return "next_token"
    if "masked_token" in kinds and inputs_have_mask:
        return "masked_token"
    if "class" in kinds:
        return "class"
    if "qa_start" in kinds and has_pair:
        return "qa_start"
    return "similarity"


def needs_separate_pair(loaded: LoadedModel, target: Target) -> bool:
    """True when the target reads the pair as a second, separately encoded text."""
    if target.kind == "similarity":
        return True
    if target.kind == "auto" and loaded.facts.architecture == ENCODER:
        kinds = available_targets(loaded)
        return not any(k in kinds for k in ("masked_token", "class", "qa_start"))
    return False


def token_id_of(tokenizer, token: int | str, what: str = "target") -> int:
    """The id of a token given as an id or as a text that is exactly one token."""
    vocab = len(tokenizer)
    if isinstance(token, (int, np.integer)) and not isinstance(token, bool):
        if not 0 <= int(token) < vocab:
            raise InputError(f"the {what} token id {token} is outside the vocabulary (0..{vocab - 1})")
        return int(token)
    if not isinstance(token, str) or token == "":
        raise InputError(f"the {what} token must be a token's text or id, not {token!r}")
    ids = tokenizer(token, add_special_tokens=False)["input_ids"]
    if len(ids) == 1:
        return int(ids[0])
    direct = tokenizer.convert_tokens_to_ids(token)
    if isinstance(direct, int) and direct != tokenizer.unk_token_id and direct is not None:
        return int(direct)
    pieces = tokenizer.convert_ids_to_tokens(ids)
    raise InputError(
        f"the {what} {token!r} is {len(ids)} tokens for this tokenizer ({' '.join(pieces)}); "
        "give one token (a leading space is part of a token: ' Spain')"
    )


def _token_text(tokenizer, token_id: int) -> str:
    return tokenizer.decode([int(token_id)])


def baseline_token_id(tokenizer, baseline: str) -> int | None:
    """The token whose embedding is the baseline (None for ``zero``).

    ``pad``: the padding token, else the end-of-text token, else the unknown token;
    ``unk``: the unknown token.
    """
    if baseline not in BASELINES:
        raise InputError(f"unknown baseline {baseline!r}; expected one of {', '.join(BASELINES)}")
    if baseline == "zero":
        return None
    if baseline == "pad":
        for value in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id):
            if value is not None:
                return int(value)
        raise InputError("this tokenizer has no padding, end or unknown token: use --baseline zero")
    if tokenizer.unk_token_id is None:
        raise InputError("this tokenizer has no unknown token: use --baseline pad or zero")
    return int(tokenizer.unk_token_id)


def _transformed(function: str, logits: torch.Tensor) -> torch.Tensor:
    """log_softmax, softmax or identity of ``logits`` over the vocabulary (float32 math)."""
    if function == "log_prob":
        return torch.log_softmax(logits.float(), dim=-1)
    if function == "prob":
        return torch.softmax(logits.float(), dim=-1)
    return logits.float()


def _apply(function: str, logits: torch.Tensor, index: torch.Tensor | int) -> torch.Tensor:
    """f(logits)[..., index] with f = log_softmax, softmax or identity (float32 math)."""
    return _transformed(function, logits)[..., index]


def _apply_each(function: str, logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """f(logits[m])[index[m]] for each row ``m`` of ``logits [M, V]`` (as :func:`_apply`)."""
    return _transformed(function, logits).gather(-1, index[:, None])[:, 0]


def _memory_per_token(config) -> float:
    """Rough bytes of activations autograd keeps per token (all layers), float32."""
    hidden = getattr(config, "hidden_size", None) or getattr(config, "d_model", None) or getattr(config, "dim", 512)
    inter = getattr(config, "intermediate_size", None) or getattr(config, "d_ff", None) or getattr(config, "hidden_dim", None) or 4 * hidden
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "num_layers", None) or getattr(config, "n_layer", None) or 12
    if getattr(config, "is_encoder_decoder", False):
        layers = 2 * layers
    return float(layers) * (12 * hidden + 4 * inter) * 4


@dataclass
class _Row:
    info: TargetInfo
    position: int  # output position read (causal: the position predicting the token)
    index: int  # token id / class / answer position read from that output
    contrast: int | None
    sources: np.ndarray  # bool [N]


class Objective:
    """A differentiable target of the input's word embeddings (see the module doc).

    Attributes
    ----------
    x : float32 tensor [N, E]
        The input's word embeddings (all sequences, flat).
    baseline : float32 tensor [N, E]
        The baseline's (special tokens equal to ``x``).
    fixed : bool array [N]
        Special tokens: never interpolated nor perturbed.
    sources : bool array [K, N]
        Which tokens can move row ``k`` (causal models: the tokens up to its position).
    infos : list of TargetInfo [K]
    """

    def __init__(self, loaded, inputs, kind, function, rows, baseline, model, keep_first=False):
        self.loaded = loaded
        self.inputs = inputs
        self.kind = kind
        self.function = function
        self.rows = rows
        self.baseline_name = baseline
        self.model = model
        self.device = next(loaded.model.parameters()).device
        embedding = model.get_input_embeddings()
        ids = torch.as_tensor(np.array(inputs.input_ids), device=self.device)
        with torch.no_grad():
            self.x = embedding(ids).detach().float()
        base_id = baseline_token_id(loaded.tokenizer, baseline)
        with torch.no_grad():
            if base_id is None:
                base = torch.zeros_like(self.x)
            else:
                base = embedding(torch.full_like(ids, base_id)).detach().float()
        self.fixed = np.asarray(inputs.special_mask, dtype=bool).copy()
        # a causal LM's first token is its attention sink: kept when asked (see integrated.py)
        self.first_kept = bool(keep_first and loaded.facts.architecture == DECODER and len(self.fixed)
                               and not self.fixed[0])
        if self.first_kept:
            self.fixed[0] = True
        keep = torch.as_tensor(self.fixed, device=self.device)[:, None]
        self.baseline = torch.where(keep, self.x, base)
        self.baseline_token = base_id
        self.sources = np.stack([r.sources for r in rows]) if rows else np.zeros((0, len(ids)), bool)
        self.infos = [r.info for r in rows]
        self._positions = torch.as_tensor(sorted({r.position for r in rows}), device=self.device)
        slot = {p: i for i, p in enumerate(self._positions.tolist())}
        self._slots = [slot[r.position] for r in rows]
        self._per_token = _memory_per_token(loaded.model.config)
        self._seq = np.asarray(inputs.sequence_ids)
        self._split = None  # (stack, head, lead) of a causal LM, False, or None: not checked yet
        self._prefix = None  # (lead, the stack's cache of the input's first lead tokens)
        self._types = None
        if inputs.token_type_ids is not None:
            self._types = torch.as_tensor(np.array(inputs.token_type_ids), device=self.device)[None]

    @property
    def num_rows(self) -> int:
        return len(self.rows)

    @property
    def num_tokens(self) -> int:
        return int(self.x.shape[0])

    def batch_size(self, grad: bool, budget_bytes: float = 1.0e9) -> int:
        """How many embedding sequences one forward may take."""
        per_example = self._per_token * self.num_tokens * (1.0 if grad else 0.25)
        heads = getattr(self.loaded.model.config, "num_attention_heads", 12) or 12
        per_example += 4.0 * heads * self.num_tokens**2 * self.loaded.facts.num_layers * (3 if grad else 1)
        return int(max(1, min(256, budget_bytes // max(per_example, 1.0))))

    # --- evaluation ------------------------------------------------------------------

    def __call__(self, X: torch.Tensor, rows: list[int] | None = None) -> torch.Tensor:
        """Target values ``[b, K]`` for embedding sequences ``X [b, N, E]``.

        ``rows``: only these rows are needed (the others come back as 0). A causal model then
        reads only the prefix up to the last position they need: the same values, since a
        position's output does not depend on later tokens, at the cost of that prefix.
        """
        kind = self.kind
        if kind == "similarity":
            return self._similarity(X)
        model = self.model
        b = X.shape[0]
        if kind in ("next_token", "generation") and self.loaded.facts.architecture == DECODER:
            wanted = range(len(self.rows)) if rows is None else sorted(set(rows))
            positions = sorted({self.rows[k].position for k in wanted})
            slot = {p: i for i, p in enumerate(positions)}
            upto = positions[-1] + 1
            out = model(inputs_embeds=X[:, :upto], use_cache=False,
                        logits_to_keep=torch.as_tensor(positions, device=self.device))
            logits = out.logits  # [b, P, V]
            zero = logits.new_zeros(b)
            needed = set(wanted)
            return torch.stack([self._read(logits[:, slot[r.position]], r) if k in needed else zero
                                for k, r in enumerate(self.rows)], 1)
        if kind == "next_token":  # encoder-decoder: the decoder's next token
            decoder = torch.as_tensor(np.array(self.inputs.decoder_ids), device=self.device)[None].expand(b, -1)
            out = model(inputs_embeds=X, decoder_input_ids=decoder, use_cache=False)
            logits = out.logits[:, -1]
            return torch.stack([self._read(logits, r) for r in self.rows], 1)
        extra = {}
        if self._types is not None:
            extra["token_type_ids"] = self._types.expand(b, -1)
        out = model(inputs_embeds=X, **extra)
        if kind == "masked_token":
            return torch.stack([self._read(out.logits[:, r.position], r) for r in self.rows], 1)
        if kind == "class":
            return torch.stack([self._read(out.logits, r) for r in self.rows], 1)
        logits = out.start_logits if kind == "qa_start" else out.end_logits
        return torch.stack([self._read(logits, r) for r in self.rows], 1)

    # --- one backward pass per rank of requested rows -----------------------------------

    def reach(self, rows) -> int:
        """How many leading tokens a forward needs for ``rows`` (causal models: up to the last
        position they read; other models: all)."""
        if self.kind in ("next_token", "generation") and self.loaded.facts.architecture == DECODER:
            return max(self.rows[k].position for k in rows) + 1
        return self.num_tokens

    def row_passes(self, X: torch.Tensor, wanted: list[list[int]]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Values of sample ``j``'s rows ``wanted[j]`` for embedding sequences ``X [b, N, E]``,
        arranged for one backward pass per rank of the requested rows.

        Returns ``(values, passes)``: ``values`` float64 ``[b, K]`` on the CPU, detached, NaN
        where a row was not asked for; ``passes[t]`` a differentiable scalar, the sum over the
        samples that ask for a ``t``-th row of that row's value. Samples are independent, so the
        gradient of ``passes[t]`` with respect to ``X`` gives every sample the gradient of its own
        ``t``-th row: ``max_j len(wanted[j])`` backward passes serve every request of the batch,
        however the rows are mixed.

        For a causal LM whose logits are its head applied to the stack's last hidden state (checked
        once against the model's own logits), the head is applied per pass to the hidden states the
        pass reads, so a backward pass goes through the head for its own samples only (not for every
        position the batch reads). Other models read the rows from one ``self(X)``.
        """
        b = X.shape[0]
        values = torch.full((b, self.num_rows), float("nan"), dtype=torch.float64)
        ranks = max((len(w) for w in wanted), default=0)
        union = sorted({k for w in wanted for k in w})
        if not union:
            return values, []
        parts = self._split_head()
        if parts is None:
            every = self(X, rows=union)
            every_value = every.detach().double().cpu()
            passes = []
            for t in range(ranks):
                samples = [j for j in range(b) if len(wanted[j]) > t]
                rows = [wanted[j][t] for j in samples]
                passes.append(every[samples, rows].sum())
                values[samples, rows] = every_value[samples, rows]
            return values, passes
        stack, head, lead = parts
        hidden = self._hidden(stack, X, self.reach(union), lead)
        passes = []
        for t in range(ranks):
            samples = [j for j in range(b) if len(wanted[j]) > t]
            rows = [wanted[j][t] for j in samples]
            where = torch.as_tensor([self.rows[k].position - lead for k in rows], device=X.device)
            picked = hidden[torch.as_tensor(samples, device=X.device), where]  # [b_t, E]
            value = self._read_rows(head(picked), rows)
            values[samples, rows] = value.detach().double().cpu()
            passes.append(value.sum())
        return values, passes

    def _read_rows(self, logits: torch.Tensor, rows: list[int]) -> torch.Tensor:
        """``logits [M, V]``, one row of the objective each -> its target values ``[M]``."""
        index = torch.as_tensor([self.rows[k].index for k in rows], device=logits.device)
        value = _apply_each(self.function, logits, index)
        contrast = [self.rows[k].contrast for k in rows]
        if any(c is not None for c in contrast):
            foil = torch.as_tensor([c if c is not None else 0 for c in contrast], device=logits.device)
            has = torch.as_tensor([c is not None for c in contrast], device=logits.device)
            value = value - torch.where(has, _apply_each(self.function, logits, foil), value.new_zeros(()))
        return value

    def _split_head(self):
        """``(stack, head, lead)`` when a causal LM's logits are ``head(stack(X).last_hidden_state)``,
        else None. ``lead``: the leading tokens that are the same at every point of the path
        (special or kept tokens before the first one that moves, and before every position a row
        reads); their keys and values are computed once (:meth:`_hidden`). Both are checked once,
        at the input, against the model's own logits; what does not match is not used."""
        if self._split is None:
            self._split = False
            if self.kind in ("next_token", "generation") and self.loaded.facts.architecture == DECODER:
                stack, head = self.loaded.model, self.model.get_output_embeddings()
                if head is not None and stack is not self.model:
                    moving = np.flatnonzero(~self.fixed)
                    first_read = min(r.position for r in self.rows)
                    lead = int(min(moving[0] if moving.size else 0, first_read))
                    for candidate in ([lead, 0] if lead else [0]):
                        if self._split_matches(stack, head, candidate):
                            self._split = (stack, head, candidate)
                            break
        return self._split or None

    def _split_matches(self, stack, head, lead: int) -> bool:
        """The split path (with ``lead`` tokens from the prefix cache) gives the model's own
        values at the input, to float32 noise."""
        self._prefix = None
        rows = list(range(self.num_rows))
        try:
            with torch.inference_mode():
                X = self.x[None]
                own = self(X).double()
                hidden = self._hidden(stack, X, self.reach(rows), lead)
                where = torch.as_tensor([r.position - lead for r in self.rows], device=self.device)
                split = self._read_rows(head(hidden[0, where]), rows).double()[None]
        except Exception:  # a model whose cache cannot start from a given prefix
            return False
        scale = float(own.abs().max()) + 1.0
        return bool(torch.allclose(own, split, rtol=0.0, atol=1e-4 * scale))

    def _hidden(self, stack, X: torch.Tensor, upto: int, lead: int) -> torch.Tensor:
        """The stack's last hidden states of ``X[:, lead:upto]``, the first ``lead`` tokens
        read from a cache of the input's (they are the same in every sample)."""
        if not lead:
            return stack(inputs_embeds=X[:, :upto], use_cache=False).last_hidden_state
        if self._prefix is None or self._prefix[0] != lead:
            with torch.inference_mode(False), torch.no_grad():
                out = stack(inputs_embeds=self.x[None, :lead], use_cache=True)
            self._prefix = (lead, out.cache)
        b = X.shape[0]
        cache = copy.copy(self._prefix[1])
        cache.layers = [copy.copy(layer) for layer in cache.layers]
        for layer in cache.layers:
            layer.keys = layer.keys.expand(b, *layer.keys.shape[1:])
            layer.values = layer.values.expand(b, *layer.values.shape[1:])
        positions = torch.arange(lead, upto, device=X.device)[None].expand(b, -1)
        return stack(inputs_embeds=X[:, lead:upto], cache=cache, use_cache=True, position_ids=positions).last_hidden_state

    def _read(self, logits: torch.Tensor, row: _Row) -> torch.Tensor:
        value = _apply(self.function, logits, row.index)
        if row.contrast is not None:
            value = value - _apply(self.function, logits, row.contrast)
        return value

    def _similarity(self, X: torch.Tensor) -> torch.Tensor:
        pooled = []
        for s in (0, 1):
            columns = np.flatnonzero(self._seq == s)
            part = X[:, columns]
            hidden = self.loaded.model(inputs_embeds=part).last_hidden_state
            pooled.append(hidden.float().mean(dim=1))
        return torch.nn.functional.cosine_similarity(pooled[0], pooled[1], dim=-1)[:, None]

    def values(self, X: torch.Tensor, *, batch: int | None = None) -> torch.Tensor:
        """``self(X)`` in batches without autograd (float64 [b, K] on the CPU)."""
        size = batch or self.batch_size(grad=False)
        out = []
        with torch.inference_mode():
            for start in range(0, X.shape[0], size):
                out.append(self(X[start : start + size]).double().cpu())
        return torch.cat(out) if out else torch.zeros((0, self.num_rows), dtype=torch.float64)

    def at_masks(self, keep: torch.Tensor) -> torch.Tensor:
        """Embedding sequences where ``keep[b, N]`` (bool) keeps a token and the rest take
        the baseline; special tokens are always kept."""
        keep = keep.to(self.device).bool() | torch.as_tensor(self.fixed, device=self.device)[None]
        return torch.where(keep[..., None], self.x[None], self.baseline[None])


# --- resolution ------------------------------------------------------------------------


def build_objective(
    loaded: LoadedModel,
    inputs: AttributionInput,
    target: Target,
    *,
    baseline: str = "pad",
    generated_positions: np.ndarray | None = None,
    keep_first: bool = False,
) -> Objective:
    """Resolve ``target`` for ``inputs`` and return the differentiable objective.

    Parameters
    ----------
    loaded : LoadedModel
    inputs : AttributionInput
    target : Target
    baseline : str
        ``pad``, ``unk`` or ``zero``.
    generated_positions : int array, optional
        ``generation`` targets: the input indices of the tokens to explain (default all
        from ``inputs.prompt_length`` on). Row ``r`` explains token ``g = positions[r]``
        read at position ``g - 1``, over the tokens before ``g``.
    keep_first : bool
        Causal LMs: keep the first token as it is in the baseline (like a special token),
        when it is not a special token already. It is the model's attention sink;
        Integrated Gradients asks for it (see :mod:`analysis.attribution.integrated`).

    Raises
    ------
    InputError
        A target the model cannot do, or one that does not fit the input, in one line.
    """
    check_target(target)
    tokenizer = loaded.tokenizer
    facts = loaded.facts
    n = inputs.num_tokens
    has_mask = tokenizer.mask_token_id is not None and int(tokenizer.mask_token_id) in set(inputs.input_ids.tolist())
    has_pair = inputs.pair is not None
    kind = target.kind if target.kind != "auto" else auto_kind(loaded, has_mask, has_pair)
    kinds = available_targets(loaded)
    if kind not in kinds:
        raise InputError(_unavailable(loaded, kind, kinds))
    function = target.function
    all_sources = np.ones(n, dtype=bool)

    if kind == "similarity":
        if not (np.asarray(inputs.sequence_ids) == 1).any():
            raise InputError(
                f"{facts.name} is a sentence-embedding model: its target is the similarity of "
                "two texts; give a second text (a pair) to compare the text with"
            )
        info = TargetInfo(kind, "cosine", "cos(text, pair) of mean-pooled embeddings")
        rows = [_Row(info, 0, 0, None, all_sources)]
        return Objective(loaded, inputs, kind, "cosine", rows, baseline, loaded.model, keep_first)

    if kind in ("next_token", "generation"):
        task = H.SEQ2SEQ_LM if facts.architecture == ENCODER_DECODER else H.CAUSAL_LM
        model = H.head_model(loaded, task)
    else:
        model = H.head_model(loaded, _TASK_OF_KIND[kind])
    objective_kind = kind
    rows: list[_Row] = []

    if kind == "generation":
        positions = generated_positions
        if positions is None:
            if inputs.prompt_length is None:
                raise InputError("a generation target needs generated tokens (a prompt length)")
            positions = np.arange(inputs.prompt_length, n)
        positions = np.asarray(positions, dtype=np.int64)
        if positions.size == 0 or positions.min() < 1 or positions.max() >= n:
            raise InputError("the generated tokens must come after at least one prompt token")
        for g in positions.tolist():
            tok = int(inputs.input_ids[g])
            text = _token_text(tokenizer, tok)
            info = TargetInfo("generation", function, f"{_fname(function)}({text!r} | tokens before it)",
                              token_id=tok, token=text, position=g - 1)
            sources = np.arange(n) < g
            rows.append(_Row(info, g - 1, tok, None, sources))
        return Objective(loaded, inputs, objective_kind, function, rows, baseline, model, keep_first)

    if kind == "next_token":
        if facts.architecture == ENCODER_DECODER:
            position = len(inputs.decoder_ids) - 1
            sources = all_sources
        else:
            position = n - 1 if target.position is None else int(target.position)
            if not 0 <= position < n:
                raise InputError(f"the position {position} is outside the input (0..{n - 1})")
            sources = np.arange(n) <= position
        probe = None
        if target.token is None:
            probe = _logits_at_x(loaded, inputs, model, kind, position)
        token = token_id_of(tokenizer, target.token) if target.token is not None else int(probe.argmax())
        contrast = token_id_of(tokenizer, target.contrast, "contrast") if target.contrast is not None else None
        rows.append(_Row(_token_info(tokenizer, kind, function, token, contrast, position), position, token, contrast, sources))
        return Objective(loaded, inputs, objective_kind, function, rows, baseline, model, keep_first)

    if kind == "masked_token":
        mask_id = tokenizer.mask_token_id
        masks = np.flatnonzero(np.asarray(inputs.input_ids) == mask_id) if mask_id is not None else np.array([])
        if target.position is not None:
            position = int(target.position)
            if not 0 <= position < n:
                raise InputError(f"the position {position} is outside the input (0..{n - 1})")
        elif masks.size:
            position = int(masks[0])
        else:
            raise InputError(
                f"the text has no {tokenizer.mask_token or 'mask'} token: write "
                f"{tokenizer.mask_token or '[MASK]'} where the token to predict is"
            )
        token = target.token
        if token is None:
            token = int(_logits_at_x(loaded, inputs, model, kind, position).argmax())
        else:
            token = token_id_of(tokenizer, token)
        contrast = token_id_of(tokenizer, target.contrast, "contrast") if target.contrast is not None else None
        rows.append(_Row(_token_info(tokenizer, kind, function, token, contrast, position), position, token, contrast, all_sources))
        return Objective(loaded, inputs, objective_kind, function, rows, baseline, model, keep_first)

    if kind == "class":
        labels = getattr(model.config, "id2label", None) or {}
        count = int(getattr(model.config, "num_labels", len(labels) or 2))
        label = target.label
        if label is None:
            label = int(_logits_at_x(loaded, inputs, model, kind, 0).argmax())
        elif isinstance(label, str) and not label.lstrip("-").isdigit():
            by_name = {str(v): int(k) for k, v in labels.items()}
            if label not in by_name:
                raise InputError(f"no class named {label!r}; the classes are {', '.join(by_name)}")
            label = by_name[label]
        label = int(label)
        if not 0 <= label < count:
            raise InputError(f"class {label} does not exist (0..{count - 1})")
        name = str(labels.get(label, labels.get(str(label), label)))
        info = TargetInfo(kind, function, f"{_fname(function)}(class {name!r})", label=label, label_name=name)
        rows.append(_Row(info, 0, label, None, all_sources))
        return Objective(loaded, inputs, objective_kind, function, rows, baseline, model, keep_first)

    # qa_start / qa_end
    if inputs.pair is None:
        raise InputError("a question-answering target needs a question and a context (a pair)")
    which = "start" if kind == "qa_start" else "end"
    if target.position is None:
        logits = _logits_at_x(loaded, inputs, model, kind, 0)
        allowed = np.asarray(inputs.segment_ids) >= 0
        position = int(np.where(allowed, logits.numpy(), -np.inf).argmax())
    else:
        position = int(target.position)
        if not 0 <= position < n:
            raise InputError(f"the position {position} is outside the input (0..{n - 1})")
    info = TargetInfo(kind, function, f"{_fname(function)}(answer {which} at {inputs.labels[position]!r})", position=position)
    rows.append(_Row(info, 0, position, None, all_sources))
    return Objective(loaded, inputs, objective_kind, function, rows, baseline, model, keep_first)


def _fname(function: str) -> str:
    return {"log_prob": "log p", "prob": "p", "logit": "logit", "cosine": "cos"}[function]


def _token_info(tokenizer, kind, function, token, contrast, position) -> TargetInfo:
    text = _token_text(tokenizer, token)
    description = f"{_fname(function)}({text!r})"
    contrast_text = None
    if contrast is not None:
        contrast_text = _token_text(tokenizer, contrast)
        description += f" - {_fname(function)}({contrast_text!r})"
    return TargetInfo(kind, function, description, token_id=token, token=text, contrast_id=contrast,
                      contrast=contrast_text, position=position)


def _logits_at_x(loaded, inputs, model, kind, position) -> torch.Tensor:
    """The raw logits the target reads, at the text itself (to find the prediction)."""
    device = next(loaded.model.parameters()).device
    ids = torch.as_tensor(np.array(inputs.input_ids), device=device)[None]
    with torch.inference_mode():
        if kind == "next_token" and loaded.facts.architecture == ENCODER_DECODER:
            decoder = torch.as_tensor(np.array(inputs.decoder_ids), device=device)[None]
            return model(input_ids=ids, decoder_input_ids=decoder, use_cache=False).logits[0, -1].float().cpu()
        if kind == "next_token":
            return model(input_ids=ids, use_cache=False, logits_to_keep=torch.tensor([position], device=device)).logits[0, 0].float().cpu()
        extra = {}
        if inputs.token_type_ids is not None:
            extra["token_type_ids"] = torch.as_tensor(np.array(inputs.token_type_ids), device=device)[None]
        out = model(input_ids=ids, **extra)
        if kind == "masked_token":
            return out.logits[0, position].float().cpu()
        if kind == "class":
            return out.logits[0].float().cpu()
        return (out.start_logits if kind == "qa_start" else out.end_logits)[0].float().cpu()


def _unavailable(loaded: LoadedModel, kind: str, kinds: tuple[str, ...]) -> str:
    name = loaded.facts.name
    reasons = {
        "next_token": "is not a language model that predicts a next token",
        "generation": "does not generate text",
        "masked_token": "has no masked-language-model head",
        "class": "has no sequence-classification head",
        "qa_start": "has no question-answering head",
        "qa_end": "has no question-answering head",
        "similarity": "is not an encoder whose embeddings can be compared",
    }
    return f"{name} {reasons.get(kind, 'cannot do that')}; its targets are: {', '.join(kinds)}"


def is_finite(value: float) -> bool:
    return value is not None and math.isfinite(value)
