"""Tiny random transformer models of every supported family, built on the fly, offline.

``build_tiny_model(family, folder)`` trains a small tokenizer of the family's kind with the
``tokenizers`` library on a built-in corpus, builds a seeded random model (hidden 32,
2 layers, 4 heads, at most 64 positions) from its config and saves both with
``save_pretrained`` (safetensors) into ``folder``, so that ``analysis.models.loading.load_model``
loads it through the same code path as a real checkpoint. Nothing is downloaded.

Tokenizer kinds follow the real families:

- WordPiece with ``[CLS] ... [SEP]`` (BERT, DistilBERT, ELECTRA),
- byte-level BPE with ``<s> ... </s>`` (RoBERTa, BART) or no specials at all (GPT-2, Qwen2),
- Unigram with Metaspace ``▁`` (ALBERT ``[CLS] ... [SEP]``, T5 ``... </s>``, Llama ``<s> ...``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

FAMILIES = (
    "bert",
    "roberta",
    "distilbert",
    "albert",
    "electra",
    "gpt2",
    "llama",
    "qwen2",
    "t5",
    "bart",
)
ENCODER_FAMILIES = ("bert", "roberta", "distilbert", "albert", "electra")
DECODER_FAMILIES = ("gpt2", "llama", "qwen2")
ENCODER_DECODER_FAMILIES = ("t5", "bart")

MAX_POSITIONS = 64  # every tiny model reads at most this many tokens
HIDDEN = 32
LAYERS = 2
HEADS = 4
KV_HEADS = 2  # Llama / Qwen2: grouped-query attention, two query heads per key/value head
SEED = 0

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Attention is all you need, said the paper in 2017.",
    "Transformers read a sentence and decide where each word should look.",
    "A question: where does the river meet the sea? The answer is the delta.",
    "Tokenization splits text into words, subwords and punctuation marks!",
    "She didn't know that the café opened at 9 o'clock — it’s early.",
    "Graphs of attention show which tokens matter and along which routes.",
    "The model has six layers and twelve heads in every layer.",
    "Berlin is the capital of Germany; Paris is the capital of France.",
    "Large language models predict the next token from the previous ones.",
    "Encoders look both ways, decoders only look back, and cross attention links them.",
    "Numbers like 3.14, 42 and 1,000 appear in text too.",
    "Hello world! Hello again, world.\nA new line starts here.\tAnd a tab.",
    "The cat sat on the mat, and the dog slept by the door.",
    "Reading, writing and thinking: three things people do with words.",
]


@dataclass(frozen=True)
class _TokenizerKind:
    """How one family's tokenizer is shaped: the model, its specials and its templates."""

    model: str  # "wordpiece", "bpe" (byte-level) or "unigram" (Metaspace)
    specials: tuple[str, ...]  # in id order: the first one gets id 0
    single: str | None  # TemplateProcessing single template; None: no specials added
    pair: str | None
    roles: dict[str, str] = field(default_factory=dict)  # bos_token/eos_token/... -> token
    lowercase: bool = False
    roberta_style: bool = False  # byte-level <s> $A </s></s> $B </s>, trimmed offsets
    input_names: tuple[str, ...] = ("input_ids", "attention_mask")
    prepend_scheme: str = "always"  # Metaspace: "always" (T5, ALBERT) or "first" (Llama)


