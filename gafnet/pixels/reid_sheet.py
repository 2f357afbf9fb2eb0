"""What ``reid.py`` shows a person: the contact sheet (PNG) and annotated copies of the query videos.

Contact sheet, one row per query: the query's strip of frames (4 thumbnails spread over the tracklet) on the
left, then its top-k gallery tracklets as strips (3 thumbnails each) with the rank, the distance that ranked
them and the appearance-only / gait-only distances with their own ranks. When person ids are known on both
sides (dataset folders, the demo) a match gets a green frame if it is the query's person and a red one if not;
unknown ids give a grey frame. A pair ranked by appearance alone (no pose on one side) says so in orange.
At most ``per_page`` queries per image: ``contact_sheet.png``, ``contact_sheet_2.png``, ...
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_path, temp_prefix
from ..errors import InputError

GREEN, RED, GREY, ORANGE = "#1a9850", "#d73027", "#9e9e9e", "#e08214"
QUERY_THUMBS, MATCH_THUMBS = 4, 3


def strip(thumbs: list[np.ndarray], count: int) -> np.ndarray:
    """``count`` of the thumbnails side by side (RGB), spread over the ones given."""
    picks = np.round(np.linspace(0, len(thumbs) - 1, count)).astype(int)
    return np.concatenate([thumbs[i] for i in picks], axis=1)[:, :, ::-1]


def short(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1):]


def sheet_pages(n_queries: int, per_page: int) -> list[range]:
    return [range(a, min(a + per_page, n_queries)) for a in range(0, n_queries, per_page)]


def page_name(page: int) -> str:
    return "contact_sheet.png" if page == 0 else f"contact_sheet_{page + 1}.png"


def contact_sheet(path, queries: list[dict], title: str, subtitle: str = "") -> None:
    """Write one contact-sheet page.

    ``queries``: per query ``{"label": str, "lines": [str], "thumbs": [BGR], "matches": [{"thumbs": [BGR],
    "title": str, "lines": [str], "correct": bool | None}]}``. The pictures are composed into one array placed
    pixel for pixel (``figimage``); matplotlib only adds the text.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = max([len(q["matches"]) for q in queries] + [1])
    th, tw = queries[0]["thumbs"][0].shape[:2]
    q_w, m_w = QUERY_THUMBS * tw, MATCH_THUMBS * tw
    gap, border = 14, 4
    label_h, caption_h = 30, 52  # pixels of text above / below each strip
    row_h = label_h + th + caption_h
    left, q_gap = 16, 34
    width = left + q_w + q_gap + k * (m_w + gap) + 8
    head = 64
    height = head + len(queries) * row_h + 8
    canvas = np.full((height, width, 3), 255, np.uint8)
    texts = [(8, 8, title, {"fontsize": 11, "fontweight": "bold"})]
    if subtitle:
        for i, line in enumerate(subtitle.split("\n")):
            texts.append((8, 28 + 13 * i, line, {"fontsize": 8.5, "color": "#333333"}))

    def paste(x, y, image, colour, line):
        rgb = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
        h, w = image.shape[:2]
        canvas[y - line:y + h + line, x - line:x + w + line] = rgb
        canvas[y:y + h, x:x + w] = image

    for r, q in enumerate(queries):
        top = head + r * row_h
        if r:
            canvas[top - 5, 4:width - 4] = 204
        paste(left, top + label_h, strip(q["thumbs"], QUERY_THUMBS), "#2166ac", 3)
        texts.append((left, top + 6, q["label"], {"fontsize": 9.5, "fontweight": "bold", "color": "#2166ac"}))
        for i, line in enumerate(q.get("lines", [])):
            texts.append((left, top + label_h + th + 6 + 12 * i, line, {"fontsize": 8}))
        for c, m in enumerate(q["matches"]):
            x = left + q_w + q_gap + c * (m_w + gap)
            known = m.get("correct") is not None
            colour = GREY if not known else (GREEN if m["correct"] else RED)
            paste(x, top + label_h, strip(m["thumbs"], MATCH_THUMBS), colour, border if known else 2)
            texts.append((x, top + 6, m["title"], {"fontsize": 9, "fontweight": "bold",
                                                        "color": colour if known else "black"}))
            for i, line in enumerate(m.get("lines", [])):
                texts.append((x, top + label_h + th + 6 + 11 * i, line,
                              {"fontsize": 7.5, "color": ORANGE if line.startswith("appearance only") else "black"}))
    dpi = 100
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    fig.figimage(canvas, 0, 0)
    for x, y, text, style in texts:
        fig.text(x / width, 1 - y / height, text, ha="left", va="top", **style)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)


# ---------------------------------------------------------------------------------------- annotated videos
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def annotate_video(video, out_path, tracks: list[dict], max_frames: int | None = None) -> int:
    """A copy of ``video`` with every track's box and label drawn; returns the frames written.

    ``tracks``: ``{"track_id": int, "frame_numbers": (T,), "boxes": (T, 4) x, y, w, h, "label": str}``. Written as
    MPEG-4 (mp4v) in a temporary folder beside ``out_path``, then renamed onto it.
    """
    import os
    import shutil

    from .media import cv2_module, iter_video_frames, open_video

    cv2 = cv2_module()
    info = open_video(video)
    by_frame: dict[int, list] = {}
    for t in tracks:
        colour = PALETTE[int(t["track_id"]) % len(PALETTE)][::-1]  # BGR
        for f, box in zip(np.asarray(t["frame_numbers"]).tolist(), np.asarray(t["boxes"])):
            by_frame.setdefault(int(f), []).append((box, t["label"], colour))
    out_path = Path(out_path)
    tmp_dir = out_path.parent / (temp_prefix(out_path.name) + "dir.tmp")
    tmp_dir.mkdir(parents=True)
    tmp = tmp_dir / out_path.name
    try:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), info.fps or 10.0, (info.width, info.height))
        if not writer.isOpened():
            raise InputError(f"cannot write {out_path}: OpenCV has no MPEG-4 writer here; run without --annotate")
        count = 0
        try:
            for index, frame in iter_video_frames(video, max_frames):
                for box, label, colour in by_frame.get(index, []):
                    x, y, w, h = (int(round(v)) for v in box)
                    cv2.rectangle(frame, (x, y), (x + w, y + h), colour, 2)
                    (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
                    ty = max(th + 4, y)
                    cv2.rectangle(frame, (x, ty - th - 4), (x + tw + 4, ty), colour, -1)
                    cv2.putText(frame, label, (x + 2, ty - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                                cv2.LINE_AA)
                writer.write(frame)
                count += 1
        finally:
            writer.release()
        os.replace(tmp, out_path)
    except OSError as exc:
        raise InputError(f"cannot write {out_path}: {exc.strerror or exc}; nothing was written") from None
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return count
