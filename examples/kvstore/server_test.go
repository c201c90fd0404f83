package main

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func testConfig(t testing.TB, dir string) config {
	t.Helper()
	ports := freePorts(t, 3)
	return config{
		ID: 1, Peers: map[uint64]string{1: addrOf(ports[0])}, RESPAddr: addrOf(ports[1]), HTTPAddr: addrOf(ports[2]),
		DataDir: dir, Tick: 10 * time.Millisecond, RequestTimeout: 2 * time.Second, ClientTimeout: time.Second,
		MaxBulk: 1 << 20, MaxClients: 10, ClusterID: 1, SnapshotEntries: 100, Bootstrap: true,
	}
}

func addrOf(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// A node that cannot start (its RESP port is taken) reports which
// listener failed and releases its data directory, so that a retry works.
func TestNewServerFailsCleanlyOnBusyPort(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	busy, err := net.Listen("tcp", cfg.RESPAddr)
	require.NoError(t, err)
	_, err = newServer(cfg)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "RESP listener")
	require.NoError(t, busy.Close())

	s, err := newServer(cfg)
	require.NoError(t, err, "the data directory was unlocked and the ports released")
	defer s.Close()
	cl := dialRESP(t, cfg.RESPAddr)
	assert.Eventually(t, func() bool { v, _ := cl.do("SET", "k", "v"); return v == "OK" }, 5*time.Second, 10*time.Millisecond)
}

func TestParseCluster(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[uint64]string
		wantErr bool
	}{
		{name: "three", in: "1=a:1,2=b:2,3=c:3", want: map[uint64]string{1: "a:1", 2: "b:2", 3: "c:3"}},
		{name: "spaces", in: "1=a:1, 2=b:2", want: map[uint64]string{1: "a:1", 2: "b:2"}},
		{name: "zero id", in: "0=a:1", wantErr: true},
		{name: "no address", in: "1=", wantErr: true},
		{name: "no equals", in: "1", wantErr: true},
		{name: "duplicate", in: "1=a:1,1=b:2", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCluster(tt.in)
			if tt.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestHTTPBadInput(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	s, err := newServer(cfg)
	require.NoError(t, err)
	defer s.Close()
	base := "http://" + cfg.HTTPAddr
	do := func(method, path string, body string) int {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	require.Eventually(t, func() bool { return do("PUT", "/kv/ok", "v") == http.StatusOK }, 5*time.Second, 10*time.Millisecond)
	tests := []struct {
		name, method, path, body string
		want                     int
	}{
		{name: "value over --max-bulk", method: "PUT", path: "/kv/big", body: strings.Repeat("x", 1<<20+1), want: http.StatusRequestEntityTooLarge},
		{name: "unknown consistency", method: "GET", path: "/kv/ok?consistency=bogus", want: http.StatusBadRequest},
		{name: "watch index not a number", method: "GET", path: "/kv/ok?index=abc", want: http.StatusBadRequest},
		{name: "negative wait", method: "GET", path: "/kv/ok?index=1&wait=-1s", want: http.StatusBadRequest},
		{name: "bad ttl", method: "PUT", path: "/kv/ok?ttl=soon", body: "v", want: http.StatusBadRequest},
		{name: "member without id", method: "POST", path: "/members?addr=x:1", want: http.StatusBadRequest},
		{name: "member id not a number", method: "DELETE", path: "/members/abc", want: http.StatusBadRequest},
		{name: "transfer without target", method: "POST", path: "/transfer?to=x", want: http.StatusBadRequest},
		{name: "transfer to a non-member", method: "POST", path: "/transfer?to=9", want: http.StatusBadRequest},
		{name: "unknown path", method: "GET", path: "/nope", want: http.StatusNotFound},
		{name: "missing key", method: "GET", path: "/kv/missing", want: http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, do(tt.method, tt.path, tt.body))
		})
	}
	assert.Equal(t, http.StatusOK, do("GET", "/kv/ok", ""), "the server still serves")
}

// A server started and closed in-process leaves no goroutine behind, even
// with client connections open, a watch waiting and a pipelined write in
// flight.
func TestServerCloseLeavesNoGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := testConfig(t, t.TempDir())
	s, err := newServer(cfg)
	require.NoError(t, err)
	cl := dialRESP(t, cfg.RESPAddr)
	require.Eventually(t, func() bool { v, _ := cl.do("SET", "k", "v"); return v == "OK" }, 5*time.Second, 10*time.Millisecond)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		resp, err := http.Get("http://" + cfg.HTTPAddr + "/kv/k?index=1000000&wait=1m")
		if err == nil {
			_ = resp.Body.Close()
		}
	}()
	require.NoError(t, cl.send("SET", "k2", "v"))
	s.Close()
	<-watchDone
	http.DefaultClient.CloseIdleConnections()
}
