"""The one vocabulary of positions, each word with one meaning wherever it is used:

- "all": every position (of every forward call, prompt and generated);
- "prompt": a prompt's positions (a prompt pass), none of the calls that continue it;
- "generated": the generated positions (the calls that continue a KV cache);
- "span": a prompt's marked span (the study's " your values"), (start, end) per prompt;
- "last": a prompt's last position;
- "mask": the positions a prompt's boolean mask marks.

Each user takes the words that mean something to it: hooks (`HookWhere`, plus a (start, end) span
or a mask given as such: `mechvalue.lm.hooks.Positions`), the study's prompts (`StudyWhere`,
resolved per prompt by `mechvalue.lm.batching.where_mask`) and the activation cache (`CacheWhere`).
"""

from typing import Literal, get_args

from mechvalue.errors import MechValueError

Where = Literal["all", "prompt", "generated", "span", "last", "mask"]
HookWhere = Literal["all", "prompt", "generated"]
StudyWhere = Literal["span", "prompt", "generated", "all"]
CacheWhere = Literal["all", "last", "span", "mask"]


def check_where(where: str, kind=Where, name: str = "where") -> str:
    """`where` if it is one of `kind`'s words, else a one-line error naming them."""
    if where not in get_args(kind):
        raise MechValueError(f"{name}={where!r}: expected one of {', '.join(get_args(kind))}")
    return where
