"""All contribution measures for one :class:`~analysis.run.AttentionRun`, in one call."""

from __future__ import annotations

import numpy as np

from analysis.contributions import KINDS
from analysis.contributions._families import ENCODER_DECODER_MESSAGE
from analysis.contributions.capture import LayerCapture, capture_layers
from analysis.contributions.combine import normalise_rows_in_place, rollout_layers
from analysis.contributions.measures import alti, value_norms
from analysis.contributions.zeroing import value_zeroing
from analysis.progress import CancelCheck, ProgressCallback, raise_if_cancelled, report_progress
from analysis.run import ENCODER_DECODER, AttentionRun

__all__ = ["KINDS", "contributions_for_run", "token_type_ids_of"]

# Share of the progress bar the quick steps take when value zeroing follows them.
_QUICK_SHARE = 0.05


def token_type_ids_of(run: AttentionRun) -> np.ndarray:
    """int64 ``[T]`` segment ids as the tokenizer gave them to the model.

    ``run.segment_ids`` marks special tokens -1; a BERT pair is ``[CLS] A [SEP] B [SEP]``
    with ``[CLS] A [SEP]`` in segment 0 and ``B [SEP]`` in 1, so a special token takes
    the segment of the token before it (0 at the start).
    """
    segments = np.asarray(run.segment_ids, dtype=np.int64)
    out = np.zeros_like(segments)
    current = 0
    for index, segment in enumerate(segments.tolist()):
        if segment >= 0:
            current = segment
        out[index] = current
    return out


def _model_inputs(loaded, run: AttentionRun) -> dict:
    names = tuple(getattr(loaded.tokenizer, "model_input_names", ()) or ())
    inputs = {"input_ids": np.asarray(run.input_ids, dtype=np.int64)}
    if "attention_mask" in names:
        inputs["attention_mask"] = np.ones_like(inputs["input_ids"])
    if "token_type_ids" in names:
        inputs["token_type_ids"] = token_type_ids_of(run)
    return inputs


