// Command device-plugin advertises fake GPUs to the kubelet through the device plugin API, so
// that pods requesting nvidia.com/gpu schedule and start on the local cluster's real nodes.
//
// The protocol (https://kubernetes.io/docs/concepts/extend-kubernetes/compute-storage-net/device-plugins/):
// serve the DevicePlugin service on a unix socket in the kubelet's device-plugins directory, then
// call Registration.Register on the kubelet's socket there. A restarting kubelet deletes every
// socket in that directory and forgets its plugins, so the plugin watches kubelet.sock and serves
// and registers again whenever a new one appears.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// socketName is this plugin's endpoint, relative to the device-plugins directory as Register wants it.
const socketName = "videojob-gpu.sock"

type config struct {
	resource  string
	count     int
	socketDir string
	poll      time.Duration // how often kubelet.sock is checked for a restarted kubelet
}

func main() {
	cfg := config{poll: time.Second}
	flag.StringVar(&cfg.resource, "resource", "nvidia.com/gpu", "extended resource name to advertise")
	flag.IntVar(&cfg.count, "count", 2, "number of devices to advertise")
	flag.StringVar(&cfg.socketDir, "socket-dir", pluginapi.DevicePluginPath, "the kubelet's device-plugins directory")
	flag.Parse()
	if cfg.count < 1 {
		log.Fatalf("--count must be at least 1, got %d", cfg.count)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		log.Fatal(err)
	}
	log.Print("stopped")
}

// plugin is the DevicePlugin service.
type plugin struct {
	pluginapi.UnimplementedDevicePluginServer
	count int
}

func (p *plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	// No PreStartContainer and no GetPreferredAllocation: the kubelet then never calls them.
	return &pluginapi.DevicePluginOptions{}, nil
}

// ListAndWatch sends the device list once and then holds the stream open: the devices never
// change, and the kubelet treats a closed stream as the plugin going away.
func (p *plugin) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: devices(p.count)}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

func (p *plugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	resp, err := allocate(req, p.count)
	if err == nil {
		for _, c := range resp.ContainerResponses {
			log.Printf("allocated NVIDIA_VISIBLE_DEVICES=%s", c.Envs["NVIDIA_VISIBLE_DEVICES"])
		}
	}
	return resp, err
}

func (p *plugin) GetPreferredAllocation(context.Context, *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	return &pluginapi.PreferredAllocationResponse{}, nil
}

func (p *plugin) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}

// socketID identifies one instance of kubelet.sock, so that a restart is seen even when the path
// never goes missing between two polls. The inode alone is not enough: a file made right after
// one was deleted often gets the same inode number, but never the same change time.
type socketID struct {
	dev, ino uint64
	ctime    syscall.Timespec
}

func statSocket(path string) (socketID, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFSOCK {
		return socketID{}, false
	}
	return socketID{uint64(st.Dev), st.Ino, st.Ctim}, true
}

// run serves and registers against every kubelet.sock that appears until ctx is done.
func run(ctx context.Context, cfg config) error {
	kubeletSocket := filepath.Join(cfg.socketDir, "kubelet.sock")
	pluginSocket := filepath.Join(cfg.socketDir, socketName)
	var (
		srv        *grpc.Server
		served     socketID // the kubelet.sock our current socket was made for
		registered socketID // the kubelet.sock registered with; zero until the first Register
	)
	defer func() {
		if srv != nil {
			srv.Stop() // also removes our socket file
		}
	}()
	ticker := time.NewTicker(cfg.poll)
	defer ticker.Stop()
	for {
		// A starting kubelet deletes every socket in the directory, which is the documented
		// signal to register again; it covers a restart the change time might miss.
		if _, ok := statSocket(pluginSocket); !ok {
			served, registered = socketID{}, socketID{}
		}
		if id, ok := statSocket(kubeletSocket); ok && id != registered {
			// The new kubelet deleted our socket when it started: make a new one for it.
			if id != served {
				if srv != nil {
					srv.Stop()
				}
				var err error
				if srv, err = serve(pluginSocket, &plugin{count: cfg.count}); err != nil {
					return err
				}
				served = id
			}
			// A failed Register (the kubelet still starting) is retried on the next tick.
			if err := register(ctx, kubeletSocket, cfg.resource); err != nil {
				log.Printf("register with %s: %v", kubeletSocket, err)
			} else {
				registered = id
				log.Printf("registered %s (%d devices) with %s", cfg.resource, cfg.count, kubeletSocket)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// serve listens on path (replacing a stale socket left by a killed predecessor) and serves p.
func serve(path string, p *plugin) (*grpc.Server, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	srv := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(srv, p)
	go func() {
		if err := srv.Serve(lis); err != nil {
			log.Printf("serve %s: %v", path, err)
		}
	}()
	return srv, nil
}

// register tells the kubelet where this plugin listens; the kubelet then dials back and calls
// GetDevicePluginOptions and ListAndWatch.
func register(ctx context.Context, kubeletSocket, resource string) error {
	conn, err := grpc.NewClient("unix://"+kubeletSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     socketName,
		ResourceName: resource,
		Options:      &pluginapi.DevicePluginOptions{},
	})
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	return nil
}
