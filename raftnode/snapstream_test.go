package raftnode_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/memtransport"
	"github.com/keelraft/raft/raftnode"
	"github.com/keelraft/raft/tcptransport"
	"github.com/keelraft/raft/wal"
	"github.com/keelraft/raft/wire"
)

// genReader yields n pseudo-random bytes of seed, made as they are read
// (splitmix64): a state of any size that is never held in memory.
type genReader struct {
	state uint64
	left  int64
	word  [8]byte
	wpos  int // bytes of word already handed out
}

func newGenReader(seed uint64, n int64) *genReader {
	return &genReader{state: seed, left: n, wpos: 8}
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n := 0
	for n < len(p) && g.wpos < 8 { // the rest of the current word
		p[n] = g.word[g.wpos]
		n++
		g.wpos++
	}
	for ; n+8 <= len(p); n += 8 {
		binary.LittleEndian.PutUint64(p[n:], g.next())
	}
	if n < len(p) {
		binary.LittleEndian.PutUint64(g.word[:], g.next())
		g.wpos = copy(p[n:], g.word[:])
		n = len(p)
	}
	g.left -= int64(n)
	return n, nil
}

func (g *genReader) next() uint64 {
	g.state += 0x9e3779b97f4a7c15
	z := g.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// genSum returns the SHA-256 of the n bytes of seed.
func genSum(seed uint64, n int64) [32]byte {
	h := sha256.New()
	_, _ = io.CopyBuffer(h, newGenReader(seed, n), make([]byte, 1<<20))
	var s [32]byte
	h.Sum(s[:0])
	return s
}

// bigStateSM is a state machine whose state is size pseudo-random bytes
// made from a seed as its snapshot is read: it never holds them. Restore
// hashes what it reads (the image's SHA-256 and length stand for the
// state). durableSM wraps it as a raftnode.DurableStateMachine.
type bigStateSM struct {
	size int64
	seed uint64

	mu       sync.Mutex
	applied  []string
	last     uint64 // index of the last entry applied
	restores int
	restored [32]byte // SHA-256 of the last image restored
	restLen  int64
}

func (sm *bigStateSM) Apply(ents []raft.Entry) []any {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	for _, e := range ents {
		sm.applied = append(sm.applied, string(e.Data))
	}
	sm.last = ents[len(ents)-1].Index
	return nil
}

func (sm *bigStateSM) Snapshot() (io.ReadCloser, error) {
	return io.NopCloser(newGenReader(sm.seed, sm.size)), nil
}

func (sm *bigStateSM) Restore(r io.Reader) error {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return err
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	sm.restores++
	h.Sum(sm.restored[:0])
	sm.restLen = n
	sm.applied = nil
	return nil
}

func (sm *bigStateSM) state() (restores int, sum [32]byte, n int64, applied []string) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return sm.restores, sm.restored, sm.restLen, append([]string(nil), sm.applied...)
}

// durableSM is a bigStateSM that keeps its state across restarts.
type durableSM struct{ *bigStateSM }

func (sm durableSM) AppliedIndex() (uint64, error) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return sm.last, nil
}

var _ raftnode.DurableStateMachine = durableSM{}

// streamNode is a Node on a streaming wal, for the tests of this file.
type streamNode struct {
	node *raftnode.Node
	tr   raft.Transport
	log  *wal.Log
	dir  string
	logs *observer.ObservedLogs // the transport's (TCP only)
}

func (s *streamNode) stop(t *testing.T) {
	s.node.Stop()
	require.NoError(t, s.tr.Close())
	require.NoError(t, s.log.Close())
}

// streamCluster starts Nodes on streaming wal logs, over tcptransport on
// loopback or over memtransport.
type streamCluster struct {
	t     *testing.T
	tcp   bool
	net   *memtransport.Network
	addrs map[uint64]string
	lns   map[uint64]net.Listener
	nodes map[uint64]*streamNode
}

func newStreamCluster(t *testing.T, tcp bool, ids ...uint64) *streamCluster {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	c := &streamCluster{t: t, tcp: tcp, addrs: map[uint64]string{}, lns: map[uint64]net.Listener{}, nodes: map[uint64]*streamNode{}}
	if tcp {
		for _, id := range ids {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			c.lns[id], c.addrs[id] = ln, ln.Addr().String()
		}
	} else {
		nw, err := memtransport.NewNetwork(wire.CodecOptions{})
		require.NoError(t, err)
		c.net = nw
		for _, id := range ids {
			c.addrs[id] = ""
		}
	}
	t.Cleanup(func() {
		for _, s := range c.nodes {
			s.node.Stop()
			_ = s.tr.Close()
			_ = s.log.Close()
		}
	})
	return c
}

