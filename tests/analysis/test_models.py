"""Model sources and loading: the default model, folders, the hub cache, refusals."""

from __future__ import annotations

import json
import shutil
import socket

import pytest

from analysis.models.loading import (
    DEFAULT_NAME,
    ModelLoadError,
    cached_hub_models,
    clear_model_cache,
    default_model_path,
    load_model,
)
from analysis.run import DECODER, ENCODER, ENCODER_DECODER
from tests.tiny_models import (
    DECODER_FAMILIES,
    ENCODER_DECODER_FAMILIES,
    FAMILIES,
    HEADS,
    KV_HEADS,
    LAYERS,
    MAX_POSITIONS,
    build_pickle_only_model,
    fake_hub_cache,
)

# --- the default model ------------------------------------------------------------------


def test_default_model_loads_offline_without_any_network(monkeypatch, fresh_model_cache):
    def no_network(*args, **kwargs):
        raise AssertionError("the default model must load without the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    loaded = load_model()
    facts = loaded.facts
    assert facts.name == DEFAULT_NAME
    assert facts.source == "default"
    assert (facts.model_type, facts.architecture) == ("bert", ENCODER)
    assert (facts.num_layers, facts.num_heads, facts.num_kv_heads) == (6, 12, 12)
    assert facts.max_positions == 512
    assert not facts.is_causal
    assert loaded.model.config._attn_implementation == "eager"
    assert not loaded.model.training
    assert loaded.tokenizer.is_fast
    assert loaded.load_seconds >= 0
    assert loaded.folder == default_model_path()


def test_default_model_path_is_a_safetensors_model_folder():
    folder = default_model_path()
    assert (folder / "config.json").is_file()
    assert (folder / "model.safetensors").is_file()


def test_model_cache_returns_the_same_object_until_cleared(tiny_model_dir, fresh_model_cache):
    folder = str(tiny_model_dir("bert"))
    first = load_model(folder)
    assert load_model(folder) is first
    clear_model_cache()
    assert load_model(folder) is not first


# --- every family --------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_loads_with_its_facts(family, tiny_model_dir):
    folder = tiny_model_dir(family)
    loaded = load_model(str(folder))
    facts = loaded.facts
    assert facts.name == folder.name
    assert facts.source == str(folder)
    assert facts.model_type == family
    assert (facts.num_layers, facts.num_heads) == (LAYERS, HEADS)
    assert facts.max_positions == MAX_POSITIONS
    assert loaded.model.config._attn_implementation == "eager"
    assert loaded.tokenizer.is_fast
    if family in ("llama", "qwen2"):
        assert facts.num_kv_heads == KV_HEADS
    else:
        assert facts.num_kv_heads == HEADS
    if family in DECODER_FAMILIES:
        assert facts.architecture == DECODER and facts.is_causal
    elif family in ENCODER_DECODER_FAMILIES:
        assert facts.architecture == ENCODER_DECODER and not facts.is_causal
        assert (facts.decoder_layers, facts.decoder_heads) == (LAYERS, HEADS)
    else:
        assert facts.architecture == ENCODER and not facts.is_causal
        assert facts.decoder_layers == 0


# --- refusals and errors --------------------------------------------------------------


def test_a_folder_without_config_is_not_a_model(tmp_path):
    with pytest.raises(ModelLoadError, match="is not a model folder: it has no config.json"):
        load_model(str(tmp_path))


def test_a_folder_without_weights_is_refused(tmp_path, tiny_model_dir):
    shutil.copy(tiny_model_dir("bert") / "config.json", tmp_path / "config.json")
    with pytest.raises(ModelLoadError, match="has no model weights"):
        load_model(str(tmp_path))


def test_a_missing_path_says_it_does_not_exist(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "nothing-here"))


def test_a_file_is_not_a_model_folder(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="is a file, not a model folder or a GGUF file"):
        load_model(str(path))


def test_pickle_only_weights_are_refused_unless_allowed(tmp_path, fresh_model_cache):
    folder = build_pickle_only_model(tmp_path / "pickle")
    assert (folder / "pytorch_model.bin").is_file()
    assert not list(folder.glob("*.safetensors"))
    with pytest.raises(ModelLoadError) as info:
        load_model(str(folder))
    message = str(info.value)
    assert "has only pickle weights (pytorch_model.bin)" in message
    assert "Allow pickle weights" in message
    loaded = load_model(str(folder), allow_pickle=True)
    assert loaded.facts.num_layers == LAYERS
    # the permission is checked on every call, also when the model is already cached
    with pytest.raises(ModelLoadError, match="pickle"):
        load_model(str(folder))


def test_safetensors_are_preferred_over_pickle(tmp_path, tiny_model_dir, fresh_model_cache):
    folder = tmp_path / "both"
    shutil.copytree(tiny_model_dir("bert"), folder)
    (folder / "pytorch_model.bin").write_bytes(b"not a pickle at all")
    loaded = load_model(str(folder))  # never touches the .bin
    assert loaded.facts.num_layers == LAYERS


