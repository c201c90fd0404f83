package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The end-to-end tests build the kvstore binary once and run each node as
// an OS process on loopback ports. -short skips them.

var (
	e2eBuildOnce sync.Once
	e2eBin       string
	e2eBuildErr  error
	e2eBuildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if e2eBuildDir != "" {
		_ = os.RemoveAll(e2eBuildDir)
	}
	os.Exit(code)
}

func e2eBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	e2eBuildOnce.Do(func() {
		e2eBuildDir, e2eBuildErr = os.MkdirTemp("", "kvstore-e2e-bin")
		if e2eBuildErr != nil {
			return
		}
		e2eBin = filepath.Join(e2eBuildDir, "kvstore")
		args := []string{"build", "-o", e2eBin}
		if os.Getenv("KEEL_MUTATIONS") != "" {
			args = append(args, "-tags", "keelmutations")
		}
		if e2eRace {
			args = append(args, "-race") // the nodes run under the race detector too
		}
		out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
		if err != nil {
			e2eBuildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, e2eBuildErr)
	return e2eBin
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return ports
}

type e2eNode struct {
	id               uint64
	raft, resp, http string
	dir, logPath     string
	cmd              *exec.Cmd
	done             chan struct{}
	extra            []string
	clusterFlag      string
	// bootstrap and join add --bootstrap or --join to the node's usual
	// command line: the members the cluster started with bootstrap.
	bootstrap, join bool
}

type e2eCluster struct {
	t     testing.TB
	bin   string
	auth  string
	tls   *tls.Config // the clients' TLS configuration, when the nodes use TLS
	nodes map[uint64]*e2eNode
}

// newE2ECluster starts n nodes with the given extra flags.
func newE2ECluster(t testing.TB, n int, extra ...string) *e2eCluster {
	t.Helper()
	c := &e2eCluster{t: t, bin: e2eBinary(t), nodes: map[uint64]*e2eNode{}}
	for i, a := range extra {
		if a == "--auth" {
			c.auth = extra[i+1]
		}
	}
	ports := freePorts(t, 3*n)
	var parts []string
	for i := 1; i <= n; i++ {
		nd := &e2eNode{
			id:    uint64(i),
			raft:  fmt.Sprintf("127.0.0.1:%d", ports[3*(i-1)]),
			resp:  fmt.Sprintf("127.0.0.1:%d", ports[3*(i-1)+1]),
			http:  fmt.Sprintf("127.0.0.1:%d", ports[3*(i-1)+2]),
			dir:   filepath.Join(t.TempDir(), fmt.Sprintf("node%d", i)),
			extra: extra, bootstrap: true,
		}
		c.nodes[nd.id] = nd
		parts = append(parts, fmt.Sprintf("%d=%s", i, nd.raft))
	}
	for _, nd := range c.nodes {
		nd.clusterFlag = strings.Join(parts, ",")
	}
	for i := 1; i <= n; i++ {
		c.start(uint64(i))
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			c.kill(nd.id)
		}
		for id, nd := range c.nodes {
			if b, _ := os.ReadFile(nd.logPath); strings.Contains(string(b), "DATA RACE") {
				t.Errorf("node %d reported a data race", id)
			}
		}
		if t.Failed() {
			for id, nd := range c.nodes {
				b, _ := os.ReadFile(nd.logPath)
				if len(b) > 4000 {
					b = b[len(b)-4000:]
				}
				t.Logf("node %d log tail:\n%s", id, b)
			}
		}
	})
	return c
}

// addNode defines node id (not started) with its own ports, joining.
func (c *e2eCluster) addNode(id uint64) *e2eNode {
	ports := freePorts(c.t, 3)
	nd := &e2eNode{
		id: id, raft: fmt.Sprintf("127.0.0.1:%d", ports[0]), resp: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		http: fmt.Sprintf("127.0.0.1:%d", ports[2]), dir: filepath.Join(c.t.TempDir(), fmt.Sprintf("node%d", id)),
		join: true,
	}
	var parts []string
	for _, o := range c.nodes {
		nd.extra = o.extra
		parts = append(parts, fmt.Sprintf("%d=%s", o.id, o.raft))
	}
	parts = append(parts, fmt.Sprintf("%d=%s", id, nd.raft))
	nd.clusterFlag = strings.Join(parts, ",")
	c.nodes[id] = nd
	return nd
}

