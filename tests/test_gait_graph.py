"""The COCO-17 graph equals the one the original GaitGraph code builds (tests/data/graph_coco.npz)."""

from pathlib import Path

import numpy as np

from gafnet.gait.graph import COCO_EDGES, Graph, coco_adjacency, hop_distance

DATA = Path(__file__).parent / "data"


def test_adjacency_equals_the_original_exactly():
    ref = np.load(DATA / "graph_coco.npz")
    A = coco_adjacency()
    assert A.shape == (4, 17, 17) and A.dtype == np.float32
    np.testing.assert_array_equal(A, ref["A"])


def test_connect_joint_and_parts_equal_the_original():
    ref = np.load(DATA / "graph_coco.npz")
    graph = Graph()
    np.testing.assert_array_equal(graph.connect_joint, ref["connect_joint"])
    assert graph.num_node == int(ref["num_node"])
    for k, part in enumerate(graph.parts):
        np.testing.assert_array_equal(np.array(part), ref[f"part_{k}"])


def test_hop_distance_by_breadth_first_search():
    """Brute force: BFS from every joint gives the same hop distances (capped at 3)."""
    neighbours = {i: set() for i in range(17)}
    for i, j in COCO_EDGES:
        neighbours[i].add(j)
        neighbours[j].add(i)
    hop = hop_distance(17, COCO_EDGES, max_hop=3)
    for start in range(17):
        dist = {start: 0}
        frontier = [start]
        while frontier:
            nxt = []
            for u in frontier:
                for w in neighbours[u]:
                    if w not in dist:
                        dist[w] = dist[u] + 1
                        nxt.append(w)
            frontier = nxt
        for j in range(17):
            expected = dist[j] if dist.get(j, np.inf) <= 3 else np.inf
            assert hop[start, j] == expected


def test_columns_sum_to_one_over_the_partitions():
    """AD is column-normalised, and the partitions split it without overlap."""
    A = coco_adjacency()
    np.testing.assert_allclose(A.sum(axis=(0, 1)), np.ones(17), rtol=1e-6)
    assert ((A > 0).sum(axis=0) <= 1).all()
