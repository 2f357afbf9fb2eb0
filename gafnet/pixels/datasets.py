"""Image-folder datasets → tracklets: iLIDS-VID, MARS, PRID-2011, and plain tracklet folders.

Layouts (one tracklet = one person seen by one camera):

- ``ilids-vid``  ``sequences/cam1/person001/cam1_person001_00317.png``  (Wang et al., ECCV 2014)
- ``mars``       ``bbox_test/0001/0001C1T0001F001.jpg``  person ``00-1`` = junk, ``0000`` = distractors, kept as
  such (person id −1 and 0; Zheng et al., ECCV 2016)
- ``prid2011``   ``multi_shot/cam_a/person_0001/0001.png``  (Hirzer et al., SCIA 2011)
- ``folders``    any tree: every folder that directly holds images is one tracklet, named by its path relative to
  the root (``reid.py``: ``cam2/`` of an iLIDS-VID tree is a gallery)

Pose rows get the image names GaitGraph's readers expect (:data:`gafnet.gait.poses.DATASETS`): iLIDS-VID and
MARS keep their own file names; PRID-2011 rows take iLIDS-VID-style names (``cam_a`` → ``cam1``, ``cam_b`` →
``cam2``: ``cam1_person0001_00001.png``), so ``train.py iLIDS`` reads them.

The root given may also be the folder above (``i-LIDS-VID`` holding ``sequences``, ``prid_2011`` holding
``multi_shot``). Anything that does not fit the named layout is refused with the path and the expected form.
iLIDS-VID's ten train/test splits come from the dataset's ``train_test_splits_ilidsvid.mat`` (:func:`ilids_splits`).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..errors import InputError
from .media import is_image_name
from .tracklet import Tracklet

LAYOUT_ALIASES = {
    "ilids-vid": "ilids-vid", "ilids": "ilids-vid", "ilidsvid": "ilids-vid", "ilids_vid": "ilids-vid",
    "mars": "mars",
    "prid2011": "prid2011", "prid-2011": "prid2011", "prid": "prid2011", "prid_2011": "prid2011",
    "folders": "folders",
}
#: The GaitGraph pose-file format (gafnet.gait.poses.DATASETS key) each layout's rows are written in.
POSE_FORMAT = {"ilids-vid": "iLIDS", "mars": "mars", "prid2011": "iLIDS", "folders": "iLIDS"}
EXAMPLES = {
    "ilids-vid": "sequences/cam1/person001/cam1_person001_00317.png",
    "mars": "bbox_test/0001/0001C1T0001F001.jpg",
    "prid2011": "multi_shot/cam_a/person_0001/0001.png",
    "folders": "ROOT/<any folders>/<tracklet folder>/<frames>.jpg",
}


def layout_name(name: str) -> str:
    try:
        return LAYOUT_ALIASES[name.strip().lower()]
    except KeyError:
        raise InputError(f"unknown dataset layout {name!r}; use one of ilids-vid, mars, prid2011") from None


def _visible(entries):
    return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)


def _subdirs(path: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in _visible(os.scandir(path)) if e.is_dir()]
    except OSError as exc:
        raise InputError(f"{path}: cannot be listed ({exc.strerror})") from None


def _files(path: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in _visible(os.scandir(path)) if e.is_file()]
    except OSError as exc:
        raise InputError(f"{path}: cannot be listed ({exc.strerror})") from None


def _root(root, layout: str, children: tuple[str, ...], parent_names: tuple[str, ...]) -> Path:
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: no such folder; give the dataset folder ({EXAMPLES[layout]})")
    if not root.is_dir():
        raise InputError(f"{root} is a file, not a folder; give the dataset folder ({EXAMPLES[layout]})")
    if not any((root / c).is_dir() for c in children):
        for name in parent_names:  # the folder above was given
            if any((root / name / c).is_dir() for c in children):
                return root / name
    return root


def _layout_error(path, layout: str, what: str) -> InputError:
    return InputError(f"{path}: {what}; this does not match the {layout} layout ({EXAMPLES[layout]}); "
                      "check the folder or the dataset name")


def _frames_of(folder: Path, pattern: re.Pattern, layout: str, example: str) -> list[tuple[Path, re.Match]]:
    files = _files(folder)
    if not files:
        raise InputError(f"{folder}: empty folder (no frames); remove it or fill it")
    out = []
    for f in files:
        match = pattern.fullmatch(f.name)
        if match is None:
            raise _layout_error(f, layout, f"unexpected file name (expected names like {example})")
        out.append((f, match))
    return out


# ----------------------------------------------------------------------------------------------- iLIDS-VID
_ILIDS_PERSON = re.compile(r"person(\d{1,9})")
_ILIDS_FRAME = re.compile(r"cam(?P<cam>[12])_person(?P<person>\d{1,9})_(?P<frame>\d{1,9})\.png")


def read_ilids_vid(root) -> list[Tracklet]:
    """iLIDS-VID ``sequences/cam{1,2}/personNNN/cam{c}_personNNN_FFFFF.png`` → one tracklet per (person, camera)."""
    root = _root(root, "ilids-vid", ("cam1", "cam2"), ("sequences", "i-LIDS-VID/sequences"))
    cams = [root / c for c in ("cam1", "cam2") if (root / c).is_dir()]
    if not cams:
        raise _layout_error(root, "ilids-vid", "no cam1/ or cam2/ folder")
    tracklets = []
    for cam_dir in cams:
        cam = int(cam_dir.name[-1])
        persons = _subdirs(cam_dir)
        if not persons:
            raise InputError(f"{cam_dir}: empty folder (no person folders); expected {EXAMPLES['ilids-vid']}")
        for person_dir in persons:
            if _ILIDS_PERSON.fullmatch(person_dir.name) is None:
                raise _layout_error(person_dir, "ilids-vid", "unexpected folder name (expected person001)")
            frames = _frames_of(person_dir, _ILIDS_FRAME, "ilids-vid", f"{cam_dir.name}_{person_dir.name}_00317.png")
            person = int(person_dir.name[6:])
            for f, m in frames:
                if int(m["cam"]) != cam or int(m["person"]) != person:
                    raise _layout_error(f, "ilids-vid", f"its name says camera {m['cam']}, person {int(m['person'])} "
                                        f"but it lies in {cam_dir.name}/{person_dir.name}")
            frames.sort(key=lambda fm: int(fm[1]["frame"]))
            tracklets.append(Tracklet(
                name=f"{cam_dir.name}/{person_dir.name}", frames=[f for f, _ in frames],
                row_names=[f.name for f, _ in frames], frame_numbers=[int(m["frame"]) for _, m in frames],
                person_id=person, camera_id=cam, source=str(person_dir), fixed_size=True))
    return tracklets


# ----------------------------------------------------------------------------------------------------- MARS
_MARS_PERSON = re.compile(r"\d{4}|00-1")
_MARS_FRAME = re.compile(r"(?P<person>\d{4}|00-1)C(?P<cam>\d)T(?P<tracklet>\d{4})F(?P<frame>\d{3})\.jpg")


def _mars_pid(text: str) -> int:
    return -1 if text == "00-1" else int(text)


def read_mars(root) -> list[Tracklet]:
    """MARS ``bbox_test/PPPP/PPPPCcTttttFfff.jpg`` → one tracklet per (person, camera, tracklet).

    Person ``00-1`` (junk) gets id −1 and ``0000`` (distractors) id 0; both are kept, as in the dataset.
    """
    root = _root(root, "mars", (), ())
    persons = _subdirs(root)
    if not persons:
        for name in ("bbox_test", "bbox_train"):
            if (root / name).is_dir():
                raise InputError(f"{root}: give {root / name} (one MARS part per run), not the folder above it")
        raise InputError(f"{root}: empty folder (no person folders); expected {EXAMPLES['mars']}")
    tracklets = []
    for person_dir in persons:
        if _MARS_PERSON.fullmatch(person_dir.name) is None:
            raise _layout_error(person_dir, "mars", "unexpected folder name (expected 0001, 0000 or 00-1)")
        groups: dict[tuple[int, int], list] = defaultdict(list)
        for f, m in _frames_of(person_dir, _MARS_FRAME, "mars", f"{person_dir.name}C1T0001F001.jpg"):
            if m["person"] != person_dir.name:
                raise _layout_error(f, "mars", f"its name says person {m['person']} but it lies in {person_dir.name}/")
            groups[(int(m["cam"]), int(m["tracklet"]))].append((f, m))
        for (cam, trk), frames in sorted(groups.items()):
            frames.sort(key=lambda fm: int(fm[1]["frame"]))
            tracklets.append(Tracklet(
                name=f"{person_dir.name}/{person_dir.name}C{cam}T{trk:04d}", frames=[f for f, _ in frames],
                row_names=[f.name for f, _ in frames], frame_numbers=[int(m["frame"]) for _, m in frames],
                person_id=_mars_pid(person_dir.name), camera_id=cam, tracklet_id=trk, source=str(person_dir), fixed_size=True))
    return tracklets


# ----------------------------------------------------------------------------------------------- PRID-2011
_PRID_PERSON = re.compile(r"person_(\d{1,9})")
_PRID_FRAME = re.compile(r"(?P<frame>\d{1,9})\.png")
_PRID_CAMERAS = {"cam_a": 1, "cam_b": 2}


def read_prid2011(root) -> list[Tracklet]:
    """PRID-2011 ``multi_shot/cam_{a,b}/person_NNNN/FFFF.png`` → one tracklet per (person, camera).

    Rows are named iLIDS-VID style (``cam1_person0001_00001.png``; cam_a → 1, cam_b → 2).
    """
    root = _root(root, "prid2011", tuple(_PRID_CAMERAS), ("multi_shot", "prid_2011/multi_shot"))
    cams = [(root / c, n) for c, n in _PRID_CAMERAS.items() if (root / c).is_dir()]
    if not cams:
        raise _layout_error(root, "prid2011", "no cam_a/ or cam_b/ folder")
    tracklets = []
    for cam_dir, cam in cams:
        persons = _subdirs(cam_dir)
        if not persons:
            raise InputError(f"{cam_dir}: empty folder (no person folders); expected {EXAMPLES['prid2011']}")
        for person_dir in persons:
            m_person = _PRID_PERSON.fullmatch(person_dir.name)
            if m_person is None:
                raise _layout_error(person_dir, "prid2011", "unexpected folder name (expected person_0001)")
            person = int(m_person.group(1))
            frames = _frames_of(person_dir, _PRID_FRAME, "prid2011", "0001.png")
            frames.sort(key=lambda fm: int(fm[1]["frame"]))
            numbers = [int(m["frame"]) for _, m in frames]
            tracklets.append(Tracklet(
                name=f"{cam_dir.name}/{person_dir.name}", frames=[f for f, _ in frames],
                row_names=[f"cam{cam}_person{person:04d}_{n:05d}.png" for n in numbers], frame_numbers=numbers,
                person_id=person, camera_id=cam, source=str(person_dir), fixed_size=True))
    return tracklets


# ----------------------------------------------------------------------------------------- tracklet folders
def read_tracklet_folders(root) -> list[Tracklet]:
    """Every folder under ``root`` (itself included) that directly holds images is one tracklet.

    The tracklet is named by its path relative to ``root``; frames are ordered by name. Ids are taken from
    iLIDS-VID-, PRID- or MARS-style folder names when they are present (``cam2/person007`` → person 7,
    camera 2), else left unknown. Rows are named ``cam1_person<k>_<frame>.png`` with k the folder's position.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder of tracklets (give a folder whose sub-folders hold the frames)")
    tracklets = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        images = sorted(f for f in filenames if is_image_name(f) and not f.startswith("."))
        if not images:
            continue
        folder = Path(dirpath)
        rel = folder.relative_to(root).as_posix()
        name = rel if rel != "." else folder.name
        person, cam = _ids_from_path(folder.relative_to(root) if rel != "." else Path(folder.name))
        k = len(tracklets) + 1
        numbers = list(range(len(images)))
        tracklets.append(Tracklet(
            name=name, frames=[folder / f for f in images],
            row_names=[f"cam1_person{k:04d}_{n:05d}.png" for n in numbers], frame_numbers=numbers,
            person_id=person, camera_id=cam, tracklet_id=k, source=str(folder)))
    if not tracklets:
        raise InputError(f"{root}: no images found in it or below it (expected folders of frames, "
                         f"e.g. {root}/T01/0001.jpg)")
    return tracklets


