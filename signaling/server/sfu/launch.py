"""Start Janus with Parley's configuration (``deploy/janus/``): one command beside parley-server.

``python -m signaling.server.sfu.launch --admin-secret-file F [--ws-port 8188]`` copies
the configuration folder into a private directory, writes the admin secret, the ports and
the media port range into the copy, and runs ``janus -F COPY`` in the foreground (the copy
is removed when Janus exits). The same :func:`render` serves the tests, which start Janus
on ports the system picked.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

#: Where the configuration lives in the source tree.
CONFIG_DIR = Path(__file__).resolve().parents[3] / "deploy" / "janus"
JANUS = "janus"
_FILES = ("janus.jcfg", "janus.transport.websockets.jcfg", "janus.plugin.videoroom.jcfg")
_SECRET = re.compile(r"^[A-Za-z0-9._~+/=-]{16,256}$")


def read_secret(path: Path) -> str:
    """The admin secret in ``path`` (its first line), checked: 16 or more plain characters."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the admin secret file {path}: {exc}") from None
    secret = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not _SECRET.match(secret):
        raise ValueError(
            f"the admin secret in {path} must be 16 to 256 characters of "
            "letters, digits and ._~+/=-"
        )
    return secret


def render(
    out: Path,
    *,
    admin_secret: str,
    ws_port: int = 8188,
    admin_port: int = 7188,
    rtp_ports: tuple[int, int] = (20000, 40000),
    source: Path = CONFIG_DIR,
) -> Path:
    """Write the configuration into ``out`` (created 0700) with these values; returns ``out``."""
    if not _SECRET.match(admin_secret):
        raise ValueError("the admin secret must be 16 to 256 plain characters")
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    values = {
        "@CONFIGS@": str(out),
        "@ADMIN_SECRET@": admin_secret,
        "@WS_PORT@": str(ws_port),
        "@ADMIN_PORT@": str(admin_port),
        "@RTP_PORTS@": f"{rtp_ports[0]}-{rtp_ports[1]}",
    }
    for name in _FILES:
        text = (source / name).read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace(key, value)
        target = out / name
        target.write_text(text, encoding="utf-8")
        target.chmod(0o600)
    return out


def command(config: Path, public_ip: str | None = None) -> list[str]:
    """The command line that runs Janus in the foreground on ``config`` (``public_ip``: the
    address its media candidates show, for a Janus behind a 1:1 NAT)."""
    line = [JANUS, "-F", str(config), "--disable-colors", "--debug-timestamps"]
    return [*line, "--nat-1-1", public_ip] if public_ip else line


def _ports(text: str) -> tuple[int, int]:
    try:
        low, high = (int(part) for part in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not MIN-MAX") from None
    if not 1024 <= low < high <= 65535:
        raise argparse.ArgumentTypeError("the range must be within 1024-65535, MIN below MAX")
    return low, high


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError("a port is from 1 to 65535")
    return value


def _address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an IP address") from None


def main(argv: list[str] | None = None) -> int:
    """Render the configuration and run Janus until it exits."""
    parser = argparse.ArgumentParser(
        prog="python -m signaling.server.sfu.launch",
        description="Run Janus (VideoRoom, WebSocket API and admin API on loopback) for "
        "parley-server --sfu.",
    )
    parser.add_argument("--admin-secret-file", type=Path, required=True, metavar="F")
    parser.add_argument("--ws-port", type=_port, default=8188, metavar="P")
    parser.add_argument("--admin-port", type=_port, default=7188, metavar="P")
    parser.add_argument("--rtp-ports", type=_ports, default=(20000, 40000), metavar="MIN-MAX")
    parser.add_argument(
        "--public-ip",
        metavar="IP",
        type=_address,
        help="the address clients reach Janus's media ports at, when Janus is behind a NAT",
    )
    args = parser.parse_args(argv)
    if shutil.which(JANUS) is None:
        print("launch: janus is not installed (apt-get install janus)", file=sys.stderr)
        return 2
    try:
        secret = read_secret(args.admin_secret_file)
    except ValueError as exc:
        print(f"launch: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="parley-janus-") as folder:
        config = render(
            Path(folder),
            admin_secret=secret,
            ws_port=args.ws_port,
            admin_port=args.admin_port,
            rtp_ports=args.rtp_ports,
        )
        print(f"Janus for Parley: ws://127.0.0.1:{args.ws_port}", flush=True)
        process = subprocess.Popen(command(config, args.public_ip))

        def stop(signum: int, _: object) -> None:  # Janus stops; then the copy is removed
            process.send_signal(signum)

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, stop)
        return process.wait()


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main())
