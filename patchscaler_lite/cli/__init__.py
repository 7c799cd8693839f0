"""Command-line front end: `patchscaler-lite <command> ...` (also `python -m patchscaler_lite`).

One small module per command, each with `add_parser(subparsers)` and `run(args)`: parse, call the
library (jobs/, eval/), print. Every user error is one line `error: ...` on stderr, exit status 2.
"""

from __future__ import annotations

import sys
import warnings

from ..runtime import configure_cli_process

configure_cli_process()          # the entry point's CPU policy, before torch loads: see runtime.py

from tqdm.auto import tqdm  # noqa: E402

from ..errors import USER_ERRNOS, PatchScalerError  # noqa: E402
from . import bench, data, demo, memory, qmap, train, upscale  # noqa: E402
from .common import Parser  # noqa: E402


def build_parser() -> Parser:
    ap = Parser(prog="patchscaler-lite", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    for module in (train, qmap, upscale, bench, memory, demo, data):
        module.add_parser(sub)
    return ap


COMMANDS = {"upscale": upscale.run, "bench": bench.run, "qmap": qmap.run_qmap_command,
            "qmap-report": qmap.run_report_command, "memory": memory.run, "train": train.run,
            "demo": demo.run, "data": data.run}


def _show_note(message, category, filename, lineno, file=None, line=None):
    tqdm.write(f"note: {message}", file=sys.stderr)     # its own line, even under a progress bar


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:                            # usage errors (already printed) and --help
        return int(e.code or 0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", UserWarning)
            warnings.showwarning = _show_note          # conversions etc. as one `note:` line
            return COMMANDS[args.command](args)
    except PatchScalerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:                               # disk full, permission denied, ...
        if e.errno not in USER_ERRNOS:
            raise
        print(f"error: {e.filename + ': ' if e.filename else ''}{e.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
