"""The logit lens: what each layer of a decoder would predict if the model stopped there.

The residual stream after layer ``l`` at the last position, ``h_l``, is read through the
model's own final norm and unembedding, ``argmax(W_U norm(h_l) + b_U)`` (nostalgebraist
2020). For the last layer this is exactly the model's prediction, so that row is taken from
the model's own logits rather than recomputed.

Cost: one ``[L - 1, d] x [d, V]`` product per generated token, about six times the arithmetic
of the rest of a step for the 135M chat model (576 x 49,152 unembedding, 29 layers; in float32
about a third of a step's time). Where the CPU does it
faster in bfloat16 (AVX512-BF16: 4.5x here), :class:`LogitLens` screens the vocabulary in
bfloat16 and then scores, in float32, every token whose bfloat16 logit lies within a proven
error bound of the best; the result is the float32 argmax, not an approximation. The bound:
bfloat16 rounds each operand to 8 significant bits (relative error ``2**-8``), so a product
``h . w`` is off by at most ``(2 * 2**-8 + 2**-16) * sum |h_i w_i|`` plus float32 accumulation
(``n * 2**-24`` of the same sum) and the rounding of the result (``2**-8 |result|``); with
``sum |h_i w_i| <= ||h|| ||w||`` (Cauchy-Schwarz) every row gets one margin (see
``LogitLens._margin``), and only tokens with a screened logit within it of the row's best can
be the argmax (about a dozen of 49,152 on the chat model). The kernel is chosen once per
model: screening where oneDNN has bfloat16 kernels (AVX512 CPUs) and a sample stays within
the bound, else float32.

References
----------
.. [1] nostalgebraist (2020). "interpreting GPT: the logit lens". LessWrong.
"""

from __future__ import annotations

import weakref

import torch

__all__ = ["LogitLens", "logit_lens_for"]

# relative error of a bfloat16 product summed in float32 (see module doc), with a margin
_PRODUCT_ERROR = 0.0081
_RESULT_ERROR = 0.0040
_SCREEN_MIN_SIZE = 4_000_000  # below this many unembedding weights float32 is fast enough
_BLOCK = 64  # tokens per block of the screen's first pass (see LogitLens._candidates)
_NORM_NAMES = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "norm_f", "final_norm")

_LENSES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _final_norm(lm_model):
    base = getattr(lm_model, "base_model", lm_model)
    for name in _NORM_NAMES:
        module = getattr(base, name, None)
        if isinstance(module, torch.nn.Module):
            return module
    return None


