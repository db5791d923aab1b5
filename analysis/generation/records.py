"""What a generation leaves behind: one record per generated token, and the whole.

Plain frozen dataclasses without torch, so the window (and a notebook) can read them, and
``to_dict`` gives exactly the ``generation.json`` the command line writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["GenerationStep", "Generation", "STOP_REASONS"]

# Why a generation ended.
STOP_REASONS = ("length", "end_of_turn", "cancelled", "context")


@dataclass(frozen=True)
class GenerationStep:
    """One generated token and what the model thought at that step.

    Attributes
    ----------
    index : int
        0 for the first generated token.
    position : int
        Its index in the run's tokens (``prompt_length + index``).
    token : str
        The token as the tokenizer writes it (``"Ġthe"``), as in ``run.tokens``.
    id : int
        Its vocabulary id.
    text : str
        The text it adds to the answer (``" the"``; ``""`` for a byte that only completes
        a character together with the next ones).
    prob : float
        Its probability: ``softmax(logits / temperature)`` at this step.
    rank : int
        Its rank in that distribution (0: the most likely; greedy always picks rank 0).
    top : tuple of (str, float)
        The ``top`` most likely tokens and their probabilities, most likely first.
    top_ids : tuple of int
        Their ids.
    lens : tuple of str
        The logit lens: per layer, the most likely next token read off that layer's
        residual stream (last position) through the final norm and the unembedding. The
        last entry is the model's own prediction (its argmax). Empty when the model has no
        final norm the lens can use, when generating without the lens, and in the records
        streamed to ``on_token`` (the lens is filled in when the token loop ends).
    lens_ids : tuple of int
        Their ids.
    seconds : float
        Time since the generation started, when this token was ready.
    """

    index: int
    position: int
    token: str
    id: int
    text: str
    prob: float
    rank: int
    top: tuple[tuple[str, float], ...]
    top_ids: tuple[int, ...]
    lens: tuple[str, ...]
    lens_ids: tuple[int, ...]
    seconds: float

    def to_dict(self) -> dict:
        """The step as ``generation.json`` writes it."""
        return {
            "token": self.token,
            "id": self.id,
            "text": self.text,
            "prob": self.prob,
            "rank": self.rank,
            "top": [[token, prob] for token, prob in self.top],
            "lens": list(self.lens),
        }


@dataclass(frozen=True)
class Generation:
    """A prompt and what the model generated from it, step by step.

    Attributes
    ----------
    prompt : str
        What the person typed.
    prompt_text : str
        What the model read: the prompt inside the chat template when ``chat``.
    prompt_ids : tuple of int
        Its token ids (special tokens included); the run's first ``prompt_length`` tokens.
    chat : bool
        Whether the chat template was applied.
    steps : tuple of GenerationStep
        One per generated token, in order.
    text : str
        The generated text, special tokens (the end of turn) left out.
    stop_reason : str
        ``"length"`` (``max_new_tokens`` reached), ``"end_of_turn"`` (the model ended its
        answer), ``"cancelled"`` or ``"context"`` (the model's longest input reached).
    settings : dict
        ``max_new_tokens, sample, temperature, top_k, top_p, seed, stop_at_end_of_turn,
        top`` as used (``seed`` is the one drawn when none was given, so a sampled
        generation can always be repeated).
    seconds : float
        Wall time of the token loop.
    first_token_seconds : float
        Time to the first generated token (the prompt's forward pass included).
    lens_kernel : str
        How the logit lens was computed (``"float32"`` or ``"bfloat16-screened"``).
    """

    prompt: str
    prompt_text: str
    prompt_ids: tuple[int, ...]
    chat: bool
    steps: tuple[GenerationStep, ...]
    text: str
    stop_reason: str
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0
    first_token_seconds: float = 0.0
    lens_kernel: str = "float32"

    @property
    def prompt_length(self) -> int:
        return len(self.prompt_ids)

    @property
    def ids(self) -> tuple[int, ...]:
        """Prompt and generated ids: what the run's one forward pass reads."""
        return self.prompt_ids + tuple(step.id for step in self.steps)

    @property
    def generated_ids(self) -> tuple[int, ...]:
        return tuple(step.id for step in self.steps)

    @property
    def cancelled(self) -> bool:
        return self.stop_reason == "cancelled"

    def to_dict(self) -> dict:
        """The content of ``generation.json``."""
        return {
            "prompt": self.prompt,
            "text": self.text,
            "prompt_tokens": self.prompt_length,
            "prompt_text": self.prompt_text,
            "chat": self.chat,
            "stop_reason": self.stop_reason,
            "settings": dict(self.settings),
            "seconds": self.seconds,
            "first_token_seconds": self.first_token_seconds,
            "steps": [step.to_dict() for step in self.steps],
        }
