"""A network laboratory of Linux network namespaces: an "internet", and two homes behind NATs.

::

    home a (192.168.1.2) ── router a ──┐                       ┌── router b ── home b (192.168.2.2)
        lan 192.168.1.1    wan 203.0.113.2    internet           198.51.100.2 wan    lan 192.168.2.1
                                       203.0.113.1  192.0.2.1  198.51.100.1
                                                    (servers)

- ``internet`` forwards between the two routers' outside networks and holds the servers at
  :data:`SERVER_IP` (on its loopback): ``parley-server``, coturn. Packets to private addresses
  (a home) are dropped silently, as on the real internet. Public addresses are documentation
  ranges.
- Each router MASQUERADEs its home onto its outside address (``random_nat`` adds ``--random``: a
  port-randomising NAT, one new outside port per destination, which defeats hole punching) and
  behaves like a home router: NEW flows arriving from outside are dropped, forwarded (FORWARD)
  and addressed to the router itself (INPUT). Without the INPUT rule, the other side's first
  probe reaching the router's own port makes a conntrack entry that takes the port the NAT
  wanted, and hole punching fails even through an ordinary NAT.
- Impairments live on a home's router, so that they hit everything the home sends or receives:
  :meth:`Home.set_loss` (iptables ``statistic``), :meth:`Home.set_cap` (``tbf``; ``netem`` is not
  in this kernel), :meth:`Home.set_black_hole`, :meth:`Home.block_udp` and
  :meth:`Home.firewall` (an office firewall), :meth:`Home.set_random_nat`.
- A third home ``c`` (192.168.3.2 behind 198.18.0.2) is there in labs built with
  ``homes=("a", "b", "c")``: a mesh meeting of three homes.
- Run a program in a home with ``home.argv([...])`` (for ``subprocess``) or ``home.run(...)``.

Namespace names are unique per lab (``pl<pid>x<n>-…``); :func:`network_lab` always tears down
what it built, also when the test fails, and a new lab removes those a killed process left.
Building needs root (``ip netns``); :func:`unavailable` says why the lab cannot run here, for a
skip.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

#: Where the servers answer, as every home sees it.
SERVER_IP = "192.0.2.1"
_HOMES = {
    # name: (home address, router lan address, router wan address, internet's side of it)
    "a": ("192.168.1.2", "192.168.1.1", "203.0.113.2", "203.0.113.1"),
    "b": ("192.168.2.2", "192.168.2.1", "198.51.100.2", "198.51.100.1"),
    # Only in labs that ask for it (a mesh meeting of three homes): the benchmarking range,
    # public to ICE as the documentation ranges are (there is no third of those).
    "c": ("192.168.3.2", "192.168.3.1", "198.18.0.2", "198.18.0.1"),
}
#: The homes a lab has unless asked for more.
TWO_HOMES = ("a", "b")
_TOOLS = ("ip", "iptables", "tc")
_counter = itertools.count()
#: A lab's namespace: ``pl<pid>x<n>-<role>``.
_NAME = re.compile(r"pl(\d+)x\d+-\w+")


def unavailable() -> str | None:
    """Why the lab cannot be built on this machine, or ``None`` if it can."""
    if os.geteuid() != 0:
        return "the network lab needs root (ip netns, iptables)"
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        return f"the network lab needs {', '.join(missing)} (installer/bootstrap installs them)"
    return None


def _sh(argv: Sequence[str]) -> str:
    """Run a command; its stdout, or a RuntimeError naming the command and its stderr."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True, slots=True)
class Namespace:
    """One network namespace."""

    name: str

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside this namespace (for ``subprocess``)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, *argv: str) -> str:
        """Run a command inside; its stdout (RuntimeError if it fails)."""
        return _sh(self.argv(argv))