// start starts node id on the wal in dir (a new one if dir is empty).
func (c *streamCluster) start(id uint64, dir string, sm raftnode.StateMachine, voters []uint64) *streamNode {
	t := c.t
	if dir == "" {
		dir = filepath.Join(t.TempDir(), fmt.Sprintf("node%d", id))
	}
	log, err := wal.Open(dir, wal.Options{StreamSnapshots: true, SegmentSize: 1 << 20})
	require.NoError(t, err)
	node, err := raftnode.New(raftnode.Config{
		Raft:          raft.Config{ID: id, ElectionTick: 10, HeartbeatTick: 1},
		Storage:       log,
		StateMachine:  sm,
		TickInterval:  10 * time.Millisecond,
		SnapshotEvery: 1 << 30, // on demand only
		CompactKeep:   1,
	})
	require.NoError(t, err)
	s := &streamNode{node: node, log: log, dir: dir}
	if c.tcp {
		peers := map[uint64]string{}
		for pid, addr := range c.addrs {
			if pid != id {
				peers[pid] = addr
			}
		}
		core, logs := observer.New(zapcore.InfoLevel)
		s.logs = logs
		tr, err := tcptransport.New(tcptransport.Config{ID: id, ClusterID: 9, Listener: c.lns[id], Peers: peers, Handler: node,
			PeerSecret: []byte("stream test shared secret"), Logger: zap.New(core)})
		require.NoError(t, err)
		s.tr = tr
		delete(c.lns, id) // the transport owns it now
	} else {
		var ids []uint64
		for pid := range c.addrs {
			ids = append(ids, pid)
		}
		tr, err := c.net.NewTransport(id, ids, node, memtransport.Options{})
		require.NoError(t, err)
		s.tr = tr
	}
	node.SetTransport(s.tr)
	var peers []raft.Peer
	for _, v := range voters {
		peers = append(peers, raft.Peer{ID: v, Address: c.addrs[v]})
	}
	require.NoError(t, node.Start(peers))
	c.nodes[id] = s
	return s
}

// leaderWithState starts node 1 alone with sm, applies a few entries and
// snapshots it on demand; it returns the node and the snapshot's index.
func (c *streamCluster) leaderWithState(sm raftnode.StateMachine) (*streamNode, uint64) {
	t := c.t
	n1 := c.start(1, "", sm, []uint64{1})
	nodeWaitFor(t, "node 1 to lead", func() bool { l, _ := n1.node.LeaderID(); return l == 1 })
	ctx := nodeCtx(t)
	for i := range 5 {
		_, err := n1.node.Propose(ctx, []byte(fmt.Sprintf("before%d", i)))
		require.NoError(t, err)
	}
	idx, err := n1.node.Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, n1.node.AppliedIndex(), idx)
	return n1, idx
}

// tmpFilesIn lists the temporary files of a wal directory.
func tmpFilesIn(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.tmp"))
	require.NoError(t, err)
	return m
}

// vmRSS returns the process's resident set size in bytes, from
// /proc/self/status; ok is false where there is none.
func vmRSS() (int64, bool) { return procStatus("VmRSS:") }

