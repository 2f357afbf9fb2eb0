"""A synthetic iLIDS-VID-like embedding tree in exactly the released layout (for --demo, tests, benchmarks).

SYNTHETIC: these numbers say nothing about GAF-Net's accuracy. The tree has the real layout
(``ilids/{pit,mgh,osnet,gait1,gait2}/{query,gallery}_split{0..9}.csv``), the real dimensions by default
(9216 / 5120 / 512 appearance, 128 gait), 300 identities with iLIDS-VID-like ids, 10 splits of 150 test
identities, query = camera 1 and gallery = camera 2.

Each identity has a latent appearance code and an independent latent gait code; a tracklet's embedding
is a fixed random projection of its identity code plus per-tracklet latent noise and a camera shift,
then a little isotropic noise. Appearance noise is set per backbone so that appearance-only Rank-1 is
roughly like the paper's (pit > mgh > osnet); gait alone is weak; fusing both helps, as on real data.
The gait files of ``gait2`` use pandas' integer header (``0 … 127, 0, 1``), as the original GaitGraph
extractor wrote them, so both header variants are exercised.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .embeddings import write_embedding_csv
from .layout import NUM_SPLITS, embedding_csv

FULL_DIMS = {"pit": 9216, "mgh": 5120, "osnet": 512, "gait1": 128, "gait2": 128}
SMALL_DIMS = {"pit": 96, "mgh": 64, "osnet": 32, "gait1": 16, "gait2": 16}
# latent noise per folder (larger = harder); tuned for appearance-only Rank-1 of roughly 90 / 85 / 60 %
LATENT_NOISE = {"pit": 0.22, "mgh": 0.32, "osnet": 0.5, "gait1": 0.7, "gait2": 0.72}
LATENT_DIM = 12
NUM_IDS = 300
NUM_TEST_IDS = 150
GENERATOR_VERSION = 1


@dataclass
class SyntheticTree:
    root: Path  # the embeddings root, i.e. the directory holding ilids/
    dims: dict
    seed: int


def ilids_person_ids(rng: np.random.Generator) -> np.ndarray:
    """300 distinct person ids in 1..319, like iLIDS-VID's numbering (which has gaps)."""
    return np.sort(rng.choice(np.arange(1, 320), size=NUM_IDS, replace=False))


def test_identities(seed: int, split: int, person_ids: np.ndarray) -> np.ndarray:
    """The 150 test identities of a split (the other 150 are training identities)."""
    rng = np.random.default_rng([seed, 1000 + split])
    return np.sort(rng.choice(person_ids, size=NUM_TEST_IDS, replace=False))


def _folder_embeddings(rng, dim: int, noise: float, person_ids: np.ndarray, cameras=(1, 2)):
    """Per-identity latent codes and the projection for one folder (backbone or gait source)."""
    codes = {int(p): rng.standard_normal(LATENT_DIM) for p in person_ids}
    projection = rng.standard_normal((LATENT_DIM, dim)) / np.sqrt(LATENT_DIM)
    camera_shift = {cam: 0.3 * rng.standard_normal(LATENT_DIM) for cam in cameras}

    def embed(pids: np.ndarray, cam: int, tracklet_rng) -> np.ndarray:
        latent = np.stack([codes[int(p)] for p in pids]) + camera_shift[cam]
        latent = latent + noise * tracklet_rng.standard_normal(latent.shape)
        feats = latent @ projection + 0.05 * tracklet_rng.standard_normal((len(pids), dim))
        return feats.astype(np.float32)

    return embed


