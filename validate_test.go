package raft

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// badRole names the fixture a bad-input test case runs against.
type badRole int

const (
	// badFollower is node 3 of a 3-node cluster led by node 1 in term 2,
	// with entries 2..4 committed and entry 5 appended but not committed.
	badFollower badRole = iota
	// badLeader is node 1 of the same cluster: commit 4, last index 5,
	// both peers known to match up to 4.
	badLeader
	// badPreCandidate is node 3 after it was isolated and campaigned: a
	// pre-candidate in term 2 with the follower's log.
	badPreCandidate
)

func (r badRole) String() string {
	return [...]string{"follower", "leader", "pre-candidate"}[r]
}

// badFixture is a node under test, in a known state, whose log lines are
// observed.
type badFixture struct {
	nw   *testCluster
	id   uint64
	rn   *RawNode
	logs *observer.ObservedLogs
}

const (
	badTerm      = 2 // the fixture's term
	badCommitted = 4 // the fixture's commit index
	badLast      = 5 // the fixture's last index
)

// newBadFixture builds the fixture for role, checks that it is in the state
// the test cases assume, and forgets the log lines of the setup.
func newBadFixture(t testing.TB, role badRole) *badFixture {
	t.Helper()
	id := uint64(3)
	if role == badLeader {
		id = 1
	}
	core, logs := observer.New(zapcore.DebugLevel)
	nw := newCluster(t, 3, func(c *Config) {
		if c.ID == id {
			c.Logger = zap.New(core)
		}
	})
	nw.electLeader(1)
	require.NoError(t, nw.propose(1, "a"))
	require.NoError(t, nw.propose(1, "b"))
	// Entry "c" reaches node 3 only, and its acknowledgement is lost: it
	// stays uncommitted everywhere.
	nw.cut[[2]uint64{1, 2}] = true
	nw.cut[[2]uint64{3, 1}] = true
	require.NoError(t, nw.propose(1, "c"))
	nw.heal()
	if role == badPreCandidate {
		nw.isolate(3)
		require.NoError(t, nw.node(3).Campaign())
		nw.handleReady(3)
		nw.queue = nil
		nw.heal()
	}

	f := &badFixture{nw: nw, id: id, rn: nw.node(id), logs: logs}
	r := f.rn.raft
	require.Equal(t, uint64(badTerm), r.Term)
	require.Equal(t, uint64(badCommitted), r.raftLog.committed)
	require.Equal(t, uint64(badLast), r.raftLog.lastIndex())
	require.Equal(t, map[badRole]StateType{
		badFollower: StateFollower, badLeader: StateLeader, badPreCandidate: StatePreCandidate,
	}[role], r.state)
	require.False(t, f.rn.HasReady())
	logs.TakeAll()
	return f
}

// badState is what a dropped message must leave untouched.
type badState struct {
	Hard     HardState
	Soft     SoftState
	Applied  uint64
	Log      []Entry
	Progress map[uint64]string
	Pending  int
}

func captureBadState(rn *RawNode) badState {
	r := rn.raft
	s := badState{
		Hard:    r.hardState(),
		Soft:    r.softState(),
		Applied: r.raftLog.applied,
		Log:     r.raftLog.allEntries(),
		Pending: len(r.msgs) + len(r.msgsAfterPersist),
	}
	if r.state == StateLeader {
		s.Progress = map[uint64]string{}
		for id, pr := range r.trk.progress {
			s.Progress[id] = pr.String()
		}
	}
	return s
}

// warned reports whether a line at Warn level or above was logged.
func (f *badFixture) warned() bool {
	return f.logs.Filter(func(e observer.LoggedEntry) bool { return e.Level >= zapcore.WarnLevel }).Len() > 0
}

// sent returns the messages the node queued since the fixture was built.
func (f *badFixture) sent() []Message {
	r := f.rn.raft
	return append(append([]Message(nil), r.msgs...), r.msgsAfterPersist...)
}

func badEnts(specs ...[2]uint64) []Entry {
	ents := make([]Entry, len(specs))
	for i, s := range specs {
		ents[i] = Entry{Index: s[0], Term: s[1], Data: []byte("x")}
	}
	return ents
}

