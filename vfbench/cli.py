"""`vfbench` command line: list | run | env (and the subcommands other modules add).

Bad input prints one line (what was wrong, what is accepted) and exits with code 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from vfbench.errors import UserError

# Each module has add_parser(subparsers) and run(args) -> int.
COMMANDS = ("list", "run", "env", "report", "compare", "estimate", "claims", "advise")


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's default prints the whole usage block
        raise UserError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="vfbench",
        description="Peak memory, throughput and proxy accuracy of efficiency methods for video-first encoders.",
    )
    from vfbench import __version__

    parser.add_argument("--version", action="version", version=f"vfbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"vfbench.commands.{name}_cmd")
        except ModuleNotFoundError as exc:
            if exc.name == f"vfbench.commands.{name}_cmd":
                continue  # that capability has not landed yet
            raise
        p = module.add_parser(sub)
        p.set_defaults(handler=module.run)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    """vfbench's own warnings (a malformed store line, ...) as one line, like its errors."""
    if category.__module__.startswith("vfbench."):
        print(f"vfbench: warning: {message}", file=file or sys.stderr)
    else:
        _show_warning(message, category, filename, lineno, file, line)


_show_warning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    warnings.showwarning = _one_line_warning
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "handler", None):
            parser.print_help()
            return 2
        return int(args.handler(args) or 0)
    except UserError as exc:
        print(f"vfbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vfbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