_CAM_PART = re.compile(r"cam(?:_)?([0-9a-b])", re.IGNORECASE)
_PERSON_PART = re.compile(r"(?:person_?|id_?|p)(\d{1,9})$", re.IGNORECASE)


def _ids_from_path(rel: Path) -> tuple[int | None, int | None]:
    person = cam = None
    for part in rel.parts:
        m = _CAM_PART.fullmatch(part)
        if m:
            c = m.group(1).lower()
            cam = {"a": 1, "b": 2}.get(c, None) if c in "ab" else int(c)
        m = _PERSON_PART.fullmatch(part)
        if m:
            person = int(m.group(1))
    return person, cam


READERS = {"ilids-vid": read_ilids_vid, "mars": read_mars, "prid2011": read_prid2011, "folders": read_tracklet_folders}


def read_dataset(layout: str, root) -> list[Tracklet]:
    """The tracklets of an image-folder dataset in the named layout (see the module docstring)."""
    return READERS[layout_name(layout)](root)


# ------------------------------------------------------------------------------------------- iLIDS-VID splits
def ilids_splits(mat_path, tracklets: list[Tracklet]) -> list[tuple[list[int], list[int]]]:
    """[(train person ids, test person ids)] for each split of ``train_test_splits_ilidsvid.mat``.

    The file holds ``ls_set``, (10, 300): row i lists the 300 persons, first 150 = test, last 150 = train, as
    1-based positions in the sorted list of ``cam1`` person folders (how torchreid's ``iLIDSVID`` reads it; the
    folder numbers run to 319 with gaps, so a position is not a folder number). Refused with the path if it is
    not a readable .mat with that key and shape, or does not fit the dataset's persons.
    """
    from ..cache import check_regular_file

    path = check_regular_file(mat_path, "--splits")
    try:
        import scipy.io

        mat = scipy.io.loadmat(str(path))
    except (ValueError, TypeError, OSError, NotImplementedError, KeyError, IndexError) as exc:
        raise InputError(f"{path}: not a readable MATLAB .mat file ({str(exc).splitlines()[0] if str(exc) else exc}); "
                         "give the dataset's train_test_splits_ilidsvid.mat") from None
    except Exception as exc:  # scipy raises its own MatReadError and others for damaged files
        raise InputError(f"{path}: not a readable MATLAB .mat file ({type(exc).__name__}); give the dataset's "
                         "train_test_splits_ilidsvid.mat") from None
    if "ls_set" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise InputError(f"{path}: no 'ls_set' in it (found {keys}); give iLIDS-VID's train_test_splits_ilidsvid.mat")
    ls_set = np.asarray(mat["ls_set"])
    if ls_set.ndim != 2 or ls_set.shape[1] < 2 or ls_set.shape[1] % 2 or not np.issubdtype(ls_set.dtype, np.number):
        raise InputError(f"{path}: 'ls_set' has shape {ls_set.shape}; expected (splits, 2 × persons), e.g. (10, 300)")
    cam1 = sorted({t.name.split("/")[1] for t in tracklets if t.camera_id == 1})
    person_of = [int(_ILIDS_PERSON.fullmatch(d).group(1)) for d in cam1]
    positions = ls_set.astype(np.int64)
    if positions.min() < 1 or positions.max() > len(person_of):
        raise InputError(f"{path}: 'ls_set' refers to person positions {positions.min()}..{positions.max()} but "
                         f"the dataset has {len(person_of)} person folders in cam1; give the full dataset")
    half = ls_set.shape[1] // 2
    splits = []
    for row in positions:
        test = sorted(person_of[i - 1] for i in row[:half])
        train = sorted(person_of[i - 1] for i in row[half:])
        splits.append((train, test))
    return splits
