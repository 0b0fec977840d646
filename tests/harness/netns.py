"""Network namespaces joined by veth pairs through a bridge, for tests that need a real
network between processes: its own addresses, and bandwidth shaped with `tc` (tbf).

Root only. `unavailable()` says why a test cannot run here (its skip reason, or its failure
when `CONTINUUM_REQUIRE_NETNS=1` says it must run, as in CI); `Net` makes
the namespaces, and `close()` removes everything it made, whatever the test's outcome.
Every name carries a per-run tag, so runs side by side (or a run left over by a killed
one) do not collide.

Layout: a hub namespace holds a bridge; each member (a namespace, or the root namespace
the test runs in) gets a veth pair whose far end is on the bridge, and an address on one
/24 that no route of the root namespace already covers. A member's uplink is the egress
of its own veth end, the one `shape()` puts a tbf on.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import secrets
import shutil
import subprocess

ROOT = ""  # the root namespace, where the test process runs


def _run(args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def unavailable() -> str | None:
    """Why network-namespace tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return (
            "needs root to create network namespaces, veth pairs and tc qdiscs "
            f"(running as uid {os.geteuid()}); CI runs it as root"
        )
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"needs the {tool!r} command (iproute2), which is not on PATH"
    name = f"cnt-check-{os.getpid()}-{secrets.token_hex(2)}"
    made = _run(["ip", "netns", "add", name], check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace here: {made.stderr.strip()}"
    _run(["ip", "netns", "del", name], check=False)
    return None


def _taken_networks() -> list[ipaddress.IPv4Network]:
    taken = []
    for route in json.loads(_run(["ip", "-4", "-j", "route", "show", "table", "all"]).stdout):
        dst = route.get("dst", "")
        if dst and dst != "default":
            taken.append(ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False))
    for link in json.loads(_run(["ip", "-4", "-j", "addr", "show"]).stdout):
        for info in link.get("addr_info", []):
            taken.append(
                ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False)
            )
    return taken


def _free_subnet() -> ipaddress.IPv4Network:
    taken = _taken_networks()
    rng = random.Random(secrets.randbits(32))
    for _ in range(200):
        candidate = ipaddress.IPv4Network(f"10.{rng.randrange(64, 250)}.{rng.randrange(256)}.0/24")
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    raise RuntimeError("no free 10.x.y.0/24 for the test network")


class Net:
    def __init__(self) -> None:
        # Interface names are at most 15 characters: "cn" + 6 hex + member index.
        self.tag = secrets.token_hex(3)
        self.subnet = _free_subnet()
        self.namespaces: list[str] = []
        self.root_links: list[str] = []
        self.addresses: dict[str, str] = {}  # member -> its address
        self.devices: dict[str, str] = {}  # member -> its veth end (the one to shape)
        self._hosts = iter(self.subnet.hosts())
        self.hub = f"cnt-{self.tag}-hub"
        try:
            self._namespace("hub")
            _run(["ip", "-n", self.hub, "link", "add", "br0", "type", "bridge"])
            _run(["ip", "-n", self.hub, "link", "set", "br0", "up"])
        except BaseException:
            self.close()
            raise

    def _namespace(self, role: str) -> str:
        name = f"cnt-{self.tag}-{role}"
        _run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        _run(["ip", "-n", name, "link", "set", "lo", "up"])  # agents talk to themselves too
        return name

    def add(self, member: str) -> str:
        """A member on the bridge: a new namespace named after it, or ROOT for the root
        namespace. Returns its address."""
        index = len(self.devices)
        hub_end = f"p{index}"
        if member == ROOT:
            device, ns = f"cn{self.tag}{index}", None
            _run(["ip", "link", "add", device, "type", "veth", "peer", "name", hub_end,
                  "netns", self.hub])  # fmt: skip
            self.root_links.append(device)
        else:
            ns = self._namespace(member)
            device = "eth0"
            _run(["ip", "-n", self.hub, "link", "add", hub_end, "type", "veth", "peer",
                  "name", device, "netns", ns])  # fmt: skip
        _run(["ip", "-n", self.hub, "link", "set", hub_end, "master", "br0"])
        _run(["ip", "-n", self.hub, "link", "set", hub_end, "up"])
        address = str(next(self._hosts))
        prefix = ["ip"] if ns is None else ["ip", "-n", ns]
        _run([*prefix, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", device])
        _run([*prefix, "link", "set", device, "up"])
        self.addresses[member] = address
        self.devices[member] = device
        return address

    def name(self, member: str) -> str:
        """The namespace of a member."""
        return f"cnt-{self.tag}-{member}"

    def exec_prefix(self, member: str) -> list[str]:
        """The command prefix that runs a program inside a member's namespace."""
        return [] if member == ROOT else ["ip", "netns", "exec", self.name(member)]

    def shape(self, member: str, mbit: float, change: bool = False) -> None:
        """Caps a member's uplink (its veth end's egress) with a token bucket filter. The
        burst is small (8 KB) so that a probe of tens of KB mostly pays the rate, and the
        queue holds 100 ms of traffic, so TCP backs off instead of timing out."""
        device = self.devices[member]
        ns = [] if member == ROOT else ["-n", self.name(member)]
        verb = "change" if change else "add"
        _run(["tc", *ns, "qdisc", verb, "dev", device, "root", "tbf", "rate", f"{mbit}mbit",
              "burst", "8kb", "latency", "100ms"])  # fmt: skip

    def second_address(self, member: str) -> str:
        """Another address for a member, on its veth end: traffic from it is not cut by
        `partition` (a client of the site, not the control plane)."""
        address = str(next(self._hosts))
        device = self.devices[member]
        prefix = ["ip"] if member == ROOT else ["ip", "-n", self.name(member)]
        _run([*prefix, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", device])
        return address

    def partition(self, members: list[str], address: str, heal: bool = False) -> None:
        """Cut `members` off from `address` (or heal the cut): their packets to it are
        silently dropped (a blackhole route), so connections neither way complete and
        time out, as across a failed WAN link; the rest of the network still works."""
        verb = "del" if heal else "add"
        for member in members:
            _run(["ip", "-n", self.name(member), "route", verb, "blackhole", f"{address}/32"])

    def close(self) -> None:
        """Removes everything this Net made; never raises (it runs on the way out)."""
        for device in self.root_links:
            _run(["ip", "link", "del", device], check=False)
        for name in reversed(self.namespaces):
            _run(["ip", "netns", "del", name], check=False)


# CI runs as root and sets this: there, a network test that cannot run is a failure.
REQUIRE_ENV = "CONTINUUM_REQUIRE_NETNS"


def required() -> bool:
    """Whether network-namespace tests must run here (`CONTINUUM_REQUIRE_NETNS=1`)."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")
