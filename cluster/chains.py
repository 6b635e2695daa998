"""Which nodes submitted together run as one worker call.

A chain is a linear stretch: a node joins a chain when its only inputs from this round
come from the chain's last node and that node feeds nothing else. EmptyImage ->
ImageInvert -> SaveImage is one call; a node whose output fans out ends its chain, so
branches stay separate and can run on different workers at the same time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


def partition_chains(
    nodes: Iterable[str],
    in_round_inputs: Callable[[str], set[str]],
    consumers: Callable[[str], int],
) -> list[list[str]]:
    """`nodes` in dependency order; returns chains in an order safe to submit in.

    `in_round_inputs(n)`: the nodes of this round that feed n; `consumers(n)`: how many
    nodes of the whole graph read n's outputs.
    """
    chains: list[list[str]] = []
    chain_of: dict[str, int] = {}
    for node_id in nodes:
        inputs = in_round_inputs(node_id)
        index = len(chains)
        if len(inputs) == 1:
            (source,) = inputs
            owner = chain_of.get(source)
            if owner is not None and chains[owner][-1] == source and consumers(source) == 1:
                index = owner
        if index == len(chains):
            chains.append([])
        chains[index].append(node_id)
        chain_of[node_id] = index
    return chains
