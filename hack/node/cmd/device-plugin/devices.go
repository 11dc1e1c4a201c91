package main

import (
	"fmt"
	"strconv"
	"strings"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

const idPrefix = "gpu-"

// deviceID names the i-th device. The kubelet treats IDs as opaque; the index suffix is what
// Allocate turns back into the GPU index a CUDA process selects by.
func deviceID(i int) string { return idPrefix + strconv.Itoa(i) }

// devices lists the advertised devices, all healthy: there is no hardware whose health could change.
func devices(count int) []*pluginapi.Device {
	devs := make([]*pluginapi.Device, count)
	for i := range devs {
		devs[i] = &pluginapi.Device{ID: deviceID(i), Health: pluginapi.Healthy}
	}
	return devs
}

// deviceIndex maps an ID back to its index, rejecting IDs this plugin never advertised: the
// kubelet only asks for advertised IDs, so anything else is a bug worth failing the pod for.
func deviceIndex(id string, count int) (int, error) {
	n, ok := strings.CutPrefix(id, idPrefix)
	i, err := strconv.Atoi(n)
	if !ok || err != nil || i < 0 || i >= count || deviceID(i) != id {
		return 0, fmt.Errorf("unknown device %q (have %s0..%s%d)", id, idPrefix, idPrefix, count-1)
	}
	return i, nil
}

// allocate answers the kubelet's Allocate for each container with the environment NVIDIA's device
// plugin sets: NVIDIA_VISIBLE_DEVICES, read by the NVIDIA container runtime hook where one is
// installed, and CUDA_VISIBLE_DEVICES, which is what selects the GPUs where none is (the local
// cluster's nodes run plain runc, so a container sees the host's GPU indices).
func allocate(req *pluginapi.AllocateRequest, count int) (*pluginapi.AllocateResponse, error) {
	resp := &pluginapi.AllocateResponse{}
	for _, creq := range req.GetContainerRequests() {
		indices := make([]string, 0, len(creq.GetDevicesIds()))
		for _, id := range creq.GetDevicesIds() {
			i, err := deviceIndex(id, count)
			if err != nil {
				return nil, err
			}
			indices = append(indices, strconv.Itoa(i))
		}
		visible := strings.Join(indices, ",")
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerAllocateResponse{
			Envs: map[string]string{"NVIDIA_VISIBLE_DEVICES": visible, "CUDA_VISIBLE_DEVICES": visible},
		})
	}
	return resp, nil
}
