"""Command line for the released data.

    python -m gafnet.data download                       # GAF-Net's embeddings + poses (Google Drive)
    python -m gafnet.data download gafnet --from-zip ~/Downloads/gaf-net-data.zip
    python -m gafnet.data download casia-b               # GaitGraph's CASIA-B poses -> data/casia-b/
    python -m gafnet.data download gaitgraph-weights     # GaitGraph's checkpoint    -> weights/
    python -m gafnet.data download all
    python -m gafnet.data verify [--root .] [--all]

Exit status: 0 done (or already complete); 1 ``verify`` found problems; 2 a download, archive or input
error (one line on stderr says what and what to do); 130 interrupted (a partial download is kept and
resumed next time). ``--cache_dir`` (alias ``--cache-dir``) is the project cache of :mod:`gafnet.cache`;
downloads are kept in its ``downloads/`` folder. Details: docs/data.md.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from gafnet.errors import InputError, user_errors

PROG = "python -m gafnet.data"


def _finite_positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def _count(maximum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not 0 <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and {maximum}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    from gafnet.data.download import (
        CACHE_ENV,
        GAITGRAPH_RELEASE_ENV,
        GDRIVE_URL_ENV,
        TARGETS,
    )

    parser = argparse.ArgumentParser(
        prog=PROG, description="Download, check and unpack the released data (docs/data.md).",
        epilog="Exit status: 0 done, 1 verify found problems, 2 an error (one line says what to do), 130 interrupted.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{download,verify}")

    dl = commands.add_parser(
        "download", help="download, check and unpack one asset (default: gafnet)",
        description="Download, check and install released data into the repository root. A complete, valid "
                    "destination is left alone; an existing file that differs is never overwritten without "
                    "--force. Downloads go to <cache>/downloads/ and resume from <name>.part. When a download "
                    "cannot work (Google Drive's quota, a firewall), get the file in a browser and give it "
                    "with --from-zip FILE.",
        epilog=f"Sources can be redirected with ${GDRIVE_URL_ENV} (template with {{id}}) and "
               f"${GAITGRAPH_RELEASE_ENV} (release base URL); the cache with --cache_dir or ${CACHE_ENV}.",
    )
    dl.add_argument("target", nargs="?", default="gafnet", choices=TARGETS,
                    help="gafnet: embeddings/ + poses/ (Google Drive, ~395 MB); casia-b: GaitGraph's CASIA-B "
                         "poses into data/casia-b/; gaitgraph-weights: its checkpoint into weights/; "
                         "all: the three (default: gafnet)")
    dl.add_argument("--root", type=Path, default=Path("."), metavar="DIR",
                    help="repository root to install into (default: .)")
    dl.add_argument("--cache_dir", "--cache-dir", dest="cache_dir", type=Path, default=None, metavar="DIR",
                    help=f"the project cache; downloads are kept in its downloads/ folder (default: ${CACHE_ENV}, "
                         "else $XDG_CACHE_HOME/gafnet, else ~/.cache/gafnet)")
    dl.add_argument("--from-zip", "--from-file", dest="from_file", type=Path, default=None, metavar="FILE",
                    help="use a file downloaded by hand (the zip, or the .pth for gaitgraph-weights) instead of "
                         "downloading (one target only)")
    dl.add_argument("--sha256", default=None, metavar="HEX",
                    help="pin the file's SHA-256 digest (one target only); printed after a first download")
    dl.add_argument("--url", default=None, help="download from this URL instead (one target only)")
    dl.add_argument("--force", action="store_true",
                    help="install again even if complete, overwriting existing files that differ")
    dl.add_argument("--retries", type=_count(100), default=2, metavar="N",
                    help="extra attempts after a network failure, each resuming; waits 2, 4, 8... s, at most "
                         "60 s (Google Drive: gdown retries itself, with its own shorter random waits and its own "
                         "'Retrying' lines) (0-100, default: 2)")
    dl.add_argument("--timeout", type=_finite_positive, default=60.0, metavar="SECONDS",
                    help="seconds without data before a connection counts as failed (default: 60)")
    dl.add_argument("--quiet", action="store_true", help="no progress bar and no progress messages")

    vf = commands.add_parser(
        "verify", help="report what is present, missing or malformed",
        description="Check the data trees against the released layout: embeddings/ and poses/ (and with --all "
                    "data/casia-b/ and the GaitGraph checkpoint). CSVs: only their first lines are read; the "
                    "checkpoint must be a complete torch.save file. Exit status 0 when complete, 1 when not, "
                    "2 for a bad option.",
    )
    vf.add_argument("--root", type=Path, default=Path("."), metavar="DIR", help="repository root (default: .)")
    vf.add_argument("--all", action="store_true",
                    help="also check data/casia-b/ and weights/ (default: embeddings/ and poses/ only)")
    vf.add_argument("--max-lines", dest="max_lines", type=_count(10**6), default=40, metavar="N",
                    help="problem lines shown per report (default: 40)")
    return parser


def run_download(args: argparse.Namespace) -> int:
    from gafnet.data.download import ASSETS, DownloadRequest, FetchOptions, download

    names = list(ASSETS) if args.target == "all" else [args.target]
    single_only = [flag for flag, value in (("--from-zip", args.from_file), ("--sha256", args.sha256),
                                            ("--url", args.url)) if value is not None]
    if len(names) > 1 and single_only:
        raise InputError(f"{', '.join(single_only)} apply to one file: name a single target, not 'all'")
    failed = []
    for name in names:
        request = DownloadRequest(
            root=args.root, cache_dir=args.cache_dir, from_file=args.from_file, sha256=args.sha256,
            url=args.url, force=args.force,
            fetch=FetchOptions(quiet=args.quiet, timeout=(15.0, args.timeout), retries=args.retries),
        )
        try:
            reports = download(name, request)
        except InputError as exc:
            if len(names) == 1:
                raise
            print(f"{PROG}: error: {name}: {exc}", file=sys.stderr)  # go on with the other targets
            failed.append(name)
            continue
        for report in reports:
            if not args.quiet:
                print(report.summary())
    if failed:
        done = [n for n in names if n not in failed]
        raise InputError(f"not complete: {', '.join(failed)} (see above)"
                         + (f"; done: {', '.join(done)}" if done else "; nothing was installed"))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from gafnet.data.download import casia_b_dir, weights_path
    from gafnet.data.verify import check_casia_b, check_gafnet, check_weights

    if args.root.exists() and not args.root.is_dir():
        raise InputError(f"--root {args.root} is not a directory; give the repository root")
    reports = check_gafnet(args.root)
    if args.all:
        reports += [check_casia_b(casia_b_dir(args.root)), check_weights(weights_path(args.root))]
    for report in reports:
        print(report.summary(max_lines=args.max_lines))
    return 0 if all(r.ok for r in reports) else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with user_errors(PROG):
        if args.command == "download":
            return run_download(args)
        return run_verify(args)


if __name__ == "__main__":
    sys.exit(main())
