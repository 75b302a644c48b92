package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// kwokAnnotationSelector picks the nodes kwok plays the kubelet for; the harness puts this
// annotation on the fake GPU nodes it creates, so kwok never touches a real node.
const kwokAnnotationSelector = "kwok.x-k8s.io/node=fake"

// startKwok runs kwok against the control plane as a child process. The child gets SIGTERM when
// this process dies (Pdeathsig), so no kwok outlives the control plane it was talking to.
func startKwok(ctx context.Context, binary, config, kubeconfig string) (*exec.Cmd, error) {
	cmd := exec.CommandContext(ctx, binary,
		"--kubeconfig="+kubeconfig,
		"--config="+config,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector="+kwokAnnotationSelector,
		"--cidr=10.244.0.0/16",
		"--node-ip=10.1.0.1",
	)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start kwok %s: %w", binary, err)
	}
	return cmd, nil
}
