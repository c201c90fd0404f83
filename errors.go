package raft

import (
	"errors"
	"fmt"
)

var (
	// ErrCompacted is returned by Storage.Entries and Storage.Term when the
	// requested index precedes the first available index because the log
	// was compacted.
	ErrCompacted = errors.New("raft: requested index is unavailable due to compaction")

	// ErrUnavailable is returned by Storage.Entries and Storage.Term when the
	// requested index is beyond the last index of the log.
	ErrUnavailable = errors.New("raft: requested entry at index is unavailable")

	// ErrSnapOutOfDate is returned by MemoryStorage.ApplySnapshot and
	// CreateSnapshot when the snapshot is older than the one already held.
	ErrSnapOutOfDate = errors.New("raft: requested index is older than the existing snapshot")

	// ErrSnapshotTemporarilyUnavailable is returned by Storage.Snapshot when
	// the snapshot is being prepared; the node retries later.
	ErrSnapshotTemporarilyUnavailable = errors.New("raft: snapshot is temporarily unavailable")

	// ErrLogGap is returned by MemoryStorage.Append when the first appended
	// entry does not follow the log's last entry (or replace part of it).
	ErrLogGap = errors.New("raft: appended entries leave a gap in the log")

	// ErrProposalDropped is returned when a proposal is ignored: no leader is
	// known, forwarding is disabled, a leadership transfer is running, or the
	// uncommitted tail would exceed MaxUncommittedEntriesSize. The proposal
	// was not appended anywhere and will not be applied; retrying is safe.
	ErrProposalDropped = errors.New("raft: proposal dropped")

	// ErrStepLocalMsg is returned by RawNode.Step for a message type that only
	// a node itself may generate.
	ErrStepLocalMsg = errors.New("raft: cannot step raft local message")

	// ErrStepPeerNotFound is returned by RawNode.Step for a response from a
	// node that is not a member of the configuration.
	ErrStepPeerNotFound = errors.New("raft: cannot step as peer not found")

	// ErrInvalidMessage is returned by RawNode.Step for a message that fails
	// validation (a zero sender, entries with gaps, impossible indexes). The
	// message was dropped and the node's state is unchanged.
	ErrInvalidMessage = errors.New("raft: invalid message")

	// ErrInvalidConfig is returned by NewRawNode when the Config fails
	// validation; the wrapped message names the field and its value.
	ErrInvalidConfig = errors.New("raft: invalid config")

	// ErrAlreadyBootstrapped is returned by RawNode.Bootstrap when the
	// storage already holds state.
	ErrAlreadyBootstrapped = errors.New("raft: storage is not empty, cannot bootstrap")

	// ErrStorage is wrapped by the error a RawNode returns once its Storage
	// failed (an error other than ErrCompacted or ErrUnavailable, or an
	// answer inconsistent with what the node knows). The node has stopped:
	// every later call returns the same error and changes nothing. The host
	// should stop the node and recover the storage.
	ErrStorage = errors.New("raft: storage failed, node stopped")

	// ErrNotLeader is returned by calls only a leader can serve when this
	// node is not the leader and knows of none to forward to.
	ErrNotLeader = errors.New("raft: not the leader")

	// ErrPendingConfChange is returned by ProposeConfChange on a leader while
	// an earlier configuration change is not yet applied. Retry once it is.
	ErrPendingConfChange = errors.New("raft: a configuration change is already pending")

	// ErrInvalidConfChange is returned by ProposeConfChange and
	// ApplyConfChange for a change the current configuration does not
	// allow (removing every voter, leaving a joint configuration that was
	// not entered, changing a joint configuration, a zero node ID) or that
	// cannot be decoded. The configuration is unchanged.
	ErrInvalidConfChange = errors.New("raft: invalid configuration change")

	// ErrCannotCampaign is returned by Campaign when no election can start
	// now; the error says why (see RawNode.Campaign).
	ErrCannotCampaign = errors.New("raft: cannot campaign")

	// ErrInvalidTransfer is returned by TransferLeader when the target is
	// not a voter of the configuration or already leads.
	ErrInvalidTransfer = errors.New("raft: invalid leadership transfer")

	// ErrProposalTooLarge is returned when a proposed entry's Data is larger
	// than Config.MaxEntrySize: such an entry could never be carried to the
	// followers, so it is refused before it is appended (or forwarded). The
	// proposal went nowhere; retrying it unchanged fails again.
	ErrProposalTooLarge = errors.New("raft: proposed entry too large")

	// ErrTransferInProgress is returned by Propose on a leader that is
	// handing leadership over. It wraps ErrProposalDropped: the proposal
	// went nowhere and may be retried with the new leader.
	ErrTransferInProgress = fmt.Errorf("%w: leadership transfer in progress", ErrProposalDropped)
)
