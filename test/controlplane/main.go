// Command clara-controlplane is the test control plane of clara-operator: one process running
// embedded etcd, kube-apiserver, kube-controller-manager and kube-scheduler, built from the
// Kubernetes Go modules, plus a kubectl of the same release as a subcommand.
//
// It exists because no container engine runs on our build machines, so kind cannot start, and
// envtest's prebuilt binaries cannot be downloaded here (../shared/reference/k8s-operator.md §1-2).
// Unlike envtest it also runs the garbage collector, namespace and service-account controllers and
// the scheduler, so owner references, namespace deletion and GPU scheduling behave as on a cluster.
// Nodes are not its business: kwok, started beside it by the harness, plays the kubelet.
//
// Usage:
//
//	clara-controlplane serve --kubeconfig PATH [--data-dir DIR] [--port N]
//	clara-controlplane kubectl [kubectl args...]
package main

import (
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	// Multi-call: invoked through a link named kubectl, behave as kubectl.
	if filepath.Base(os.Args[0]) == "kubectl" {
		os.Exit(runKubectl(os.Args[1:]))
	}
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		os.Exit(runServe(os.Args[2:]))
	case "kubectl":
		os.Exit(runKubectl(os.Args[2:]))
	case "version":
		fmt.Println(kubernetesVersion())
	default:
		usage()
		os.Exit(2)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: clara-controlplane serve --kubeconfig PATH [--data-dir DIR] [--port N]")
	fmt.Fprintln(os.Stderr, "       clara-controlplane kubectl [args...]")
	fmt.Fprintln(os.Stderr, "       clara-controlplane version")
}
