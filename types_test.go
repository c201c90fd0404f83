package raft

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEnumStrings(t *testing.T) {
	tests := []struct {
		name string
		v    fmt.Stringer
		want string
	}{
		{name: "EntryNormal", v: EntryNormal, want: "EntryNormal"},
		{name: "EntryConfChange", v: EntryConfChange, want: "EntryConfChange"},
		{name: "unknown EntryType", v: EntryType(7), want: "EntryType(7)"},

		{name: "StateFollower", v: StateFollower, want: "StateFollower"},
		{name: "StateCandidate", v: StateCandidate, want: "StateCandidate"},
		{name: "StateLeader", v: StateLeader, want: "StateLeader"},
		{name: "StatePreCandidate", v: StatePreCandidate, want: "StatePreCandidate"},
		{name: "unknown StateType", v: StateType(9), want: "StateType(9)"},

		{name: "ProgressStateProbe", v: ProgressStateProbe, want: "StateProbe"},
		{name: "ProgressStateReplicate", v: ProgressStateReplicate, want: "StateReplicate"},
		{name: "ProgressStateSnapshot", v: ProgressStateSnapshot, want: "StateSnapshot"},
		{name: "unknown ProgressState", v: ProgressState(3), want: "ProgressState(3)"},

		{name: "unknown MessageType", v: numMessageTypes, want: fmt.Sprintf("MessageType(%d)", uint8(numMessageTypes))},
		{name: "largest MessageType", v: MessageType(255), want: "MessageType(255)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.v.String())
		})
	}
}

// unitMessageTypes describes every message type: its name and how the
// classification helpers must see it.
var unitMessageTypes = []struct {
	typ      MessageType
	name     string
	local    bool
	response bool
}{
	{typ: MsgHup, name: "MsgHup", local: true},
	{typ: MsgBeat, name: "MsgBeat", local: true},
	{typ: MsgProp, name: "MsgProp"},
	{typ: MsgApp, name: "MsgApp"},
	{typ: MsgAppResp, name: "MsgAppResp", response: true},
	{typ: MsgVote, name: "MsgVote"},
	{typ: MsgVoteResp, name: "MsgVoteResp", response: true},
	{typ: MsgHeartbeat, name: "MsgHeartbeat"},
	{typ: MsgHeartbeatResp, name: "MsgHeartbeatResp", response: true},
	{typ: MsgSnap, name: "MsgSnap"},
	{typ: MsgUnreachable, name: "MsgUnreachable", local: true},
	{typ: MsgSnapStatus, name: "MsgSnapStatus", local: true},
	{typ: MsgPreVote, name: "MsgPreVote"},
	{typ: MsgPreVoteResp, name: "MsgPreVoteResp", response: true},
	{typ: MsgTransferLeader, name: "MsgTransferLeader"},
	{typ: MsgTimeoutNow, name: "MsgTimeoutNow"},
	{typ: MsgReadIndex, name: "MsgReadIndex"},
	{typ: MsgReadIndexResp, name: "MsgReadIndexResp", response: true},
	{typ: MsgCheckQuorum, name: "MsgCheckQuorum", local: true},
	{typ: MsgPropResp, name: "MsgPropResp"},
}

func TestMessageTypeClassification(t *testing.T) {
	assert.Len(t, unitMessageTypes, int(numMessageTypes), "every message type is described")
	for _, tt := range unitMessageTypes {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.name, tt.typ.String())
			assert.Equal(t, tt.local, tt.typ.isLocal(), "isLocal")
			assert.Equal(t, tt.response, tt.typ.isResponse(), "isResponse")
			assert.False(t, tt.local && tt.response, "a local message is never a response")
		})
	}
	for _, unknown := range []MessageType{numMessageTypes, 200} {
		assert.False(t, unknown.isLocal(), "%d", unknown)
		assert.False(t, unknown.isResponse(), "%d", unknown)
	}
}

func TestVoteResponseType(t *testing.T) {
	tests := []struct {
		in   MessageType
		want MessageType
	}{
		{in: MsgVote, want: MsgVoteResp},
		{in: MsgPreVote, want: MsgPreVoteResp},
	}
	for _, tt := range tests {
		t.Run(tt.in.String(), func(t *testing.T) {
			assert.Equal(t, tt.want, voteResponseType(tt.in))
		})
	}
}

func TestHardStateIsEmpty(t *testing.T) {
	tests := []struct {
		name string
		hs   HardState
		want bool
	}{
		{name: "zero", hs: HardState{}, want: true},
		{name: "term", hs: HardState{Term: 1}, want: false},
		{name: "vote", hs: HardState{Vote: 1}, want: false},
		{name: "commit", hs: HardState{Commit: 1}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.hs.IsEmpty())
		})
	}
}

func TestSnapshotIsEmpty(t *testing.T) {
	tests := []struct {
		name string
		s    *Snapshot
		want bool
	}{
		{name: "nil", s: nil, want: true},
		{name: "zero", s: &Snapshot{}, want: true},
		{name: "data but no index", s: &Snapshot{Data: []byte("x"), Metadata: SnapshotMetadata{Term: 2}}, want: true},
		{name: "index", s: &Snapshot{Metadata: SnapshotMetadata{Index: 1, Term: 1}}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.s.IsEmpty())
		})
	}
}

func TestEntrySize(t *testing.T) {
	tests := []struct {
		name        string
		e           Entry
		wantSize    uint64
		wantPayload uint64
	}{
		{name: "empty", e: Entry{Index: 1, Term: 1}, wantSize: entryOverhead, wantPayload: 0},
		{name: "data", e: Entry{Index: 1, Term: 1, Data: make([]byte, 100)}, wantSize: entryOverhead + 100, wantPayload: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.wantSize, tt.e.size())
			assert.Equal(t, tt.wantPayload, tt.e.payloadSize())
			ents := []Entry{tt.e, tt.e}
			assert.Equal(t, 2*tt.wantSize, entriesSize(ents))
			assert.Equal(t, 2*tt.wantPayload, payloadsSize(ents))
		})
	}
}

func TestStateTypeJSONUsesNames(t *testing.T) {
	for _, st := range []StateType{StateFollower, StateCandidate, StateLeader, StatePreCandidate} {
		b, err := json.Marshal(BasicStatus{SoftState: SoftState{RaftState: st}})
		require.NoError(t, err)
		assert.Contains(t, string(b), `"RaftState":"`+st.String()+`"`)
		var back BasicStatus
		require.NoError(t, json.Unmarshal(b, &back))
		assert.Equal(t, st, back.RaftState)
	}
	var st StateType
	assert.Error(t, st.UnmarshalText([]byte("StateKing")))
}