def contributions_for_run(
    loaded,
    run: AttentionRun,
    kinds=KINDS,
    progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
    *,
    capture: LayerCapture | None = None,
) -> dict[str, np.ndarray]:
    """Value-weighted attention, ALTI and value zeroing of a run, as float32 arrays.

    The model inputs are rebuilt from the run (``run.input_ids``; for BERT-like pairs the
    segment ids become ``token_type_ids``), the model runs once with hooks
    (:func:`capture_layers`, using the run's attentions instead of a second copy) and each
    asked measure is computed from that capture. With ``capture`` (the run's own forward
    pass, recorded by :func:`record_layers` around the extraction) nothing runs again.

    Parameters
    ----------
    loaded : LoadedModel
        The model the run was made with.
    run : AttentionRun
        From :func:`analysis.attention.extract.extract` (encoders and decoders).
    kinds : str or iterable of str, default ``("value_norm", "alti", "value_zeroing")``
        Which measures; value zeroing costs about ``T`` forward passes, the others less
        than one.
    progress : callable, optional
        ``progress(fraction)`` in ``[0, 1]``.
    cancelled : callable, optional
        ``cancelled() -> bool``, checked between steps and between value zeroing's
        batches; True stops with :class:`analysis.progress.Cancelled`.
    capture : LayerCapture, optional
        The run's forward pass as :func:`record_layers` recorded it (it must hold the
        run's tokens); saves the hooked forward pass.

    Returns
    -------
    dict of str to ndarray (float32)
        For ``L`` layers, ``H`` heads, ``T`` tokens; rows are queries, columns keys
        (``[i, j]``: how much token ``j`` contributes to token ``i``); causal models have
        an exactly zero upper triangle.

        - ``"value_norm"`` ``[L, H, T, T]``: ``||alpha_ij^h f_h(x_j)||``, raw norms;
        - ``"value_norm_sum"`` ``[L, T, T]``: ``||sum_h alpha_ij^h f_h(x_j)||``, rows
          normalised;
        - ``"alti"`` ``[L, T, T]``: ALTI per layer, rows normalised;
          ``"alti_rollout"`` ``[L, T, T]``: entry ``l`` combines layers ``0..l``;
        - ``"value_zeroing"`` ``[L, T, T]``, rows normalised; ``"value_zeroing_rollout"``.

        :func:`analysis.contributions.run_contributions` picks what a run keeps of them
        (``run.contributions``: each view's array and the per-layer matrices that
        rollout, flow and the layered graph go *through*).

    Raises
    ------
    ValueError
        Unknown kinds; encoder-decoder runs ("contributions are implemented for encoders
        and decoders, not encoder-decoders yet"); a run not made with ``loaded``.
    Cancelled
        When ``cancelled()`` returned True.

    Examples
    --------
    >>> from analysis.attention.extract import extract
    >>> from analysis.models.loading import load_model
    >>> loaded = load_model()
    >>> run = extract(loaded, "The cat sat on the mat.")
    >>> out = contributions_for_run(loaded, run, kinds=("alti",))
    >>> sorted(out), out["alti"].shape
    (['alti', 'alti_rollout'], (6, 9, 9))

    References
    ----------
    .. [1] Kobayashi, G., Kuribayashi, T., Yokoi, S., Inui, K. (2020). "Attention is Not Only
       a Weight: Analyzing Transformers with Vector Norms". EMNLP.
    .. [2] Ferrando, J., Gállego, G. I., Costa-jussà, M. R. (2022). "Measuring the Mixing of
       Contextual Information in the Transformer". EMNLP.
    .. [3] Mohebbi, H., Zuidema, W., Chrupała, G., Alishahi, A. (2023). "Quantifying Context
       Mixing in Transformers". EACL.
    """
    wanted = tuple(dict.fromkeys((kinds,) if isinstance(kinds, str) else kinds))
    unknown = [k for k in wanted if k not in KINDS]
    if unknown or not wanted:
        raise ValueError(
            f"unknown contribution kinds {unknown}; choose from {', '.join(KINDS)}"
            if unknown
            else "no contribution kind was asked for"
        )
    if run.model.architecture == ENCODER_DECODER:
        raise ValueError(ENCODER_DECODER_MESSAGE)
    quick_end = _QUICK_SHARE if "value_zeroing" in wanted else 1.0
    report_progress(progress, 0.0)
    raise_if_cancelled(cancelled, "contributions")
    if capture is None:
        # the run's attentions serve the capture (checked against the model's): no 2nd copy
        capture = capture_layers(loaded, **_model_inputs(loaded, run), attentions=run.attentions)
    elif not np.array_equal(capture.input_ids, run.input_ids):
        raise ValueError("the capture is of other tokens than the run")
    report_progress(progress, quick_end / 3)
    raise_if_cancelled(cancelled, "contributions")

    out: dict[str, np.ndarray] = {}
    if "value_norm" in wanted:
        out["value_norm"], summed = value_norms(capture, normalise=False)
        out["value_norm_sum"] = normalise_rows_in_place(summed)
        raise_if_cancelled(cancelled, "contributions")
        report_progress(progress, quick_end * 2 / 3)
    if "alti" in wanted:
        out["alti"] = alti(capture)
        out["alti_rollout"] = rollout_layers(out["alti"])
    report_progress(progress, quick_end)

    if "value_zeroing" in wanted:
        raise_if_cancelled(cancelled, "contributions")

        def scaled(fraction: float) -> None:
            report_progress(progress, quick_end + (1.0 - quick_end) * fraction)

        out["value_zeroing"] = value_zeroing(
            loaded, capture, progress=scaled if progress else None, cancelled=cancelled
        )
        out["value_zeroing_rollout"] = rollout_layers(out["value_zeroing"])
    report_progress(progress, 1.0)
    return out