// procStatus returns the size in bytes of field of /proc/self/status.
func procStatus(field string) (int64, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, found := strings.CutPrefix(sc.Text(), field); found {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

// rssPeak samples VmRSS every few milliseconds until stopped, and returns
// the highest value seen; where the kernel lets the peak (VmHWM) be reset
// to the current RSS, the exact peak between the two calls counts too.
func rssPeak() (stop func() int64) {
	hwm := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	var peak atomic.Int64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			if v, ok := vmRSS(); ok && v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() int64 {
		close(done)
		<-finished
		if v, ok := procStatus("VmHWM:"); hwm && ok && v > peak.Load() {
			return v
		}
		return peak.Load()
	}
}

// snapshotTestSize is the size of the state of the snapshot transfer
// tests: KEEL_SNAPSHOT_TEST_BYTES if set (1073741824 for the 1 GiB run),
// else a size that keeps CI fast.
func snapshotTestSize(t *testing.T) int64 {
	if v := os.Getenv("KEEL_SNAPSHOT_TEST_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		require.NoError(t, err, "KEEL_SNAPSHOT_TEST_BYTES")
		return n
	}
	if raceEnabled || testing.Short() {
		return 24 << 20
	}
	return 128 << 20
}

// maxSnapshotRSSGrowth bounds how much the process's RSS may grow while a
// snapshot of any size is taken, sent, received and restored.
const maxSnapshotRSSGrowth = 64 << 20

// TestNodeSnapshotStreamsEndToEnd takes a snapshot of a large state on a
// leader (state machine -> wal file), sends it over tcptransport to a new
// learner (wal file -> network -> the learner's wal file), which restores
// it (file -> state machine), sender and receiver in this process, and
// checks that RSS grew by less than maxSnapshotRSSGrowth whatever the
// size. Run the 1 GiB case with
//
//	KEEL_SNAPSHOT_TEST_BYTES=1073741824 go test ./raftnode -run TestNodeSnapshotStreamsEndToEnd -v
func TestNodeSnapshotStreamsEndToEnd(t *testing.T) {
	size := snapshotTestSize(t)
	const seed = 42
	start := time.Now()
	want := genSum(seed, size)
	t.Logf("state of %d MiB, expected SHA-256 computed in %v", size>>20, time.Since(start))

	c := newStreamCluster(t, true, 1, 2)
	leaderSM := &bigStateSM{size: size, seed: seed}
	runtime.GC()
	debug.FreeOSMemory()
	base, haveRSS := vmRSS()
	peak := rssPeak()
	start = time.Now()
	n1, snapIndex := c.leaderWithState(leaderSM)
	tookSnap := time.Since(start)

	followerSM := &bigStateSM{}
	n2 := c.start(2, "", followerSM, nil)
	ctx := nodeCtx(t)
	_, err := n1.node.AddLearner(ctx, 2, c.addrs[2])
	require.NoError(t, err)
	deadline := nodeWaitTimeout + time.Duration(size/(8<<20))*time.Second
	waitUntil(t, deadline, "the learner to restore and save the snapshot", func() bool {
		return restoredAndSaved(followerSM, n2, snapIndex)
	})
	took := time.Since(start)
	top := peak()

	restores, sum, n, _ := followerSM.state()
	assert.Equal(t, 1, restores)
	assert.Equal(t, size, n)
	assert.Equal(t, want, sum, "the learner restored the leader's state")
	held, err := n2.log.Snapshot()
	require.NoError(t, err)
	assert.Equal(t, snapIndex, held.Metadata.Index)
	assert.Empty(t, held.Data, "the learner's storage holds no snapshot data in memory")
	assert.Equal(t, size, held.Source.Size())
	assert.Empty(t, tmpFilesIn(t, n2.dir))

	// The learner goes on from the snapshot.
	_, err = n1.node.Propose(ctx, []byte("after"))
	require.NoError(t, err)
	require.NoError(t, n2.node.Read(ctx))
	_, _, _, applied := followerSM.state()
	assert.Equal(t, []string{"after"}, applied)

	if !haveRSS {
		t.Skip("no /proc/self/status: RSS not measured")
	}
	growth := top - base
	t.Logf("%d MiB snapshot: taken and written in %v, sent, received and restored in %v in all; RSS %d MiB before, peak %d MiB, growth %d MiB",
		size>>20, tookSnap, took, base>>20, top>>20, growth>>20)
	assert.Less(t, growth, int64(maxSnapshotRSSGrowth), "RSS grew by %d MiB for a %d MiB snapshot", growth>>20, size>>20)
}

// restoredAndSaved reports whether s restored a snapshot into sm and its
// storage holds the snapshot at index (the apply and persist goroutines
// do each at their own pace).
func restoredAndSaved(sm *bigStateSM, s *streamNode, index uint64) bool {
	r, _, _, _ := sm.state()
	held, err := s.log.Snapshot()
	return r > 0 && s.node.AppliedIndex() >= index && err == nil && held.Metadata.Index == index
}

// waitUntil polls cond until it holds or d passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		<-tick.C
	}
}

