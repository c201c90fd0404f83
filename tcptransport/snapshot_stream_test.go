package tcptransport

import (
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
)

// testStreamHandler is a testHandler that takes snapshots as streams: it
// reads the data to its end, then delivers the MsgSnap with the data (or
// records the reader's error).
type testStreamHandler struct {
	*testHandler
	fail error      // returned after reading the data, if set
	errs chan error // the readers' errors
}

func (h *testStreamHandler) HandleSnapshot(m raft.Message, r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		h.errs <- err
		return err
	}
	if h.fail != nil {
		return h.fail
	}
	m.Snapshot.Data = data
	h.HandleMessage(m)
	return nil
}

// withStreamHandler makes the node's handler a testStreamHandler around its
// testHandler.
func withStreamHandler(fail error) func(id uint64, c *Config) {
	return func(id uint64, c *Config) {
		c.Handler = &testStreamHandler{testHandler: c.Handler.(*testHandler), fail: fail, errs: make(chan error, 16)}
	}
}

// testGenSource is a raft.SnapshotSource of n pseudo-random bytes made as
// they are read; if failAt >= 0, its readers fail there.
type testGenSource struct {
	seed   uint64
	n      int64
	failAt int64
}

func (s testGenSource) Size() int64 { return s.n }

func (s testGenSource) Open() (io.ReadCloser, error) {
	return &testGenReader{src: s, rng: rand.NewChaCha8([32]byte{byte(s.seed)})}, nil
}

type testGenReader struct {
	src testGenSource
	rng *rand.ChaCha8
	off int64
}

var errTestSource = errors.New("source damaged")

func (r *testGenReader) Read(p []byte) (int, error) {
	if r.src.failAt >= 0 && r.off >= r.src.failAt {
		return 0, errTestSource
	}
	left := r.src.n - r.off
	if r.src.failAt >= 0 {
		left = r.src.failAt - r.off
	}
	if left == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), left)]
	_, _ = r.rng.Read(p)
	r.off += int64(len(p))
	return len(p), nil
}

func (r *testGenReader) Close() error { return nil }

// TestSnapshotFromSourceToStreamHandler sends a snapshot whose data
// comes from a Source, not from memory, to a streaming handler.
func TestSnapshotFromSourceToStreamHandler(t *testing.T) {
	tc := newTestCluster(t, 2, withStreamHandler(nil))
	const n = 9<<20 + 3
	src := testGenSource{seed: 3, n: n, failAt: -1}
	want := sha256.New()
	rc, _ := src.Open()
	_, err := io.Copy(want, rc)
	require.NoError(t, err)
	m := testSnapMsg(1, 2, nil)
	m.Snapshot.Source = src
	tc.nodes[1].tr.Send([]raft.Message{m})
	got := tc.nodes[2].h.next(t)
	require.Equal(t, raft.MsgSnap, got.Type)
	assert.Equal(t, m.Snapshot.Metadata, got.Snapshot.Metadata)
	assert.Nil(t, got.Snapshot.Source)
	assert.Len(t, got.Snapshot.Data, n)
	assert.Equal(t, want.Sum(nil), func() []byte { s := sha256.Sum256(got.Snapshot.Data); return s[:] }())
	assert.Equal(t, testSnapStatus{id: 2, status: raft.SnapshotFinish}, tc.nodes[1].h.waitSnapshot(t))
}

// TestSnapshotFromSourceToPlainHandler checks that a handler without
// HandleSnapshot still gets the data in memory.
func TestSnapshotFromSourceToPlainHandler(t *testing.T) {
	tc := newTestCluster(t, 2, nil)
	m := testSnapMsg(1, 2, nil)
	m.Snapshot.Source = testGenSource{seed: 4, n: 3 << 20, failAt: -1}
	tc.nodes[1].tr.Send([]raft.Message{m})
	got := tc.nodes[2].h.next(t)
	assert.Len(t, got.Snapshot.Data, 3<<20)
	assert.Equal(t, testSnapStatus{id: 2, status: raft.SnapshotFinish}, tc.nodes[1].h.waitSnapshot(t))
}

// TestSnapshotSourceFailsMidway checks that a Source whose reader fails
// (a damaged snapshot file) cuts the stream: the sender reports a
// failure and the receiver's handler, which sees the stream fail, takes
// nothing.
func TestSnapshotSourceFailsMidway(t *testing.T) {
	for _, streaming := range []bool{false, true} {
		var mutate func(uint64, *Config)
		if streaming {
			mutate = withStreamHandler(nil)
		}
		tc := newTestCluster(t, 2, mutate)
		m := testSnapMsg(1, 2, nil)
		m.Snapshot.Source = testGenSource{seed: 5, n: 4 << 20, failAt: 3 << 20}
		tc.nodes[1].tr.Send([]raft.Message{m})
		assert.Equal(t, testSnapStatus{id: 2, status: raft.SnapshotFailure}, tc.nodes[1].h.waitSnapshot(t))
		waitLog(t, tc.nodes[1], "source damaged")
		if streaming {
			select {
			case err := <-tc.nodes[2].tr.cfg.Handler.(*testStreamHandler).errs:
				require.ErrorIs(t, err, io.ErrUnexpectedEOF, "a cut stream is not a complete one")
			case <-time.After(waitTimeout):
				t.Fatal("the receiving handler saw no error")
			}
		}
		tc.nodes[2].h.expectNone(t, 0)
	}
}

// TestSnapshotStreamHandlerRefuses checks that a snapshot the handler
// does not take is refused: the sender reports a failure.
func TestSnapshotStreamHandlerRefuses(t *testing.T) {
	tc := newTestCluster(t, 2, withStreamHandler(errors.New("disk full")))
	tc.nodes[1].tr.Send([]raft.Message{testSnapMsg(1, 2, testRandomData(6, 1<<20))})
	assert.Equal(t, testSnapStatus{id: 2, status: raft.SnapshotFailure}, tc.nodes[1].h.waitSnapshot(t))
	waitLog(t, tc.nodes[1], "disk full")
	tc.nodes[2].h.expectNone(t, 0)
}
