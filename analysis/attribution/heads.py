"""The task heads an attribution target needs, built around the already loaded model.

``analysis.models.loading.load_model`` loads the bare stack (``AutoModel``: ``BertModel``,
``LlamaModel``, ``T5Model``): enough for attention, not for a next-token probability.
``head_model(loaded, task)`` gives the matching head model (``LlamaForCausalLM``,
``RobertaForMaskedLM``, ...) *sharing* the loaded stack's modules: the head class is built
on the meta device (no memory, no random initialisation), the loaded stack is put in its
place, and only the head's own tensors are read from the checkpoint's safetensors (or tied
to the input embeddings where the config ties them). Nothing is loaded twice.

A head exists only when the checkpoint has its weights: ``available_tasks(loaded)`` says
which ones the loaded model can do.
"""

from __future__ import annotations

import weakref
from pathlib import Path

import torch

from analysis.models.loading import LoadedModel
from analysis.run import DECODER, ENCODER_DECODER

CAUSAL_LM = "causal_lm"
MASKED_LM = "masked_lm"
SEQUENCE_CLASSIFICATION = "sequence_classification"
QUESTION_ANSWERING = "question_answering"
SEQ2SEQ_LM = "seq2seq_lm"

_AUTO_CLASSES = {
    CAUSAL_LM: "AutoModelForCausalLM",
    MASKED_LM: "AutoModelForMaskedLM",
    SEQUENCE_CLASSIFICATION: "AutoModelForSequenceClassification",
    QUESTION_ANSWERING: "AutoModelForQuestionAnswering",
    SEQ2SEQ_LM: "AutoModelForSeq2SeqLM",
}
# config.architectures suffix -> the task whose head the checkpoint holds
_SUFFIXES = (
    ("ForCausalLM", CAUSAL_LM),
    ("LMHeadModel", CAUSAL_LM),
    ("ForMaskedLM", MASKED_LM),
    ("ForPreTraining", MASKED_LM),
    ("ForSequenceClassification", SEQUENCE_CLASSIFICATION),
    ("ForQuestionAnswering", QUESTION_ANSWERING),
    ("ForConditionalGeneration", SEQ2SEQ_LM),
)

_HEADS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # base module -> {task: head or error}


class HeadError(ValueError):
    """The loaded model has no head for what was asked; the message says so in a line."""


def candidate_tasks(loaded: LoadedModel) -> tuple[str, ...]:
    """Tasks the checkpoint's config claims (``architectures``), plus a causal LM head for
    every decoder and a seq2seq LM head for every encoder-decoder (tied embeddings)."""
    config = loaded.model.config
    found: list[str] = []
    for model in (loaded.model, getattr(loaded, "lm_model", None)):
        own = _own_task(model) if model is not None else None
        if own and own not in found:
            found.append(own)
    for arch in getattr(config, "architectures", None) or ():
        for suffix, task in _SUFFIXES:
            if arch.endswith(suffix) and task not in found:
                found.append(task)
    if loaded.facts.architecture == DECODER and CAUSAL_LM not in found:
        found.append(CAUSAL_LM)
    if loaded.facts.architecture == ENCODER_DECODER:
        found = [t for t in found if t == SEQ2SEQ_LM] or [SEQ2SEQ_LM]
    elif SEQ2SEQ_LM in found:
        found.remove(SEQ2SEQ_LM)
    return tuple(found)


def available_tasks(loaded: LoadedModel) -> tuple[str, ...]:
    """The tasks whose head can be built for ``loaded`` (its weights are in the checkpoint).

    Examples
    --------
    >>> from analysis.models.loading import load_model       # doctest: +SKIP
    >>> available_tasks(load_model())                         # doctest: +SKIP
    ()
    """
    tasks = []
    for task in candidate_tasks(loaded):
        try:
            head_model(loaded, task)
        except HeadError:
            continue
        tasks.append(task)
    return tuple(tasks)


def head_model(loaded: LoadedModel, task: str):
    """The ``task`` head model around ``loaded.model`` (built once, then cached).

    Parameters
    ----------
    loaded : LoadedModel
    task : str
        ``causal_lm``, ``masked_lm``, ``sequence_classification``, ``question_answering``
        or ``seq2seq_lm``.

    Returns
    -------
    torch.nn.Module
        A transformers head model in eval mode whose stack *is* ``loaded.model``.

    Raises
    ------
    HeadError
        When the checkpoint has no weights for that head.
    """
    base = loaded.model
    if _own_task(base) == task:
        return base
    lm_model = getattr(loaded, "lm_model", None)  # decoders come with their LM head
    if lm_model is not None and _own_task(lm_model) == task:
        return lm_model
    cache = _HEADS.setdefault(base, {})
    if task not in cache:
        try:
            cache[task] = _build(loaded, task)
        except HeadError as error:
            cache[task] = error
    value = cache[task]
    if isinstance(value, HeadError):
        raise value
    return value


