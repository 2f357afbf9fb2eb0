"""One error type for bad user input.

Scripts catch :class:`InputError` at the top level, print its message as one line on stderr and exit
with status 2 (no traceback). Messages name the file, the row/column where it applies, and what to do.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager

EXIT_BAD_INPUT = 2


class InputError(Exception):
    """Bad or missing input data; the message is meant for the user, verbatim."""


@contextmanager
def user_errors(prog: str):
    """Turn :class:`InputError` (and Ctrl-C) into a one-line message and a non-zero exit."""
    try:
        yield
    except InputError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except BrokenPipeError:  # the reader of our output went away (``| head``): stop quietly, as a shell tool does
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at the final flush
        raise SystemExit(141) from None  # 128 + SIGPIPE


def script_main(prog: str, module: str) -> int:
    """What a thin script runs: import ``module`` (torch takes seconds to import: Ctrl-C then too is one line
    and exit 130) and call its ``main()``."""
    import importlib

    with user_errors(prog):
        main = importlib.import_module(module).main
    return main()


def cli_main(prog: str, parser, run, argv=None, keep_freed_memory: bool = False) -> int:
    """Parse ``argv`` with ``parser`` and call ``run(args)``; bad input ends as one line and exit status 2.

    ``keep_freed_memory``: tune glibc's malloc first (:mod:`gafnet.allocator`; the PyTorch scripts).
    """
    if keep_freed_memory:
        from .allocator import keep_freed_memory as tune

        tune()
    args = parser.parse_args(argv)
    with user_errors(prog):
        run(args)
    return 0
