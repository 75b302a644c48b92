package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/server/v3/embed"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	cliflag "k8s.io/component-base/cli/flag"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apiserveroptions "k8s.io/kubernetes/cmd/kube-apiserver/app/options"
	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kcmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
	schedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	scheduleroptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
)

var getOptions = metav1.GetOptions{}

type etcdServer struct {
	*embed.Etcd
	clientURL string
}

// startEtcd starts an in-process etcd with fsync off: the data is thrown away with the test run,
// so durability buys nothing and fsync is most of a small cluster's write latency.
func startEtcd(dir string) (*etcdServer, error) {
	clientPort, err := freePort()
	if err != nil {
		return nil, err
	}
	peerPort, err := freePort()
	if err != nil {
		return nil, err
	}
	clientURL := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(clientPort)}
	peerURL := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(peerPort)}

	cfg := embed.NewConfig()
	cfg.Name = "clara-controlplane"
	cfg.Dir = dir
	cfg.UnsafeNoFsync = true
	cfg.LogLevel = "error"
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(etcdReadyTimeout):
		e.Close()
		return nil, fmt.Errorf("timed out after %s waiting for embedded etcd to be ready", etcdReadyTimeout)
	}
	return &etcdServer{Etcd: e, clientURL: clientURL.String()}, nil
}

type apiserverConfig struct {
	port    int
	etcdURL string
	pki     *pkiFiles
	dataDir string
}

// runAPIServer runs kube-apiserver until ctx ends. Flags are the real binary's, parsed into its
// own options, so the configuration reads the same as a kube-apiserver command line.
func runAPIServer(ctx context.Context, c apiserverConfig) error {
	s := apiserveroptions.NewServerRunOptions()
	args := []string{
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.port),
		"--tls-cert-file=" + c.pki.servingCert,
		"--tls-private-key-file=" + c.pki.servKey,
		"--client-ca-file=" + c.pki.caCert,
		"--etcd-servers=" + c.etcdURL,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + c.pki.saPub,
		"--service-account-signing-key-file=" + c.pki.saKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--allow-privileged=true",
		// No kubelet answers on the node addresses, so the "kubernetes" Service gets no endpoints.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		"--cert-dir=" + c.dataDir + "/apiserver-certs",
	}
	if err := parseInto(s.Flags(), "kube-apiserver", args); err != nil {
		return err
	}
	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	completed, err := s.Complete(ctx)
	if err != nil {
		return err
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return utilerrors.NewAggregate(errs)
	}
	return apiserverapp.Run(ctx, completed)
}

// controllers are the kube-controller-manager loops the tests and the operator rely on: owner
// references (garbage collector), namespace deletion, service accounts and their tokens, the
// root CA ConfigMap mounted into pods, and Deployments/ReplicaSets for installing the operator
// itself. The node-lifecycle controller lifts the not-ready taint that admission puts on every new
// node once kwok reports it Ready, and taints it again if kwok stops heartbeating.
var controllers = []string{
	"node-lifecycle-controller",
	"garbage-collector-controller",
	"namespace-controller",
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"root-ca-certificate-publisher-controller",
	"deployment-controller",
	"replicaset-controller",
	"pod-garbage-collector-controller",
	"job-controller",
	"ttl-after-finished-controller",
}

func runControllerManager(ctx context.Context, kubeconfig string, pki *pkiFiles) error {
	s, err := kcmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return err
	}
	all, disabled, aliases := kcmapp.KnownControllers(), kcmapp.ControllersDisabledByDefault(), kcmapp.ControllerAliases()
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--service-account-private-key-file=" + pki.saKey,
		"--root-ca-file=" + pki.caCert,
		"--use-service-account-credentials=false",
		"--controllers=" + joinComma(controllers),
		"--profiling=false",
	}
	fss := s.Flags(all, disabled, aliases)
	if err := parseInto(fss, "kube-controller-manager", args); err != nil {
		return err
	}
	s.ParsedFlags = &fss
	c, err := s.Config(ctx, all, disabled, aliases)
	if err != nil {
		return err
	}
	return kcmapp.Run(ctx, c.Complete())
}

func runScheduler(ctx context.Context, kubeconfig string) error {
	opts := scheduleroptions.NewOptions()
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--profiling=false",
	}
	if err := parseInto(*opts.Flags, "kube-scheduler", args); err != nil {
		return err
	}
	cc, sched, err := schedulerapp.Setup(ctx, opts)
	if err != nil {
		return err
	}
	return schedulerapp.Run(ctx, cc, sched)
}

// parseInto parses args into a component's named flag sets, the way its own command does.
func parseInto(fss cliflag.NamedFlagSets, component string, args []string) error {
	fs := pflag.NewFlagSet(component, pflag.ContinueOnError)
	for _, f := range fss.FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%s flags: %w", component, err)
	}
	return nil
}

func joinComma(items []string) string {
	out := ""
	for i, item := range items {
		if i > 0 {
			out += ","
		}
		out += item
	}
	return out
}
