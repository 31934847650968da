"""Gymnasium spaces that describe text honestly.

``gymnasium.spaces.Text`` contains only strings over a small fixed charset, but
prompts and completions are arbitrary Unicode. :class:`UnicodeText` contains
*every* ``str`` within its length bounds (counted in characters, not tokens); its
``sample()`` is a smoke-test sampler, not a draw from that whole set: it returns
short strings (at most ``sample_max_length`` characters) over a mixed
ASCII / non-ASCII charset.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

__all__ = ["SAMPLE_CHARSET", "UnicodeText", "chat_space"]

# Printable ASCII, whitespace, and a few multi-byte characters (accents, CJK,
# Greek, an emoji, a combining mark, a right-to-left letter): enough to shake out
# byte/character confusions in verifiers under env_checker's random actions.
SAMPLE_CHARSET = "".join(chr(c) for c in range(32, 127)) + "\n\t" + "éßπ中文∑√∞😀\u0301א"


class UnicodeText(spaces.Text):
    """All Unicode strings of ``min_length`` to ``max_length`` characters."""

    def __init__(
        self,
        max_length: int,
        *,
        min_length: int = 0,
        sample_max_length: int = 64,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        super().__init__(max_length, min_length=min_length, charset=SAMPLE_CHARSET, seed=seed)
        self.sample_max_length = max(self.min_length, min(int(sample_max_length), self.max_length))

    def contains(self, x: Any) -> bool:
        """Whether ``x`` is a ``str`` whose length lies within the bounds; any characters."""
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        """A random short string over :data:`SAMPLE_CHARSET`, for smoke tests.

        Without ``mask`` or ``probability`` the length is drawn from ``min_length``
        to ``sample_max_length``; otherwise gymnasium's ``Text.sample`` rules apply.
        """
        if mask is None and probability is None:
            length = int(self.np_random.integers(self.min_length, self.sample_max_length + 1))
            mask = (length, None)
        return super().sample(mask=mask, probability=probability)

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, UnicodeText)
            and self.min_length == other.min_length
            and self.max_length == other.max_length
        )

    def __hash__(self) -> int:
        return hash((type(self), self.min_length, self.max_length))


def chat_space(max_content_length: int) -> spaces.Sequence:
    """Chat prompts: a tuple of ``{"role": str, "content": str}`` messages."""
    message = spaces.Dict({"role": UnicodeText(64, min_length=1), "content": UnicodeText(max_content_length)})
    return spaces.Sequence(message, stack=False)
