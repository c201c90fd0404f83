package raft

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"

	"go.uber.org/zap"
)

// Default values used for zero fields of Config.
const (
	// DefaultElectionTick is the election timeout, in ticks, when
	// Config.ElectionTick is zero.
	DefaultElectionTick = 10
	// DefaultHeartbeatTick is the heartbeat interval, in ticks, when
	// Config.HeartbeatTick is zero.
	DefaultHeartbeatTick = 1
	// DefaultMaxEntrySize is the Config.MaxEntrySize a Node uses when it is
	// zero: the default frame limit of the wire format (16 MiB, package
	// wire's DefaultMaxFrameSize) less 1 MiB for the rest of the message
	// that carries the entry.
	DefaultMaxEntrySize = 15 << 20
	// DefaultMaxSizePerMsg is the byte limit of one append message when
	// Config.MaxSizePerMsg is zero.
	DefaultMaxSizePerMsg = 1 << 20
	// DefaultMaxInflightMsgs is the inflight window length when
	// Config.MaxInflightMsgs is zero.
	DefaultMaxInflightMsgs = 256
)

// Config holds a node's parameters. Zero values mean the documented
// defaults; NewRawNode validates the result and reports the first problem.
type Config struct {
	// ID identifies the node; it must not be zero.
	ID uint64

	// ElectionTick is the number of ticks a follower waits without hearing
	// from a leader before it campaigns. The actual timeout is drawn anew at
	// every term change from [ElectionTick, 2*ElectionTick). It must be
	// greater than HeartbeatTick. Default DefaultElectionTick.
	ElectionTick int
	// HeartbeatTick is the number of ticks between a leader's heartbeats.
	// Default DefaultHeartbeatTick.
	HeartbeatTick int

	// Storage is the node's durable state; required. A new node's storage is
	// empty (then call Bootstrap) or holds what a previous run persisted.
	Storage Storage

	// Incarnation identifies the storage's contents: a random number drawn
	// when the storage was first initialised and kept with it (package
	// wal's Identity), so that a node whose data was wiped or replaced
	// comes back under another one. Every message carries it; the cluster
	// records each member's in its configuration, refuses votes and
	// acknowledgements from a member that shows another one unless it is
	// recovering, and tells such a member, which then recovers on its own
	// (see HardState.Recovering). Zero turns the check off for this node.
	Incarnation uint64

	// Applied is the index the host's state machine has already applied
	// when the node restarts; entries up to it are not handed out again,
	// and the configuration changes among them take effect at start.
	Applied uint64

	// MaxSizePerMsg bounds the bytes of entries in one append message (at
	// least one entry is always sent). Default DefaultMaxSizePerMsg.
	MaxSizePerMsg uint64
	// MaxEntrySize bounds the Data of one proposed entry: a proposal
	// carrying a larger entry is refused with ErrProposalTooLarge, by a
	// leader before it appends it and by a follower before it forwards it.
	// A leader sends an entry larger than MaxSizePerMsg alone, so an append
	// message holds at most max(MaxSizePerMsg, MaxEntrySize) bytes of
	// entries; both must fit the transport's frame limit, or the entry can
	// never be sent and replication stops behind it. Zero means no limit
	// for a RawNode; a Node uses DefaultMaxEntrySize instead (set
	// math.MaxUint64 to lift the limit there).
	MaxEntrySize uint64
	// MaxCommittedSizePerReady bounds the bytes of committed entries in one
	// Ready. Default: MaxSizePerMsg.
	MaxCommittedSizePerReady uint64
	// MaxUncommittedEntriesSize bounds the payload bytes of a leader's
	// uncommitted tail; a proposal beyond it fails with ErrProposalDropped.
	// Zero means no limit.
	MaxUncommittedEntriesSize uint64
	// MaxInflightMsgs bounds the appends in flight to one peer in replicate
	// mode. Default DefaultMaxInflightMsgs.
	MaxInflightMsgs int
	// MaxInflightBytes bounds the bytes of entries in flight to one peer.
	// Zero means no byte limit; otherwise it must be at least MaxSizePerMsg.
	MaxInflightBytes uint64

	// DisablePreVote turns off the pre-vote phase (thesis §9.6). With it on
	// (the default), a node whose election timer fires first asks whether
	// it could win at the next term, and raises its term only if a quorum
	// says yes; a node rejoining after a partition then does not depose a
	// healthy leader.
	DisablePreVote bool
	// DisableCheckQuorum turns off quorum checking. With it on (the
	// default), a leader that has not heard from a quorum within an
	// election timeout steps down, and a follower that heard from a leader
	// within the election timeout ignores vote requests.
	DisableCheckQuorum bool

	// ReadOnlyOption chooses how ReadIndex confirms leadership: a quorum
	// heartbeat round (ReadOnlySafe, the default) or the leader lease
	// (ReadOnlyLeaseBased, which requires CheckQuorum; see its doc for the
	// clock-drift assumption).
	ReadOnlyOption ReadOnlyOption

	// PipelinedAcks selects the pipelined way of acknowledging a Ready:
	// instead of Advance, the host calls AckPersisted once a Ready's writes
	// are durable and AckApplied once entries are applied, and may take the
	// next Ready before acknowledging earlier ones. That lets a host overlap
	// disk writes, network sends and application, and cover several Readies
	// with one fsync. CommittedEntries then only carry entries that are
	// already durable locally.
	PipelinedAcks bool

	// DisableStepDownOnRemoval keeps a leader leading after a configuration
	// change that removes it (or makes it a learner) is applied. By default
	// it steps down and tells the most up-to-date voter to campaign at once.
	DisableStepDownOnRemoval bool

	// DisableProposalForwarding makes a follower drop proposals (returning
	// ErrProposalDropped) instead of forwarding them to the leader.
	DisableProposalForwarding bool

	// Logger receives the node's log lines. Nil means no logging.
	Logger *zap.Logger

	// Rand is the source of election-timeout jitter. Nil means a source
	// seeded from Seed, so that a run is reproducible.
	Rand *rand.Rand
	// Seed seeds the jitter source when Rand is nil. Zero means the node ID.
	Seed uint64
}

