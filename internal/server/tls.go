package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// aeadSuites are the TLS 1.2 cipher suites pglink's listeners offer: ECDHE key exchange with
// AES-GCM or ChaCha20-Poly1305 only (authenticated encryption, forward secrecy), for ECDSA (the
// local CA's) and RSA certificates (an operator's). TLS 1.3 suites are all AEAD; Go does not
// let them be configured.
var aeadSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// serverTLS returns a listener's TLS configuration: TLS 1.2 or later, AEAD cipher suites only.
func serverTLS() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: aeadSuites}
}

// apiTLS returns the HTTPS API's TLS configuration for cert.
func apiTLS(cert tls.Certificate) *tls.Config {
	c := serverTLS()
	c.Certificates = []tls.Certificate{cert}
	return c
}

// ensureTLS returns the certificate for the HTTPS listener: the operator's, if given, or one
// signed by a local CA that is made once under dir/tls. The server certificate is reissued
// when it does not cover localhost, 127.0.0.1 and hosts. It returns the server certificate, the CA (zero with an
// operator's certificate) and the certificate file clients should trust.
func ensureTLS(dir string, hosts []string, certFile, keyFile string) (srv, ca tls.Certificate, caFile string, err error) {
	if certFile != "" || keyFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return c, ca, "", fmt.Errorf("load TLS certificate: %w", err)
		}
		return c, ca, certFile, nil
	}
	tdir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		return srv, ca, "", fmt.Errorf("create %s: %w", tdir, err)
	}
	caFile = filepath.Join(tdir, "ca.pem")
	caKeyFile := filepath.Join(tdir, "ca-key.pem")
	srvFile, srvKeyFile := filepath.Join(tdir, "server.pem"), filepath.Join(tdir, "server-key.pem")
	ca, err = tls.LoadX509KeyPair(caFile, caKeyFile)
	if errors.Is(err, os.ErrNotExist) {
		ca, err = newCA(caFile, caKeyFile)
	}
	if err != nil {
		return srv, ca, "", fmt.Errorf("local CA: %w", err)
	}
	names := append([]string{"localhost", "127.0.0.1"}, hosts...)
	if srv, err = tls.LoadX509KeyPair(srvFile, srvKeyFile); err == nil && covers(srv, names) && signedBy(srv, ca) {
		return srv, ca, caFile, nil
	}
	srv, err = newServerCert(ca, names, srvFile, srvKeyFile)
	if err != nil {
		return srv, ca, "", fmt.Errorf("server certificate: %w", err)
	}
	return srv, ca, caFile, nil
}

func covers(c tls.Certificate, names []string) bool {
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil || time.Until(leaf.NotAfter) < 30*24*time.Hour {
		return false
	}
	for _, n := range names {
		if leaf.VerifyHostname(n) != nil {
			return false
		}
	}
	return true
}

// signedBy reports whether c's leaf is signed by ca: false once the CA was replaced (by the
// store's, see shareFirstStart).
func signedBy(c, ca tls.Certificate) bool {
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return false
	}
	caCert, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		return false
	}
	return leaf.CheckSignatureFrom(caCert) == nil
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func newCA(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, keyPEM, err := makeCA()
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.LoadX509KeyPair(certFile, keyFile)
}

// makeCA returns a new local CA's certificate and private key, in PEM.
func makeCA() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "pglink local CA", Organization: []string{"pglink"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

func newServerCert(ca tls.Certificate, names []string, certFile, keyFile string) (tls.Certificate, error) {
	cert, keyDER, err := issue(ca, names, 2)
	if err != nil {
		return cert, err
	}
	if err := writePEM(keyFile, "EC PRIVATE KEY", keyDER, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Certificate[0]})...)
	if err := os.WriteFile(certFile, chain, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.LoadX509KeyPair(certFile, keyFile)
}

// issue makes a server certificate for names (IP addresses or DNS names) signed by ca, valid
// for years, and returns it with its private key in DER.
func issue(ca tls.Certificate, names []string, years int) (tls.Certificate, []byte, error) {
	caCert, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: names[len(names)-1], Organization: []string{"pglink"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(years, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range slices.Compact(names) {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if n != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, ca.PrivateKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Certificate[0]}, PrivateKey: key}, kder, nil
}

// endpointCerts issues, on first use and then from a cache, a certificate for each data-plane
// address a client connects to, so that sslmode=verify-full works against the pglink CA.
type endpointCerts struct {
	ca       tls.Certificate
	fallback tls.Certificate
	mu       sync.Mutex
	byIP     map[string]*tls.Certificate // guarded by mu
}

// GetCertificate implements tls.Config.GetCertificate.
func (e *endpointCerts) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if e.ca.PrivateKey == nil || hello.Conn == nil {
		return &e.fallback, nil
	}
	host, _, err := net.SplitHostPort(hello.Conn.LocalAddr().String())
	if err != nil {
		return &e.fallback, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.byIP[host]; c != nil {
		return c, nil
	}
	names := []string{"localhost", "*.postgres.database.azure.com", "*.privatelink.postgres.database.azure.com", host}
	c, _, err := issue(e.ca, names, 1)
	if err != nil {
		return nil, err
	}
	e.byIP[host] = &c
	return &c, nil
}
