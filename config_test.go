package raft

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// unitConfig returns a valid Config for node id over a fresh storage.
func unitConfig(id uint64) Config {
	return Config{ID: id, Storage: NewMemoryStorage()}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(c *Config)
		wantText []string // each must appear in the error
	}{
		{name: "zero ID", mutate: func(c *Config) { c.ID = 0 }, wantText: []string{"ID", "0"}},
		{name: "negative heartbeat", mutate: func(c *Config) { c.HeartbeatTick = -1 }, wantText: []string{"HeartbeatTick", "-1"}},
		{
			name:     "election equal to heartbeat",
			mutate:   func(c *Config) { c.ElectionTick, c.HeartbeatTick = 3, 3 },
			wantText: []string{"ElectionTick (3)", "HeartbeatTick (3)"},
		},
		{
			name:     "election below heartbeat",
			mutate:   func(c *Config) { c.ElectionTick, c.HeartbeatTick = 2, 5 },
			wantText: []string{"ElectionTick (2)", "HeartbeatTick (5)"},
		},
		{
			name:     "election below the default heartbeat",
			mutate:   func(c *Config) { c.ElectionTick = 1 },
			wantText: []string{"ElectionTick (1)", "HeartbeatTick (1)"},
		},
		{
			name:     "negative election",
			mutate:   func(c *Config) { c.ElectionTick = -10 },
			wantText: []string{"ElectionTick (-10)"},
		},
		{
			name:     "election so large the randomized timeout overflows",
			mutate:   func(c *Config) { c.ElectionTick = math.MaxInt },
			wantText: []string{"ElectionTick", "9223372036854775807"},
		},
		{name: "nil storage", mutate: func(c *Config) { c.Storage = nil }, wantText: []string{"Storage"}},
		{
			name:     "nil MemoryStorage pointer",
			mutate:   func(c *Config) { c.Storage = (*MemoryStorage)(nil) },
			wantText: []string{"Storage"},
		},
		{
			name:     "negative inflight messages",
			mutate:   func(c *Config) { c.MaxInflightMsgs = -1 },
			wantText: []string{"MaxInflightMsgs", "-1"},
		},
		{
			name:     "inflight bytes below the message size",
			mutate:   func(c *Config) { c.MaxInflightBytes, c.MaxSizePerMsg = 100, 1000 },
			wantText: []string{"MaxInflightBytes (100)", "MaxSizePerMsg (1000)"},
		},
		{
			name:     "inflight bytes below the default message size",
			mutate:   func(c *Config) { c.MaxInflightBytes = 1024 },
			wantText: []string{"MaxInflightBytes (1024)", "MaxSizePerMsg (1048576)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := unitConfig(1)
			tt.mutate(&c)

			d := c.WithDefaults()
			verr := d.Validate()
			require.Error(t, verr)
			assert.ErrorIs(t, verr, ErrInvalidConfig)
			for _, s := range tt.wantText {
				assert.Contains(t, verr.Error(), s)
			}
			assert.Contains(t, verr.Error(), "raft: invalid config")

			var rn *RawNode
			var err error
			require.NotPanics(t, func() { rn, err = NewRawNode(c) })
			assert.Nil(t, rn)
			assert.ErrorIs(t, err, ErrInvalidConfig)
			assert.Equal(t, verr.Error(), err.Error())
		})
	}
}

func TestConfigValidateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
	}{
		{name: "defaults", mutate: func(*Config) {}},
		{name: "smallest ticks", mutate: func(c *Config) { c.ElectionTick, c.HeartbeatTick = 2, 1 }},
		{name: "largest election tick", mutate: func(c *Config) { c.ElectionTick = math.MaxInt / 2 }},
		{name: "one inflight message", mutate: func(c *Config) { c.MaxInflightMsgs = 1 }},
		{name: "inflight bytes equal to the message size", mutate: func(c *Config) { c.MaxInflightBytes, c.MaxSizePerMsg = 4096, 4096 }},
		{name: "zero value MemoryStorage", mutate: func(c *Config) { c.Storage = &MemoryStorage{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := unitConfig(1)
			tt.mutate(&c)
			var rn *RawNode
			var err error
			require.NotPanics(t, func() { rn, err = NewRawNode(c) })
			require.NoError(t, err)
			require.NotNil(t, rn)
			r := rn.raft
			assert.GreaterOrEqual(t, r.randomizedElectionTimeout, r.electionTimeout)
			assert.Less(t, r.randomizedElectionTimeout-r.electionTimeout, r.electionTimeout)
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	logger := zap.NewExample()
	rnd := rand.New(rand.NewPCG(1, 1))
	tests := []struct {
		name string
		in   Config
		want func(t *testing.T, c Config)
	}{
		{
			name: "zero values",
			in:   Config{ID: 1},
			want: func(t *testing.T, c Config) {
				assert.Equal(t, DefaultElectionTick, c.ElectionTick)
				assert.Equal(t, DefaultHeartbeatTick, c.HeartbeatTick)
				assert.Equal(t, uint64(DefaultMaxSizePerMsg), c.MaxSizePerMsg)
				assert.Equal(t, uint64(DefaultMaxSizePerMsg), c.MaxCommittedSizePerReady)
				assert.Equal(t, DefaultMaxInflightMsgs, c.MaxInflightMsgs)
				assert.Zero(t, c.MaxInflightBytes, "no byte limit by default")
				assert.Zero(t, c.MaxUncommittedEntriesSize, "no uncommitted limit by default")
				assert.NotNil(t, c.Logger)
				assert.NotNil(t, c.Rand)
				assert.False(t, c.DisablePreVote)
				assert.False(t, c.DisableCheckQuorum)
			},
		},
		{
			name: "committed size follows the message size",
			in:   Config{ID: 1, MaxSizePerMsg: 4096},
			want: func(t *testing.T, c Config) {
				assert.Equal(t, uint64(4096), c.MaxSizePerMsg)
				assert.Equal(t, uint64(4096), c.MaxCommittedSizePerReady)
			},
		},
		{
			name: "set values are kept",
			in: Config{
				ID: 1, ElectionTick: 20, HeartbeatTick: 4, MaxSizePerMsg: 10, MaxCommittedSizePerReady: 30,
				MaxInflightMsgs: 7, MaxInflightBytes: 99, Logger: logger, Rand: rnd,
			},
			want: func(t *testing.T, c Config) {
				assert.Equal(t, 20, c.ElectionTick)
				assert.Equal(t, 4, c.HeartbeatTick)
				assert.Equal(t, uint64(10), c.MaxSizePerMsg)
				assert.Equal(t, uint64(30), c.MaxCommittedSizePerReady)
				assert.Equal(t, 7, c.MaxInflightMsgs)
				assert.Equal(t, uint64(99), c.MaxInflightBytes)
				assert.Same(t, logger, c.Logger)
				assert.Same(t, rnd, c.Rand)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			got := in.WithDefaults()
			tt.want(t, got)
			assert.Equal(t, tt.in, in, "withDefaults does not modify its receiver")
		})
	}
}

func TestConfigDefaultsReachTheNode(t *testing.T) {
	rn, err := NewRawNode(Config{ID: 1, Storage: NewMemoryStorage()})
	require.NoError(t, err)
	r := rn.raft
	assert.Equal(t, DefaultElectionTick, r.electionTimeout)
	assert.Equal(t, DefaultHeartbeatTick, r.heartbeatTimeout)
	assert.Equal(t, uint64(DefaultMaxSizePerMsg), r.maxMsgSize)
	assert.Equal(t, uint64(DefaultMaxSizePerMsg), r.raftLog.maxApplyingSize)
	assert.Equal(t, DefaultMaxInflightMsgs, r.trk.maxInflight)
	assert.True(t, r.preVote, "PreVote on by default")
	assert.True(t, r.checkQuorum, "CheckQuorum on by default")
	assert.False(t, r.disableProposalForwarding)

	rn, err = NewRawNode(Config{
		ID: 1, Storage: NewMemoryStorage(),
		DisablePreVote: true, DisableCheckQuorum: true, DisableProposalForwarding: true,
		MaxUncommittedEntriesSize: 77, MaxInflightBytes: 1 << 21,
	})
	require.NoError(t, err)
	r = rn.raft
	assert.False(t, r.preVote)
	assert.False(t, r.checkQuorum)
	assert.True(t, r.disableProposalForwarding)
	assert.Equal(t, uint64(77), r.maxUncommittedSize)
	assert.Equal(t, uint64(1<<21), r.trk.maxInflightBytes)
}

// unitTimeouts builds a node from c and returns the randomized election
// timeouts it draws at construction and at n-1 further resets.
func unitTimeouts(t testing.TB, c Config, n int) []int {
	t.Helper()
	rn, err := NewRawNode(c)
	require.NoError(t, err)
	r := rn.raft
	out := []int{r.randomizedElectionTimeout}
	for len(out) < n {
		r.resetRandomizedElectionTimeout()
		out = append(out, r.randomizedElectionTimeout)
	}
	return out
}

func TestConfigSeedDeterminism(t *testing.T) {
	withSeed := func(id, seed uint64) Config {
		c := unitConfig(id)
		c.Seed = seed
		return c
	}
	withRand := func(id, seed, pcg uint64) Config {
		c := withSeed(id, seed)
		c.Rand = rand.New(rand.NewPCG(pcg, pcg))
		return c
	}
	tests := []struct {
		name string
		a, b Config
		same bool
	}{
		{name: "same seed", a: withSeed(1, 42), b: withSeed(1, 42), same: true},
		{name: "same seed, different IDs", a: withSeed(1, 42), b: withSeed(2, 42), same: true},
		{name: "different seeds", a: withSeed(1, 42), b: withSeed(1, 43), same: false},
		{name: "zero seed means the ID", a: withSeed(3, 0), b: withSeed(1, 3), same: true},
		{name: "zero seed, different IDs", a: withSeed(1, 0), b: withSeed(2, 0), same: false},
		{name: "Rand wins over Seed", a: withRand(1, 5, 99), b: withRand(2, 6, 99), same: true},
		{name: "different Rand states", a: withRand(1, 5, 99), b: withRand(1, 5, 100), same: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := unitTimeouts(t, tt.a, 64)
			b := unitTimeouts(t, tt.b, 64)
			if tt.same {
				assert.Equal(t, a, b)
			} else {
				assert.NotEqual(t, a, b)
			}
		})
	}
}

func TestConfigRandomizedTimeoutRange(t *testing.T) {
	tests := []struct {
		name         string
		electionTick int
		seed         uint64
		draws        int
		wantAll      bool // every value of the range must appear
	}{
		{name: "smallest", electionTick: 2, seed: 1, draws: 200, wantAll: true},
		{name: "small", electionTick: 5, seed: 2, draws: 500, wantAll: true},
		{name: "default", electionTick: DefaultElectionTick, seed: 3, draws: 1000, wantAll: true},
		{name: "large", electionTick: 1000, seed: 4, draws: 2000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := unitConfig(1)
			c.ElectionTick = tt.electionTick
			c.Seed = tt.seed
			seen := map[int]bool{}
			for _, v := range unitTimeouts(t, c, tt.draws) {
				require.GreaterOrEqual(t, v, tt.electionTick, "seed %d", tt.seed)
				require.Less(t, v, 2*tt.electionTick, "seed %d", tt.seed)
				seen[v] = true
			}
			if tt.wantAll {
				assert.Len(t, seen, tt.electionTick, "seed %d: values seen %v", tt.seed, seen)
			} else {
				assert.Greater(t, len(seen), tt.electionTick/4, "seed %d: too few distinct values", tt.seed)
			}
		})
	}
}

func TestNewRawNodeInconsistentStorage(t *testing.T) {
	boom := errors.New("disk on fire")
	tests := []struct {
		name     string
		storage  func(t *testing.T) Storage
		wantErr  error
		wantText string
	}{
		{
			name: "commit below the snapshot",
			storage: func(t *testing.T) Storage {
				ms := unitStorage(t, 5, 2, nil)
				require.NoError(t, ms.SetHardState(HardState{Term: 2, Commit: 3}))
				return ms
			},
			wantText: "stored commit index 3 is below the snapshot's index 5",
		},
		{
			name:     "initial state fails",
			storage:  func(*testing.T) Storage { return &unitFakeStorage{first: 1, initErr: boom} },
			wantErr:  boom,
			wantText: "initial state",
		},
		{
			name:     "first index fails",
			storage:  func(*testing.T) Storage { return &unitFakeStorage{first: 1, firstErr: boom} },
			wantErr:  boom,
			wantText: "first index",
		},
		{
			name:     "last index below the first",
			storage:  func(*testing.T) Storage { return &unitFakeStorage{first: 10, last: 3} },
			wantText: "first index 10 and last index 3",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := unitConfig(1)
			c.Storage = tt.storage(t)
			var rn *RawNode
			var err error
			require.NotPanics(t, func() { rn, err = NewRawNode(c) })
			require.Error(t, err)
			assert.Nil(t, rn)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
			}
			assert.Contains(t, err.Error(), tt.wantText)
		})
	}
}