// WithDefaults returns a copy of c with its zero fields set to their
// defaults, as NewRawNode uses it: a wrapper reads the limits in force from
// it.
func (c Config) WithDefaults() Config {
	if c.ElectionTick == 0 {
		c.ElectionTick = DefaultElectionTick
	}
	if c.HeartbeatTick == 0 {
		c.HeartbeatTick = DefaultHeartbeatTick
	}
	if c.MaxSizePerMsg == 0 {
		c.MaxSizePerMsg = DefaultMaxSizePerMsg
	}
	if c.MaxCommittedSizePerReady == 0 {
		c.MaxCommittedSizePerReady = c.MaxSizePerMsg
	}
	if c.MaxInflightMsgs == 0 {
		c.MaxInflightMsgs = DefaultMaxInflightMsgs
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Rand == nil {
		seed := c.Seed
		if seed == 0 {
			seed = c.ID
		}
		c.Rand = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	}
	return c
}

// Validate reports the first invalid field of c, naming the field and its
// value, in an error wrapping ErrInvalidConfig. It checks c as it is: zero
// fields that have defaults fail, so check c.WithDefaults() to learn
// whether NewRawNode would accept c.
func (c *Config) Validate() error {
	switch {
	case c.ID == None:
		return fmt.Errorf("%w: ID must not be 0", ErrInvalidConfig)
	case c.HeartbeatTick < 1:
		return fmt.Errorf("%w: HeartbeatTick must be at least 1, got %d", ErrInvalidConfig, c.HeartbeatTick)
	case c.ElectionTick <= c.HeartbeatTick:
		return fmt.Errorf("%w: ElectionTick (%d) must be greater than HeartbeatTick (%d)", ErrInvalidConfig, c.ElectionTick, c.HeartbeatTick)
	case c.ElectionTick > math.MaxInt/2:
		// The randomized timeout reaches 2*ElectionTick-1, which must not
		// overflow (a negative timeout would fire on every tick).
		return fmt.Errorf("%w: ElectionTick (%d) must be at most %d", ErrInvalidConfig, c.ElectionTick, math.MaxInt/2)
	case c.Storage == nil:
		return fmt.Errorf("%w: Storage must be set", ErrInvalidConfig)
	case isNilPointer(c.Storage):
		return fmt.Errorf("%w: Storage must be set, got a nil %T", ErrInvalidConfig, c.Storage)
	case c.MaxInflightMsgs < 1:
		return fmt.Errorf("%w: MaxInflightMsgs must be at least 1, got %d", ErrInvalidConfig, c.MaxInflightMsgs)
	case c.ReadOnlyOption > ReadOnlyLeaseBased:
		return fmt.Errorf("%w: unknown ReadOnlyOption %d", ErrInvalidConfig, c.ReadOnlyOption)
	case c.ReadOnlyOption == ReadOnlyLeaseBased && c.DisableCheckQuorum:
		return fmt.Errorf("%w: ReadOnlyOption %s requires CheckQuorum (DisableCheckQuorum is set)", ErrInvalidConfig, c.ReadOnlyOption)
	case c.MaxInflightBytes != 0 && c.MaxInflightBytes < c.MaxSizePerMsg:
		return fmt.Errorf("%w: MaxInflightBytes (%d) must be 0 or at least MaxSizePerMsg (%d)", ErrInvalidConfig, c.MaxInflightBytes, c.MaxSizePerMsg)
	}
	return nil
}

// isNilPointer reports whether v is a nil pointer stored in an interface,
// which compares unequal to nil but panics on first use.
func isNilPointer(v any) bool {
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}
