package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pkiFiles are the paths of everything the control plane needs for TLS and tokens. All of it is
// made fresh for each start, in the data directory, and lives only as long as the test run.
type pkiFiles struct {
	caCert, caKey        string // signs the serving cert and every client cert
	servingCert, servKey string // kube-apiserver's serving cert for 127.0.0.1 and localhost
	adminCert, adminKey  string // client cert of the admin user (group system:masters)
	saKey, saPub         string // service-account token signing key pair
	caPEM, adminCertPEM  []byte
	adminKeyPEM          []byte
}

type keyPair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// writePKI creates a CA, a serving cert, an admin client cert and the service-account signing
// key in dir.
func writePKI(dir string) (*pkiFiles, error) {
	p := &pkiFiles{
		caCert: filepath.Join(dir, "ca.crt"), caKey: filepath.Join(dir, "ca.key"),
		servingCert: filepath.Join(dir, "apiserver.crt"), servKey: filepath.Join(dir, "apiserver.key"),
		adminCert: filepath.Join(dir, "admin.crt"), adminKey: filepath.Join(dir, "admin.key"),
		saKey: filepath.Join(dir, "sa.key"), saPub: filepath.Join(dir, "sa.pub"),
	}

	ca, err := newCert(certRequest{subject: pkix.Name{CommonName: "clara-controlplane-ca"}, isCA: true})
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	serving, err := newCert(certRequest{
		subject: pkix.Name{CommonName: "kube-apiserver"},
		parent:  ca,
		dnsNames: []string{"localhost", "kubernetes", "kubernetes.default",
			"kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		ips:   []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")},
		usage: x509.ExtKeyUsageServerAuth,
	})
	if err != nil {
		return nil, fmt.Errorf("create serving cert: %w", err)
	}
	admin, err := newCert(certRequest{
		subject: pkix.Name{CommonName: "clara-admin", Organization: []string{"system:masters"}},
		parent:  ca,
		usage:   x509.ExtKeyUsageClientAuth,
	})
	if err != nil {
		return nil, fmt.Errorf("create admin cert: %w", err)
	}

	p.caPEM = certPEM(ca.cert)
	p.adminCertPEM = certPEM(admin.cert)
	if p.adminKeyPEM, err = keyPEM(admin.key); err != nil {
		return nil, err
	}
	files := []struct {
		path string
		kp   *keyPair
	}{{p.caCert, ca}, {p.servingCert, serving}, {p.adminCert, admin}}
	for _, f := range files {
		if err := os.WriteFile(f.path, certPEM(f.kp.cert), 0o600); err != nil {
			return nil, err
		}
	}
	keys := map[string]*ecdsa.PrivateKey{p.caKey: ca.key, p.servKey: serving.key, p.adminKey: admin.key}
	for path, key := range keys {
		data, err := keyPEM(key)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, err
		}
	}
	return p, writeServiceAccountKey(p.saKey, p.saPub)
}

type certRequest struct {
	subject  pkix.Name
	parent   *keyPair // nil for a self-signed CA
	isCA     bool
	dnsNames []string
	ips      []net.IP
	usage    x509.ExtKeyUsage
}

func newCert(req certRequest) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      req.subject,
		// Backdated so a clock a little behind still accepts it.
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(7 * 24 * time.Hour),
		DNSNames:    req.dnsNames,
		IPAddresses: req.ips,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	if req.isCA {
		tmpl.IsCA = true
		tmpl.BasicConstraintsValid = true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{req.usage}
	}
	parentCert, parentKey := tmpl, key
	if req.parent != nil {
		parentCert, parentKey = req.parent.cert, req.parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, &key.PublicKey, parentKey)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &keyPair{cert: cert, key: key}, nil
}

// writeServiceAccountKey writes an RSA key pair: kube-apiserver signs tokens with it and
// verifies them with the public half; the token controller signs legacy tokens with it too.
func writeServiceAccountKey(keyPath, pubPath string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	der := x509.MarshalPKCS1PrivateKey(key)
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	return os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600)
}

func certPEM(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

func keyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}