def test_corrupt_weights_give_a_load_error(tmp_path, tiny_model_dir, fresh_model_cache):
    folder = tmp_path / "corrupt"
    shutil.copytree(tiny_model_dir("bert"), folder)
    (folder / "model.safetensors").write_bytes(b"garbage" * 100)
    with pytest.raises(ModelLoadError, match=r"^the weights in '.*corrupt' failed to load: "):
        load_model(str(folder))


def test_weights_of_another_model_are_refused(tmp_path, tiny_model_dir, fresh_model_cache):
    folder = tmp_path / "mismatch"
    shutil.copytree(tiny_model_dir("bert"), folder)
    shutil.copy(tiny_model_dir("gpt2") / "model.safetensors", folder / "model.safetensors")
    with pytest.raises(ModelLoadError, match="failed to load"):
        load_model(str(folder))


def test_a_model_that_needs_its_own_code_is_refused(tmp_path, tiny_model_dir):
    folder = tmp_path / "custom"
    shutil.copytree(tiny_model_dir("bert"), folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "my-secret-arch"
    config["auto_map"] = {"AutoModel": "modeling_secret.SecretModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_secret.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(ModelLoadError, match="needs its own code .* never runs"):
        load_model(str(folder))


# --- the hub cache --------------------------------------------------------------------


def test_a_hub_id_resolves_from_the_local_cache(
    tmp_path, monkeypatch, tiny_model_dir, fresh_model_cache
):
    cache = fake_hub_cache(tmp_path / "hub", "org/tiny-gpt2", tiny_model_dir("gpt2"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    loaded = load_model("org/tiny-gpt2")
    assert loaded.facts.name == "org/tiny-gpt2"
    assert loaded.facts.source == "org/tiny-gpt2"
    assert loaded.facts.architecture == DECODER
    assert loaded.folder.parent.name == "snapshots"


def test_a_missing_hub_id_is_not_in_the_local_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    with pytest.raises(
        ModelLoadError,
        match="'org/absent' is not in the local Hugging Face cache and downloads are off",
    ):
        load_model("org/absent")


def test_a_download_is_refused_while_hf_hub_offline_is_set(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE forbids downloads"):
        load_model("org/absent", allow_download=True)


def test_cached_hub_models_lists_model_repos_with_a_config(tmp_path, monkeypatch, tiny_model_dir):
    cache = tmp_path / "hub"
    fake_hub_cache(cache, "org/tiny-bert", tiny_model_dir("bert"))
    fake_hub_cache(cache, "Acme/tiny-t5", tiny_model_dir("t5"))
    datasets = cache / "datasets--org--data" / "snapshots" / ("b" * 40)
    datasets.mkdir(parents=True)
    (datasets / "train.csv").write_text("a,b\n")
    (cache / "datasets--org--data" / "refs").mkdir()
    (cache / "datasets--org--data" / "refs" / "main").write_text("b" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert cached_hub_models() == ["Acme/tiny-t5", "org/tiny-bert"]


def test_cached_hub_models_is_empty_without_a_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-cache-here"))
    assert cached_hub_models() == []


def test_missing_weights_are_listed_or_refused(tmp_path, tiny_model_dir, fresh_model_cache):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "partial"
    shutil.copytree(tiny_model_dir("bert"), folder)
    weights = load_file(folder / "model.safetensors")
    save_file(
        {k: v for k, v in weights.items() if "layer.1." not in k}, folder / "model.safetensors"
    )
    loaded = load_model(str(folder))  # a few missing: loads, and says which
    assert loaded.missing_weights and all("layer.1." in k for k in loaded.missing_weights)
    assert load_model(str(tiny_model_dir("bert"))).missing_weights == ()


# --- names, generation facts, GGUF sources --------------------------------------------------


def test_minilm_is_a_synonym_of_default(fresh_model_cache):
    default = load_model("default")
    assert load_model("minilm") is default
    assert load_model("MiniLM") is default
    assert default.facts.source == "default"


@pytest.mark.parametrize("family", FAMILIES)
def test_decoders_load_with_their_language_model_head(family, tiny_model_dir):
    loaded = load_model(str(tiny_model_dir(family)))
    if family in DECODER_FAMILIES:
        assert loaded.facts.can_generate
        assert loaded.lm_model is not None and loaded.lm_model.base_model is loaded.model
        assert type(loaded.model).__name__.endswith("Model")  # the base stack, as before
        assert not loaded.lm_model.training
    else:
        assert not loaded.facts.can_generate and loaded.lm_model is None
    assert not loaded.facts.has_chat_template  # the tiny tokenizers have none
    assert loaded.gguf_file is None and not loaded.converted


def test_a_decoder_saved_without_its_head_loads_but_cannot_generate(
    tmp_path, tiny_model_dir, fresh_model_cache
):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "headless"
    shutil.copytree(tiny_model_dir("llama"), folder)
    config = json.loads((folder / "config.json").read_text())
    config["tie_word_embeddings"] = False
    (folder / "config.json").write_text(json.dumps(config))
    weights = load_file(folder / "model.safetensors")
    save_file(
        {k: v for k, v in weights.items() if not k.startswith("lm_head")},
        folder / "model.safetensors",
    )
    loaded = load_model(str(folder))
    assert loaded.lm_model is None and not loaded.facts.can_generate
    assert loaded.missing_weights == ()  # the head is not something attention needs
    assert type(loaded.model).__name__ == "LlamaModel"


def test_a_chat_template_is_a_fact(tmp_path, tiny_model_dir, fresh_model_cache):
    folder = tmp_path / "chat"
    shutil.copytree(tiny_model_dir("qwen2"), folder)
    (folder / "chat_template.jinja").write_text(
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    )
    assert load_model(str(folder)).facts.has_chat_template


def test_a_file_that_is_neither_folder_nor_gguf(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ModelLoadError, match="is a file, not a model folder or a GGUF file"):
        load_model(str(path))


# --- models that are not text transformers: one sentence that says what to do ----------------


def _tiny_vit(folder):
    """A tiny random ViT (a vision transformer) with its image processor, as on the hub."""
    import transformers as tf

    config = tf.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=64, image_size=32, patch_size=8)
    tf.ViTModel(config).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"image_processor_type": "ViTImageProcessor", "size": {"height": 32, "width": 32}}))
    return folder


def _tiny_mamba(folder):
    """A tiny random Mamba (a state-space model: no attention) with a byte-level tokenizer."""
    import transformers as tf

    from tests.tiny_models import build_tokenizer

    tokenizer = build_tokenizer("gpt2")
    config = tf.MambaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                            state_size=4, expand=2, conv_kernel=4)
    tf.MambaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_vision_model_is_refused_at_load_with_what_to_do(tmp_path, monkeypatch, fresh_model_cache):
    import analysis.models.loading as loading

    folder = _tiny_vit(tmp_path / "vit")

    def no_tokenizer(*args):
        raise AssertionError("the tokenizer was read before the model type was checked")

    monkeypatch.setattr(loading, "_load_tokenizer", no_tokenizer)
    with pytest.raises(ModelLoadError) as info:
        load_model(str(folder))
    assert str(info.value) == (
        "ViT is a vision model; Attention Atlas reads text models (encoders, decoders and "
        "encoder-decoders), so choose one of those."
    )


def test_speech_and_time_series_models_are_named_for_what_they_read():
    import transformers as tf

    from analysis.models.loading import check_text_model

    with pytest.raises(ModelLoadError, match=r"^Whisper is a speech model; Attention Atlas reads text"):
        check_text_model(tf.WhisperConfig())
    with pytest.raises(ModelLoadError, match=r"^PatchTST is a time-series model;"):
        check_text_model(tf.PatchTSTConfig())
    for config in (tf.BertConfig(), tf.LlamaConfig(), tf.T5Config(), tf.BartConfig()):
        check_text_model(config)  # text models pass


def test_a_model_without_attention_is_refused_at_load(tmp_path, fresh_model_cache):
    folder = _tiny_mamba(tmp_path / "mamba")
    with pytest.raises(ModelLoadError) as info:
        load_model(str(folder))
    assert str(info.value) == (
        "Mamba has no attention layers, so there is no attention to show; choose a transformer "
        "model (an encoder, a decoder or an encoder-decoder)."
    )


def test_an_attention_free_type_not_in_the_list_is_refused_once_loaded(tmp_path, monkeypatch, fresh_model_cache):
    import analysis.models.loading as loading

    folder = _tiny_mamba(tmp_path / "mamba")
    monkeypatch.setattr(loading, "ATTENTION_FREE_TYPES", frozenset())
    with pytest.raises(ModelLoadError, match=r"^Mamba has no attention layers"):
        load_model(str(folder))


def test_a_folder_without_tokenizer_files_is_refused(tmp_path, tiny_model_dir, fresh_model_cache):
    folder = tmp_path / "no-tokenizer"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_model_dir("bert") / name, folder / name)
    # transformers would build a tokenizer of the 5 special tokens: every word [UNK]
    with pytest.raises(ModelLoadError, match=r"has no tokenizer files .*; copy the model's tokenizer files"):
        load_model(str(folder))


def test_a_tokenizer_error_is_given_whole_on_one_line(tmp_path):
    from analysis.models.loading import _load_tokenizer

    folder = _tiny_vit(tmp_path / "vit")  # a folder transformers finds no tokenizer in
    with pytest.raises(ModelLoadError) as info:
        _load_tokenizer(folder, "vit")
    message = str(info.value)
    assert message.startswith("the tokenizer in 'vit' failed to load: ")
    # transformers' multi-line message, formerly cut after its first line ("... one of:")
    assert "\n" not in message and "one of: (1)" in message
    assert "(3) an equivalent slow tokenizer class" in message and message.endswith(".")
