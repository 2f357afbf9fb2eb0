"""From pixels to the method's inputs: person tracklets, COCO-17 poses and appearance embeddings.

The first half of the GAF-Net diagram (video → pose estimator → pose sequence → GaitGraph, and in parallel an
appearance network), as a library used by ``tools/extract_poses.py``, ``tools/extract_appearance.py`` and
``reid.py``:

- :mod:`.tracklet`    the one in-memory tracklet type (frames, boxes, COCO-17 poses, ids)
- :mod:`.media`       image and video reading with one clear error per bad file
- :mod:`.datasets`    the iLIDS-VID / MARS / PRID-2011 image-folder layouts and iLIDS-VID's split file
- :mod:`.pose_backends` the pose estimators (``mediapipe``, ``torchvision``, ``yolo``) behind one registry
- :mod:`.detection`   OpenCV's HOG people detector and the IoU + Hungarian tracker
- :mod:`.video`       videos → tracklets (detect, track, pose) and their outputs
- :mod:`.appearance`  torchreid models with a safe weights loader, and the weight-free colour descriptor

Heavy or differently licensed packages (MediaPipe, Ultralytics, torchreid, OpenCV) are imported lazily, so
``import gafnet.pixels`` costs nothing and the rest of the project works without them.
"""
