"""Random mixing graphs for tests of rendering and graph surgery."""

from __future__ import annotations

import random

import torch

from mixrep.console.graph import INPUT, MIX, OUTPUT, PROCESSOR_TYPES, MixingGraph


def random_dag(
    num_inputs: int, num_processors: int, generator: random.Random, num_mixes: int = 0,
    types: tuple[str, ...] = PROCESSOR_TYPES,
) -> MixingGraph:
    """A random connected DAG : inputs, then processors and mixes each fed by
    one to two earlier non-output nodes, then one output fed by every node without successors."""
    node_types = [INPUT] * num_inputs
    middle = [generator.choice(types) for _ in range(num_processors)] + [MIX] * num_mixes
    generator.shuffle(middle)
    edges: list[tuple[int, int]] = []
    for t in middle:
        node = len(node_types)
        fan_in = generator.randint(1, 2 if t == MIX else 1 + (generator.random() < 0.3))
        for src in generator.sample(range(node), min(fan_in, node)):
            edges.append((src, node))
        node_types.append(t)
    has_successor = {s for s, _ in edges}
    out = len(node_types)
    node_types.append(OUTPUT)
    edges += [(n, out) for n in range(out) if n not in has_successor]
    return MixingGraph(node_types, torch.tensor(edges, dtype=torch.long).t())