// TestNewRawNodeCommitBeyondLog checks that a storage whose hard state
// commits entries its log no longer holds (a lost tail) starts the node
// recovering, with the commit index clamped to the log, and that the
// recovering state is persisted by the first Ready.
func TestNewRawNodeCommitBeyondLog(t *testing.T) {
	tests := []struct {
		name       string
		storage    func(t *testing.T) Storage
		wantCommit uint64
	}{
		{
			name: "beyond the last index",
			storage: func(t *testing.T) Storage {
				ms := NewMemoryStorage()
				require.NoError(t, ms.ApplySnapshot(Snapshot{Metadata: SnapshotMetadata{
					Index: 1, Term: 1, ConfState: ConfState{Voters: []uint64{1, 2, 3}},
				}}))
				require.NoError(t, ms.Append(unitEnts(2, 1, 1)))
				require.NoError(t, ms.SetHardState(HardState{Term: 1, Commit: 5}))
				return ms
			},
			wantCommit: 3,
		},
		{
			name: "beyond an empty log",
			storage: func(t *testing.T) Storage {
				ms := NewMemoryStorage()
				require.NoError(t, ms.SetHardState(HardState{Term: 2, Vote: 1, Commit: 1}))
				return ms
			},
			wantCommit: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := unitConfig(1)
			c.Storage = tt.storage(t)
			rn, err := NewRawNode(c)
			require.NoError(t, err)
			require.True(t, rn.HasReady())
			rd := rn.Ready()
			assert.True(t, rd.HardState.Recovering, "the first Ready persists the recovering state")
			assert.Equal(t, tt.wantCommit, rd.HardState.Commit)
		})
	}
}

