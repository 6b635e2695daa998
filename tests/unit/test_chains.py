from cluster.chains import partition_chains


def chains_of(edges: dict[str, list[str]], order: list[str]) -> list[list[str]]:
    """edges: node -> the nodes it reads from (all of them in this round)."""
    consumers: dict[str, int] = {}
    for sources in edges.values():
        for source in set(sources):
            consumers[source] = consumers.get(source, 0) + 1
    return partition_chains(order, lambda n: set(edges.get(n, [])), lambda n: consumers.get(n, 0))


def test_a_linear_stretch_is_one_chain() -> None:
    assert chains_of({"b": ["a"], "c": ["b"]}, ["a", "b", "c"]) == [["a", "b", "c"]]


def test_a_fan_out_ends_the_chain_so_branches_can_run_apart() -> None:
    edges = {"b": ["a"], "c": ["a"], "d": ["b"], "e": ["c"]}
    assert chains_of(edges, ["a", "b", "c", "d", "e"]) == [["a"], ["b", "d"], ["c", "e"]]


def test_a_join_starts_a_new_chain_after_its_inputs() -> None:
    edges = {"c": ["a", "b"], "d": ["c"]}
    assert chains_of(edges, ["a", "b", "c", "d"]) == [["a"], ["b"], ["c", "d"]]


def test_only_the_tail_of_a_chain_can_be_extended() -> None:
    # b reads a, but a also feeds c later: a's chain ends at a.
    edges = {"b": ["a"], "c": ["a"]}
    assert chains_of(edges, ["a", "b", "c"]) == [["a"], ["b"], ["c"]]


def test_inputs_from_earlier_rounds_do_not_tie_nodes_together() -> None:
    assert chains_of({}, ["x", "y"]) == [["x"], ["y"]]
