"""GaitGraph (Teepe et al. 2021): the COCO-17 skeleton graph, the ResGCN network (Song et al. 2020),
the supervised contrastive loss (Khosla et al. 2020) and the one checkpoint format every script uses.

- :mod:`gafnet.gait.graph`       COCO-17 graph: adjacency partitions ``A``, ``connect_joint``, body ``parts``
- :mod:`gafnet.gait.resgcn`      ResGCN family built from a network name (``resgcn-n39-r8``)
- :mod:`gafnet.gait.supcon`      SupConLoss
- :mod:`gafnet.gait.checkpoint`  save/load (ours and the original GaitGraph ``.pth`` format), RNG state,
  ``--weight_path`` initialisation
- :mod:`gafnet.gait.poses`       pose CSVs of iLIDS-VID, MARS and CASIA-B (registry ``DATASETS``), padding, cache
- :mod:`gafnet.gait.augment`     the original's training/validation transforms, with opt-in corrections
- :mod:`gafnet.gait.training`    the training loop of ``gaitgraph/src/train.py``
- :mod:`gafnet.gait.extract`     batched embedding extraction (centre window, time-flip TTA, sliding windows)
- :mod:`gafnet.gait.extraction`  ``gaitgraph/src/evaluate.py``: embeddings to CSV and gait-only evaluation
- :mod:`gafnet.gait.protocols`   iLIDS-VID, CASIA-B and MARS evaluation protocols on :mod:`gafnet.metrics`
- :mod:`gafnet.gait.synthetic_poses`, :mod:`gafnet.gait.psymo`  synthetic pose data; PsyMo JSON conversion
"""
