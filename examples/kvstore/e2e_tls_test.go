package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft/tcptransport"
)

// writeTestPKI writes a CA and, for nodes 1..n of cluster 1, a node
// certificate for 127.0.0.1 (server and client use, with the node's URI
// SAN) signed by it, as node<id>.pem and node<id>.key. It returns the
// pattern of their paths (with {id} for the node ID), the CA's path and the
// CA pool.
func writeTestPKI(t testing.TB, n int) (certFile, keyFile, caFile string, pool *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kvstore test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600))
		return p
	}
	for id := 1; id <= n; id++ {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(1 + id)), Subject: pkix.Name{CommonName: fmt.Sprintf("kvstore node %d", id)},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			URIs:        []*url.URL{tcptransport.NodeURI(1, uint64(id))},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		require.NoError(t, err)
		keyDER, err := x509.MarshalECPrivateKey(key)
		require.NoError(t, err)
		write(fmt.Sprintf("node%d.pem", id), "CERTIFICATE", der)
		write(fmt.Sprintf("node%d.key", id), "EC PRIVATE KEY", keyDER)
	}
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return filepath.Join(dir, "node{id}.pem"), filepath.Join(dir, "node{id}.key"),
		write("ca.pem", "CERTIFICATE", caDER), pool
}

// TestE2ETLS runs a cluster with TLS on every listener and mutual TLS
// between nodes: writes at a follower are forwarded over the mutual-TLS
// raft transport.
func TestE2ETLS(t *testing.T) {
	e2eBinary(t)
	cert, key, ca, pool := writeTestPKI(t, 3)
	c := newE2ECluster(t, 3, "--tls-cert", cert, "--tls-key", key, "--tls-ca", ca)
	c.tls = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	lead := c.waitLeader(1, 2, 3)
	follower := lead%3 + 1
	cl := dialRESPTLS(t, c.nodes[follower].resp, c.tls)
	assert.Equal(t, "OK", cl.must("SET", "secure", "yes"))
	other := dialRESPTLS(t, c.nodes[follower%3+1].resp, c.tls)
	assert.Equal(t, []byte("yes"), other.must("GET", "secure"))

	// A plaintext client gets no service.
	plain, err := net.DialTimeout("tcp", c.nodes[1].resp, time.Second)
	require.NoError(t, err)
	defer plain.Close()
	_, _ = plain.Write(encodeRESP("PING"))
	_ = plain.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 16)
	n, _ := plain.Read(buf)
	assert.NotEqual(t, "+PONG\r\n", string(buf[:n]))
}
