package memtransport

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wire"
)

// memStreamHandler is a memTestHandler that takes snapshots as streams.
type memStreamHandler struct {
	*memTestHandler
	data chan string
	errs chan error
}

func (h *memStreamHandler) HandleSnapshot(m raft.Message, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		h.errs <- err
		return err
	}
	h.data <- string(b)
	h.HandleMessage(m)
	return nil
}

// memStringSource is a raft.SnapshotSource over a string; its readers
// fail at the end if bad is set.
type memStringSource struct {
	s   string
	bad error
}

func (s memStringSource) Size() int64 { return int64(len(s.s)) }
func (s memStringSource) Open() (io.ReadCloser, error) {
	var r io.Reader = strings.NewReader(s.s)
	if s.bad != nil {
		r = io.MultiReader(r, &memErrReader{s.bad})
	}
	return io.NopCloser(r), nil
}

type memErrReader struct{ err error }

func (r *memErrReader) Read([]byte) (int, error) { return 0, r.err }

// TestMemSnapshotStreams checks that a snapshot's data from its Source
// reaches a streaming handler as a stream, a plain handler in Data, and
// that a source that fails is reported as a failed snapshot.
func TestMemSnapshotStreams(t *testing.T) {
	nw, err := NewNetwork(wire.CodecOptions{MaxFrameSize: 1 << 16})
	require.NoError(t, err)
	h1 := newMemTestHandler()
	h2 := &memStreamHandler{memTestHandler: newMemTestHandler(), data: make(chan string, 4), errs: make(chan error, 4)}
	h3 := newMemTestHandler()
	var trs []*Transport
	for id, h := range map[uint64]raft.TransportHandler{1: h1, 2: h2, 3: h3} {
		tr, err := nw.NewTransport(id, []uint64{1, 2, 3}, h, Options{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = tr.Close() })
		if id == 1 {
			trs = append(trs, tr)
		}
	}
	big := strings.Repeat("state ", 1<<15) // larger than a frame: the data bypasses the codec
	meta := raft.SnapshotMetadata{Index: 5, Term: 1, ConfState: raft.ConfState{Voters: []uint64{1, 2, 3}}}
	snap := func(to uint64, src raft.SnapshotSource) raft.Message {
		return raft.Message{Type: raft.MsgSnap, From: 1, To: to, Term: 2, Snapshot: &raft.Snapshot{Metadata: meta, Source: src}}
	}

	trs[0].Send([]raft.Message{snap(2, memStringSource{s: big})})
	assert.Equal(t, big, recv(t, h2.data))
	got := recv(t, h2.msgs)
	assert.Equal(t, meta, got.Snapshot.Metadata)
	assert.Nil(t, got.Snapshot.Source)
	assert.Empty(t, got.Snapshot.Data)
	assert.Equal(t, raft.SnapshotFinish, recv(t, h1.snaps))

	trs[0].Send([]raft.Message{snap(3, memStringSource{s: big})})
	assert.Equal(t, big, string(recv(t, h3.msgs).Snapshot.Data))
	assert.Equal(t, raft.SnapshotFinish, recv(t, h1.snaps))

	damaged := errors.New("damaged")
	trs[0].Send([]raft.Message{snap(2, memStringSource{s: big, bad: damaged})})
	assert.ErrorIs(t, recv(t, h2.errs), damaged)
	assert.Equal(t, raft.SnapshotFailure, recv(t, h1.snaps))
	trs[0].Send([]raft.Message{snap(3, memStringSource{s: big, bad: damaged})})
	assert.Equal(t, raft.SnapshotFailure, recv(t, h1.snaps))
	assert.Empty(t, h2.msgs)
	assert.Empty(t, h3.msgs)
}
