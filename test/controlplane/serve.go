package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/component-base/version"
)

// Every wait in serve has a deadline and names what it waited for: the harness relies on the
// process either printing its ready line or exiting with a reason, never hanging.
const (
	etcdReadyTimeout      = 60 * time.Second
	apiserverReadyTimeout = 120 * time.Second
	controllersTimeout    = 60 * time.Second
	shutdownTimeout       = 15 * time.Second
)

type serveOptions struct {
	kubeconfig string
	dataDir    string
	port       int
	// exitWithParent stops the control plane when the process that started it goes away, so a
	// test runner that crashes leaves no apiserver behind.
	exitWithParent bool
	// kwokBinary and kwokConfig, when set, make the control plane run kwok beside itself.
	kwokBinary, kwokConfig string
}

func kubernetesVersion() string {
	return version.Get().GitVersion
}

func runServe(args []string) int {
	opts, err := parseServeFlags(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "clara-controlplane:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if opts.exitWithParent {
		ctx = cancelWhenOrphaned(ctx)
	}

	if err := serve(ctx, opts); err != nil {
		fmt.Fprintln(os.Stderr, "clara-controlplane: error:", err)
		return 1
	}
	return 0
}

// cancelWhenOrphaned returns a context that ends when the parent process exits (the process is
// then re-parented, so its parent pid changes).
func cancelWhenOrphaned(ctx context.Context) context.Context {
	parent := os.Getppid()
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		for ctx.Err() == nil {
			if os.Getppid() != parent {
				fmt.Fprintln(os.Stderr, "clara-controlplane: parent process exited; stopping")
				cancel()
				return
			}
			time.Sleep(time.Second)
		}
	}()
	return ctx
}

func parseServeFlags(args []string) (serveOptions, error) {
	var opts serveOptions
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&opts.kubeconfig, "kubeconfig", "", "where to write the admin kubeconfig (required)")
	fs.StringVar(&opts.dataDir, "data-dir", "", "state directory (default: a new temporary directory, removed on exit)")
	fs.IntVar(&opts.port, "port", 0, "kube-apiserver secure port on 127.0.0.1 (default: a free port)")
	fs.BoolVar(&opts.exitWithParent, "exit-with-parent", false, "stop when the parent process exits")
	fs.StringVar(&opts.kwokBinary, "kwok", "", "path of a kwok binary to run against the control plane")
	fs.StringVar(&opts.kwokConfig, "kwok-config", "", "kwok --config file (its Stages); required with --kwok")
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	if opts.kubeconfig == "" {
		return opts, errors.New("--kubeconfig is required: the path where the admin kubeconfig is written")
	}
	if (opts.kwokBinary == "") != (opts.kwokConfig == "") {
		return opts, errors.New("--kwok and --kwok-config go together")
	}
	return opts, nil
}