// TestStepBadInput feeds RawNode.Step every kind of malformed or hostile
// message a peer could send and checks the error, that dropped messages
// change nothing (and are logged), and that legal but impossible values are
// clamped.
func TestStepBadInput(t *testing.T) {
	const maxU = uint64(math.MaxUint64)
	app := func(index, logTerm uint64, ents []Entry) Message {
		return Message{Type: MsgApp, From: 1, To: 3, Term: badTerm, Index: index, LogTerm: logTerm, Entries: ents, Commit: badCommitted}
	}
	with := func(m Message, edit func(*Message)) Message { edit(&m); return m }
	validSnap := func() *Snapshot {
		return &Snapshot{Metadata: SnapshotMetadata{Index: 10, Term: badTerm, ConfState: ConfState{Voters: []uint64{1, 2, 3}}}}
	}
	snapMsg := func(s *Snapshot) Message {
		return Message{Type: MsgSnap, From: 1, To: 3, Term: badTerm, Snapshot: s}
	}

	tests := []struct {
		name string
		role badRole
		msg  Message
		// wantErr is nil for a message that is legal in form.
		wantErr error
		// dropped means the node's state must be exactly as before and it
		// must have logged a warning.
		dropped bool
		// check, if set, makes further assertions after the step.
		check func(t *testing.T, f *badFixture, before badState)
	}{
		// Commit indexes beyond the local log are clamped.
		{
			name: "MsgApp commit beyond the log is clamped to the last new entry",
			msg:  with(app(badLast, badTerm, nil), func(m *Message) { m.Commit = 1000 }),
			check: func(t *testing.T, f *badFixture, before badState) {
				r := f.rn.raft
				assert.Equal(t, uint64(badLast), r.raftLog.committed)
				assert.Equal(t, before.Log, r.raftLog.allEntries())
				assert.Equal(t, before.Hard.Term, r.Term)
				assert.Equal(t, before.Hard.Vote, r.Vote)
			},
		},
		{
			name: "MsgApp commit MaxUint64 with one new entry commits only that entry",
			msg:  with(app(badLast, badTerm, badEnts([2]uint64{6, badTerm})), func(m *Message) { m.Commit = maxU }),
			check: func(t *testing.T, f *badFixture, _ badState) {
				r := f.rn.raft
				assert.Equal(t, uint64(6), r.raftLog.lastIndex())
				assert.Equal(t, uint64(6), r.raftLog.committed)
			},
		},
		{
			name: "MsgApp commit beyond a short matching prefix commits only the prefix",
			msg:  with(app(3, badTerm, nil), func(m *Message) { m.Commit = maxU }),
			check: func(t *testing.T, f *badFixture, before badState) {
				// Entries after index 3 are not known to match the leader.
				assert.Equal(t, uint64(badCommitted), f.rn.raft.raftLog.committed)
				assert.Equal(t, before.Log, f.rn.raft.raftLog.allEntries())
			},
		},
		{
			name: "MsgHeartbeat commit beyond the log is clamped to the last index",
			msg:  Message{Type: MsgHeartbeat, From: 1, To: 3, Term: badTerm, Commit: maxU},
			check: func(t *testing.T, f *badFixture, before badState) {
				r := f.rn.raft
				assert.Equal(t, uint64(badLast), r.raftLog.committed)
				assert.LessOrEqual(t, r.raftLog.committed, r.raftLog.lastIndex())
				assert.Equal(t, before.Log, r.raftLog.allEntries())
				assert.Equal(t, before.Soft, r.softState())
				assert.True(t, f.warned(), "a clamped commit index should be logged")
			},
		},

		// Malformed entries.
		{
			name: "entries with a gap", msg: app(badLast, badTerm, badEnts([2]uint64{6, 2}, [2]uint64{8, 2})),
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name: "entries with a repeated index", msg: app(badLast, badTerm, badEnts([2]uint64{6, 2}, [2]uint64{6, 2})),
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name: "entries with decreasing indexes", msg: app(badLast, badTerm, badEnts([2]uint64{7, 2}, [2]uint64{6, 2})),
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name: "first entry does not follow Index", msg: app(badLast, badTerm, badEnts([2]uint64{5, 2})),
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name: "entry terms decrease (in a higher-term message)",
			msg: with(app(badLast, badTerm, badEnts([2]uint64{6, 4}, [2]uint64{7, 3})), func(m *Message) {
				m.Term = 4
			}),
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name: "entry term above the message term", msg: app(badLast, badTerm, badEnts([2]uint64{6, badTerm + 1})),
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name: "entry term below LogTerm", msg: app(badLast, badTerm, badEnts([2]uint64{6, 1})),
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name: "entry term 0", msg: app(0, 0, badEnts([2]uint64{1, 0})),
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name:    "unknown entry type",
			msg:     app(badLast, badTerm, []Entry{{Index: 6, Term: badTerm, Type: EntryConfChange + 1}}),
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name: "Index plus entries overflows", msg: app(maxU, badTerm, badEnts([2]uint64{0, badTerm})),
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name:    "Index plus two entries overflows",
			msg:     app(maxU-1, badTerm, badEnts([2]uint64{maxU, badTerm}, [2]uint64{0, badTerm})),
			wantErr: ErrInvalidMessage, dropped: true,
		},

		{
			name:    "entries beyond index 2^62",
			msg:     app(maxIndex-1, badTerm, badEnts([2]uint64{maxIndex, badTerm}, [2]uint64{maxIndex + 1, badTerm})),
			wantErr: ErrInvalidMessage, dropped: true,
		},

		// Wrong addressing and types.
		{
			name:    "zero sender",
			msg:     Message{Type: MsgHeartbeat, From: None, To: 3, Term: badTerm, Commit: badLast},
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name:    "sender is this node",
			msg:     Message{Type: MsgHeartbeat, From: 3, To: 3, Term: badTerm, Commit: badLast},
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name:    "addressed to another node",
			msg:     Message{Type: MsgHeartbeat, From: 1, To: 2, Term: badTerm, Commit: badLast},
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name:    "addressed to no node",
			msg:     Message{Type: MsgHeartbeat, From: 1, To: None, Term: badTerm, Commit: badLast},
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name:    "unknown message type",
			msg:     Message{Type: numMessageTypes, From: 1, To: 3, Term: badTerm},
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name:    "message type 255 with a higher term",
			msg:     Message{Type: 255, From: 1, To: 3, Term: badTerm + 5},
			wantErr: ErrInvalidMessage, dropped: true,
		},

		// Messages without a term: only proposals and read requests are
		// forwarded without one.
		{
			name:    "MsgHeartbeat with term 0 must not commit",
			msg:     Message{Type: MsgHeartbeat, From: 2, To: 3, Term: 0, Commit: maxU},
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name:    "MsgApp with term 0 must not change the leader",
			msg:     Message{Type: MsgApp, From: 2, To: 3, Term: 0, Index: badCommitted, Commit: badLast},
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name: "MsgApp with term 0 must not reset a pre-candidate's term", role: badPreCandidate,
			msg:     Message{Type: MsgApp, From: 2, To: 3, Term: 0, Index: badCommitted, Commit: badLast},
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name: "MsgHeartbeat with term 0 must not reset a pre-candidate's term", role: badPreCandidate,
			msg:     Message{Type: MsgHeartbeat, From: 2, To: 3, Term: 0},
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name: "MsgSnap with term 0", role: badPreCandidate,
			msg:     Message{Type: MsgSnap, From: 1, To: 3, Snapshot: &Snapshot{Metadata: SnapshotMetadata{Index: 10}}},
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name:    "MsgVote with term 0",
			msg:     Message{Type: MsgVote, From: 2, To: 3, Term: 0, Index: maxU, LogTerm: 0},
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name: "MsgVoteResp with term 0", role: badPreCandidate,
			msg:     Message{Type: MsgPreVoteResp, From: 2, To: 3, Term: 0},
			wantErr: ErrInvalidMessage, dropped: true,
		},

		// Local message types are refused by RawNode.Step.
		{
			name:    "local MsgHup",
			msg:     Message{Type: MsgHup, From: 1, To: 3, Term: badTerm},
			wantErr: ErrStepLocalMsg, dropped: true,
		},
		{
			name:    "local MsgHup with term 0 and no sender",
			msg:     Message{Type: MsgHup},
			wantErr: ErrStepLocalMsg, dropped: true,
		},
		{
			name: "local MsgBeat", role: badLeader,
			msg:     Message{Type: MsgBeat, From: 2, To: 1, Term: badTerm},
			wantErr: ErrStepLocalMsg, dropped: true,
		},
		{
			name: "local MsgUnreachable", role: badLeader,
			msg:     Message{Type: MsgUnreachable, From: 2, To: 1, Term: badTerm},
			wantErr: ErrStepLocalMsg, dropped: true,
		},
		{
			name: "local MsgSnapStatus", role: badLeader,
			msg:     Message{Type: MsgSnapStatus, From: 2, To: 1, Term: badTerm, Reject: true},
			wantErr: ErrStepLocalMsg, dropped: true,
		},
		{
			name: "local MsgCheckQuorum", role: badLeader,
			msg:     Message{Type: MsgCheckQuorum, From: 2, To: 1, Term: badTerm},
			wantErr: ErrStepLocalMsg, dropped: true,
		},

		// Responses from nodes outside the configuration.
		{
			name: "MsgAppResp from an unknown peer", role: badLeader,
			msg:     Message{Type: MsgAppResp, From: 9, To: 1, Term: badTerm, Index: badLast},
			wantErr: ErrStepPeerNotFound, dropped: true,
		},
		{
			name: "MsgAppResp from an unknown peer with a higher term", role: badLeader,
			msg:     Message{Type: MsgAppResp, From: 9, To: 1, Term: badTerm + 3, Index: badLast},
			wantErr: ErrStepPeerNotFound, dropped: true,
		},
		{
			name: "MsgHeartbeatResp from an unknown peer", role: badLeader,
			msg:     Message{Type: MsgHeartbeatResp, From: 9, To: 1, Term: badTerm},
			wantErr: ErrStepPeerNotFound, dropped: true,
		},
		{
			name: "MsgVoteResp from an unknown peer", role: badPreCandidate,
			msg:     Message{Type: MsgVoteResp, From: 9, To: 3, Term: badTerm + 1},
			wantErr: ErrStepPeerNotFound, dropped: true,
		},
		{
			name: "MsgPreVoteResp from an unknown peer", role: badPreCandidate,
			msg:     Message{Type: MsgPreVoteResp, From: 9, To: 3, Term: badTerm + 1},
			wantErr: ErrStepPeerNotFound, dropped: true,
		},
		{
			name:    "MsgReadIndexResp from an unknown peer",
			msg:     Message{Type: MsgReadIndexResp, From: 9, To: 3, Term: badTerm, Index: maxU},
			wantErr: ErrStepPeerNotFound, dropped: true,
		},

		// Absurd terms.
		{
			name:    "MsgHeartbeat from a follower with term too far above 2^62",
			msg:     Message{Type: MsgHeartbeat, From: 2, To: 3, Term: maxTerm + termStepLimit + 1, Commit: badLast},
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name:    "MsgApp from the leader with term MaxUint64",
			msg:     with(app(badLast, badTerm, nil), func(m *Message) { m.Term = maxU }),
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name:    "MsgVote from an unknown node with term MaxUint64",
			msg:     Message{Type: MsgVote, From: 9, To: 3, Term: maxU, Index: maxU, LogTerm: badTerm},
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name:    "MsgPreVote from an unknown node with term MaxUint64",
			msg:     Message{Type: MsgPreVote, From: 9, To: 3, Term: maxU, Index: maxU, LogTerm: maxU},
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name: "MsgAppResp from a follower with term MaxUint64", role: badLeader,
			msg:     Message{Type: MsgAppResp, From: 2, To: 1, Term: maxU, Index: badLast},
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name: "rejected MsgVoteResp with term too far above 2^62", role: badPreCandidate,
			msg:     Message{Type: MsgPreVoteResp, From: 2, To: 3, Term: maxTerm + termStepLimit + 1, Reject: true},
			wantErr: ErrInvalidMessage, dropped: true,
		},

		// Malformed snapshots.
		{
			name: "MsgSnap with a nil snapshot", msg: snapMsg(nil),
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name: "MsgSnap with snapshot index 0",
			msg: snapMsg(func() *Snapshot {
				s := validSnap()
				s.Metadata.Index = 0
				return s
			}()),
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name: "MsgSnap with a snapshot term above the message term",
			msg: snapMsg(func() *Snapshot {
				s := validSnap()
				s.Metadata.Term = badTerm + 1
				return s
			}()),
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name: "MsgSnap with snapshot term 0",
			msg: snapMsg(func() *Snapshot {
				s := validSnap()
				s.Metadata.Term = 0
				return s
			}()),
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name: "MsgSnap with no voters",
			msg: snapMsg(func() *Snapshot {
				s := validSnap()
				s.Metadata.ConfState = ConfState{Learners: []uint64{1, 2, 3}}
				return s
			}()),
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			// Index+1 (the first index after it) overflows: the node would
			// not even restart from its storage afterwards.
			name: "MsgSnap with snapshot index MaxUint64",
			msg: snapMsg(func() *Snapshot {
				s := validSnap()
				s.Metadata.Index = maxU
				return s
			}()),
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name: "MsgSnap with snapshot index above 2^62",
			msg: snapMsg(func() *Snapshot {
				s := validSnap()
				s.Metadata.Index = maxIndex + 1
				return s
			}()),
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name: "MsgSnap with entries",
			msg: with(snapMsg(validSnap()), func(m *Message) {
				m.Entries = badEnts([2]uint64{11, badTerm})
			}),
			wantErr: ErrInvalidMessage, dropped: true,
		},

		// Impossible acknowledgements and hints.
		{
			name: "MsgAppResp acknowledging an index beyond the leader's log", role: badLeader,
			msg: Message{Type: MsgAppResp, From: 2, To: 1, Term: badTerm, Index: badLast + 1},
			check: func(t *testing.T, f *badFixture, before badState) {
				after := captureBadState(f.rn)
				assert.Equal(t, uint64(badCommitted), after.Hard.Commit)
				assert.Equal(t, before.Progress, after.Progress)
				assert.Equal(t, before.Log, after.Log)
				assert.True(t, f.warned())
			},
		},
		{
			name: "MsgAppResp acknowledging index MaxUint64", role: badLeader,
			msg: Message{Type: MsgAppResp, From: 3, To: 1, Term: badTerm, Index: maxU},
			check: func(t *testing.T, f *badFixture, before badState) {
				after := captureBadState(f.rn)
				assert.Equal(t, uint64(badCommitted), after.Hard.Commit)
				assert.Equal(t, before.Progress, after.Progress)
				assert.True(t, f.warned())
			},
		},
		{
			name: "MsgAppResp rejection with RejectHint MaxUint64", role: badLeader,
			msg:   Message{Type: MsgAppResp, From: 2, To: 1, Term: badTerm, Index: badLast, Reject: true, RejectHint: maxU},
			check: checkBadRejection(2),
		},
		{
			name: "MsgAppResp rejection with RejectHint beyond the log and a term", role: badLeader,
			msg:   Message{Type: MsgAppResp, From: 2, To: 1, Term: badTerm, Index: badLast, Reject: true, RejectHint: 1000, LogTerm: badTerm},
			check: checkBadRejection(2),
		},
		{
			name: "MsgAppResp rejection of an index beyond the log", role: badLeader,
			msg:   Message{Type: MsgAppResp, From: 3, To: 1, Term: badTerm, Index: maxU, Reject: true, RejectHint: maxU - 1, LogTerm: 1},
			check: checkBadRejection(3),
		},

		// Appends that reach below the commit index.
		{
			name: "MsgApp overwriting committed entries",
			msg:  app(2, badTerm, badEnts([2]uint64{3, badTerm}, [2]uint64{4, badTerm}, [2]uint64{5, badTerm})),
			check: func(t *testing.T, f *badFixture, before badState) {
				after := captureBadState(f.rn)
				assert.Equal(t, before.Log, after.Log)
				assert.Equal(t, before.Hard, after.Hard)
				// The answer claims only the committed prefix.
				assert.Equal(t, []Message{{Type: MsgAppResp, From: 3, To: 1, Term: badTerm, Index: badCommitted, Commit: badCommitted}}, f.sent())
			},
		},
		{
			name: "MsgApp from a newer leader overwriting committed entries",
			msg: with(app(2, badTerm, badEnts([2]uint64{3, 7}, [2]uint64{4, 7})), func(m *Message) {
				m.Term = 7
				m.Commit = 4
			}),
			check: func(t *testing.T, f *badFixture, before badState) {
				after := captureBadState(f.rn)
				assert.Equal(t, before.Log, after.Log, "committed entries must not be replaced")
				assert.Equal(t, uint64(badCommitted), after.Hard.Commit)
				assert.Equal(t, uint64(7), after.Hard.Term, "a newer leader's term is adopted")
			},
		},

		// Vote requests.
		{
			name:    "MsgVote whose LogTerm exceeds its Term",
			msg:     Message{Type: MsgVote, From: 2, To: 3, Term: badTerm + 1, Index: badLast, LogTerm: badTerm + 2},
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name:    "MsgPreVote whose LogTerm exceeds its Term",
			msg:     Message{Type: MsgPreVote, From: 2, To: 3, Term: badTerm + 1, Index: maxU, LogTerm: maxTerm},
			wantErr: ErrInvalidMessage, dropped: true,
		},

		// Proposals.
		{
			name:    "MsgProp without entries at a follower",
			msg:     Message{Type: MsgProp, From: 2, To: 3},
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name: "MsgProp without entries at the leader", role: badLeader,
			msg:     Message{Type: MsgProp, From: 2, To: 1},
			wantErr: ErrInvalidMessage, dropped: true,
		},
		{
			name: "MsgProp with an unknown entry type", role: badLeader,
			msg:     Message{Type: MsgProp, From: 2, To: 1, Entries: []Entry{{Type: 42, Data: []byte("x")}}},
			wantErr: ErrInvalidMessage, dropped: true,
		},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s", tt.role, tt.name), func(t *testing.T) {
			f := newBadFixture(t, tt.role)
			before := captureBadState(f.rn)
			var err error
			require.NotPanics(t, func() { err = f.rn.Step(tt.msg) })
			if tt.wantErr == nil {
				assert.NoError(t, err)
			} else {
				assert.True(t, errors.Is(err, tt.wantErr), "got error %v, want %v", err, tt.wantErr)
			}
			if tt.dropped {
				assert.Equal(t, before, captureBadState(f.rn), "a dropped message changed the node's state")
				assert.False(t, f.rn.HasReady(), "a dropped message produced a Ready")
				assert.True(t, f.warned(), "a dropped message was not logged as a warning")
			}
			if tt.check != nil {
				tt.check(t, f, before)
			}
			// Whatever happened, the node must still uphold its invariants.
			r := f.rn.raft
			assert.LessOrEqual(t, r.raftLog.committed, r.raftLog.lastIndex())
			assert.GreaterOrEqual(t, r.raftLog.committed, before.Hard.Commit)
			assert.GreaterOrEqual(t, r.Term, before.Hard.Term)
			f.nw.handleReady(f.id)
		})
	}
}