// TestNodeSnapshotStreamsOverMemTransport sends a leader's snapshot to a
// new learner over memtransport, into the learner's streaming wal.
func TestNodeSnapshotStreamsOverMemTransport(t *testing.T) {
	const size, seed = 5<<20 + 11, 7
	c := newStreamCluster(t, false, 1, 2)
	n1, snapIndex := c.leaderWithState(&bigStateSM{size: size, seed: seed})
	followerSM := &bigStateSM{}
	n2 := c.start(2, "", followerSM, nil)
	_, err := n1.node.AddLearner(nodeCtx(t), 2, c.addrs[2])
	require.NoError(t, err)
	nodeWaitFor(t, "the learner to restore and save the snapshot", func() bool {
		return restoredAndSaved(followerSM, n2, snapIndex)
	})
	_, sum, n, _ := followerSM.state()
	assert.Equal(t, int64(size), n)
	assert.Equal(t, genSum(seed, size), sum)
	assert.Empty(t, tmpFilesIn(t, n2.dir))
}

// TestNodeRefusesCorruptSnapshot damages the leader's snapshot file on
// disk: the leader's reader finds the checksum wrong at the end and cuts
// the stream, the learner refuses it, and the learner's storage and state
// machine are left as they were, with nothing left behind on disk.
func TestNodeRefusesCorruptSnapshot(t *testing.T) {
	const size, seed = 3 << 20, 9
	c := newStreamCluster(t, true, 1, 2)
	n1, _ := c.leaderWithState(&bigStateSM{size: size, seed: seed})
	names, err := filepath.Glob(filepath.Join(n1.dir, "*.snap"))
	require.NoError(t, err)
	require.NotEmpty(t, names)
	f, err := os.OpenFile(names[len(names)-1], os.O_RDWR, 0) // the newest

	require.NoError(t, err)
	var b [1]byte
	_, err = f.ReadAt(b[:], 1<<20)
	require.NoError(t, err)
	b[0] ^= 0x40
	_, err = f.WriteAt(b[:], 1<<20)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	followerSM := &bigStateSM{}
	n2 := c.start(2, "", followerSM, nil)
	_, err = n1.node.AddLearner(nodeCtx(t), 2, c.addrs[2])
	require.NoError(t, err)
	nodeWaitFor(t, "the leader to fail sending the damaged snapshot", func() bool {
		return n1.logs.FilterMessage("tcptransport: sending a snapshot failed").FilterFieldKey("error").Len() > 0 &&
			strings.Contains(fmt.Sprint(n1.logs.FilterMessage("tcptransport: sending a snapshot failed").All()[0].ContextMap()["error"]), "checksum mismatch")
	})
	// The leader retries meanwhile: stop it, and the learner is left with
	// nothing of any attempt.
	n1.stop(t)
	delete(c.nodes, 1)
	nodeWaitFor(t, "the learner to discard the last attempt", func() bool { return len(tmpFilesIn(t, n2.dir)) == 0 })
	restores, _, _, _ := followerSM.state()
	assert.Zero(t, restores)
	held, err := n2.log.Snapshot()
	require.NoError(t, err)
	assert.True(t, held.IsEmpty(), "the learner installed nothing")
	assert.NoError(t, n2.node.Err())
}

// failAfter reads r, then fails with err instead of io.EOF.
type failAfter struct {
	r   io.Reader
	err error
}

func (f *failAfter) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		err = f.err
	}
	return n, err
}

// TestNodeHandleSnapshotRefusesBrokenStream hands a Node snapshot streams
// that fail (truncated, or failing their checksum, as a transport reports
// them): each is refused with an error, nothing reaches the node or its
// storage, and a sound stream afterwards is taken.
func TestNodeHandleSnapshotRefusesBrokenStream(t *testing.T) {
	c := newStreamCluster(t, false, 1, 2)
	sm := &bigStateSM{}
	n2 := c.start(2, "", sm, nil)
	meta := raft.SnapshotMetadata{Index: 20, Term: 2, ConfState: raft.ConfState{Voters: []uint64{1}, Learners: []uint64{2}}}
	msg := func() raft.Message {
		return raft.Message{Type: raft.MsgSnap, From: 1, To: 2, Term: 2, Snapshot: &raft.Snapshot{Metadata: meta}}
	}
	for _, bad := range []error{io.ErrUnexpectedEOF, errors.New("checksum mismatch")} {
		err := n2.node.HandleSnapshot(msg(), &failAfter{r: newGenReader(1, 2<<20), err: bad})
		require.ErrorIs(t, err, bad)
		assert.Empty(t, tmpFilesIn(t, n2.dir))
		held, err := n2.log.Snapshot()
		require.NoError(t, err)
		assert.True(t, held.IsEmpty())
	}
	require.NoError(t, n2.node.HandleSnapshot(msg(), newGenReader(1, 2<<20)))
	nodeWaitFor(t, "the sound snapshot to be restored and saved", func() bool {
		r, _, _, _ := sm.state()
		held, err := n2.log.Snapshot()
		return r == 1 && err == nil && held.Metadata.Index == meta.Index
	})
	_, sum, _, _ := sm.state()
	assert.Equal(t, genSum(1, 2<<20), sum)
	held, err := n2.log.Snapshot()
	require.NoError(t, err)
	assert.Equal(t, meta, held.Metadata)
}

