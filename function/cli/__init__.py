"""``python -m function``: the functions' code on a laptop, for people and for scripts.

Results go to stdout (verdict lines, tables, stats), progress and problems to stderr. Exit codes: 0
success; 1 an alarm or a refusal; 2 something to fix first (a bad argument, a missing bucket, folder or
file); 75 (EX_TEMPFAIL) a fault that trying again can cure.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from function.cli import audit, build, lookup, stats, sweep
from function.cli.common import EXIT_ALARM, EXIT_OK, finish_options, log, set_log_levels, shared_options, silence_stdout
from function.errors import AuditorError, kind
from function.index.digests import InvalidIndex

# The package's version (pyproject.toml reads it from here); in this layer, which alone prints it.
__version__ = "0.1.0"

EPILOG = """\
exit codes:
  0   success
  1   an alarm (a REJECTED or MALFORMED verdict, a stale index) or a refused build
  2   a bad argument, a missing bucket, folder or file, or no access to Cloud Storage: the
      message says what to fix
  75  a fault that trying again can cure (a registry or Cloud Storage fault)

Every command takes -q (errors only), -v (everything) and --format json|table (--json), before or
after its name; durations take seconds or 90s, 30m, 2h, 1d. `python -m function COMMAND --help` says more.
The same CLI is installed as `promotion-auditor` by `pip install .`.

example:
  python -m function lookup --index gs://BUCKET/index.json.gz pause
"""

# One parser-adding function per command, in the order --help lists them.
COMMANDS = (build.add_parser, audit.add_parser, sweep.add_parser, stats.add_parser, lookup.add_parser)


def main(argv: Sequence[str] | None = None) -> int:
    args = finish_options(parser().parse_args(argv))
    set_log_levels(args.verbosity)
    try:
        code: int = args.run(args)
    except AuditorError as error:
        log.error("%s", error)
        return kind(error).exit_code
    except InvalidIndex as error:
        log.error("%s", error)
        return EXIT_ALARM
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (as `| head` does) before anything was written that had an outcome: stop
        # quietly, and keep Python's flush at exit quiet too. Commands that write outcomes catch it themselves
        # and exit with the code of what was written.
        silence_stdout()
        return EXIT_OK
    return code


def parser() -> argparse.ArgumentParser:
    # The installed command is named as typed; `python -m function` otherwise.
    installed = Path(sys.argv[0]).name == "promotion-auditor"
    top = argparse.ArgumentParser(
        prog="promotion-auditor" if installed else "python -m function",
        description="The promotion auditor on a laptop: build, inspect and query the digest index, audit events.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[shared_options()],
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = top.add_subparsers(required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(commands)
    return top