@dataclass(slots=True)
class Home:
    """A computer (``host``) in a home behind its own NAT router (``router``)."""

    name: str
    host: Namespace
    router: Namespace
    #: The computer's address in the home.
    address: str
    #: The router's address on the internet (what the servers see of this home).
    public: str
    random_nat: bool
    _cap: int | None = field(default=None, repr=False)

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run on the home's computer (for ``subprocess``)."""
        return self.host.argv(argv)

    def run(self, *argv: str) -> str:
        """Run a command on the home's computer; its stdout."""
        return self.host.run(*argv)

    def _chain(self, chain: str, rules: Iterable[Sequence[str]]) -> None:
        self.router.run("iptables", "-F", chain)
        for rule in rules:
            self.router.run("iptables", "-A", chain, *rule)

    def set_loss(self, fraction: float, direction: str = "up") -> None:
        """Drop ``fraction`` (0 to 1) of the packets at random: ``up`` (what the home sends),
        ``down`` (what it receives) or ``both``; 0 stops dropping."""
        if not 0 <= fraction <= 1 or direction not in ("up", "down", "both"):
            raise ValueError(f"bad loss {fraction!r} {direction!r}")
        ways = {"up": ["lan"], "down": ["wan"], "both": ["lan", "wan"]}[direction]
        drop = f"-m statistic --mode random --probability {fraction:.4f} -j DROP".split()
        rules = [["-i", way, *drop] for way in ways] if fraction > 0 else []
        self._chain("LOSS", rules)

    def set_cap(self, kbit: int | None, direction: str = "up") -> None:
        """Cap the home's ``up``link (or ``down``link, or ``both``) at ``kbit`` kbit/s with a
        token bucket (``tbf``); ``None`` lifts the cap."""
        if direction not in ("up", "down", "both") or (kbit is not None and kbit <= 0):
            raise ValueError(f"bad cap {kbit!r} {direction!r}")
        # The router's egress: wan carries what the home sends, lan what it receives.
        devices = {"up": ["wan"], "down": ["lan"], "both": ["wan", "lan"]}[direction]
        for dev in ("wan", "lan"):
            subprocess.run(
                self.router.argv(["tc", "qdisc", "del", "dev", dev, "root"]),
                capture_output=True,
                timeout=30,
            )
        self._cap = kbit
        if kbit is None:
            return
        # A burst of ~20 ms at the rate (at least 4 full packets) and at most 200 ms queued.
        burst = max(6000, kbit * 1000 // 8 // 50)
        for dev in devices:
            tbf = f"tc qdisc add dev {dev} root tbf rate {kbit}kbit burst {burst} latency 200ms"
            self.router.run(*tbf.split())

    def set_black_hole(self, on: bool) -> None:
        """Drop everything the home sends and receives (on), or nothing more (off)."""
        self._chain("HOLE", [["-j", "DROP"]] if on else [])

    def block_udp(self, on: bool = True) -> None:
        """Drop every UDP packet leaving the home (and so every answer): TCP still passes."""
        self.firewall("-p udp" if on else None)

    def firewall(self, *matches: str | None) -> None:
        """An office firewall: drop what leaves the home matching any of ``matches`` (iptables
        matches, e.g. ``"-p udp"``, ``"-p tcp --dport 3478"``); none lets everything through."""
        rules = [["-i", "lan", *m.split(), "-j", "DROP"] for m in matches if m]
        self._chain("NOUDP", rules)

    def set_random_nat(self, on: bool) -> None:
        """Switch the NAT between port-preserving and port-randomising (for new flows; the
        flows it tracks keep their ports)."""
        nat = "iptables -t nat -R POSTROUTING 1 -o wan -j MASQUERADE"
        self.router.run(*nat.split(), *(["--random"] if on else []))
        self.random_nat = on


@dataclass(slots=True)
class Lab:
    """The built laboratory: the internet namespace, homes ``a`` and ``b``."""

    prefix: str
    internet: Namespace
    homes: dict[str, Home]
    namespaces: list[Namespace]

    @property
    def a(self) -> Home:
        """Home a."""
        return self.homes["a"]

    @property
    def b(self) -> Home:
        """Home b."""
        return self.homes["b"]

    @property
    def c(self) -> Home:
        """Home c (in a lab built with it)."""
        return self.homes["c"]

    def teardown(self) -> None:
        """Delete every namespace (their interfaces, rules and qdiscs go with them)."""
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, timeout=30)
        self.namespaces.clear()


