"""GaitGraph (Teepe et al. 2021): the COCO-17 skeleton graph, the ResGCN network (Song et al. 2020),
the supervised contrastive loss (Khosla et al. 2020) and the one checkpoint format every script uses.

- :mod:`gafnet.gait.graph`        COCO-17 graph: adjacency partitions ``A``, ``connect_joint``, body ``parts``
- :mod:`gafnet.gait.resgcn`       ResGCN family built from a network name (``resgcn-n39-r8``), fast on CPU
- :mod:`gafnet.gait.reference_resgcn`  a plain ResGCN in the original code's structure (the tests' yardstick)
- :mod:`gafnet.gait.supcon`       SupConLoss
- :mod:`gafnet.gait.checkpoint`   the one checkpoint format (:class:`~gafnet.gait.checkpoint.Checkpoint`), the
  original GaitGraph ``.pth`` format, RNG state, ``--weight_path`` initialisation, checks of hostile files
- :mod:`gafnet.gait.poses`        pose CSVs of iLIDS-VID, MARS and CASIA-B (registry ``DATASETS``), padding, cache
- :mod:`gafnet.gait.augment`      the original's training/validation transforms, with opt-in corrections
- :mod:`gafnet.gait.training`     library: seeded epoch order, one SupCon epoch, validation
- :mod:`gafnet.gait.extraction`   library: batched embedding extraction (centre window, time-flip TTA, sliding windows)
- :mod:`gafnet.gait.protocols`    iLIDS-VID, CASIA-B and MARS evaluation protocols on :mod:`gafnet.metrics`
- :mod:`gafnet.gait.train_cli`    command ``gaitgraph/src/train.py``
- :mod:`gafnet.gait.evaluate_cli` command ``gaitgraph/src/evaluate.py``: embeddings to CSV, gait-only evaluation
- :mod:`gafnet.gait.cli_options`  the options and checks both commands share
- :mod:`gafnet.gait.synthetic_poses`, :mod:`gafnet.gait.psymo`  synthetic pose data; PsyMo JSON conversion
"""
