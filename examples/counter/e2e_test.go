package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestCounterCluster runs the counter as separate processes: three nodes
// bootstrap a cluster, increments go through every node, the leader is
// killed while increments continue, restarts and catches up; a fourth
// node is added with its address, serves after leadership moved to
// another node, and exits by itself once removed. No acknowledged
// increment may be lost.
func TestCounterCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	start := time.Now()
	c := newCluster(t, buildCounter(t), 4)
	boot := c.peerList(1, 2, 3)
	for id := uint64(1); id <= 3; id++ {
		c.start(t, id, "--bootstrap", boot)
	}

	// Increments through every node: a follower answers 503 naming the
	// leader (or forwards), and the client retries.
	c.waitLeader(t)
	for round := 0; round < 3; round++ {
		for id := uint64(1); id <= 3; id++ {
			c.mustIncr(t, id)
		}
	}
	c.checkValue(t, 1)

	// Kill the leader while a client keeps incrementing through every node.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := c.incr(uint64(i%3) + 1); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	c.waitAcked(t, c.ackedCount()+5)
	lead := c.waitLeader(t)
	c.kill(t, lead)
	c.waitAcked(t, c.ackedCount()+10) // increments go on under a new leader
	close(stop)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	other := lead%3 + 1
	v := c.checkValue(t, other)

	// The killed node restarts from its data and catches up: a read through
	// it reflects every increment acknowledged before.
	c.start(t, lead, "--bootstrap", boot) // ignored now that it has data
	if got := c.readAt(t, lead); got != v {
		t.Fatalf("node %d restarted and read %d, want %d", lead, got, v)
	}
	c.mustIncr(t, lead)

	// Add node 4 with its address, through the leader.
	c.start(t, 4, "--join", boot)
	res := c.mustCall(t, 1, "POST", fmt.Sprintf("/members?id=4&addr=%s", c.procs[4].raft))
	var mem membersReply
	decode(t, res.body, &mem)
	if !slices.Contains(mem.Voters, 4) || mem.Addresses[4] != c.procs[4].raft {
		t.Fatalf("after adding node 4 through node %d: members %+v", res.node, mem)
	}
	// Hand leadership to a node that did not add it: that node reaches node
	// 4 at the address the configuration recorded.
	to := res.node%3 + 1
	c.mustCall(t, res.node, "POST", fmt.Sprintf("/transfer?to=%d", to))
	c.mustIncr(t, 4)
	waitFor(t, 20*time.Second, fmt.Sprintf("node %d leading and replicating to node 4", to), func() bool {
		var st statusReply
		r := c.send(to, "GET", "/status")
		return r.code == http.StatusOK && json.Unmarshal(r.body, &st) == nil &&
			st.State == "StateLeader" && st.Match[4] >= st.Commit
	})
	if got, want := c.readAt(t, 4), c.checkValue(t, to); got != want {
		t.Fatalf("node 4 read %d, want %d", got, want)
	}

	// Remove node 4: its process exits by itself, with status 0.
	c.mustCall(t, to, "DELETE", "/members/4")
	p := c.procs[4]
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("node 4 still runs 20s after its removal: did it ever learn that its removal committed? (see its log)")
	}
	if p.err != nil || !strings.Contains(p.stdout.String(), "removed from the cluster") {
		t.Fatalf("node 4 exited with %v, stdout:\n%s", p.err, p.stdout.String())
	}

	c.mustIncr(t, 2)
	v = c.checkValue(t, 1)
	for id := uint64(1); id <= 3; id++ {
		if got := c.readAt(t, id); got != v {
			t.Fatalf("node %d read %d, want %d", id, got, v)
		}
	}
	for id := uint64(1); id <= 3; id++ {
		c.terminate(t, id)
	}
	t.Logf("%d increments acknowledged, %d of unknown outcome, final value %d, in %v",
		c.ackedCount(), c.unknown, v, time.Since(start).Round(time.Millisecond))
}

// buildCounter builds the program into a temporary directory.
func buildCounter(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "counter")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is one counter process.
type proc struct {
	id             uint64
	raft, http     string
	data           string
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{} // closed once it exited; then err is set
	err            error
}

