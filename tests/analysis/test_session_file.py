"""Session files: a saved analysis reopens exactly, without the model; bad files get a sentence."""

import json
import zipfile

import numpy as np
import pytest

from analysis.io.session_file import SessionFileError, load_session, save_session
from tests.analysis.fake_runs import word_run


def test_a_saved_run_reopens_exactly_with_its_state(tmp_path, default_loaded):
    from analysis.attention.extract import extract

    run = extract(default_loaded, "Where is the cat?", "The cat is asleep.")
    path = save_session(tmp_path / "a.atlas", run, state={"view": {"kind": "head", "layer": 2}, "selected": 3})
    again, state = load_session(path)
    assert state == {"view": {"kind": "head", "layer": 2}, "selected": 3}
    for name in ("text", "pair", "tokens", "labels", "word_ids", "model", "notice", "truncated"):
        assert getattr(again, name) == getattr(run, name), name
    for name in ("input_ids", "offsets", "special_mask", "segment_ids", "attentions"):
        np.testing.assert_array_equal(getattr(again, name), getattr(run, name))
    assert not again.attentions.flags.writeable


def test_a_generation_record_survives(tmp_path):
    from dataclasses import replace

    from analysis.generation.records import Generation, GenerationStep

    step = GenerationStep(index=0, position=4, token="Ġcats", id=7, text=" cats", prob=0.5, rank=0,
                          top=(("Ġcats", 0.5), ("Ġdogs", 0.25)), top_ids=(7, 8), lens=("a", "Ġcats"),
                          lens_ids=(1, 7), seconds=0.1)
    generation = Generation(prompt="playing", prompt_text="playing", prompt_ids=(0, 1, 2, 3), chat=False,
                            steps=(step,), text=" cats", stop_reason="length", settings={"seed": 1})
    run = replace(word_run(), prompt_length=4, generation=generation)
    again, _ = load_session(save_session(tmp_path / "g.atlas", run))
    assert again.generation == generation and again.prompt_length == 4


def test_damaged_foreign_and_future_files_are_refused_with_a_sentence(tmp_path):
    not_zip = tmp_path / "x.atlas"
    not_zip.write_text("hello")
    with pytest.raises(SessionFileError, match="not an Attention Atlas session file"):
        load_session(not_zip)
    path = save_session(tmp_path / "ok.atlas", word_run())
    with zipfile.ZipFile(path) as archive:
        document = json.loads(archive.read("session.json"))
        arrays = archive.read("arrays.npz")
    future = tmp_path / "future.atlas"
    with zipfile.ZipFile(future, "w") as archive:
        archive.writestr("session.json", json.dumps({**document, "version": 99}))
        archive.writestr("arrays.npz", arrays)
    with pytest.raises(SessionFileError, match="newer Attention Atlas"):
        load_session(future)
    truncated = tmp_path / "truncated.atlas"
    truncated.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(SessionFileError, match="damaged|not an Attention Atlas"):
        load_session(truncated)
    lying = tmp_path / "lying.atlas"
    document["run"]["tokens"] = document["run"]["tokens"][:-1]
    with zipfile.ZipFile(lying, "w") as archive:
        archive.writestr("session.json", json.dumps(document))
        archive.writestr("arrays.npz", arrays)
    with pytest.raises(SessionFileError, match="damaged"):
        load_session(lying)
    with pytest.raises(SessionFileError, match="no such session file"):
        load_session(tmp_path / "missing.atlas")


def test_a_pickled_array_is_never_loaded(tmp_path):
    path = save_session(tmp_path / "ok.atlas", word_run())
    with zipfile.ZipFile(path) as archive:
        document = archive.read("session.json")
    import io

    buffer = io.BytesIO()
    np.savez(buffer, attentions=np.array([object()], dtype=object))
    hostile = tmp_path / "hostile.atlas"
    with zipfile.ZipFile(hostile, "w") as archive:
        archive.writestr("session.json", document)
        archive.writestr("arrays.npz", buffer.getvalue())
    with pytest.raises(SessionFileError, match="damaged"):
        load_session(hostile)


def contribution_arrays(layers: int, tokens: int, seed: int = 0) -> dict:
    """Every key a run's contributions may hold, rows normalised, float32."""
    from analysis.contributions import RUN_KEYS

    rng = np.random.default_rng(seed)
    out = {}
    for key in RUN_KEYS:
        array = rng.random((layers, tokens, tokens)).astype(np.float32)
        out[key] = array / array.sum(axis=-1, keepdims=True)
    return out


def test_contributions_survive_and_keep_serving_rollout_and_flow(tmp_path):
    from dataclasses import replace

    from analysis.attention.capacities import layer_capacities
    from analysis.attention.flow import attention_flow
    from analysis.attention.views import ViewSpec, make_view

    run = replace(word_run(layers=2), contributions=contribution_arrays(2, 5))
    again, _ = load_session(save_session(tmp_path / "c.atlas", run))
    assert set(again.contributions) == set(run.contributions)
    for key, array in run.contributions.items():
        np.testing.assert_array_equal(again.contributions[key], array)
        assert again.contributions[key].dtype == np.float32 and not again.contributions[key].flags.writeable
    spec = ViewSpec("flow", through="alti", query=1)
    np.testing.assert_array_equal(make_view(again, spec).matrix, make_view(run, spec).matrix)
    np.testing.assert_array_equal(attention_flow(layers=layer_capacities(again, "value_zeroing"), query=2),
                                  attention_flow(layers=layer_capacities(run, "value_zeroing"), query=2))


def test_a_file_without_contributions_opens_with_none_and_bad_ones_are_refused(tmp_path):
    from dataclasses import replace

    plain, _ = load_session(save_session(tmp_path / "plain.atlas", word_run()))
    assert plain.contributions == {}
    with pytest.raises(SessionFileError, match="cannot save contributions named saliency"):
        save_session(tmp_path / "x.atlas", replace(word_run(), contributions={"saliency": np.eye(5)[None]}))
    assert not (tmp_path / "x.atlas").exists()
    import io

    path = save_session(tmp_path / "ok.atlas", replace(word_run(), contributions=contribution_arrays(1, 5)))
    with zipfile.ZipFile(path) as archive:
        document = archive.read("session.json")
        arrays = dict(np.load(io.BytesIO(archive.read("arrays.npz")), allow_pickle=False))
    for name, value in (("contributions.alti_layers", np.ones((1, 4, 4), dtype=np.float32)),
                        ("contributions.alti", np.array([["a"]]))):
        buffer = io.BytesIO()
        np.savez(buffer, **{**arrays, name: value})
        damaged = tmp_path / "damaged.atlas"
        with zipfile.ZipFile(damaged, "w") as archive:
            archive.writestr("session.json", document)
            archive.writestr("arrays.npz", buffer.getvalue())
        with pytest.raises(SessionFileError, match="damaged: its alti"):
            load_session(damaged)
    buffer = io.BytesIO()  # a key a later version may add is skipped, not an error
    np.savez(buffer, **{**arrays, "contributions.future_kind": np.ones((1, 5, 5))})
    later = tmp_path / "later.atlas"
    with zipfile.ZipFile(later, "w") as archive:
        archive.writestr("session.json", document)
        archive.writestr("arrays.npz", buffer.getvalue())
    assert set(load_session(later)[0].contributions) == set(contribution_arrays(1, 5))