// start starts node id with its usual command line plus more, and waits
// until it serves HTTP.
func (c *e2eCluster) start(id uint64, more ...string) {
	c.t.Helper()
	nd := c.nodes[id]
	c.launch(id, more...)
	// Wait until it serves HTTP.
	// A -race binary that salvages its log on a loaded machine starts slowly.
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", nd.http, 100*time.Millisecond)
		if err == nil {
			_ = conn.Close()
			return
		}
		select {
		case <-nd.done:
			b, _ := os.ReadFile(nd.logPath)
			c.t.Fatalf("node %d exited at start:\n%s", id, b)
		default:
		}
		require.True(c.t, time.Now().Before(deadline), "node %d does not serve HTTP", id)
		time.Sleep(20 * time.Millisecond)
	}
}

// launch starts node id's process with its usual command line plus more.
func (c *e2eCluster) launch(id uint64, more ...string) {
	c.t.Helper()
	nd := c.nodes[id]
	args := []string{"--id", strconv.FormatUint(id, 10), "--cluster", nd.clusterFlag,
		"--resp", nd.resp, "--http", nd.http, "--data", nd.dir,
		"--tick", "20ms", "--request-timeout", "2s", "--log-level", "info"}
	if nd.join {
		args = append(args, "--join")
	}
	if nd.bootstrap {
		args = append(args, "--bootstrap")
	}
	for _, a := range append(slices.Clone(nd.extra), more...) { // {id} in a flag stands for the node's ID
		args = append(args, strings.ReplaceAll(a, "{id}", strconv.FormatUint(id, 10)))
	}
	nd.cmd = exec.Command(c.bin, args...)
	nd.logPath = filepath.Join(filepath.Dir(nd.dir), fmt.Sprintf("node%d.log", id))
	f, err := os.OpenFile(nd.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(c.t, err)
	nd.cmd.Stdout, nd.cmd.Stderr = f, f
	require.NoError(c.t, nd.cmd.Start())
	_ = f.Close()
	nd.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(nd.cmd, nd.done)
}

// waitExit waits up to d for node id's process to exit on its own and
// returns its exit code.
func (c *e2eCluster) waitExit(id uint64, d time.Duration) int {
	c.t.Helper()
	nd := c.nodes[id]
	require.NotNil(c.t, nd.cmd, "node %d is not running", id)
	select {
	case <-nd.done:
	case <-time.After(d):
		c.t.Fatalf("node %d did not exit within %v", id, d)
	}
	code := nd.cmd.ProcessState.ExitCode()
	nd.cmd = nil
	return code
}

// kill sends SIGKILL and waits for the process to end.
func (c *e2eCluster) kill(id uint64) { c.signal(id, syscall.SIGKILL) }

// stop sends SIGTERM and waits for a clean exit.
func (c *e2eCluster) stop(id uint64) { c.signal(id, syscall.SIGTERM) }

func (c *e2eCluster) signal(id uint64, sig syscall.Signal) {
	nd := c.nodes[id]
	if nd.cmd == nil {
		return
	}
	_ = nd.cmd.Process.Signal(sig)
	select {
	case <-nd.done:
	case <-time.After(10 * time.Second):
		_ = nd.cmd.Process.Kill()
		<-nd.done
		c.t.Errorf("node %d did not exit within 10s of %v", id, sig)
	}
	if sig == syscall.SIGTERM && nd.cmd.ProcessState != nil && !nd.cmd.ProcessState.Success() {
		c.t.Errorf("node %d exited with %v after SIGTERM", id, nd.cmd.ProcessState)
	}
	nd.cmd = nil
}

// httpDo sends an HTTP request to node id and decodes a JSON reply into
// out (if not nil); it returns the status and headers.
func (c *e2eCluster) httpDo(id uint64, method, path string, body string, out any) (int, http.Header) {
	c.t.Helper()
	req, err := http.NewRequest(method, "http://"+c.nodes[id].http+path, strings.NewReader(body))
	require.NoError(c.t, err)
	if c.auth != "" {
		req.Header.Set("Authorization", "Bearer "+c.auth)
	}
	cl := &http.Client{Timeout: 70 * time.Second}
	if c.tls != nil {
		req.URL.Scheme = "https"
		cl.Transport = &http.Transport{TLSClientConfig: c.tls}
	}
	resp, err := cl.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	if out != nil && len(b) > 0 {
		require.NoError(c.t, json.Unmarshal(b, out), "body %s", b)
	}
	return resp.StatusCode, resp.Header
}

func (c *e2eCluster) status(id uint64) nodeStatus {
	c.t.Helper()
	var st nodeStatus
	code, _ := c.httpDo(id, "GET", "/status", "", &st)
	require.Equal(c.t, http.StatusOK, code)
	return st
}

// waitLeader waits until every running node among ids agrees on a leader
// (which is running) and returns it.
func (c *e2eCluster) waitLeader(ids ...uint64) uint64 {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		var lead uint64
		agree := true
		for _, id := range ids {
			st := c.status(id)
			if st.Leader == 0 || (lead != 0 && st.Leader != lead) {
				agree = false
				break
			}
			lead = st.Leader
		}
		if agree && lead != 0 && c.nodes[lead].cmd != nil {
			return lead
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("no agreed leader among %v", ids)
	return 0
}

// respClient is a minimal RESP2 client for the tests.
type respClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

// respError is an error reply.
type respError string

func (e respError) Error() string { return string(e) }

func dialRESP(t testing.TB, addr string) *respClient {
	t.Helper()
	return dialRESPTLS(t, addr, nil)
}

func dialRESPTLS(t testing.TB, addr string, cfg *tls.Config) *respClient {
	t.Helper()
	var conn net.Conn
	var err error
	if cfg != nil {
		conn, err = tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, cfg)
	} else {
		conn, err = net.DialTimeout("tcp", addr, 2*time.Second)
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return &respClient{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func encodeRESP(args ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return []byte(b.String())
}

// send writes one command without reading the reply (for pipelining).
func (c *respClient) send(args ...string) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.conn.Write(encodeRESP(args...))
	return err
}

// do sends a command and reads its reply: string (simple), respError,
// int64, []byte or nil (bulk), []any (array).
func (c *respClient) do(args ...string) (any, error) {
	if err := c.send(args...); err != nil {
		return nil, err
	}
	return c.read()
}

func (c *respClient) read() (any, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	line, err := c.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || !strings.HasSuffix(line, "\r\n") {
		return nil, fmt.Errorf("bad reply line %q", line)
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return respError(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, b); err != nil {
			return nil, err
		}
		return b[:n], nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, err
		}
		out := make([]any, 0, max(n, 0))
		for i := 0; i < n; i++ {
			v, err := c.read()
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	return nil, errors.New("unknown reply type " + line)
}

// must runs a command and fails the test on an I/O error.
func (c *respClient) must(args ...string) any {
	c.t.Helper()
	v, err := c.do(args...)
	require.NoError(c.t, err, "%v", args)
	return v
}

// transfer moves the leadership to node to, asking again while the
// current leader is not ready to hand it over.
func (c *e2eCluster) transfer(to uint64, ids ...uint64) {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for c.waitLeader(ids...) != to {
		require.True(c.t, time.Now().Before(deadline), "leadership does not move to node %d", to)
		code, _ := c.httpDo(to, "POST", fmt.Sprintf("/transfer?to=%d", to), "", nil)
		if code != http.StatusOK {
			time.Sleep(50 * time.Millisecond)
		}
	}
}