// TestNodeSnapshotOnDemand checks Node.Snapshot: it snapshots at the
// applied index, compacts the log, takes no new snapshot when nothing was
// applied since, and works on raft.MemoryStorage too.
func TestNodeSnapshotOnDemand(t *testing.T) {
	c := newNodeCluster(t, 1, withConfig(func(cfg *raftnode.Config) { cfg.CompactKeep = 2 }))
	m := c.members[1]
	ctx := nodeCtx(t)
	for i := range 6 {
		c.propose(fmt.Sprintf("v%d", i))
	}
	idx, err := m.node.Snapshot(ctx)
	require.NoError(t, err)
	assert.Equal(t, m.node.AppliedIndex(), idx)
	held, err := m.storage.Snapshot()
	require.NoError(t, err)
	assert.Equal(t, idx, held.Metadata.Index)
	first, err := m.storage.FirstIndex()
	require.NoError(t, err)
	assert.Equal(t, idx-2+1, first, "compacted, keeping CompactKeep entries")

	again, err := m.node.Snapshot(ctx)
	require.NoError(t, err)
	assert.Equal(t, idx, again, "nothing applied since: the same snapshot")
	c.propose("more")
	next, err := m.node.Snapshot(ctx)
	require.NoError(t, err)
	assert.Equal(t, m.node.AppliedIndex(), next)
	assert.Greater(t, next, idx)

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = m.node.Snapshot(canceled)
	assert.ErrorIs(t, err, context.Canceled)
	c.stop(1)
	_, err = m.node.Snapshot(ctx)
	assert.ErrorIs(t, err, raftnode.ErrStopped)
}

// TestNodeDurableStateMachineSkipsRestore restarts a node whose state
// machine keeps its own durable state: Restore is skipped and the entries
// it holds are not applied again, while a state machine whose state is
// older than the snapshot is restored as usual.
func TestNodeDurableStateMachineSkipsRestore(t *testing.T) {
	c := newStreamCluster(t, false, 1)
	sm := durableSM{&bigStateSM{size: 1 << 20, seed: 3}}
	n1, snapIndex := c.leaderWithState(sm)
	ctx := nodeCtx(t)
	for i := range 3 {
		_, err := n1.node.Propose(ctx, []byte(fmt.Sprintf("after%d", i)))
		require.NoError(t, err)
	}
	applied := n1.node.AppliedIndex()
	require.Greater(t, applied, snapIndex)
	restoresBefore, _, _, before := sm.state()
	n1.stop(t)
	delete(c.nodes, 1)

	// The same state machine (its state survived): nothing to restore or
	// apply again.
	n1 = c.start(1, n1.dir, sm, nil)
	nodeWaitFor(t, "node 1 to lead", func() bool { l, _ := n1.node.LeaderID(); return l == 1 })
	_, err := n1.node.Propose(ctx, []byte("restarted"))
	require.NoError(t, err)
	restores, _, _, got := sm.state()
	assert.Equal(t, restoresBefore, restores, "Restore skipped")
	assert.Equal(t, append(before, "restarted"), got, "no entry applied twice")
	n1.stop(t)
	delete(c.nodes, 1)

	// A state machine whose durable state predates the snapshot is
	// restored from it, then replays what follows.
	fresh := durableSM{&bigStateSM{}}
	n1 = c.start(1, n1.dir, fresh, nil)
	nodeWaitFor(t, "node 1 to lead", func() bool { l, _ := n1.node.LeaderID(); return l == 1 })
	require.NoError(t, n1.node.Read(ctx))
	restores, sum, _, got := fresh.state()
	assert.Equal(t, 1, restores, "restored once, from the snapshot")
	assert.Equal(t, genSum(3, 1<<20), sum)
	assert.Equal(t, []string{"after0", "after1", "after2", "restarted"}, got)
}
