"""Which worker runs a step: the one already holding its models when it is free, else the one
holding its inputs, else the least loaded.

Pure bookkeeping (no Ray): the executor tells it what each step's outputs are, which model
keys those outputs carry (loader nodes return ModelRefs), and which models each worker's cache
holds after a step; it answers with a worker index and counts model-placement hits.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MAX_TRACKED_OUTPUTS = 100_000


@dataclass
class PlacementStats:
    placements_with_models: int = 0
    model_hits: int = 0

    @property
    def hit_rate(self) -> float | None:
        if self.placements_with_models == 0:
            return None
        return self.model_hits / self.placements_with_models


class Placement:
    def __init__(self, workers: int) -> None:
        self.load = [0] * workers
        self._producer: OrderedDict[str, int] = OrderedDict()
        self._models_of: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._held: list[set[str]] = [set() for _ in range(workers)]
        self.stats = PlacementStats()

    @property
    def workers(self) -> int:
        return len(self.load)

    def pick(self, upstream: Sequence[str]) -> int:
        """The worker for a step whose inputs are the outputs named `upstream`."""
        needed: set[str] = set()
        local = [0] * self.workers
        for name in upstream:
            owner = self._producer.get(name)
            if owner is not None:
                local[owner] += 1
            needed.update(self._models_of.get(name, ()))
        if needed:
            holders = [i for i in range(self.workers) if needed <= self._held[i]]
            free_holders = [i for i in holders if self.load[i] == 0]
            self.stats.placements_with_models += 1
            if free_holders:
                self.stats.model_hits += 1
                return min(free_holders)
        # Holding an input counts like one and a half queued steps: a chain stays on one
        # worker, while a second branch from the same input goes to an idle worker.
        choice = min(
            range(self.workers),
            key=lambda i: (self.load[i] - 1.5 * min(local[i], 1), self.load[i], i),
        )
        if needed and needed <= self._held[choice]:
            self.stats.model_hits += 1
        return choice

    def produced(self, worker: int, outputs: Iterable[str]) -> None:
        for name in outputs:
            self._producer[name] = worker
            self._producer.move_to_end(name)
        while len(self._producer) > MAX_TRACKED_OUTPUTS:
            self._producer.popitem(last=False)

    def result(
        self,
        worker: int,
        output: str | None,
        model_keys: Sequence[str],
        held: Sequence[str] | None,
    ) -> None:
        """A step on `worker` finished: its output carries `model_keys`; the worker holds `held`."""
        if output is not None and model_keys:
            self._models_of[output] = tuple(model_keys)
            self._models_of.move_to_end(output)
            while len(self._models_of) > MAX_TRACKED_OUTPUTS:
                self._models_of.popitem(last=False)
        if held is not None:
            self._held[worker] = set(held)

    def held(self, worker: int) -> set[str]:
        return set(self._held[worker])

    def forget_models(self) -> None:
        """After /free every worker's model cache is empty."""
        for held in self._held:
            held.clear()
