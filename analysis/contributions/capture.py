"""One forward pass with read-only hooks: what each layer read, mixed and wrote.

:func:`capture_layers` runs the model once (eager attention, ``output_attentions=True``,
``output_hidden_states=True``, no autograd) with forward hooks on each layer, its value
projection and the norm after the attention block (and, on request, the output projection),
and returns a :class:`LayerCapture`: per layer the attention weights, the residual stream
the layer read, the value vectors, the attention block's output with the residual, the
normalised output (post-norm encoders) with the norm's per-token scale, the layer's
output, and the model's ordinary outputs. The hooks only read (they return nothing), so
the model's outputs are exactly those of a run without them; they are removed when the
pass ends, also on error. The output projection's weights (per head) and the norms'
parameters are read from the modules themselves (:mod:`analysis.contributions._families`).

:func:`record_layers` installs the same hooks around any code that runs the model, so the
forward pass that an extraction makes anyway can serve the contributions too (no second
pass)::

    with record_layers(loaded) as recorder:
        run = extract(loaded, text)
    capture = recorder.capture(attentions=run.attentions)

Not thread-safe with respect to the model: while the hooks are in, they would record
another thread's use of the same model too (the worker owns its models on one thread).

Batch size 1, like :func:`analysis.attention.extract.extract`.
"""

from __future__ import annotations

import inspect
import warnings
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from analysis.contributions._families import LayerParts, layer_parts

__all__ = ["LayerCapture", "LayerRecorder", "capture_layers", "record_layers"]


@dataclass(frozen=True)
class LayerCapture:
    """What one forward pass left behind, layer by layer (batch 1; tensors on the model's
    device, float32, no autograd).

    Per layer ``l`` (``T`` tokens, ``D`` hidden size, ``H`` query heads, ``KV`` key/value
    heads, ``dh`` head size):

    - ``attentions[l]`` ``[H, T, T]``: ``alpha[h, i, j]``, query ``i`` over key ``j`` (the
      model's, or the ``attentions`` given to :func:`capture_layers`);
    - ``layer_inputs[l]`` ``[T, D]``: ``x``, the residual stream the layer reads;
    - ``values[l]`` ``[KV, T, dh]``: the value vectors, bias included (for pre-norm
      decoders they are computed from the input norm's output, so they are a function of
      ``x_j`` alone); query head ``h`` reads key/value head ``h // (H // KV)``;
    - ``contexts[l]`` ``[T, H, dh]``: per-head attention outputs, the output projection's
      input (``sum_j alpha[h, i, j] * values[h, j]``); only with ``keep_contexts=True``
      (else ``contexts`` is empty);
    - ``block_outputs[l]`` ``[T, D]``: ``y_i = x_i + sum_h context_h W_O^h + b_O``, the
      attention block's output with the residual, before any norm;
    - ``normed[l]`` ``[T, D]``: ``x~``, the attention block's output as the next part of
      the layer reads it: ``LN(y)`` for post-norm encoders, ``y`` itself for pre-norm
      decoders;
    - ``norm_scales[l]`` ``[T]``: post-norm only, ``sqrt(var(y_i) + eps)``, the per-token
      scale of that layer norm (``None`` for pre-norm);
    - ``layer_outputs[l]`` ``[T, D]``: what the layer writes.

    ``model_output`` is the model's own output (``attentions``, ``hidden_states``, ...)
    when :func:`capture_layers` ran it, ``None`` for a :func:`record_layers` capture.
    """

    model_type: str
    is_causal: bool
    post_norm: bool
    num_heads: int
    num_kv_heads: int
    head_dim: int
    hidden_size: int
    input_ids: np.ndarray  # int64 [T]
    attentions: tuple[torch.Tensor, ...]
    layer_inputs: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    contexts: tuple[torch.Tensor, ...]
    block_outputs: tuple[torch.Tensor, ...]
    normed: tuple[torch.Tensor, ...]
    norm_scales: tuple[torch.Tensor | None, ...]
    layer_outputs: tuple[torch.Tensor, ...]
    model_output: Any
    parts: tuple[LayerParts, ...]

    @property
    def num_layers(self) -> int:
        return len(self.attentions)

    @property
    def num_tokens(self) -> int:
        return int(self.input_ids.shape[0])


@lru_cache(maxsize=64)
def _forward_parameters(model_class: type) -> frozenset[str]:
    return frozenset(inspect.signature(model_class.forward).parameters)


def _as_batch(values, name: str, device) -> torch.Tensor | None:
    if values is None:
        return None
    tensor = values if torch.is_tensor(values) else torch.tensor(np.asarray(values))
    if tensor.ndim == 1:
        tensor = tensor[None]
    if tensor.ndim != 2 or tensor.shape[0] != 1:
        raise ValueError(f"{name} must be one sequence ([T] or [1, T]), not {tuple(tensor.shape)}")
    return tensor.to(device=device, dtype=torch.long)


