// Command pause is the first process of every pod sandbox on the local cluster's real nodes.
//
// It holds the pod's namespaces open and, being PID 1 of the pod's PID namespace when the pod
// shares one (shareProcessNamespace), adopts orphaned processes: it must reap them, or their
// zombies fill the process table. It exits 0 on SIGINT or SIGTERM, which is how the runtime
// stops a sandbox; a PID 1 gets no default action for those signals, so it has to ask for them.
package main

import (
	"errors"
	"os"
	"os/signal"
	"syscall"
)

func main() { os.Exit(pause(signals())) }

// signals starts catching the signals pause acts on.
func signals() <-chan os.Signal {
	// Buffered: signals arriving while a reap is running are queued, not dropped.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGINT, syscall.SIGTERM)
	return sigs
}

// pause blocks until SIGINT or SIGTERM, reaping children meanwhile, and returns the exit status.
func pause(sigs <-chan os.Signal) int {
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			return 0
		}
		reap()
	}
	return 0 // not reached: the channel is never closed
}

// reap collects every child that has exited. One SIGCHLD can stand for many exits (the kernel
// coalesces pending signals), so it loops until none is left.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if pid <= 0 || err != nil { // 0: children left, none exited; ECHILD: no children
			return
		}
	}
}
