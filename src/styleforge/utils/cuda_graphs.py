"""Replaying a network as CUDA graphs, for the launch-bound case.

At small sizes a feed-forward network spends more time launching its ~60 kernels than
running them (an H200 at 512 px, batch 1: 3.8 ms eager, 2.4 ms replayed as one graph;
``benchmarks/networks.py``). :class:`GraphedCalls` captures ``fn`` for an input shape
the third time that shape is seen (so one-off images pay no capture) and then replays
it: the input is copied into the graph's static input and the static output is cloned
out. At most ``capacity`` shapes are kept (each holds its activations' memory); the
least recently used is dropped.

A graph replays the kernels it recorded, so what the call does must depend only on the
input's shape and on tensors updated in place. Two things the key therefore carries:
the caller's autocast state, and, for an ``nn.Module``, the storage of its parameters
and buffers (re-selecting a multi-style network's styles assigns a new ``mix`` buffer,
which then misses the old graphs instead of replaying stale weights). Capture runs in
the caller's inference mode, under an autocast with its weight-cast cache off: cached
casts made before the capture live outside the graph's memory pool and are freed when
the caller's autocast ends, so the graph must make its own (the reason
``torch.cuda.make_graphed_callables`` asks for ``cache_enabled=False``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch

#: Calls of one shape run eagerly before it is captured (they also warm up cuDNN).
CAPTURE_AFTER = 2

#: Shapes counted at most before the counts start again.
MAX_SEEN = 1024


class GraphedCalls:
    """``fn`` (a tensor in, a tensor out) run eagerly, or replayed as a CUDA graph for
    shapes seen more than ``capture_after`` times (CUDA tensors only; others go to ``fn``).

    Args:
        fn: the callable, usually a network.
        capacity: graphs kept at once (least recently used dropped).
        capture_after: eager calls of a shape before it is captured (0: at once).
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], capacity: int = 4,
                 capture_after: int = CAPTURE_AFTER) -> None:
        self.fn, self.capacity, self.capture_after = fn, capacity, capture_after
        self.seen: dict[tuple, int] = {}
        self.graphs: OrderedDict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = OrderedDict()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``fn(x)``, eagerly or by replaying the graph captured for ``x``'s key."""
        if not x.is_cuda:
            return self.fn(x)
        key = self._key(x)
        entry = self.graphs.get(key)
        if entry is None:
            if len(self.seen) > MAX_SEEN:  # a folder of many sizes: forget the counts
                self.seen.clear()
            self.seen[key] = self.seen.get(key, 0) + 1
            if self.seen[key] <= self.capture_after:
                return self.fn(x)
            entry = self._capture(key, x)
        self.graphs.move_to_end(key)
        graph, static_in, static_out = entry
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()

    def _key(self, x: torch.Tensor) -> tuple:
        storage: tuple = ()
        if isinstance(self.fn, torch.nn.Module):
            storage = tuple(t.data_ptr() for t in (*self.fn.parameters(), *self.fn.buffers()))
        return (tuple(x.shape), x.dtype, x.stride(), x.device, torch.is_autocast_enabled("cuda"),
                torch.get_autocast_dtype("cuda"), storage)

    def _capture(self, key: tuple, x: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]:
        static_in = x.clone()
        stream = torch.cuda.Stream(x.device)
        stream.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(stream), _uncached_autocast():
            self.fn(static_in)  # allocations made outside the capture, as CUDA graphs require
        torch.cuda.current_stream(x.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), _uncached_autocast():
            static_out = self.fn(static_in)
        self.graphs[key] = (graph, static_in, static_out)
        self.seen.pop(key, None)
        if len(self.graphs) > self.capacity:
            self.graphs.popitem(last=False)
        return self.graphs[key]


def _uncached_autocast() -> torch.autocast:
    """The caller's CUDA autocast state with the weight-cast cache off."""
    return torch.autocast("cuda", dtype=torch.get_autocast_dtype("cuda"),
                          enabled=torch.is_autocast_enabled("cuda"), cache_enabled=False)
