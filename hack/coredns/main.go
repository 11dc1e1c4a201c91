// Command coredns is CoreDNS v1.15 with a fixed plugin set, built the way CoreDNS documents for a
// custom build (https://coredns.io/2017/07/25/compile-time-enabling-or-disabling-plugins/): a
// main that imports only the chosen plugins and sets the directive order, instead of
// core/plugin, which imports them all.
//
// The set is what kubeadm's default Corefile uses, less forward: the cluster must never send a
// DNS query off this machine, so names outside the cluster's zones get SERVFAIL, and a Corefile
// that still says `forward` fails to load ("Unknown directive 'forward'"). `coredns -plugins`
// also lists metadata and transfer: the kubernetes plugin imports them, but without a directive
// a Corefile cannot use them.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	// Each import registers one plugin; the blank imports are the whole plugin set.
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics" // the "prometheus" directive
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// directives is the execution order: each plugin sees a query before those after it. It is
// plugin.cfg's order (core/dnsserver/zdirectives.go in v1.15.0) with the other plugins left out;
// the order in a Corefile does not matter.
var directives = []string{
	"reload",
	"ready",
	"health",
	"prometheus",
	"errors",
	"log",
	"loadbalance",
	"cache",
	"kubernetes",
	"loop",
}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
