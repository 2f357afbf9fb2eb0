"""Command line for the released data.

    python -m gafnet.data download                       # GAF-Net's embeddings + poses (Google Drive)
    python -m gafnet.data download gafnet --from-zip ~/Downloads/gaf-net-data.zip
    python -m gafnet.data download casia-b               # GaitGraph's CASIA-B poses -> data/casia-b/
    python -m gafnet.data download gaitgraph-weights     # GaitGraph's checkpoint    -> weights/
    python -m gafnet.data download all
    python -m gafnet.data verify [--root .] [--all]

Exit status: 0 done (or already complete); 1 ``verify`` found problems; 2 a download, archive or input
error (one line on stderr says what and what to do); 130 interrupted (a partial download is kept and
resumed next time).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gafnet.errors import InputError, user_errors

PROG = "python -m gafnet.data"


def build_parser() -> argparse.ArgumentParser:
    from gafnet.data.download import CACHE_ENV, GAITGRAPH_RELEASE_ENV, GDRIVE_URL_ENV, TARGETS

    parser = argparse.ArgumentParser(prog=PROG, description="Download, check and unpack the released data.")
    commands = parser.add_subparsers(dest="command", required=True)

    dl = commands.add_parser(
        "download", help="download, check and unpack one asset (default: gafnet)",
        description="Download, check and install released data. A complete, valid destination is left "
                    "alone. Downloads resume from <cache>/<name>.part.",
        epilog=f"Sources can be redirected with ${GDRIVE_URL_ENV} (template with {{id}}) and "
               f"${GAITGRAPH_RELEASE_ENV} (release base URL); the cache with ${CACHE_ENV}.",
    )
    dl.add_argument("target", nargs="?", default="gafnet", choices=TARGETS,
                    help="gafnet: embeddings/ + poses/ (Google Drive, ~395 MB); casia-b: GaitGraph's CASIA-B "
                         "poses into data/casia-b/; gaitgraph-weights: its checkpoint into weights/; "
                         "all: the three (default: gafnet)")
    dl.add_argument("--root", type=Path, default=Path("."), help="repository root to install into (default: .)")
    dl.add_argument("--cache-dir", type=Path, default=None,
                    help=f"where downloads go (default: ${CACHE_ENV}/downloads, else ~/.cache/gafnet/downloads)")
    dl.add_argument("--from-zip", "--from-file", dest="from_file", type=Path, default=None, metavar="PATH",
                    help="use a file downloaded by hand instead of downloading (one target only)")
    dl.add_argument("--sha256", default=None, metavar="HEX",
                    help="pin the file's SHA-256 digest (one target only); printed after a first download")
    dl.add_argument("--url", default=None, help="download from this URL instead (one target only)")
    dl.add_argument("--force", action="store_true",
                    help="install again even if complete, overwriting existing files that differ")
    dl.add_argument("--retries", type=int, default=2,
                    help="extra attempts after a network failure, each resuming (default: 2)")
    dl.add_argument("--timeout", type=float, default=60.0,
                    help="seconds without data before a connection counts as failed (default: 60)")
    dl.add_argument("--quiet", action="store_true", help="no progress bar and no progress messages")

    vf = commands.add_parser("verify", help="report what is present, missing or malformed")
    vf.add_argument("--root", type=Path, default=Path("."), help="repository root (default: .)")
    vf.add_argument("--all", action="store_true",
                    help="also check data/casia-b/ and weights/ (default: embeddings/ and poses/ only)")
    vf.add_argument("--max-lines", type=int, default=40, help="problem lines shown per report (default: 40)")
    return parser


def run_download(args: argparse.Namespace) -> int:
    from gafnet.data.download import ASSETS, DownloadRequest, FetchOptions, download

    names = list(ASSETS) if args.target == "all" else [args.target]
    single_only = [flag for flag, value in (("--from-zip", args.from_file), ("--sha256", args.sha256),
                                            ("--url", args.url)) if value is not None]
    if len(names) > 1 and single_only:
        raise InputError(f"{', '.join(single_only)} apply to one file: name a single target, not 'all'")
    if args.retries < 0:
        raise InputError(f"--retries must be 0 or more, got {args.retries}")
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