def write_tree(root: str | Path, seed: int = 0, dims: dict | None = None, num_splits: int = NUM_SPLITS,
               folders=None, shuffle_gallery: bool = True, person_ids=None, test_ids=None,
               progress=None) -> SyntheticTree:
    """Write the synthetic tree under ``root`` (``root/ilids/...``); returns its description.

    ``person_ids`` and ``test_ids`` (a list of per-split test identities) take an identity/split assignment
    from elsewhere, e.g. the synthetic pose splits, so that appearance and gait describe the same people.
    """
    root = Path(root)
    dims = dict(FULL_DIMS if dims is None else dims)
    folders = list(folders or dims)
    rng = np.random.default_rng(seed)
    person_ids = ilids_person_ids(rng) if person_ids is None else np.asarray(sorted(person_ids))
    if test_ids is not None:
        num_splits = len(test_ids)
    for folder in folders:
        embed = _folder_embeddings(np.random.default_rng([seed, hash_name(folder)]), dims[folder],
                                   LATENT_NOISE.get(folder, 0.5), person_ids)
        for split in range(num_splits):
            split_ids = (np.asarray(sorted(test_ids[split])) if test_ids is not None
                         else test_identities(seed, split, person_ids))
            order_rng = np.random.default_rng([seed, split, 7])
            gallery_ids = order_rng.permutation(split_ids) if shuffle_gallery else split_ids
            noise_rng = np.random.default_rng([seed, hash_name(folder), split])
            for kind, cam, pids in (("query", 1, split_ids), ("gallery", 2, gallery_ids)):
                feats = embed(pids, cam, noise_rng)
                is_gait = folder.startswith("gait")
                write_embedding_csv(embedding_csv(root, folder, kind, split), feats, pids,
                                    np.full(len(pids), cam), index_column=not is_gait,
                                    header="pandas" if folder == "gait2" else "feat")
                if progress is not None:
                    progress.update(1)
    return SyntheticTree(root=root, dims=dims, seed=seed)


def hash_name(name: str) -> int:
    """A stable small integer for a folder name (Python's hash() is salted per process)."""
    return sum((i + 1) * ord(ch) for i, ch in enumerate(name))


MARS_NUM_QUERIES = 1980
MARS_NUM_GALLERY = 9330  # after removing junk (torchreid's protocol)
MARS_NUM_JUNK = 250
MARS_NUM_IDS = 625
MARS_FULL_DIMS = {"mgh": 5120, "gait1": 128}
MARS_SMALL_DIMS = {"mgh": 64, "gait1": 16}
MARS_NUM_DISTRACTORS = 500


def write_mars_tree(root: str | Path, seed: int = 0, dims: dict | None = None, progress=None) -> SyntheticTree:
    """A synthetic MARS-size tree: ``root/mars/<folder>/{query,gallery}.csv`` with a tracklet_id column.

    1,980 queries, 9,330 gallery tracklets after junk removal (plus 250 junk rows, person −1, and 500
    distractors, person 0), 625 identities over 6 cameras; every query has a gallery match on another camera.
    """
    root = Path(root)
    dims = dict(MARS_FULL_DIMS if dims is None else dims)
    rng = np.random.default_rng([seed, 99])
    pids = np.arange(1, MARS_NUM_IDS + 1)
    q_pids = np.sort(rng.choice(pids, MARS_NUM_QUERIES))
    q_cams = rng.integers(1, 7, MARS_NUM_QUERIES)
    # the gallery: one tracklet per query on another camera, then more tracklets of random identities
    first = (q_cams + rng.integers(1, 6, MARS_NUM_QUERIES) - 1) % 6 + 1
    extra = MARS_NUM_GALLERY - MARS_NUM_QUERIES - MARS_NUM_DISTRACTORS
    g_pids = np.concatenate([q_pids, rng.choice(pids, extra), np.zeros(MARS_NUM_DISTRACTORS, np.int64),
                             np.full(MARS_NUM_JUNK, -1)])
    g_cams = np.concatenate([first, rng.integers(1, 7, len(g_pids) - MARS_NUM_QUERIES)])
    order = rng.permutation(len(g_pids))
    g_pids, g_cams = g_pids[order], g_cams[order]
    q_tracklets = np.arange(1, MARS_NUM_QUERIES + 1)
    g_tracklets = np.arange(MARS_NUM_QUERIES + 1, MARS_NUM_QUERIES + 1 + len(g_pids))
    people = np.concatenate([[-1, 0], pids])
    for folder, dim in dims.items():
        embed = _folder_embeddings(np.random.default_rng([seed, hash_name(folder), 7]), dim,
                                   LATENT_NOISE.get(folder, 0.5), people, cameras=range(1, 7))
        noise_rng = np.random.default_rng([seed, hash_name(folder), 8])
        for kind, p, c, t in (("query", q_pids, q_cams, q_tracklets), ("gallery", g_pids, g_cams, g_tracklets)):
            feats = np.concatenate([embed(p[c == cam], cam, noise_rng) for cam in range(1, 7)])
            by_cam = np.concatenate([np.flatnonzero(c == cam) for cam in range(1, 7)])
            back = np.empty_like(by_cam)
            back[by_cam] = np.arange(len(by_cam))
            write_embedding_csv(root / "mars" / folder / f"{kind}.csv", feats[back], p, c, tracklets=t)
            if progress is not None:
                progress.update(1)
    return SyntheticTree(root=root, dims=dims, seed=seed)