_BERT_KIND = _TokenizerKind(
    model="wordpiece",
    specials=("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"),
    single="[CLS]:0 $A:0 [SEP]:0",
    pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
    roles={
        "pad_token": "[PAD]",
        "unk_token": "[UNK]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "mask_token": "[MASK]",
    },
    lowercase=True,
    input_names=("input_ids", "token_type_ids", "attention_mask"),
)
_ROBERTA_KIND = _TokenizerKind(
    model="bpe",
    specials=("<s>", "<pad>", "</s>", "<unk>", "<mask>"),
    single=None,
    pair=None,
    roles={
        "bos_token": "<s>",
        "pad_token": "<pad>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "cls_token": "<s>",
        "sep_token": "</s>",
        "mask_token": "<mask>",
    },
    roberta_style=True,
)
_GPT2_KIND = _TokenizerKind(
    model="bpe",
    specials=("<|endoftext|>",),
    single=None,
    pair=None,
    roles={
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
    },
)
_QWEN2_KIND = _TokenizerKind(
    model="bpe",
    specials=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
    single=None,
    pair=None,
    roles={"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"},
)
_ALBERT_KIND = _TokenizerKind(
    model="unigram",
    specials=("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"),
    single="[CLS]:0 $A:0 [SEP]:0",
    pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
    roles={
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "mask_token": "[MASK]",
        "bos_token": "[CLS]",
        "eos_token": "[SEP]",
    },
    lowercase=True,
    input_names=("input_ids", "token_type_ids", "attention_mask"),
)
_T5_KIND = _TokenizerKind(
    model="unigram",
    specials=("<pad>", "</s>", "<unk>"),
    single="$A:0 </s>:0",
    pair="$A:0 </s>:0 $B:1 </s>:1",
    roles={"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"},
)
_LLAMA_KIND = _TokenizerKind(
    model="unigram",
    specials=("<unk>", "<s>", "</s>"),
    single="<s>:0 $A:0",
    pair="<s>:0 $A:0 <s>:1 $B:1",
    roles={"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "</s>"},
    prepend_scheme="first",
)

_KINDS = {
    "bert": _BERT_KIND,
    "distilbert": _BERT_KIND,
    "electra": _BERT_KIND,
    "roberta": _ROBERTA_KIND,
    "bart": _ROBERTA_KIND,
    "gpt2": _GPT2_KIND,
    "qwen2": _QWEN2_KIND,
    "albert": _ALBERT_KIND,
    "t5": _T5_KIND,
    "llama": _LLAMA_KIND,
}


def _train_backend(kind: _TokenizerKind):
    """A ``tokenizers.Tokenizer`` of the kind's model, trained on CORPUS."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    specials = list(kind.specials)
    if kind.model == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=kind.lowercase)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(
            vocab_size=400, special_tokens=specials, show_progress=False
        )
    elif kind.model == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
    elif kind.model == "unigram":
        tok = Tokenizer(models.Unigram())
        if kind.lowercase:
            tok.normalizer = normalizers.Lowercase()
        tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme=kind.prepend_scheme)
        tok.decoder = decoders.Metaspace(prepend_scheme=kind.prepend_scheme)
        unk = kind.roles.get("unk_token", "<unk>")
        trainer = trainers.UnigramTrainer(
            vocab_size=300, special_tokens=specials, unk_token=unk, show_progress=False
        )
    else:  # pragma: no cover - programming error
        raise ValueError(f"unknown tokenizer model {kind.model!r}")
    tok.train_from_iterator(CORPUS, trainer=trainer)
    _set_post_processor(tok, kind)
    return tok


def _set_post_processor(tok, kind: _TokenizerKind) -> None:
    """Add special tokens the way the real family does."""
    from tokenizers import processors

    if kind.roberta_style:
        tok.post_processor = processors.RobertaProcessing(
            ("</s>", tok.token_to_id("</s>")),
            ("<s>", tok.token_to_id("<s>")),
            trim_offsets=True,
            add_prefix_space=False,
        )
    elif kind.single is not None:
        names = {part.split(":")[0] for part in (kind.single + " " + kind.pair).split()}
        specials = [(n, tok.token_to_id(n)) for n in sorted(names) if not n.startswith("$")]
        tok.post_processor = processors.TemplateProcessing(
            single=kind.single, pair=kind.pair, special_tokens=specials
        )
    elif kind.model == "bpe":
        tok.post_processor = processors.ByteLevel(trim_offsets=True)


def build_tokenizer(family: str):
    """A ``PreTrainedTokenizerFast`` for ``family``, trained on the fly (no download)."""
    from transformers import PreTrainedTokenizerFast

    kind = _KINDS[family]
    backend = _train_backend(kind)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        model_max_length=MAX_POSITIONS,
        model_input_names=list(kind.input_names),
        **kind.roles,
    )


def _ids(tokenizer, *names: str) -> dict[str, int]:
    """``{"pad_token_id": 0, ...}`` for the named roles the tokenizer has."""
    out = {}
    for name in names:
        token = getattr(tokenizer, name, None)
        if token is not None:
            out[f"{name}_id"] = tokenizer.convert_tokens_to_ids(token)
    return out


def _config(family: str, tokenizer):
    """A tiny config of ``family`` whose vocabulary fits ``tokenizer``."""
    import transformers as tf

    vocab = len(tokenizer)
    specials = _ids(tokenizer, "pad_token", "bos_token", "eos_token")
    bert_like = dict(
        vocab_size=vocab,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=2 * HIDDEN,
        max_position_embeddings=MAX_POSITIONS,
        **specials,
    )
    decoder_like = dict(
        vocab_size=vocab,
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        **specials,
    )
    if family == "bert":
        return tf.BertConfig(**bert_like)
    if family == "electra":
        return tf.ElectraConfig(embedding_size=16, **bert_like)
    if family == "albert":
        return tf.AlbertConfig(embedding_size=16, **bert_like)
    if family == "roberta":
        # RoBERTa positions start after the padding index: 64 tokens need 64 + 2 rows.
        return tf.RobertaConfig(**{**bert_like, "max_position_embeddings": MAX_POSITIONS + 2})
    if family == "distilbert":
        return tf.DistilBertConfig(
            vocab_size=vocab,
            dim=HIDDEN,
            n_layers=LAYERS,
            n_heads=HEADS,
            hidden_dim=2 * HIDDEN,
            max_position_embeddings=MAX_POSITIONS,
            **specials,
        )
    if family == "gpt2":
        return tf.GPT2Config(
            vocab_size=vocab,
            n_embd=HIDDEN,
            n_layer=LAYERS,
            n_head=HEADS,
            n_positions=MAX_POSITIONS,
            **specials,
        )
    if family == "llama":
        return tf.LlamaConfig(**decoder_like)
    if family == "qwen2":
        return tf.Qwen2Config(**decoder_like)
    if family == "t5":
        return tf.T5Config(
            vocab_size=vocab,
            d_model=HIDDEN,
            d_kv=HIDDEN // HEADS,
            d_ff=2 * HIDDEN,
            num_layers=LAYERS,
            num_decoder_layers=LAYERS,
            num_heads=HEADS,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=32,
            decoder_start_token_id=specials["pad_token_id"],
            **specials,
        )
    if family == "bart":
        return tf.BartConfig(
            vocab_size=vocab,
            d_model=HIDDEN,
            encoder_layers=LAYERS,
            decoder_layers=LAYERS,
            encoder_attention_heads=HEADS,
            decoder_attention_heads=HEADS,
            encoder_ffn_dim=2 * HIDDEN,
            decoder_ffn_dim=2 * HIDDEN,
            max_position_embeddings=MAX_POSITIONS,
            decoder_start_token_id=specials["eos_token_id"],
            forced_eos_token_id=specials["eos_token_id"],
            **specials,
        )
    raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")


def _model_class(family: str):
    """The head class a real checkpoint of the family is usually saved with."""
    import transformers as tf

    if family in DECODER_FAMILIES:
        return tf.AutoModelForCausalLM
    if family in ENCODER_DECODER_FAMILIES:
        return tf.AutoModelForSeq2SeqLM
    if family == "roberta":
        return tf.AutoModelForMaskedLM  # weights prefixed "roberta.", as on the hub
    return tf.AutoModel


def build_tiny_model(family: str, folder: Path, *, safe_serialization: bool = True) -> Path:
    """Write a tiny seeded random ``family`` model and its tokenizer into ``folder``.

    ``safe_serialization=False`` writes ``pytorch_model.bin`` (a pickle) instead of
    ``model.safetensors``.
    """
    import torch
    from transformers.utils import logging

    logging.disable_progress_bar()

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(family)
    config = _config(family, tokenizer)
    torch.manual_seed(SEED)
    model = _model_class(family).from_config(config)
    model.eval()
    if safe_serialization:
        model.save_pretrained(folder)
    else:
        # transformers 5 writes only safetensors; write the legacy pickle by hand.
        model.config.save_pretrained(folder)
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    tokenizer.save_pretrained(folder)
    return folder


def build_pickle_only_model(folder: Path, family: str = "bert") -> Path:
    """A tiny model whose weights are only a pickle (``pytorch_model.bin``)."""
    return build_tiny_model(family, folder, safe_serialization=False)


def fake_hub_cache(root, repo_id: str, model_folder, revision: str = "a" * 40):
    """A Hugging Face cache folder holding ``repo_id`` as a snapshot of ``model_folder``."""
    import shutil

    repo = root / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(model_folder, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return root
