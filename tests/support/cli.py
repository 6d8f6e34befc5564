"""``python -m function`` in-process: ``main(argv)`` with its own stdin, stdout and stderr.

A fresh interpreter costs about half a second of imports per run; the CLI's own tests call ``main`` here
and keep a few subprocess smoke tests (tests/test_cli.py) for what only a real process shows: the
``__main__`` module, a closed stdout pipe, the interpreter's own stdin decoding.
"""

from __future__ import annotations

import io
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from function.cli import main
from tests.support.scenario import Promotion


@dataclass(frozen=True)
class Ran:
    """What a finished ``python -m function`` run left, as ``subprocess.CompletedProcess`` names it."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, stdin: str | bytes = "") -> Ran:
    """Run the CLI with ``args`` on ``stdin`` (text is UTF-8), as ``python -m function`` would.

    Every logger is as a fresh process has it while the command runs (the command configures logging to
    this run's stderr, and the verdict lines' logger to its stdout) and put back afterwards, with the
    interpreter's streams; argparse's exits (``--help``, a bad option) are exit codes, as in a process."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    streams = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"), io.StringIO(), io.StringIO()
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    saved_loggers = _fresh_loggers()
    sys.stdin, sys.stdout, sys.stderr = streams
    try:
        try:
            code = main(list(args))
        except SystemExit as exited:  # argparse: 0 after --help, 2 for a bad argument
            code = exited.code if isinstance(exited.code, int) else (0 if exited.code is None else 1)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        _restore(saved_loggers)
    return Ran(args, code, streams[1].getvalue(), streams[2].getvalue())


_Saved = tuple[logging.Logger, list[logging.Handler], int, bool, bool]


def _fresh_loggers() -> list[_Saved]:
    """The root's and the project's loggers as a new process has them (no handlers, level NOTSET,
    propagating; the root at WARNING), and what they were. Other libraries' loggers keep what their
    imports set, as in a process."""
    root = logging.getLogger()
    project = [
        each
        for name, each in logging.Logger.manager.loggerDict.items()
        if isinstance(each, logging.Logger) and (name == "function" or name.startswith("function."))
    ]
    saved = [(each, each.handlers[:], each.level, each.propagate, each.disabled) for each in [root, *project]]
    for each, *_ in saved:
        # Not closed: they are pytest's and the tests' own, and come back afterwards.
        each.handlers.clear()
        each.setLevel(logging.WARNING if each is root else logging.NOTSET)
        each.propagate, each.disabled = True, False
    return saved


def _restore(saved: list[_Saved]) -> None:
    for handler in logging.getLogger().handlers:
        handler.close()  # the command's own, on this run's stderr
    for each, handlers, level, propagate, disabled in saved:
        each.handlers[:] = handlers
        each.setLevel(level)
        each.propagate, each.disabled = propagate, disabled


def built_index(promotion: Promotion, folder: Path, commit: str = "commit-1") -> tuple[Path, Path]:
    """The manifests of ``commit`` written under ``folder`` and the index ``build-index`` resolves from the
    promotion's registry: (manifests root, index file)."""
    root = promotion.write_manifests(commit, folder / "m")
    out = folder / "index.json"
    build = run_cli("build-index", "--manifests", str(root), "--out", str(out))
    assert build.returncode == 0, build.stderr
    return root, out
