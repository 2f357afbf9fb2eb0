"""The COCO-17 skeleton graph used by GaitGraph (Teepe et al. 2021), as in the original code.

The graph has a self-link on every joint plus the 18 bones of the COCO skeleton. Joints are grouped by hop
distance (0…``max_hop``); the column-normalised reachability matrix is split into one slice per distance,
giving ``A`` of shape (max_hop + 1, 17, 17) = (4, 17, 17). ResGCN's spatial graph convolution uses the
first ``max_graph_distance + 1`` = 3 slices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NUM_JOINTS = 17

#: COCO-17 joint names, in index order.
JOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)

#: The bones of the COCO-17 skeleton (undirected; self-links are added separately).
COCO_EDGES = (
    (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10),
    (5, 11), (6, 12), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
)

#: For every joint, the joint its bone points to (used for the bone/angle input branch).
CONNECT_JOINT = (5, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 5, 6, 11, 12, 13, 14)

#: Body parts: left arm, right arm, left leg, right leg, torso + head.
PARTS = (
    (5, 7, 9),
    (6, 8, 10),
    (11, 13, 15),
    (12, 14, 16),
    (5, 6, 11, 12, 0, 1, 2, 3, 4),
)


def hop_distance(num_node: int, edges, max_hop: int) -> np.ndarray:
    """(V, V) matrix of hop distances: the smallest d ≤ max_hop with a d-step walk from i to j, else inf.

    Self-links are included, so once a joint is reachable in d steps it stays reachable for every d' > d.
    """
    binary = np.eye(num_node)
    for i, j in edges:
        binary[i, j] = binary[j, i] = 1
    hop = np.full((num_node, num_node), np.inf)
    reach = [np.linalg.matrix_power(binary, d) > 0 for d in range(max_hop + 1)]
    for d in range(max_hop, -1, -1):  # the smallest d wins, so write it last
        hop[reach[d]] = d
    return hop


def partitioned_adjacency(hop: np.ndarray, max_hop: int, dilation: int = 1) -> np.ndarray:
    """Split the column-normalised reachability matrix by hop distance: (max_hop // dilation + 1, V, V)."""
    distances = range(0, max_hop + 1, dilation)
    reachable = np.zeros_like(hop)
    for d in distances:
        reachable[hop == d] = 1
    column_sums = reachable.sum(axis=0)
    inverse = np.where(column_sums > 0, 1.0 / np.where(column_sums > 0, column_sums, 1), 0.0)
    normalised = reachable @ np.diag(inverse)  # AD = M · diag(1 / column sums)
    slices = np.zeros((len(distances), *hop.shape))
    for k, d in enumerate(distances):
        slices[k][hop == d] = normalised[hop == d]
    return slices


@dataclass(frozen=True)
class Graph:
    """The COCO-17 graph: ``A`` (4, 17, 17) float32, ``connect_joint`` (17,), ``parts`` (5 tuples of joints)."""

    max_hop: int = 3
    dilation: int = 1
    num_node: int = NUM_JOINTS
    edges: tuple = COCO_EDGES
    connect_joint: np.ndarray = field(default_factory=lambda: np.array(CONNECT_JOINT, dtype=np.int64))
    parts: tuple = PARTS

    @property
    def A(self) -> np.ndarray:  # noqa: N802 (the name used by the papers and the original code)
        """Adjacency partitions by hop distance, (max_hop + 1, V, V) float32."""
        hop = hop_distance(self.num_node, self.edges, self.max_hop)
        return partitioned_adjacency(hop, self.max_hop, self.dilation).astype(np.float32)


def coco_adjacency() -> np.ndarray:
    """The (4, 17, 17) float32 adjacency tensor of the COCO-17 graph with max_hop 3, dilation 1."""
    return Graph().A