def _home_router(ns: Namespace, random_nat: bool) -> None:
    """NAT and the rules that make a router behave like a home router; impairment chains."""
    ns.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    masquerade = ["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"]
    ns.run(*masquerade, *(["--random"] if random_nat else []))
    for chain in ("HOLE", "NOUDP", "LOSS"):
        ns.run("iptables", "-N", chain)
        ns.run("iptables", "-A", "FORWARD", "-j", chain)
    new_from_outside = ["-i", "wan", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP"]
    ns.run("iptables", "-A", "FORWARD", *new_from_outside)
    ns.run("iptables", "-A", "INPUT", *new_from_outside)


def _remove_stale() -> None:
    """Delete the namespaces of labs whose process is gone (killed before it tore them down)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30)
    for line in listed.stdout.splitlines():
        match = _NAME.match(line.split(" ")[0])
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            subprocess.run(["ip", "netns", "del", match.group(0)], capture_output=True, timeout=30)


def build(random_nat: Iterable[str] = (), homes: Sequence[str] = TWO_HOMES) -> Lab:
    """Build a lab of ``homes`` (``a``, ``b``, and ``c`` if asked for); homes named in
    ``random_nat`` get a port-randomising NAT.

    Prefer :func:`network_lab`, which tears it down whatever happens.
    """
    randomised = set(random_nat)
    unknown = (randomised | set(homes)) - set(_HOMES)
    if unknown or randomised - set(homes):
        raise ValueError(f"no home named {sorted(unknown or randomised - set(homes))}")
    _remove_stale()
    prefix = f"pl{os.getpid()}x{next(_counter)}"
    internet = Namespace(f"{prefix}-inet")
    lab = Lab(prefix, internet, {}, [])

    def add(name: str) -> Namespace:
        ns = Namespace(name)
        _sh(["ip", "netns", "add", name])
        lab.namespaces.append(ns)
        ns.run("ip", "link", "set", "lo", "up")
        return ns

    try:
        add(internet.name)
        internet.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        # The servers' address sits on the loopback (this kernel has no dummy interfaces).
        internet.run("ip", "addr", "add", f"{SERVER_IP}/32", "dev", "lo")
        # The internet drops what is sent to private addresses, silently.
        internet.run("ip", "route", "add", "blackhole", "192.168.0.0/16")
        for name in homes:
            address, lan_ip, wan_ip, inet_ip = _HOMES[name]
            router = add(f"{prefix}-r{name}")
            host = add(f"{prefix}-{name}")
            veth = "ip link add {} netns {} type veth peer name {} netns {}"
            _sh(veth.format("wan", router.name, f"to{name}", internet.name).split())
            _sh(veth.format("eth0", host.name, "lan", router.name).split())
            internet.run("ip", "addr", "add", f"{inet_ip}/24", "dev", f"to{name}")
            internet.run("ip", "link", "set", f"to{name}", "up")
            router.run("ip", "addr", "add", f"{wan_ip}/24", "dev", "wan")
            router.run("ip", "addr", "add", f"{lan_ip}/24", "dev", "lan")
            router.run("ip", "link", "set", "wan", "up")
            router.run("ip", "link", "set", "lan", "up")
            router.run("ip", "route", "add", "default", "via", inet_ip)
            host.run("ip", "addr", "add", f"{address}/24", "dev", "eth0")
            host.run("ip", "link", "set", "eth0", "up")
            host.run("ip", "route", "add", "default", "via", lan_ip)
            _home_router(router, name in randomised)
            lab.homes[name] = Home(name, host, router, address, wan_ip, name in randomised)
    except BaseException:
        lab.teardown()
        raise
    return lab


@contextlib.contextmanager
def network_lab(random_nat: Iterable[str] = (), homes: Sequence[str] = TWO_HOMES) -> Iterator[Lab]:
    """A lab for the ``with`` block (see :func:`build`), torn down at its end."""
    lab = build(random_nat, homes)
    try:
        yield lab
    finally:
        lab.teardown()
