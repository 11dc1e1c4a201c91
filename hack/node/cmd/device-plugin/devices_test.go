package main

import (
	"testing"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

func TestDevicesAreHealthyAndNumbered(t *testing.T) {
	devs := devices(3)
	want := []string{"gpu-0", "gpu-1", "gpu-2"}
	if len(devs) != len(want) {
		t.Fatalf("got %d devices, want %d", len(devs), len(want))
	}
	for i, d := range devs {
		if d.ID != want[i] || d.Health != pluginapi.Healthy {
			t.Errorf("device %d = %s/%s, want %s/Healthy", i, d.ID, d.Health, want[i])
		}
	}
}

func TestAllocateSetsVisibleDevicesPerContainer(t *testing.T) {
	resp, err := allocate(&pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{
		{DevicesIds: []string{"gpu-1", "gpu-0"}},
		{DevicesIds: []string{"gpu-11"}},
	}}, 12)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"1,0", "11"} // the kubelet's order is kept: it is the order CUDA numbers them
	if len(resp.ContainerResponses) != len(want) {
		t.Fatalf("got %d container responses, want %d", len(resp.ContainerResponses), len(want))
	}
	for i, c := range resp.ContainerResponses {
		for _, env := range []string{"NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"} {
			if c.Envs[env] != want[i] {
				t.Errorf("container %d: %s=%q, want %q", i, env, c.Envs[env], want[i])
			}
		}
	}
}

func TestAllocateRejectsUnknownDevices(t *testing.T) {
	for _, id := range []string{"gpu-2", "gpu--1", "gpu-01", "gpu-", "cpu-0", ""} {
		req := &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{id}}}}
		if _, err := allocate(req, 2); err == nil {
			t.Errorf("allocate(%q) with 2 devices: want an error", id)
		}
	}
}
