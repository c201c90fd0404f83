package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestPeerSecretFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	got, err := readPeerSecret(write("ok", "0123456789abcdef0123\n"))
	require.NoError(t, err)
	assert.Equal(t, []byte("0123456789abcdef0123"), got, "the trailing newline is not part of it")
	_, err = readPeerSecret(write("short", "tooshort\n"))
	assert.ErrorContains(t, err, "at least 16")
	_, err = readPeerSecret(filepath.Join(dir, "missing"))
	assert.Error(t, err)
	got, err = readPeerSecret("")
	assert.NoError(t, err)
	assert.Nil(t, got)
}

func TestInsecureRaftPortWarnsBeyondLoopback(t *testing.T) {
	tests := []struct {
		addr, auth string
		warn       bool
	}{
		{addr: "127.0.0.1:7001"},
		{addr: "localhost:7001"},
		{addr: "[::1]:7001"},
		{addr: "127.0.0.1:7001", auth: "pw", warn: true},
		{addr: "0.0.0.0:7001", warn: true},
		{addr: ":7001", warn: true},
		{addr: "10.0.0.1:7001", warn: true},
	}
	for _, tt := range tests {
		core, logs := observer.New(zap.WarnLevel)
		cfg := config{ID: 1, Peers: map[uint64]string{1: tt.addr}, Auth: tt.auth}
		assert.True(t, peerAuthInsecure(cfg, nil, zap.New(core)))
		if tt.warn {
			require.Equal(t, 1, logs.Len(), tt.addr)
			assert.True(t, strings.HasPrefix(logs.All()[0].Message, "INSECURE"))
		} else {
			assert.Zero(t, logs.Len(), tt.addr)
		}
		cfg.PeerSecret = []byte("0123456789abcdef")
		assert.False(t, peerAuthInsecure(cfg, nil, zap.New(core)))
	}
}

// TestE2EPeerSecret runs a cluster whose raft ports authenticate each
// other with a shared secret.
func TestE2EPeerSecret(t *testing.T) {
	e2eBinary(t)
	secret := filepath.Join(t.TempDir(), "peer-secret")
	require.NoError(t, os.WriteFile(secret, []byte("e2e shared peer secret, 32 bytes\n"), 0o600))
	c := newE2ECluster(t, 3, "--peer-secret-file", secret)
	lead := c.waitLeader(1, 2, 3)
	follower := lead%3 + 1
	assert.Equal(t, "OK", dialRESP(t, c.nodes[follower].resp).must("SET", "k", "v"))
	assert.Equal(t, []byte("v"), dialRESP(t, c.nodes[follower%3+1].resp).must("GET", "k"))
}

func TestNodeCertificateMustNameTheNode(t *testing.T) {
	cert, key, _, _ := writeTestPKI(t, 2)
	c1, k1 := strings.ReplaceAll(cert, "{id}", "1"), strings.ReplaceAll(key, "{id}", "1")
	assert.NoError(t, checkNodeCert(c1, k1, 1, 1))
	assert.ErrorContains(t, checkNodeCert(c1, k1, 1, 2), "keel://cluster/1/node/2")
	assert.ErrorContains(t, checkNodeCert(c1, k1, 5, 1), "keel://cluster/5/node/1")
	assert.NoError(t, checkNodeCert("", "", 1, 1), "no TLS, nothing to check")
}