func (p *proc) running() bool {
	if p == nil || p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// cluster runs the processes and counts the increments.
type cluster struct {
	bin    string
	procs  map[uint64]*proc
	client *http.Client

	mu      sync.Mutex
	acked   map[int64]bool // the values acknowledged increments returned
	unknown int            // increments of unknown outcome
}

func newCluster(t *testing.T, bin string, n int) *cluster {
	c := &cluster{bin: bin, procs: map[uint64]*proc{}, client: &http.Client{Timeout: 5 * time.Second}, acked: map[int64]bool{}}
	dir := t.TempDir()
	var lns []net.Listener
	for i := 0; i < 2*n; i++ { // free ports: listen on them all, then let go
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
	}
	for i := 0; i < n; i++ {
		id := uint64(i + 1)
		c.procs[id] = &proc{id: id, raft: lns[2*i].Addr().String(), http: lns[2*i+1].Addr().String(),
			data: filepath.Join(dir, fmt.Sprint(id))}
	}
	for _, ln := range lns {
		ln.Close()
	}
	t.Cleanup(func() {
		for id := uint64(1); id <= uint64(n); id++ {
			p := c.procs[id]
			if p.running() {
				_ = p.cmd.Process.Kill()
				<-p.done
			}
			if t.Failed() && p.stderr != nil {
				t.Logf("node %d stdout:\n%s\nnode %d stderr (end):\n%s", id, p.stdout, id, tail(p.stderr.String(), 60))
			}
		}
	})
	return c
}

func (c *cluster) peerList(ids ...uint64) string {
	var parts []string
	for _, id := range ids {
		parts = append(parts, fmt.Sprintf("%d=%s", id, c.procs[id].raft))
	}
	return strings.Join(parts, ",")
}

// start starts node id's process (again, after kill).
func (c *cluster) start(t *testing.T, id uint64, args ...string) {
	p := c.procs[id]
	args = append([]string{"--id", fmt.Sprint(id), "--raft", p.raft, "--http", p.http, "--data", p.data,
		"--secret", "counter-test-secret-of-32-bytes!", "--tick", "20ms", "--request-timeout", "2s", "--snapshot-every", "20"}, args...)
	p.cmd = exec.Command(c.bin, args...)
	p.stdout, p.stderr = &syncBuffer{}, &syncBuffer{}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
}

// kill kills node id with SIGKILL: no clean shutdown.
func (c *cluster) kill(t *testing.T, id uint64) {
	p := c.procs[id]
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

// terminate stops node id with SIGTERM and checks that it exits cleanly.
func (c *cluster) terminate(t *testing.T, id uint64) {
	p := c.procs[id]
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("node %d still runs 10s after SIGTERM", id)
	}
	if p.err != nil {
		t.Fatalf("node %d exited with %v after SIGTERM", id, p.err)
	}
}

// httpReply is the outcome of one HTTP request.
type httpReply struct {
	node uint64 // that answered
	code int    // 0: no reply (err)
	body []byte
	err  error
}

// certain reports whether the request certainly had no effect, so that
// retrying it is safe: a 503, a 410 or a refused connection.
func (r httpReply) certain() bool {
	return r.code == http.StatusServiceUnavailable || r.code == http.StatusGone || errors.Is(r.err, syscall.ECONNREFUSED)
}

func (c *cluster) send(id uint64, method, path string) httpReply {
	req, err := http.NewRequest(method, "http://"+c.procs[id].http+path, nil)
	if err != nil {
		return httpReply{node: id, err: err}
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return httpReply{node: id, err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return httpReply{node: id, code: resp.StatusCode, body: body, err: err}
}

// call sends a request to node first and, while the reply says it had no
// effect, retries: first at the same node (which may forward, or learn of
// a leader), then at the leader a 503 names, then at every node in turn.
// It returns the first reply that is not such a refusal, or an error if
// none came within 20s.
func (c *cluster) call(first uint64, method, path string) (httpReply, error) {
	deadline := time.Now().Add(20 * time.Second)
	next, last := first, httpReply{}
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		r := c.send(next, method, path)
		if !r.certain() {
			return r, nil
		}
		last = r
		var e errorReply
		_ = json.Unmarshal(r.body, &e)
		switch {
		case attempt < 2:
			next = first
		case e.Leader != 0 && c.procs[e.Leader] != nil && e.Leader != next:
			next = e.Leader
		default:
			next = next%uint64(len(c.procs)) + 1
		}
		time.Sleep(20 * time.Millisecond) // a retry's pause, not a wait for a condition
	}
	return httpReply{}, fmt.Errorf("%s %s: no node served it within 20s; last reply from node %d: %d %s %v",
		method, path, last.node, last.code, last.body, last.err)
}

func (c *cluster) mustCall(t *testing.T, first uint64, method, path string) httpReply {
	t.Helper()
	r, err := c.call(first, method, path)
	if err == nil && r.code != http.StatusOK {
		err = fmt.Errorf("%s %s at node %d: %d %s %v", method, path, r.node, r.code, r.body, r.err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// incr increments the counter through node id, and records the outcome:
// acknowledged (with the value it returned, which no other increment may
// return) or unknown (a 504, or a connection lost after sending it).
func (c *cluster) incr(id uint64) error {
	r, err := c.call(id, "POST", "/incr?n=1")
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.code != http.StatusOK {
		c.unknown++
		return nil
	}
	var v valueReply
	if err := json.Unmarshal(r.body, &v); err != nil {
		return fmt.Errorf("incr at node %d: %v in %q", r.node, err, r.body)
	}
	if c.acked[v.Value] {
		return fmt.Errorf("two acknowledged increments returned %d", v.Value)
	}
	c.acked[v.Value] = true
	return nil
}

func (c *cluster) mustIncr(t *testing.T, id uint64) {
	t.Helper()
	if err := c.incr(id); err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) ackedCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.acked)
}

// waitAcked waits until n increments were acknowledged.
func (c *cluster) waitAcked(t *testing.T, n int) {
	t.Helper()
	waitFor(t, 20*time.Second, fmt.Sprintf("%d acknowledged increments", n), func() bool { return c.ackedCount() >= n })
}

// checkValue reads the value through node id (or another) and checks it
// against the increments: every acknowledged one applied, besides at most
// those of unknown outcome.
func (c *cluster) checkValue(t *testing.T, id uint64) int64 {
	t.Helper()
	r := c.mustCall(t, id, "GET", "/value")
	var v valueReply
	decode(t, r.body, &v)
	c.mu.Lock()
	defer c.mu.Unlock()
	acked, highest := int64(len(c.acked)), int64(0)
	for a := range c.acked {
		highest = max(highest, a)
	}
	if v.Value < acked || v.Value < highest || v.Value > acked+int64(c.unknown) {
		t.Fatalf("value %d at node %d: want at least %d (acknowledged, the highest returning %d) and at most %d (with %d of unknown outcome)",
			v.Value, r.node, acked, highest, acked+int64(c.unknown), c.unknown)
	}
	return v.Value
}

// readAt reads the value through node id itself, retrying while it has no
// leader or has not caught up yet.
func (c *cluster) readAt(t *testing.T, id uint64) int64 {
	t.Helper()
	var v valueReply
	waitFor(t, 20*time.Second, fmt.Sprintf("a read through node %d", id), func() bool {
		r := c.send(id, "GET", "/value")
		return r.code == http.StatusOK && json.Unmarshal(r.body, &v) == nil
	})
	return v.Value
}

// waitLeader waits until a running node says it leads, and returns it.
func (c *cluster) waitLeader(t *testing.T) uint64 {
	t.Helper()
	var lead uint64
	waitFor(t, 20*time.Second, "a leader", func() bool {
		for id, p := range c.procs {
			if !p.running() {
				continue
			}
			var st statusReply
			if r := c.send(id, "GET", "/status"); r.code == http.StatusOK && json.Unmarshal(r.body, &st) == nil && st.State == "StateLeader" {
				lead = id
				return true
			}
		}
		return false
	})
	return lead
}

// waitFor polls cond until it holds, or fails the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v in %q", err, b)
	}
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// syncBuffer is a bytes.Buffer safe for the process's writes and the
// test's reads at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
