"""Image-folder layouts (iLIDS-VID, MARS, PRID-2011, tracklet folders), the iLIDS-VID split file, media checks."""

import numpy as np
import pytest

from gafnet.errors import InputError
from gafnet.gait.poses import get_format

cv2 = pytest.importorskip("cv2")
scipy_io = pytest.importorskip("scipy.io")

from gafnet.pixels import datasets, media  # noqa: E402
from gafnet.pixels.tracklet import Tracklet, sample_indices  # noqa: E402


def _img(path, w=16, h=32, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((h, w, 3), value, np.uint8)
    img[: h // 2] = (value + 80) % 256
    assert cv2.imwrite(str(path), img)
    return path


def make_ilids(root, persons=(1, 2, 5), frames=(317, 318, 319)):
    for cam in (1, 2):
        for p in persons:
            for f in frames:
                _img(root / f"cam{cam}" / f"person{p:03d}" / f"cam{cam}_person{p:03d}_{f:05d}.png", value=10 * p + cam)
    return root


def make_mars(root):
    names = ["0001C1T0001F001.jpg", "0001C1T0001F002.jpg", "0001C2T0003F001.jpg", "0000C1T0002F001.jpg",
             "00-1C3T0001F001.jpg"]
    for n in names:
        _img(root / n[:4] / n)
    return root


def make_prid(root):
    for cam in ("cam_a", "cam_b"):
        for p in (1, 3):
            for f in (1, 2):
                _img(root / cam / f"person_{p:04d}" / f"{f:04d}.png")
    return root


def test_ilids_vid_layout_gives_one_tracklet_per_person_and_camera_with_gaitgraph_names(tmp_path):
    tracklets = datasets.read_dataset("ilids-vid", make_ilids(tmp_path / "sequences"))
    assert [(t.person_id, t.camera_id) for t in tracklets] == [(1, 1), (2, 1), (5, 1), (1, 2), (2, 2), (5, 2)]
    t = tracklets[0]
    assert t.row_names == ["cam1_person001_00317.png", "cam1_person001_00318.png", "cam1_person001_00319.png"]
    assert t.frame_numbers.tolist() == [317, 318, 319]
    fmt = get_format("iLIDS")
    assert all(fmt.parse_name(n)[0] == (1, 1) for n in t.row_names)
    # the folder above (i-LIDS-VID/sequences) is accepted too
    assert len(datasets.read_dataset("ilids", tmp_path)) == 6


def test_mars_layout_keeps_junk_and_distractors_as_such(tmp_path):
    tracklets = datasets.read_dataset("mars", make_mars(tmp_path / "bbox_test"))
    keys = [(t.person_id, t.camera_id, t.tracklet_id, len(t)) for t in tracklets]
    assert keys == [(-1, 3, 1, 1), (0, 1, 2, 1), (1, 1, 1, 2), (1, 2, 3, 1)]
    fmt = get_format("mars")
    assert fmt.parse_name(tracklets[2].row_names[1]) == ((1, 1, 1), 2)
    assert tracklets[0].row_names == ["00-1C3T0001F001.jpg"]


def test_prid2011_rows_take_ilids_style_names(tmp_path):
    tracklets = datasets.read_dataset("prid2011", make_prid(tmp_path / "multi_shot"))
    assert [(t.person_id, t.camera_id) for t in tracklets] == [(1, 1), (3, 1), (1, 2), (3, 2)]
    assert tracklets[2].row_names == ["cam2_person0001_00001.png", "cam2_person0001_00002.png"]
    assert get_format("iLIDS").parse_name(tracklets[2].row_names[0]) == ((1, 2), 1)


def test_tracklet_folders_are_every_folder_that_holds_images(tmp_path):
    _img(tmp_path / "cam2" / "person007" / "a.jpg")
    _img(tmp_path / "cam2" / "person007" / "b.jpg")
    _img(tmp_path / "other" / "T01" / "0001.png")
    (tmp_path / "empty").mkdir()
    tracklets = datasets.read_dataset("folders", tmp_path)
    assert [t.name for t in tracklets] == ["cam2/person007", "other/T01"]
    assert (tracklets[0].person_id, tracklets[0].camera_id) == (7, 2)
    assert (tracklets[1].person_id, tracklets[1].camera_id) == (None, None)


@pytest.mark.parametrize("layout, make, damage, message", [
    ("ilids-vid", make_ilids, lambda r: (r / "cam1" / "person001" / "notes.txt").write_text("x"), "notes.txt"),
    ("ilids-vid", make_ilids, lambda r: (r / "cam1" / "person009").mkdir(), "person009: empty folder"),
    ("ilids-vid", make_ilids, lambda r: (r / "cam1" / "guy01").mkdir(), "guy01: unexpected folder name"),
    ("ilids-vid", make_ilids, lambda r: _img(r / "cam1" / "person001" / "cam2_person001_00001.png"), "lies in cam1"),
    ("mars", make_mars, lambda r: _img(r / "0001" / "0002C1T0001F001.jpg"), "lies in 0001"),
    ("mars", make_mars, lambda r: _img(r / "0001" / "frame1.jpg"), "frame1.jpg"),
    ("prid2011", make_prid, lambda r: (r / "cam_a" / "person_0001" / "0003.jpg").write_text("x"), "0003.jpg"),
])
def test_layout_mismatches_are_refused_naming_the_path(tmp_path, layout, make, damage, message):
    root = make(tmp_path / "data")
    damage(root)
    with pytest.raises(InputError, match=message):
        datasets.read_dataset(layout, root)


def test_wrong_dataset_name_for_a_tree_is_refused(tmp_path):
    root = make_mars(tmp_path / "bbox_test")
    with pytest.raises(InputError, match="does not match the ilids-vid layout|no cam1"):
        datasets.read_dataset("ilids-vid", root)
    with pytest.raises(InputError, match="empty folder"):
        (tmp_path / "nothing").mkdir()
        datasets.read_dataset("mars", tmp_path / "nothing")
    with pytest.raises(InputError, match="no such folder"):
        datasets.read_dataset("prid2011", tmp_path / "missing")


def test_ilids_splits_follow_torchreid_positions_into_sorted_cam1_folders(tmp_path):
    root = make_ilids(tmp_path / "sequences", persons=(1, 2, 5, 9), frames=(1,))
    tracklets = datasets.read_dataset("ilids-vid", root)
    mat = tmp_path / "splits.mat"
    # positions (1-based) into [person001, person002, person005, person009]; first half = test
    scipy_io.savemat(mat, {"ls_set": np.array([[3, 1, 2, 4], [4, 2, 1, 3]])})
    splits = datasets.ilids_splits(mat, tracklets)
    assert splits == [([2, 9], [1, 5]), ([1, 5], [2, 9])]


@pytest.mark.parametrize("content, message", [
    (b"not a mat file at all", "not a readable MATLAB"),
    (None, "no 'ls_set'"),
    ("shape", "shape"),
    ("range", "positions"),
])
def test_bad_split_files_are_refused(tmp_path, content, message):
    tracklets = datasets.read_dataset("ilids-vid", make_ilids(tmp_path / "sequences", frames=(1,)))
    mat = tmp_path / "splits.mat"
    if isinstance(content, bytes):
        mat.write_bytes(content)
    elif content is None:
        scipy_io.savemat(mat, {"other": np.zeros(3)})
    elif content == "shape":
        scipy_io.savemat(mat, {"ls_set": np.arange(3)})
    else:
        scipy_io.savemat(mat, {"ls_set": np.array([[1, 2, 3, 40]])})
    with pytest.raises(InputError, match=message):
        datasets.ilids_splits(mat, tracklets)


def test_bad_images_are_refused_naming_the_file(tmp_path):
    good = _img(tmp_path / "good.jpg", 20, 40)
    assert media.read_image(good).shape == (40, 20, 3)
    not_image = tmp_path / "x.png"
    not_image.write_text("hello")
    with pytest.raises(InputError, match="x.png: not an image"):
        media.read_image(not_image)
    empty = tmp_path / "e.png"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        media.read_image(empty)
    cut = tmp_path / "cut.jpg"
    data = good.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InputError, match="cut.jpg: (truncated JPEG|not an image)"):
        media.read_image(cut)


def test_mixed_frame_sizes_in_a_dataset_tracklet_are_refused(tmp_path):
    root = make_ilids(tmp_path / "sequences", persons=(1,), frames=(1, 2))
    _img(root / "cam1" / "person001" / "cam1_person001_00003.png", w=20, h=40)
    t = datasets.read_dataset("ilids-vid", root)[0]
    with pytest.raises(InputError, match="mixed sizes.*cam1_person001_00003.png is 20x40"):
        t.images()


def test_videos_not_videos_empty_or_truncated_are_refused(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    with pytest.raises(InputError, match="fake.mp4: not a video"):
        media.open_video(fake)
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        media.open_video(empty)
    # a real AVI cut in half: the header still declares every frame
    video = tmp_path / "ok.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(20):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    assert len(list(media.iter_video_frames(video))) == 20
    cut = tmp_path / "cut.avi"
    cut.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    with pytest.raises(InputError, match="cut.avi: (truncated video|not a video)"):
        list(media.iter_video_frames(cut))


def test_sample_indices_spread_over_the_tracklet():
    assert sample_indices(10, 0).tolist() == list(range(10))
    assert sample_indices(10, 4).tolist() == [0, 3, 6, 9]
    assert sample_indices(3, 8).tolist() == [0, 1, 2]


def test_tracklet_holds_arrays_or_paths(tmp_path):
    arr = np.zeros((8, 4, 3), np.uint8)
    t = Tracklet("v.mp4#1", [arr, arr], ["a", "b"], [0, 1], boxes=[[0, 0, 4, 8], [1, 0, 4, 8]])
    assert t.image(1) is arr and t.boxes.shape == (2, 4) and not t.pose_found.any()