class LogitLens:
    """Reads the most likely next token off intermediate residual streams.

    Parameters
    ----------
    lm_model : transformers model with a language-model head
        ``LoadedModel.lm_model``.
    screen : bool, optional
        Force (True) or forbid (False) the bfloat16 screening; default: decide by timing.

    Examples
    --------
    >>> from analysis.models.loading import load_model
    >>> loaded = load_model("smollm2")
    >>> lens = logit_lens_for(loaded.lm_model)
    >>> lens.available, lens.kernel in ("float32", "bfloat16-screened")
    (True, True)
    """

    def __init__(self, lm_model, *, screen: bool | None = None):
        self.norm = _final_norm(lm_model)
        head = (
            lm_model.get_output_embeddings() if hasattr(lm_model, "get_output_embeddings") else None
        )
        weight = getattr(head, "weight", None)
        self.available = (
            self.norm is not None and isinstance(weight, torch.Tensor) and weight.ndim == 2
        )
        self.kernel = "float32"
        if not self.available:
            return
        self.weight = weight.detach()
        bias = getattr(head, "bias", None)
        self.bias = None if bias is None else bias.detach()
        self._screen_weight = None
        self._max_row_norm = 0.0
        if screen is None:
            screen = self.weight.numel() >= _SCREEN_MIN_SIZE and self._screening_pays()
        if screen:
            self._prepare_screen()
            self.kernel = "bfloat16-screened"

    # -- public --------------------------------------------------------------------------

    def predict(self, hidden: torch.Tensor) -> torch.Tensor:
        """Argmax token id of ``unembed(norm(h))`` for each row of ``hidden`` ``[n, d]``.

        Parameters
        ----------
        hidden : torch.Tensor
            Residual-stream vectors (before the final norm), one per row.

        Returns
        -------
        torch.Tensor
            int64 ``[n]``.
        """
        with torch.inference_mode():
            normed = self.norm(hidden.to(self.weight.dtype)).to(torch.float32)
            if self._screen_weight is None:
                return self._exact_logits(normed).argmax(dim=-1)
            return self._screened_argmax(normed)

    # -- kernels -------------------------------------------------------------------------

    def _exact_logits(self, normed: torch.Tensor) -> torch.Tensor:
        logits = normed @ self.weight.to(torch.float32).T
        return logits if self.bias is None else logits + self.bias

    def _prepare_screen(self) -> None:
        weight = self.weight.to(torch.float32)
        self._screen_weight = weight.to(torch.bfloat16)
        self._max_row_norm = float(weight.norm(dim=1).max())

    def _screened_argmax(self, normed: torch.Tensor) -> torch.Tensor:
        approx = normed.to(torch.bfloat16) @ self._screen_weight.T  # bfloat16 [n, V]
        if self.bias is not None:
            approx = approx.to(torch.float32) + self.bias
        rows, cols = self._candidates(normed, approx)
        exact = (self.weight[cols].to(torch.float32) * normed[rows]).sum(dim=1)
        if self.bias is not None:
            exact = exact + self.bias[cols]
        n = normed.shape[0]
        top = torch.full((n,), float("-inf")).scatter_reduce(0, rows, exact, "amax")
        # the first (lowest id) of a row's best, as torch.argmax breaks ties
        first = torch.where(exact == top[rows], cols, torch.full_like(cols, self.weight.shape[0]))
        return torch.full((n,), self.weight.shape[0], dtype=torch.long).scatter_reduce(
            0, rows, first, "amin"
        )

    def _candidates(self, normed: torch.Tensor, approx: torch.Tensor):
        """``(rows, cols)`` of every screened logit within its row's margin of the best.

        One pass over ``[n, V]``: the maximum of each block of ``_BLOCK`` tokens; then only
        the blocks whose maximum reaches the threshold (a few per row) are compared entry by
        entry, in float32. (A comparison and ``nonzero`` over the whole bfloat16 matrix cost
        five times the block maxima.)
        """
        n, vocab = approx.shape
        full = vocab // _BLOCK * _BLOCK
        blocks = approx[:, :full].reshape(n, full // _BLOCK, _BLOCK)
        block_max = torch.amax(blocks, dim=2).to(torch.float32)  # [n, V / B]
        tail = approx[:, full:].to(torch.float32)  # [n, V mod B]
        best = block_max.amax(dim=1)
        if tail.shape[1]:
            best = torch.maximum(best, tail.amax(dim=1))
        threshold = best - self._margin(normed, best)
        block_rows, block_cols = torch.nonzero(block_max >= threshold[:, None], as_tuple=True)
        values = blocks[block_rows, block_cols].to(torch.float32)  # [k, B]
        hit, offset = torch.nonzero(values >= threshold[block_rows][:, None], as_tuple=True)
        rows = block_rows[hit]
        cols = block_cols[hit] * _BLOCK + offset
        if tail.shape[1]:
            tail_rows, tail_cols = torch.nonzero(tail >= threshold[:, None], as_tuple=True)
            rows = torch.cat([rows, tail_rows])
            cols = torch.cat([cols, tail_cols + full])
        return rows, cols

    def _margin(self, normed: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
        """How far below a row's best screened logit the true argmax can lie.

        Entry ``j`` is off by at most ``e_j = P + R |approx_j|`` (``P``: the product bound
        ``_PRODUCT_ERROR ||h|| max_j ||w_j||``; ``R``: the result's rounding). The true
        argmax ``k`` has ``approx_k >= best - e_best - e_k``; near the best, ``|approx_k| <=
        |best| + e_best + e_k``, so ``e_k <= (P + R (|best| + e_best)) / (1 - R)``.
        """
        product = _PRODUCT_ERROR * normed.norm(dim=1) * self._max_row_norm
        e_best = product + _RESULT_ERROR * best.abs()
        e_other = (product + _RESULT_ERROR * (best.abs() + e_best)) / (1 - _RESULT_ERROR)
        return e_best + e_other

    def _screening_pays(self) -> bool:
        """True when oneDNN has bfloat16 matrix kernels here (AVX512 CPUs) and the error of
        a sample stays within the bound the screen relies on.

        No timing decides it (timings on a busy machine picked float32 by noise): where the
        CPU has AVX512-BF16 the screen is several times faster (4.5x here); where oneDNN
        emulates bfloat16 on plain AVX512 it reads half the bytes of float32 for the same
        arithmetic, so it is not slower.
        """
        if not _bf16_matmul_ok():
            return False
        generator = torch.Generator().manual_seed(0)
        sample = torch.randn(32, self.weight.shape[1], generator=generator) * 4
        with torch.inference_mode():
            try:
                self._prepare_screen()
                exact = self._exact_logits(sample)
                approx = (sample.to(torch.bfloat16) @ self._screen_weight.T).to(torch.float32)
                if self.bias is not None:
                    approx += self.bias
                bound = (
                    _PRODUCT_ERROR * sample.norm(dim=1)[:, None] * self._max_row_norm
                    + _RESULT_ERROR * approx.abs()
                )
                within = bool(((approx - exact).abs() <= bound).all())
                agrees = bool((self._screened_argmax(sample) == exact.argmax(dim=1)).all())
            except RuntimeError:  # no bfloat16 matmul on this build
                within = agrees = False
            finally:
                self._screen_weight = None
        return within and agrees


def _bf16_matmul_ok() -> bool:
    """True when oneDNN runs bfloat16 matrix products natively on this CPU."""
    try:
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
    except (AttributeError, RuntimeError):
        return False
    try:
        a = torch.ones(2, 3, dtype=torch.bfloat16)
        return bool(((a @ a.T).to(torch.float32) == 3).all())
    except RuntimeError:
        return False


def logit_lens_for(lm_model) -> LogitLens:
    """The (cached) :class:`LogitLens` of a model with a language-model head."""
    lens = _LENSES.get(lm_model)
    if lens is None:
        lens = LogitLens(lm_model)
        _LENSES[lm_model] = lens
    return lens