def _given_attentions(attentions, layers: int, tokens: int, device):
    """``attentions`` as a tuple of float32 ``[H, T, T]`` tensors (no copy on the CPU)."""
    if attentions is None:
        return None
    if torch.is_tensor(attentions):
        stack = attentions.detach()
    else:
        with warnings.catch_warnings():  # a read-only run array: only ever read here
            warnings.simplefilter("ignore", UserWarning)
            stack = torch.from_numpy(np.asarray(attentions, dtype=np.float32))
    if stack.ndim != 4 or stack.shape[0] != layers or tuple(stack.shape[2:]) != (tokens, tokens):
        raise ValueError(
            f"attentions of shape {tuple(stack.shape)} do not fit {layers} layers of "
            f"{tokens} tokens"
        )
    stack = stack.to(device=device, dtype=torch.float32)
    return tuple(stack[layer] for layer in range(layers))


class LayerRecorder:
    """Read-only hooks on a model's layers that record its latest forward pass.

    Made by :func:`record_layers` (a context manager) and by :func:`capture_layers`. Each
    forward pass of the model (batch 1) replaces what the previous one recorded; after the
    pass, :meth:`capture` turns the records into a :class:`LayerCapture`. The attention
    weights themselves are not kept (the caller has them: ``run.attentions`` or the
    model's output), except for the first and last layers, against which the given
    attentions are checked.
    """

    def __init__(self, loaded, *, keep_contexts: bool = False) -> None:
        self.model = getattr(loaded, "model", loaded)
        self.parts = layer_parts(self.model)
        self.keep_contexts = keep_contexts
        self.checked = {0, len(self.parts) - 1}
        # Each kind of tensor is recorded per module, in call order; a module shared by
        # several layers (ALBERT) is hooked once and serves its layers in turn.
        self._layers_of: dict[tuple[str, int], list[int]] = defaultdict(list)
        self._seen: dict[tuple[str, int], list] = defaultdict(list)
        self._input_ids: torch.Tensor | None = None
        self._handles: list = []
        self._plan()

    # --- hooks -----------------------------------------------------------------------

    def _plan(self) -> None:
        self._hooks: list[tuple[Any, str, bool, Any]] = []
        for layer, p in enumerate(self.parts):
            self._want(p.layer, "input", layer, pre=True)
            self._want(p.layer, "output", layer, pre=False)
            columns = p.value_columns
            pick = None if columns is None else (lambda t, c=columns: t[..., c].clone())
            self._want(p.value, "value", layer, pre=False, pick=pick)
            if self.keep_contexts:
                self._want(p.out_proj, "context", layer, pre=True)
            self._want(p.after_attention, "block", layer, pre=True)
            if p.post_norm:
                self._want(p.after_attention, "normed", layer, pre=False)
            self._want(p.attention, "weights", layer, pre=False)

    def _want(self, module, kind: str, layer: int, *, pre: bool, pick=None) -> None:
        key = (kind, id(module))
        self._layers_of[key].append(layer)
        if len(self._layers_of[key]) == 1:
            self._hooks.append((module, kind, pre, pick))

    def _keeper(self, key, kind: str, pick):
        seen, serves = self._seen[key], self._layers_of[key]

        def keep(tensor) -> None:
            if kind == "weights" and serves[min(len(seen), len(serves) - 1)] not in self.checked:
                seen.append(None)
                return
            if tensor is None:  # an earlier hook took the weights (extract's long-run copy)
                seen.append(None)
                return
            tensor = tensor.detach()[0]
            seen.append(tensor if pick is None else pick(tensor))

        return keep

    def install(self) -> LayerRecorder:
        """Put the hooks in (idempotent)."""
        if self._handles:
            return self

        def start(module, args, kwargs):  # a new pass: forget the previous one
            for calls in self._seen.values():
                calls.clear()
            ids = kwargs.get("input_ids", args[0] if args else None)
            self._input_ids = ids.detach() if torch.is_tensor(ids) else None

        self._handles.append(self.model.register_forward_pre_hook(start, with_kwargs=True))
        for module, kind, pre, pick in self._hooks:
            keep = self._keeper((kind, id(module)), kind, pick)
            if pre:

                def hook(mod, args, kwargs, keep=keep):
                    keep(args[0] if args else kwargs.get("hidden_states"))

                self._handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
            elif kind == "weights":
                self._handles.append(
                    module.register_forward_hook(lambda m, a, out, keep=keep: keep(out[1]))
                )
            else:

                def hook(mod, args, output, keep=keep):
                    keep(output[0] if isinstance(output, (tuple, list)) else output)

                self._handles.append(module.register_forward_hook(hook))
        return self

    def recorded_bytes(self) -> int:
        """Bytes the records of the latest pass hold (what keeping its capture costs)."""
        return sum(
            t.element_size() * t.nelement()
            for calls in self._seen.values()
            for t in calls
            if t is not None
        )

    def remove(self) -> None:
        """Take the hooks out; what was recorded stays available to :meth:`capture`."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> LayerRecorder:
        return self.install()

    def __exit__(self, *exc) -> None:
        self.remove()

    # --- the capture -----------------------------------------------------------------

    def _take(self, kind: str, module, layer: int) -> torch.Tensor:
        key = (kind, id(module))
        seen, serves = self._seen[key], self._layers_of[key]
        if not seen:
            raise RuntimeError("nothing was recorded: the model did not run with the hooks in")
        if len(seen) != len(serves):
            raise RuntimeError(
                f"a {type(module).__name__} ran {len(seen)} times for {len(serves)} layers; "
                "this model is not laid out as expected (or it ran on a batch)"
            )
        return seen[serves.index(layer)]

    def capture(self, attentions=None, model_output=None) -> LayerCapture:
        """The :class:`LayerCapture` of the latest recorded forward pass.

        Parameters
        ----------
        attentions : array ``[L, H, T, T]``, optional
            That pass's attention weights (``run.attentions``), checked against the
            recorded first and last layers (``ValueError`` when they differ).
        model_output : transformers ModelOutput, optional
            That pass's output; its ``attentions`` serve when ``attentions`` is not given.
        """
        parts = self.parts
        if self._input_ids is None:
            raise RuntimeError("nothing was recorded: the model did not run with the hooks in")
        ids = self._input_ids
        if ids.ndim != 2 or ids.shape[0] != 1:
            raise ValueError(f"contributions need one sequence, not a batch {tuple(ids.shape)}")
        tokens = int(ids.shape[1])
        given = _given_attentions(attentions, len(parts), tokens, ids.device)
        if given is None:
            found = getattr(model_output, "attentions", None)
            if not found:
                raise ValueError(
                    "no attention weights: give the run's attentions or run the model with "
                    "output_attentions=True"
                )
            given = tuple(a.detach()[0].to(torch.float32) for a in found)
            if len(given) != len(parts):
                raise RuntimeError(
                    f"the model returned {len(given)} attention maps for {len(parts)} layers"
                )
        for layer in sorted(self.checked):
            mine = self._take("weights", parts[layer].attention, layer)
            if mine is None:  # not seen by these hooks: the caller's copy is the only one
                continue
            mine = mine.to(torch.float32)
            if mine.shape != given[layer].shape or not torch.allclose(
                mine, given[layer], atol=1e-4
            ):
                raise ValueError(
                    "the attentions given are not this model's on this input "
                    f"(layer {layer} differs)"
                )
        inputs_l, values, contexts, blocks, normed, scales, outputs = ([] for _ in range(7))
        for layer, p in enumerate(parts):
            x = self._take("input", p.layer, layer)
            inputs_l.append(x)
            outputs.append(self._take("output", p.layer, layer))
            value = self._take("value", p.value, layer)
            values.append(value.reshape(tokens, p.num_kv_heads, p.head_dim).transpose(0, 1))
            if self.keep_contexts:
                context = self._take("context", p.out_proj, layer)
                contexts.append(context.reshape(tokens, p.num_heads, -1))
            y = self._take("block", p.after_attention, layer)
            blocks.append(y)
            if p.post_norm:
                normed.append(self._take("normed", p.after_attention, layer))
                eps = float(p.after_attention.eps)
                scales.append(torch.sqrt(y.var(dim=-1, unbiased=False) + eps))
            else:
                normed.append(y)
                scales.append(None)
        first = parts[0]
        return LayerCapture(
            model_type=str(self.model.config.model_type),
            is_causal=first.causal,
            post_norm=first.post_norm,
            num_heads=first.num_heads,
            num_kv_heads=first.num_kv_heads,
            head_dim=first.head_dim,
            hidden_size=int(first.out_weight.shape[-1]),
            input_ids=ids[0].cpu().numpy().astype(np.int64),
            attentions=given,
            layer_inputs=tuple(inputs_l),
            values=tuple(values),
            contexts=tuple(contexts),
            block_outputs=tuple(blocks),
            normed=tuple(normed),
            norm_scales=tuple(scales),
            layer_outputs=tuple(outputs),
            model_output=model_output,
            parts=tuple(parts),
        )


def record_layers(loaded, *, keep_contexts: bool = False) -> LayerRecorder:
    """Hooks that record the layers of whatever runs the model inside a ``with`` block.

    Parameters
    ----------
    loaded : LoadedModel or transformers model
        The model to record (its base stack for a model with a head).
    keep_contexts : bool, default False
        Also keep the per-head contexts (the output projection's input).

    Returns
    -------
    LayerRecorder
        A context manager: the hooks are in inside the block; afterwards
        ``recorder.capture(attentions=run.attentions)`` gives the :class:`LayerCapture` of
        the latest forward pass. The hooks only read, so the code inside computes exactly
        what it would without them.

    Raises
    ------
    ValueError
        For encoder-decoder models and model families without an adapter.

    Examples
    --------
    >>> from analysis.attention.extract import extract
    >>> from analysis.contributions import alti, record_layers
    >>> from analysis.models.loading import load_model
    >>> loaded = load_model()
    >>> with record_layers(loaded) as recorder:
    ...     run = extract(loaded, "The cat sat.")
    >>> capture = recorder.capture(attentions=run.attentions)
    >>> alti(capture).shape
    (6, 6, 6)
    """
    return LayerRecorder(loaded, keep_contexts=keep_contexts)


def capture_layers(
    loaded,
    input_ids,
    attention_mask=None,
    token_type_ids=None,
    *,
    attentions=None,
    keep_contexts: bool = False,
) -> LayerCapture:
    """Run the model once with read-only hooks and return what every layer computed.

    Parameters
    ----------
    loaded : LoadedModel or transformers model
        A model from :func:`analysis.models.loading.load_model` (eager attention, eval
        mode), or a bare transformers model in eval mode with eager attention.
    input_ids : array-like of int, ``[T]`` or ``[1, T]``
        One token sequence, specials included (e.g. ``run.input_ids``).
    attention_mask : array-like of int, optional
        ``1`` for tokens to attend to; default all ones.
    token_type_ids : array-like of int, optional
        Segment ids for models that take them (BERT pairs); passed only where the model's
        ``forward`` accepts them.
    attentions : array ``[L, H, T, T]``, optional
        The attention weights of this very input, already at hand (``run.attentions``):
        the capture then uses them instead of keeping a second copy (``output_attentions``
        is off; the first and last layers' weights are checked against them, and a
        mismatch raises ``ValueError``). ``model_output.attentions`` is then empty.
    keep_contexts : bool, default False
        Also keep the per-head contexts (the output projection's input), for checks.

    Returns
    -------
    LayerCapture
        Per-layer tensors (see :class:`LayerCapture`) and the model's own outputs.

    Raises
    ------
    ValueError
        For encoder-decoder models ("contributions are implemented for encoders and
        decoders, not encoder-decoders yet"), model families without an adapter, and
        ``attentions`` that are not this model's on this input.

    Examples
    --------
    >>> from analysis.contributions import capture_layers
    >>> from analysis.models.loading import load_model
    >>> loaded = load_model()
    >>> ids = loaded.tokenizer("The cat sat.")["input_ids"]
    >>> capture = capture_layers(loaded, ids)
    >>> capture.num_layers, tuple(capture.attentions[0].shape)
    (6, (12, 6, 6))

    References
    ----------
    .. [1] Kobayashi, G., Kuribayashi, T., Yokoi, S., Inui, K. (2020). "Attention is Not Only
       a Weight: Analyzing Transformers with Vector Norms". EMNLP.
    .. [2] Ferrando, J., Gállego, G. I., Costa-jussà, M. R. (2022). "Measuring the Mixing of
       Contextual Information in the Transformer". EMNLP.
    """
    recorder = LayerRecorder(loaded, keep_contexts=keep_contexts)
    model = recorder.model
    device = next(model.parameters()).device
    ids = _as_batch(input_ids, "input_ids", device)
    accepted = _forward_parameters(type(model))
    inputs: dict[str, Any] = {"input_ids": ids}
    mask = _as_batch(attention_mask, "attention_mask", device)
    if mask is not None and "attention_mask" in accepted:
        inputs["attention_mask"] = mask
    types = _as_batch(token_type_ids, "token_type_ids", device)
    if types is not None and "token_type_ids" in accepted:
        inputs["token_type_ids"] = types
    if "use_cache" in accepted:
        inputs["use_cache"] = False
    if attentions is not None:  # fail early on a wrong shape, before the pass
        _given_attentions(attentions, len(recorder.parts), ids.shape[1], "cpu")
    with recorder, torch.inference_mode():
        output = model(
            **inputs,
            output_attentions=attentions is None,
            output_hidden_states=True,
            return_dict=True,
        )
    return recorder.capture(attentions=attentions, model_output=output)
