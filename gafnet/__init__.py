"""GAF-Net: gait + appearance fusion for video person re-identification.

Reference implementation of Boujou et al., "GAF-Net: Video-Based Person Re-Identification via
Appearance and Gait Recognitions", VISAPP 2024. The package holds
everything the command-line scripts use:

- :mod:`gafnet.metrics`     CMC / mAP (one implementation, torchreid's protocol)
- :mod:`gafnet.embeddings`  reading the released embedding CSVs (by header), with a parse cache
- :mod:`gafnet.fusion`      appearance + gait fusion (paper Eq. 4), λ sweep and cross-validated λ
- :mod:`gafnet.gait`        GaitGraph: ResGCN, SupConLoss, pose datasets, training, extraction
"""

__version__ = "0.1.0"
