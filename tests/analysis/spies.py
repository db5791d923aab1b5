"""Test doubles shared by the analysis tests."""

from __future__ import annotations


class CountingTokenizer:
    """A tokenizer that records how many characters each call was given."""

    def __init__(self, tokenizer):
        object.__setattr__(self, "_inner", tokenizer)
        object.__setattr__(self, "given", [])

    def __call__(self, *texts, **options):
        texts_given = [*texts, options.get("text_target")]
        self.given.append(sum(len(t) for t in texts_given if isinstance(t, str)))
        return self._inner(*texts, **options)

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def __setattr__(self, name, value):
        setattr(self._inner, name, value)

    def __len__(self):
        return len(self._inner)
