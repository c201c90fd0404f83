package raft

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestQuorumActiveCountsEachHalf checks the CheckQuorum test of a leader:
// a majority of recently active voters (the leader counting itself) in the
// configuration, and in both halves of a joint one; learners never count.
func TestQuorumActiveCountsEachHalf(t *testing.T) {
	tests := []struct {
		name   string
		cs     ConfState
		active []uint64 // peers heard from, besides self (1)
		want   bool
	}{
		{name: "single voter", cs: ConfState{Voters: []uint64{1}}, want: true},
		{name: "three voters, none heard", cs: ConfState{Voters: []uint64{1, 2, 3}}, want: false},
		{name: "three voters, one heard", cs: ConfState{Voters: []uint64{1, 2, 3}}, active: []uint64{3}, want: true},
		{name: "four voters, one heard", cs: ConfState{Voters: []uint64{1, 2, 3, 4}}, active: []uint64{2}, want: false},
		{name: "four voters, two heard", cs: ConfState{Voters: []uint64{1, 2, 3, 4}}, active: []uint64{2, 4}, want: true},
		{
			name:   "learners do not count",
			cs:     ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4, 5}},
			active: []uint64{4, 5},
			want:   false,
		},
		{
			name:   "joint: incoming majority only",
			cs:     ConfState{Voters: []uint64{1, 2, 3}, VotersOutgoing: []uint64{4, 5, 6}},
			active: []uint64{2, 4},
			want:   false,
		},
		{
			name:   "joint: both majorities",
			cs:     ConfState{Voters: []uint64{1, 2, 3}, VotersOutgoing: []uint64{4, 5, 6}},
			active: []uint64{2, 4, 5},
			want:   true,
		},
		{
			name:   "joint: self outside the outgoing half",
			cs:     ConfState{Voters: []uint64{1, 2}, VotersOutgoing: []uint64{2, 3, 4}},
			active: []uint64{2},
			want:   false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trk := newProgressTracker(8, 0)
			trk.applyConfState(tt.cs, 1) // every member heard from at tick 0
			trk.now = 20
			for _, id := range tt.active {
				trk.progress[id].markActive(15)
			}
			assert.Equal(t, tt.want, trk.quorumActive(1, 10))
		})
	}
}
