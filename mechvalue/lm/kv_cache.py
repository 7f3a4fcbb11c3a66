"""A KV cache for decoding: room for the tokens to come, and rows that leave as they finish.

HF's `DynamicCache` appends each decode step's keys and values with `torch.cat`, copying the
whole cache at every step and layer: at SmolLM2's sizes (16 rows, ~200 positions) that copy is
a tenth of a CPU decode step, and it grows with rows and positions. `RoomyLayer` keeps each
layer's keys and values in a buffer with room for `room` more positions than the prompt, writes
a step's position in place and hands attention a view of the filled part: the same values in
the same shape, so attention computes what it computes on a `DynamicCache`.

With `groups` > 1 (grouped-query attention: `groups` query heads share each key/value head) the
layer stores the keys and values once per query head, expanded as they arrive. TransformerLens's
attention otherwise repeats the whole cache per query head at every step and layer (`repeat_kv`,
a copy `groups` times the cache's size: a 40-row SmolLM2 decode step at 250 positions takes 1.27x
as long on 2 CPU threads). Told the heads are already repeated (`mechvalue.lm.compat`, 6.), it
reads the same values in the same layout, so the logits are bit-identical. The cache takes
`groups` times the memory, what that copy took at every step.

`drop_rows` drops finished rows from every layer by moving the last rows still decoding into
their places (a copy of the moved rows only; the buffer keeps its size), so a decode batch costs
what its live rows cost (`mechvalue.lm.generation.greedy_generate`).
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Int
from torch import Tensor
from transformers.cache_utils import DynamicCache, DynamicLayer


class RoomyLayer(DynamicLayer):
    """A `DynamicLayer` whose keys and values are views of buffers with spare positions."""

    def __init__(self, room: int, groups: int = 1):
        super().__init__()
        self.room, self.groups = room, groups
        self._k: Tensor | None = None
        self._v: Tensor | None = None

    def _owned(self) -> bool:
        """Whether `keys` is still the filled part of this layer's buffer (a caller may have
        replaced it, e.g. broadcast a batch-1 prefix over rows)."""
        k = self.keys
        return (
            self._k is not None
            and k is not None
            and (k.data_ptr(), k.stride()) == (self._k.data_ptr(), self._k.stride())
        )

    def update(self, key_states: Tensor, value_states: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor]:
        if self.groups > 1:  # one copy per query head, in `repeat_kv`'s order
            key_states = key_states.repeat_interleave(self.groups, 1)
            value_states = value_states.repeat_interleave(self.groups, 1)
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = self.get_seq_length()
        m = n + key_states.shape[-2]
        if not self._owned() or m > self._k.shape[-2] or self._k.shape[:-2] != key_states.shape[:-2]:
            shape = (*key_states.shape[:-2], m + self.room, key_states.shape[-1])
            k, v = key_states.new_empty(shape), value_states.new_empty(shape)
            if n:
                k[..., :n, :] = self.keys
                v[..., :n, :] = self.values
            self._k, self._v = k, v
        self._k[..., n:m, :] = key_states
        self._v[..., n:m, :] = value_states
        self.keys, self.values = self._k[..., :m, :], self._v[..., :m, :]
        return self.keys, self.values

    def batch_select_indices(self, indices: Tensor) -> None:
        if self.get_seq_length() > 0:
            n = self.get_seq_length()
            if self._owned():
                self._k, self._v = self._k[indices], self._v[indices]
                self.keys, self.values = self._k[..., :n, :], self._v[..., :n, :]
            else:
                super().batch_select_indices(indices)

    def move_rows(
        self, holes: Int[Tensor, " moved"], tails: Int[Tensor, " moved"], order: Int[Tensor, " kept"]
    ) -> None:
        """Rows `tails` copied into rows `holes`, then the first `len(order)` rows kept, in place
        (a layer not filling its own buffer takes the rows `order` names)."""
        if not self._owned():
            return super().batch_select_indices(order)
        m = self.get_seq_length()
        for buf in (self._k, self._v):
            buf[holes] = buf[tails]
        self._k, self._v = self._k[: len(order)], self._v[: len(order)]
        self.keys, self.values = self._k[..., :m, :], self._v[..., :m, :]


class RoomyCache(DynamicCache):
    """A `DynamicCache` of `RoomyLayer`s, each with room for `room` positions beyond its prompt,
    keys and values stored `groups` times (once per query head; see the module's docstring)."""

    def __init__(self, room: int, groups: int = 1):
        super().__init__()
        self.groups = groups
        self.layer_class_to_replicate = lambda: RoomyLayer(room, groups)


def drop_rows(cache: DynamicCache, keep: Bool[Tensor, " rows"]) -> Int[Tensor, " kept"]:
    """Drop the rows of every layer of `cache` where `keep` is False: kept rows past the new batch
    size move into the dropped rows' places (in order). Returns, for each row now, its row before."""
    n = int(keep.sum())
    order = torch.arange(n, device=keep.device)
    holes, tails = (~keep[:n]).nonzero()[:, 0], keep[n:].nonzero()[:, 0] + n
    order[holes] = tails
    for layer in cache.layers:
        if isinstance(layer, RoomyLayer):
            layer.move_rows(holes, tails, order)
        else:
            layer.batch_select_indices(order)
    return order