// checkBadRejection checks that a leader handled an impossible rejection
// from peer without losing what it knows: commit and Match unchanged, Next
// within the log.
func checkBadRejection(peer uint64) func(t *testing.T, f *badFixture, before badState) {
	return func(t *testing.T, f *badFixture, before badState) {
		r := f.rn.raft
		pr := r.trk.progress[peer]
		assert.Equal(t, uint64(badCommitted), r.raftLog.committed)
		assert.Equal(t, uint64(badCommitted), pr.Match)
		assert.Greater(t, pr.Next, pr.Match)
		assert.LessOrEqual(t, pr.Next, r.raftLog.lastIndex()+1)
		assert.Equal(t, before.Log, r.raftLog.allEntries())
		assert.Equal(t, StateLeader, r.state)
	}
}

// TestStepBadInputThenRecover checks that a follower that was fed garbage
// still follows its leader: the cluster keeps committing.
func TestStepBadInputThenRecover(t *testing.T) {
	f := newBadFixture(t, badFollower)
	garbage := []Message{
		{Type: MsgHeartbeat, From: 2, To: 3, Term: 0, Commit: math.MaxUint64},
		{Type: MsgApp, From: 1, To: 3, Term: badTerm, Index: math.MaxUint64, Entries: badEnts([2]uint64{0, badTerm})},
		{Type: MsgVote, From: 9, To: 3, Term: math.MaxUint64},
		{Type: MsgSnap, From: 1, To: 3, Term: badTerm},
		{Type: 200, From: 1, To: 3, Term: badTerm},
	}
	for _, m := range garbage {
		assert.Error(t, f.rn.Step(m), "%+v", m)
	}
	require.NoError(t, f.nw.propose(1, "d"))
	f.nw.tickAll()
	for _, id := range f.nw.ids {
		assert.Equal(t, []string{"a", "b", "c", "d"}, f.nw.appliedData(id), "node %d", id)
	}
}
