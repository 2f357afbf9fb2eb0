"""GaitGraph (Teepe et al. 2021): the COCO-17 skeleton graph, the ResGCN network (Song et al. 2020),
the supervised contrastive loss (Khosla et al. 2020) and the one checkpoint format every script uses.

- :mod:`gafnet.gait.graph`       COCO-17 graph: adjacency partitions ``A``, ``connect_joint``, body ``parts``
- :mod:`gafnet.gait.resgcn`      ResGCN family built from a network name (``resgcn-n39-r8``)
- :mod:`gafnet.gait.supcon`      SupConLoss
- :mod:`gafnet.gait.checkpoint`  save/load (ours and the original GaitGraph ``.pth`` format), RNG state,
  ``--weight_path`` initialisation
"""