def demo_tree(cache_dir: str | Path, seed: int = 0, small: bool = False, dataset: str = "ilids",
              quiet: bool = False) -> Path:
    """The cached demo tree (generated once per seed, size and dataset); returns the embeddings root.

    Generated in a temporary directory and renamed into place when complete, with a marker file: an
    interrupted generation is never mistaken for a complete tree, and processes that generate the same
    tree at the same time each end with the complete tree (the first rename wins; nothing is deleted that
    another process may be reading).
    """
    from .atomic import remove_stale_temporaries, temp_prefix
    from .errors import InputError

    tag = f"{'' if dataset == 'ilids' else dataset + '-'}seed{seed}-{'small' if small else 'full'}-v{GENERATOR_VERSION}"
    final = Path(cache_dir) / "demo" / tag
    marker = final / "COMPLETE.json"
    if marker.is_file():
        return final / "embeddings"
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(final.parent)
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(tag), dir=final.parent))
    except OSError as exc:
        raise InputError(f"cannot create the demo tree in {final.parent}: {exc.strerror or exc}; free some space "
                         "or pass --cache_dir DIR") from None
    size = ("about 350 MB" if dataset == "mars" else "about 500 MB") if not small else "a few MB"
    progress = None
    if not quiet:
        from tqdm import tqdm

        print(f"generating the SYNTHETIC demo tree once ({size} of CSV) in {final}", file=sys.stderr)
        progress = tqdm(total=4 if dataset == "mars" else 100, desc="writing the demo tree", unit="file",
                        file=sys.stderr, leave=False, disable=None)
    try:
        if dataset == "mars":
            tree = write_mars_tree(tmp / "embeddings", seed=seed, dims=MARS_SMALL_DIMS if small else MARS_FULL_DIMS,
                                   progress=progress)
        else:
            tree = write_tree(tmp / "embeddings", seed=seed, dims=SMALL_DIMS if small else FULL_DIMS,
                              progress=progress)
        (tmp / "COMPLETE.json").write_text(json.dumps({"seed": seed, "dims": tree.dims, "dataset": dataset,
                                                       "synthetic": True}) + "\n")
        try:
            tmp.rename(final)
        except OSError:
            if not marker.is_file():  # not a complete tree of another process: an unusable leftover
                aside = Path(tempfile.mkdtemp(prefix=temp_prefix(tag + "-old"), dir=final.parent))
                final.rename(aside / "tree")
                shutil.rmtree(aside, ignore_errors=True)
                tmp.rename(final)
    except OSError as exc:
        raise InputError(f"cannot write the demo tree in {final.parent}: {exc.strerror or exc}; free some space "
                         "or pass --cache_dir DIR") from None
    finally:
        if progress is not None:
            progress.close()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final / "embeddings"