// serve runs the control plane until ctx is cancelled, then stops every component and removes
// the state it made.
func serve(ctx context.Context, opts serveOptions) error {
	dataDir := opts.dataDir
	if dataDir == "" {
		dir, err := os.MkdirTemp("", "clara-controlplane-")
		if err != nil {
			return err
		}
		dataDir = dir
		defer os.RemoveAll(dir)
	}
	pkiDir := filepath.Join(dataDir, "pki")
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		return err
	}
	pki, err := writePKI(pkiDir)
	if err != nil {
		return err
	}

	etcd, err := startEtcd(filepath.Join(dataDir, "etcd"))
	if err != nil {
		return err
	}
	defer etcd.Close()

	port := opts.port
	if port == 0 {
		if port, err = freePort(); err != nil {
			return err
		}
	}
	server := "https://127.0.0.1:" + strconv.Itoa(port)

	// Components run until runCtx ends; done collects each one's return.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan componentExit, 4)
	running := 1
	go func() {
		done <- componentExit{"kube-apiserver", runAPIServer(runCtx, apiserverConfig{
			port: port, etcdURL: etcd.clientURL, pki: pki, dataDir: dataDir,
		})}
	}()

	restConfig := adminRESTConfig(server, pki)
	if err := waitAPIServerReady(ctx, restConfig, done); err != nil {
		return err
	}
	if err := writeKubeconfig(opts.kubeconfig, server, pki); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", opts.kubeconfig, err)
	}

	go func() {
		done <- componentExit{"kube-controller-manager", runControllerManager(runCtx, opts.kubeconfig, pki)}
	}()
	go func() {
		done <- componentExit{"kube-scheduler", runScheduler(runCtx, opts.kubeconfig)}
	}()
	running += 2
	if err := waitControllersReady(ctx, restConfig, done); err != nil {
		return err
	}
	if opts.kwokBinary != "" {
		kwok, err := startKwok(runCtx, opts.kwokBinary, opts.kwokConfig, opts.kubeconfig)
		if err != nil {
			return err
		}
		go func() { done <- componentExit{"kwok", kwok.Wait()} }()
		running++
	}

	fmt.Printf("READY server=%s kubeconfig=%s version=%s pid=%d\n",
		server, opts.kubeconfig, kubernetesVersion(), os.Getpid())

	select {
	case <-ctx.Done():
	case exit := <-done:
		return fmt.Errorf("%s stopped unexpectedly: %v", exit.name, exit.err)
	}
	return shutdown(cancel, done, running)
}

type componentExit struct {
	name string
	err  error
}

// shutdown cancels the components and waits, bounded, for them to return. The apiserver drains
// in-flight requests; a stuck component does not hold the process past shutdownTimeout.
func shutdown(cancel context.CancelFunc, done <-chan componentExit, running int) error {
	cancel()
	deadline := time.After(shutdownTimeout)
	for range running {
		select {
		case <-done:
		case <-deadline:
			fmt.Fprintln(os.Stderr, "clara-controlplane: components still stopping after", shutdownTimeout, "; exiting")
			return nil
		}
	}
	return nil
}

func waitAPIServerReady(ctx context.Context, cfg *rest.Config, done <-chan componentExit) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	return poll(ctx, pollOptions{
		what: "kube-apiserver /readyz", timeout: apiserverReadyTimeout, done: done,
		check: func(ctx context.Context) error {
			_, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
			return err
		},
	})
}

// waitControllersReady waits until the service-account controller has made the default
// ServiceAccount, which proves the controller manager is connected and working: with the
// ServiceAccount admission plugin on, no pod can be created before it exists.
func waitControllersReady(ctx context.Context, cfg *rest.Config, done <-chan componentExit) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	return poll(ctx, pollOptions{
		what: "the default ServiceAccount (kube-controller-manager)", timeout: controllersTimeout, done: done,
		check: func(ctx context.Context) error {
			_, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", getOptions)
			return err
		},
	})
}

type pollOptions struct {
	what    string
	timeout time.Duration
	done    <-chan componentExit
	check   func(context.Context) error
}

func poll(ctx context.Context, opts pollOptions) error {
	deadline := time.Now().Add(opts.timeout)
	var last error
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = opts.check(attemptCtx)
		cancel()
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s: %v", opts.timeout, opts.what, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped while waiting for %s", opts.what)
		case exit := <-opts.done:
			return fmt.Errorf("%s exited while waiting for %s: %v", exit.name, opts.what, exit.err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func adminRESTConfig(server string, pki *pkiFiles) *rest.Config {
	return &rest.Config{
		Host: server,
		TLSClientConfig: rest.TLSClientConfig{
			CAData: pki.caPEM, CertData: pki.adminCertPEM, KeyData: pki.adminKeyPEM,
		},
		QPS: 100, Burst: 200,
	}
}

func writeKubeconfig(path, server string, pki *pkiFiles) error {
	const name = "clara-controlplane"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: pki.caPEM}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{
		ClientCertificateData: pki.adminCertPEM, ClientKeyData: pki.adminKeyPEM,
	}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: "default"}
	cfg.CurrentContext = name
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return clientcmd.WriteToFile(*cfg, path)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
