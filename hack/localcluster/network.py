"""The real-node cluster's addresses, and the guard that keeps its traffic on this machine.

Every address the real-node cluster uses is one it creates here:

| range            | what                                                              |
|------------------|-------------------------------------------------------------------|
| 10.250.0.0/24    | node addresses, /32s on the interface `vjnodes0`: the API server  |
|                  | 10.250.0.1, the nodes 10.250.0.11, 10.250.0.12, ...               |
| 10.244.0.0/16    | pods: node i gets 10.244.i.0/24 on its CNI bridge `vjbr<i>`       |
| 10.96.0.0/16     | Services (ClusterIPs, programmed by kube-proxy); DNS 10.96.0.10   |

`vjnodes0` is a bridge with no ports rather than a dummy interface: these machines' kernels have
no `dummy` link type, and a port-less bridge holds local addresses the same way.

The guard, set up before kube-proxy starts and removed by `down`:
- each range above is routed to a `blackhole` in the main table. The node addresses are local
  (the local table wins) and each node's pod subnet is a connected route on its bridge (more
  specific), so both still work; a ClusterIP that no kube-proxy rule rewrote, or an address in a
  range that nothing owns, dies here instead of leaving through the default route. (kube-proxy's
  DNAT happens in PREROUTING/OUTPUT, before the routing decision, so it is not in the way.)
- an iptables chain `VIDEOJOB-GUARD`, jumped to first from FORWARD, drops every forwarded packet
  from a pod to an address outside the cluster's ranges, so no pod reaches the outside world
  even where a route would allow it.
- pods get no resolver of the machine's: the kubelets' `resolvConf` is empty and CoreDNS has no
  `forward` plugin, so a name outside `cluster.local` is never sent anywhere.

The functions here only plan (commands as argument lists); `apply` runs them.
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass

NODES_LINK = "vjnodes0"
GUARD_CHAIN = "VIDEOJOB-GUARD"


@dataclass(frozen=True)
class Addresses:
    nodes_cidr: str = "10.250.0.0/24"
    pods_cidr: str = "10.244.0.0/16"
    services_cidr: str = "10.96.0.0/16"

    @property
    def api_server(self) -> str:
        return self._host(self.nodes_cidr, 1)

    def node_ip(self, index: int) -> str:
        """The address of node `index` (0-based), in the order of the node file."""
        return self._host(self.nodes_cidr, 11 + index)

    def pod_subnet(self, index: int) -> str:
        net = ipaddress.ip_network(self.pods_cidr)
        return str(list(net.subnets(new_prefix=24))[index])

    def pod_gateway(self, index: int) -> str:
        return self._host(self.pod_subnet(index), 1)

    @property
    def kubernetes_service(self) -> str:
        return self._host(self.services_cidr, 1)

    @property
    def dns_service(self) -> str:
        return self._host(self.services_cidr, 10)

    @property
    def ranges(self) -> list[str]:
        return [self.nodes_cidr, self.pods_cidr, self.services_cidr]

    @staticmethod
    def _host(cidr: str, n: int) -> str:
        return str(ipaddress.ip_network(cidr).network_address + n)


def bridge_name(index: int) -> str:
    return f"vjbr{index}"


def guard_up(addrs: Addresses, node_count: int) -> list[list[str]]:
    """Commands that create the node addresses' interface and the guard. Each
    is safe to run again (the caller ignores 'exists' answers from `ip`)."""
    cmds = [["ip", "link", "add", NODES_LINK, "type", "bridge"],
            ["ip", "link", "set", NODES_LINK, "up"],
            ["ip", "addr", "add", f"{addrs.api_server}/32", "dev", NODES_LINK]]
    cmds += [["ip", "addr", "add", f"{addrs.node_ip(i)}/32", "dev", NODES_LINK]
             for i in range(node_count)]
    cmds += [["ip", "route", "add", "blackhole", cidr] for cidr in addrs.ranges]
    cmds += [["iptables", "-w", "-N", GUARD_CHAIN]]
    return cmds


def guard_rules(addrs: Addresses) -> list[list[str]]:
    """The guard chain's rules, written anew each time (flush, then fill)."""
    rules = [["iptables", "-w", "-F", GUARD_CHAIN]]
    rules += [["iptables", "-w", "-A", GUARD_CHAIN, "-s", addrs.pods_cidr, "-d", cidr,
               "-j", "RETURN"] for cidr in addrs.ranges]
    rules += [["iptables", "-w", "-A", GUARD_CHAIN, "-s", addrs.pods_cidr, "-j", "DROP"]]
    return rules


def guard_down(addrs: Addresses) -> list[list[str]]:
    """Commands that undo `guard_up` (the bridges go with the CNI state, see `bridges_down`)."""
    cmds = [["iptables", "-w", "-D", "FORWARD", "-j", GUARD_CHAIN],
            ["iptables", "-w", "-F", GUARD_CHAIN],
            ["iptables", "-w", "-X", GUARD_CHAIN]]
    cmds += [["ip", "route", "del", "blackhole", cidr] for cidr in addrs.ranges]
    cmds += [["ip", "link", "del", NODES_LINK]]
    return cmds


def bridges_down(node_count: int) -> list[list[str]]:
    return [["ip", "link", "del", bridge_name(i)] for i in range(node_count)]


def run_all(cmds: list[list[str]]) -> None:
    """Runs each command; an answer that the thing already exists (or is already gone) is fine,
    any other failure raises with the command and its message."""
    benign = ("File exists", "already exists", "already assigned", "Cannot find device",
              "No such process", "does not exist", "No chain/target/match", "Bad rule",
              "RTNETLINK answers: No such")
    for cmd in cmds:
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0 and not any(b in out.stderr for b in benign):
            raise RuntimeError(f"{' '.join(cmd)}: {out.stderr.strip()}")


def apply_guard(addrs: Addresses, node_count: int) -> None:
    """Sets up the node addresses and the guard, and lets the machine forward between bridges."""
    run_all(guard_up(addrs, node_count))
    run_all(guard_rules(addrs))
    jumps = subprocess.run(["iptables", "-w", "-C", "FORWARD", "-j", GUARD_CHAIN],
                           capture_output=True)
    if jumps.returncode != 0:
        run_all([["iptables", "-w", "-I", "FORWARD", "1", "-j", GUARD_CHAIN]])
    # Pods on different bridges reach each other through the host; Service traffic between two
    # pods of one bridge must pass iptables (kube-proxy's DNAT) too.
    for key, value in (("net/ipv4/ip_forward", "1"),
                       ("net/bridge/bridge-nf-call-iptables", "1")):
        with open(f"/proc/sys/{key}", "w") as f:
            f.write(value)


def remove_guard(addrs: Addresses, node_count: int) -> None:
    run_all(bridges_down(node_count))
    run_all(guard_down(addrs))
