package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// fakeKubelet serves the Registration service on dir/kubelet.sock and reports each request.
type fakeKubelet struct {
	pluginapi.UnimplementedRegistrationServer
	srv      *grpc.Server
	requests chan *pluginapi.RegisterRequest
}

func startKubelet(t *testing.T, dir string) *fakeKubelet {
	t.Helper()
	// As the real kubelet does on start: every socket in the directory goes, plugins' too.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.Remove(filepath.Join(dir, e.Name()))
	}
	lis, err := net.Listen("unix", filepath.Join(dir, "kubelet.sock"))
	if err != nil {
		t.Fatal(err)
	}
	k := &fakeKubelet{srv: grpc.NewServer(), requests: make(chan *pluginapi.RegisterRequest, 8)}
	pluginapi.RegisterRegistrationServer(k.srv, k)
	go k.srv.Serve(lis)
	t.Cleanup(k.srv.Stop)
	return k
}

func (k *fakeKubelet) Register(_ context.Context, req *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	k.requests <- req
	return &pluginapi.Empty{}, nil
}

// awaitRegistration waits for a Register call, then acts as the kubelet does after one: dials
// the endpoint and reads the device list.
func (k *fakeKubelet) awaitRegistration(t *testing.T, dir string) {
	t.Helper()
	var req *pluginapi.RegisterRequest
	select {
	case req = <-k.requests:
	case <-time.After(10 * time.Second):
		t.Fatal("no Register call within 10s")
	}
	if req.Version != pluginapi.Version || req.Endpoint != socketName || req.ResourceName != "example.com/gpu" {
		t.Fatalf("Register(%v): unexpected request", req)
	}
	conn, err := grpc.NewClient("unix://"+filepath.Join(dir, req.Endpoint), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := pluginapi.NewDevicePluginClient(conn).ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	list, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Devices) != 2 {
		t.Fatalf("ListAndWatch sent %d devices, want 2", len(list.Devices))
	}
}

func TestRunRegistersAgainWhenKubeletRestarts(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, config{resource: "example.com/gpu", count: 2, socketDir: dir, poll: 10 * time.Millisecond})
	}()

	first := startKubelet(t, dir)
	first.awaitRegistration(t, dir)

	first.srv.Stop()
	second := startKubelet(t, dir)
	second.awaitRegistration(t, dir)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
	if _, err := os.Stat(filepath.Join(dir, socketName)); !os.IsNotExist(err) {
		t.Errorf("plugin socket left behind after stop (stat: %v)", err)
	}
}
