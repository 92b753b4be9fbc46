"""Write the manual pages of ``parley``, ``parley-cli`` and ``parley-server`` from their parsers.

``python installer/manpages.py OUT`` writes ``OUT/parley.1`` and the two others (uncompressed
roff), so the pages always say what ``--help`` says. The ``.deb`` installs them gzipped under
``/usr/share/man/man1/``. Run it from the checkout (it imports the three command modules).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The one-line summary of each command (the NAME section).
SUMMARIES = {
    "parley": "video calls and chat with your contacts",
    "parley-cli": "the headless Parley client, for terminals and scripts",
    "parley-server": "the Parley signaling server",
}
#: What each page adds after the options: (section title, paragraphs).
EXTRA: dict[str, list[tuple[str, list[str]]]] = {
    "parley": [
        (
            "FILES",
            [
                "Settings and sign-in per profile under $XDG_CONFIG_HOME/parley and "
                "$XDG_DATA_HOME/parley; the built-in server's database lives in the profile's "
                "data folder.",
            ],
        ),
        (
            "EXIT STATUS",
            [
                "0 when the app quit normally or the self-test passed; 1 when the self-test "
                "failed; 2 on bad arguments.",
            ],
        ),
    ],
    "parley-cli": [
        (
            "EXIT STATUS",
            [
                "0 when the call ended by someone's choice, 1 when it failed, 2 on bad arguments.",
            ],
        ),
    ],
    "parley-server": [
        (
            "SIGNALS",
            ["SIGINT or SIGTERM closes every connection with code 1001 and exits with status 0."],
        ),
    ],
}


def _parsers() -> dict[str, Callable[[], argparse.ArgumentParser]]:
    sys.path.insert(0, str(ROOT))
    from gui.app.main import build_parser as app_parser
    from gui.cli import build_parser as cli_parser
    from gui.server import build_parser as server_parser

    return {"parley": app_parser, "parley-cli": cli_parser, "parley-server": server_parser}


def roff(text: str) -> str:
    """Text made safe for roff: backslashes, minus signs, and no control character at the start."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return f"\\&{text}" if text.startswith((".", "'")) else text


def _option_label(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"\\fI{roff(action.metavar or action.dest)}\\fR"
    label = ", ".join(f"\\fB{roff(option)}\\fR" for option in action.option_strings)
    if action.nargs != 0:
        metavar = action.metavar or action.dest.upper()
        label += f" \\fI{roff(str(metavar))}\\fR"
    return label


def _help(action: argparse.Action, parser: argparse.ArgumentParser) -> str:
    text = action.help or ""
    if "%(" in text:
        text = text % {"default": action.default, "prog": parser.prog}
    return roff(text)


def _options(parser: argparse.ArgumentParser, lines: list[str]) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
            continue
        if action.help == argparse.SUPPRESS:
            continue
        lines += [".TP", _option_label(action), _help(action, parser) or "."]
    lines += [".TP", "\\fB\\-h\\fR, \\fB\\-\\-help\\fR", "Show the help and exit."]


def page(name: str, parser: argparse.ArgumentParser, version: str, date: str) -> str:
    """The roff source of one manual page."""
    description = parser.description or ""
    lines = [
        f'.TH {name.upper().replace("-", "\\-")} 1 "{date}" "Parley {version}" "User Commands"',
        ".SH NAME",
        f"{roff(name)} \\- {roff(SUMMARIES[name])}",
        ".SH SYNOPSIS",
        ".nf",
        roff(parser.format_usage().removeprefix("usage: ").strip()),
        ".fi",
        ".SH DESCRIPTION",
        roff(description),
        ".SH OPTIONS",
    ]
    _options(parser, lines)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            lines.append(".SH COMMANDS")
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for command, sub in action.choices.items():
                usage = sub.format_usage().removeprefix("usage: ").strip()
                lines += [".SS " + roff(command), roff(helps.get(command) or ""), ".PP"]
                lines += [".nf", roff(usage), ".fi"]
                if any(a for a in sub._actions if not isinstance(a, argparse._HelpAction)):
                    _options(sub, lines)
    for title, paragraphs in EXTRA.get(name, []):
        lines.append(f".SH {title}")
        for paragraph in paragraphs:
            lines += [roff(paragraph), ".PP"]
        lines.pop()
    others = [
        f"\\fB{roff(n)}\\fR(1)" for n in ("parley", "parley-cli", "parley-server") if n != name
    ]
    lines += [".SH SEE ALSO", ", ".join(others)]
    return "\n".join(lines) + "\n"


def write_all(out: Path) -> list[Path]:
    """Write the three pages into ``out``; returns their paths."""
    from signaling import __version__

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (
        datetime.datetime.fromtimestamp(int(epoch), datetime.UTC)
        if epoch
        else datetime.datetime.now(datetime.UTC)
    )
    date = when.strftime("%Y-%m-%d")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in _parsers().items():
        path = out / f"{name}.1"
        path.write_text(page(name, make(), __version__, date), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: ``manpages.py OUT``."""
    parser = argparse.ArgumentParser(description="Write the manual pages into a folder.")
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    for path in write_all(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
