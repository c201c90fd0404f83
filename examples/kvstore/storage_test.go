package main

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// A node with an empty data directory starts only with --bootstrap or
// --join, and says so; once it has data, it restarts without either.
func TestStartFlagsAndEmptyStorage(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--id", "1", "--cluster", "1=127.0.0.1:0", "--data", dir,
		"--resp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--log-level", "error"}
	err := run(args, io.Discard, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "holds no data")
	assert.Contains(t, err.Error(), "--bootstrap")
	assert.Contains(t, err.Error(), "--join")
	err = run(append(args, "--bootstrap", "--join"), io.Discard, io.Discard)
	require.ErrorContains(t, err, "exclude each other")

	cfg := testConfig(t, dir)
	s, err := newServer(cfg) // --bootstrap
	require.NoError(t, err)
	cl := dialRESP(t, cfg.RESPAddr)
	require.Eventually(t, func() bool { v, _ := cl.do("SET", "k", "v"); return v == "OK" }, 5*time.Second, 10*time.Millisecond)
	inc := s.wal.Identity().Incarnation
	s.Close()

	cfg.Bootstrap = false
	s, err = newServer(cfg)
	require.NoError(t, err, "a node with data restarts without --bootstrap")
	assert.Equal(t, inc, s.wal.Identity().Incarnation)
	st, err := s.status(s.base)
	require.NoError(t, err)
	assert.Equal(t, inc, st.Incarnation)
	s.Close()
}

// A data directory of another node or cluster is refused; --recover marks
// the storage recovering.
func TestStorageIdentityAndRecover(t *testing.T) {
	dir := t.TempDir()
	cfg := config{ID: 1, ClusterID: 7, DataDir: dir, Bootstrap: true}
	l, empty, err := openStorage(cfg, zap.NewNop())
	require.NoError(t, err)
	assert.True(t, empty)
	require.NoError(t, l.Close())

	for _, other := range []config{{ID: 2, ClusterID: 7, DataDir: dir}, {ID: 1, ClusterID: 8, DataDir: dir}} {
		_, _, err := openStorage(other, zap.NewNop())
		require.Error(t, err)
		assert.Contains(t, err.Error(), "is not this node's")
	}

	// Give the log some state, then restore it with --recover.
	l, _, err = openStorage(cfg, zap.NewNop())
	require.NoError(t, err)
	hs := l.HardState()
	hs.Term, hs.Vote = 3, 1
	require.NoError(t, l.SetHardState(hs))
	require.NoError(t, l.Close())
	cfg.Bootstrap, cfg.Recover = false, true
	l, empty, err = openStorage(cfg, zap.NewNop())
	require.NoError(t, err)
	assert.False(t, empty)
	assert.True(t, l.HardState().Recovering)
	assert.Equal(t, uint64(3), l.HardState().Term)
	require.NoError(t, l.Close())
}