func TestNewRawNodeApplied(t *testing.T) {
	// Snapshot at 1 (voter 1), entries 2..5, commit 4.
	newStorage := func(t *testing.T) *MemoryStorage {
		ms := unitStorage(t, 1, 1, unitEnts(2, 1, 1, 1, 1))
		require.NoError(t, ms.SetHardState(HardState{Term: 1, Commit: 4}))
		return ms
	}
	tests := []struct {
		name        string
		applied     uint64
		wantErr     bool
		wantApplied uint64
		wantEnts    []uint64 // committed entries of the first Ready
	}{
		{name: "nothing applied", applied: 0, wantApplied: 1, wantEnts: unitSeq(2, 4)},
		{name: "snapshot applied", applied: 1, wantApplied: 1, wantEnts: unitSeq(2, 4)},
		{name: "part applied", applied: 3, wantApplied: 3, wantEnts: []uint64{4}},
		{name: "everything committed applied", applied: 4, wantApplied: 4},
		{name: "beyond commit", applied: 5, wantErr: true},
		{name: "beyond the log", applied: 9, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := unitConfig(1)
			c.Storage = newStorage(t)
			c.Applied = tt.applied
			var rn *RawNode
			var err error
			require.NotPanics(t, func() { rn, err = NewRawNode(c) })
			if tt.wantErr {
				require.ErrorIs(t, err, ErrInvalidConfig)
				assert.Nil(t, rn)
				assert.Contains(t, err.Error(), "Applied")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantApplied, rn.BasicStatus().Applied)
			assert.Equal(t, uint64(4), rn.BasicStatus().Commit)
			var got []Entry
			if rn.HasReady() {
				got = rn.Ready().CommittedEntries
			}
			assert.Equal(t, tt.wantEnts, unitIndexes(got))
		})
	}
}
