package tcptransport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wire"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(tb testing.TB, name string) *testCA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(tb, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(tb, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(tb, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a certificate for 127.0.0.1, usable as server and client,
// carrying the given URIs.
func (ca *testCA) issue(tb testing.TB, name string, serial int64, uris ...*url.URL) tls.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(tb, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		URIs:         uris,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(tb, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// mutualTLS returns a config that presents cert and trusts only ca.
func (ca *testCA) mutualTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      ca.pool,
		ClientCAs:    ca.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
}

func TestMutualTLS(t *testing.T) {
	ca := newTestCA(t, "keel test CA")
	tc := newTestCluster(t, 2, func(id uint64, c *Config) {
		c.TLS = ca.mutualTLS(ca.issue(t, "node", int64(10+id), NodeURI(0xC1, id)))
		c.Insecure = false
	})
	got := tc.sendUntilDelivered(1, testApp(1, 2, 1))
	assert.Equal(t, uint64(1), got.Index)
	got = tc.sendUntilDelivered(2, testApp(2, 1, 2))
	assert.Equal(t, uint64(2), got.Index)
	snap := testSnapMsg(1, 2, testRandomData(3, 3<<20))
	tc.nodes[1].tr.Send([]raft.Message{snap})
	assert.Equal(t, snap.Snapshot.Data, tc.nodes[2].h.next(t).Snapshot.Data)
	assert.Equal(t, testSnapStatus{id: 2, status: raft.SnapshotFinish}, tc.nodes[1].h.waitSnapshot(t))

	rogueCA := newTestCA(t, "rogue CA")
	tests := []struct {
		name string
		dial func(addr string) (net.Conn, error)
	}{
		{
			name: "certificate from another CA",
			dial: func(addr string) (net.Conn, error) {
				cfg := &tls.Config{Certificates: []tls.Certificate{rogueCA.issue(t, "rogue", 2)}, RootCAs: ca.pool, MinVersion: tls.VersionTLS13}
				return tls.Dial("tcp", addr, cfg)
			},
		},
		{
			name: "no client certificate",
			dial: func(addr string) (net.Conn, error) {
				return tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS13})
			},
		},
		{
			name: "plain TCP",
			dial: func(addr string) (net.Conn, error) { return net.Dial("tcp", addr) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := tt.dial(tc.nodes[1].addr)
			if err != nil {
				return // refused during the TLS handshake: as good
			}
			defer conn.Close()
			// A valid handshake and message, which must not get through.
			_, _ = conn.Write(testFrame(t, &wire.Handshake{ClusterID: 0xC1, From: 2, To: 1, Stream: wire.StreamMessages, Version: wire.HandshakeVersion}))
			_, _ = conn.Write(testFrame(t, &raft.Message{Type: raft.MsgHeartbeat, From: 2, To: 1, Term: 1}))
			expectClosed(t, conn)
			waitLog(t, tc.nodes[1], "refused handshake")
			tc.nodes[1].h.expectNone(t, 50*time.Millisecond)
		})
	}

	// A transport whose certificate the others do not trust cannot reach them.
	h := newTestHandler()
	cfg := Config{ID: 2, ClusterID: 0xC1, ListenAddr: "127.0.0.1:0", Handler: h, Peers: map[uint64]string{1: tc.nodes[1].addr},
		TLS: rogueCA.mutualTLS(rogueCA.issue(t, "rogue node", 3, NodeURI(0xC1, 2)))}
	testFastConfig(&cfg)
	cfg.TLS.RootCAs = ca.pool // it trusts the cluster, the cluster does not trust it
	rogue, err := New(cfg)
	require.NoError(t, err)
	defer rogue.Close()
	rogue.Send([]raft.Message{testApp(2, 1, 3)})
	h.waitUnreachable(t, 1)
	tc.nodes[1].h.expectNone(t, 50*time.Millisecond)
}