def _own_task(model) -> str | None:
    """The task of a model that already is a head model (e.g. loaded ForCausalLM)."""
    name = type(model).__name__
    for suffix, task in _SUFFIXES:
        if name.endswith(suffix):
            return task
    return None


def _build(loaded: LoadedModel, task: str):
    import transformers

    base = loaded.model
    config = base.config
    auto = getattr(transformers, _AUTO_CLASSES[task])
    what = task.replace("_", " ")
    try:
        with torch.device("meta"):
            head = auto.from_config(config, attn_implementation=config._attn_implementation or "eager")
    except Exception as error:  # a config with no such head class
        raise HeadError(f"{loaded.facts.name} has no {what} head ({type(error).__name__})") from error
    _graft(head, base)
    missing = _fill_from_checkpoint(head, loaded)
    missing = _tie(head, config, missing)
    if missing:
        shown = ", ".join(sorted(missing)[:3])
        raise HeadError(f"{loaded.facts.name} has no {what} head: its checkpoint lacks {shown}")
    head.eval()
    return head


def _graft(head, base) -> None:
    """Put the loaded stack into the head model in place of its meta stack."""
    prefix = getattr(head, "base_model_prefix", "")
    inner = getattr(head, prefix, None) if prefix else None
    if isinstance(inner, torch.nn.Module) and type(inner) is type(base):
        setattr(head, prefix, base)
        return
    # T5ForConditionalGeneration and T5Model share their children (shared, encoder, decoder)
    grafted = False
    for name, child in base.named_children():
        if isinstance(getattr(head, name, None), torch.nn.Module):
            setattr(head, name, child)
            grafted = True
    if not grafted:
        raise HeadError(f"the {type(head).__name__} head does not fit a {type(base).__name__}")


def _meta_tensors(head) -> dict[str, torch.Tensor]:
    tensors = dict(head.named_parameters(remove_duplicate=False))
    tensors.update(head.named_buffers(remove_duplicate=False))
    return {name: t for name, t in tensors.items() if t.is_meta}


def _set_tensor(head, name: str, value: torch.Tensor, *, share: bool = False) -> None:
    module_name, _, leaf = name.rpartition(".")
    module = head.get_submodule(module_name) if module_name else head
    if leaf in module._parameters:
        if share and isinstance(value, torch.nn.Parameter):
            module._parameters[leaf] = value
        else:
            module._parameters[leaf] = torch.nn.Parameter(value, requires_grad=False)
    else:
        module._buffers[leaf] = value


def _checkpoint_files(folder: Path | None) -> list[Path]:
    if folder is None:
        return []
    return sorted(Path(folder).glob("*.safetensors"))


def _fill_from_checkpoint(head, loaded: LoadedModel) -> set[str]:
    """Read the head's own tensors (still on meta) from the checkpoint; returns what is
    still missing."""
    missing = _meta_tensors(head)
    if not missing:
        return set()
    device = next(loaded.model.parameters()).device
    dtype = next(loaded.model.parameters()).dtype
    files = _checkpoint_files(loaded.folder)
    if files:
        from safetensors import safe_open

        for path in files:
            with safe_open(str(path), framework="pt") as handle:
                keys = set(handle.keys())
                for name in list(missing):
                    if name in keys:
                        tensor = handle.get_tensor(name)
                        if tensor.is_floating_point():
                            tensor = tensor.to(dtype)
                        _set_tensor(head, name, tensor.to(device))
                        del missing[name]
    return set(missing)


def _tie(head, config, missing: set[str]) -> set[str]:
    """Tie what the model class ties (output embeddings to input embeddings where the
    config says so, decoder biases to head biases)."""
    if not missing:
        return missing
    tied = getattr(head, "_tied_weights_keys", None) or {}
    if not isinstance(tied, dict):  # older transformers: a list of names
        tied = {}
    tie_embeddings = bool(getattr(config, "tie_word_embeddings", True))
    embedding_weight = head.get_input_embeddings().weight
    for target, source in tied.items():
        if target not in missing:
            continue
        source_tensor = dict(head.named_parameters(remove_duplicate=False)).get(source)
        if source_tensor is None or source_tensor.is_meta:
            continue
        if source_tensor is embedding_weight and not tie_embeddings:
            continue
        _set_tensor(head, target, source_tensor, share=True)
        missing = missing - {target}
    # buffers that only hold zeros at initialisation (BART's final_logits_bias)
    for name in list(missing):
        if name.endswith("final_logits_bias"):
            module_name, _, leaf = name.rpartition(".")
            module = head.get_submodule(module_name) if module_name else head
            shape = module._buffers[leaf].shape
            _set_tensor(head, name, torch.zeros(shape, dtype=embedding_weight.dtype, device=embedding_weight.device))
            missing = missing - {name}
    return missing
