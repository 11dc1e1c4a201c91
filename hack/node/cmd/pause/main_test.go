package main

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary re-runs itself as the pause process when this is set, so the tests exercise
// the real signal handling in a process of its own.
const helperEnv = "PAUSE_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "" {
		os.Exit(m.Run())
	}
	sigs := signals()
	// Stand in for PID 1: orphans of this process's descendants are re-parented to it.
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		os.Exit(3)
	}
	// A child that exits at once (a zombie unless reaped) and leaves an orphan exiting later.
	if err := exec.Command("sh", "-c", "sleep 0.3 & exit 0").Start(); err != nil {
		os.Exit(4)
	}
	os.Stdout.WriteString("ready\n")
	os.Exit(pause(sigs))
}

const prSetChildSubreaper = 36 // PR_SET_CHILD_SUBREAPER in linux/prctl.h; not in package syscall

// startHelper starts the pause helper and returns once its signal handlers are installed.
func startHelper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
		t.Fatalf("helper did not start: %q, %v", line, err)
	}
	return cmd
}

// children lists the PIDs whose parent is ppid, with their state letters (Z for a zombie).
func children(ppid int) map[int]string {
	out := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The fields after the command name, which is in parentheses and may hold spaces.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(ppid) {
			out[pid] = fields[0]
		}
	}
	return out
}

func TestPauseReapsChildrenAndOrphans(t *testing.T) {
	cmd := startHelper(t)
	deadline := time.Now().Add(10 * time.Second)
	sawChild := false
	for {
		kids := children(cmd.Process.Pid)
		sawChild = sawChild || len(kids) > 0
		if sawChild && len(kids) == 0 {
			break // the shell and the orphaned sleep have both been reaped
		}
		if time.Now().After(deadline) {
			t.Fatalf("children of pause still present after 10s: %v (saw any: %v)", kids, sawChild)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPauseExitsZeroOnTerm(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		cmd := startHelper(t)
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("after %v: %v, want exit 0", sig, err)
		}
	}
}
