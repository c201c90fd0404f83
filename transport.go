package raft

// Transport carries messages between the nodes of a cluster. The core never
// calls it: a host (or Node) passes it the messages of each Ready and hands
// what it receives to Step. Package tcptransport implements it over TCP and
// package memtransport in memory, for tests and examples.
//
// Implementations must be safe for concurrent use by multiple goroutines.
//
// Delivery is best effort, as Raft expects: a message may be lost, and
// messages of different kinds (heartbeats, appends, snapshots) may overtake
// one another, but messages of one kind to one peer are never reordered or
// duplicated. Whenever a message is dropped, the transport tells the
// TransportHandler (ReportUnreachable), so the leader probes that peer again
// instead of waiting for acks that will not come. A transport persists
// nothing: what is queued when the process stops or crashes is lost, which
// Raft tolerates like any other loss.
type Transport interface {
	// Send queues msgs for delivery to their To nodes and returns at once:
	// it never blocks on the network, a slow peer or a full queue. A message
	// that cannot be queued (the peer is unknown, down, or its queue is full)
	// is dropped and reported through ReportUnreachable — later, from
	// another goroutine, never from inside Send.
	//
	// Send does not keep the msgs slice after it returns, so the caller may
	// reuse it (as RawNode does after Advance). It does keep the Entries,
	// Data, Snapshot and Context of queued messages until they are written:
	// the caller must not modify them after Send. A MsgSnap's outcome is
	// reported through ReportSnapshot.
	//
	// Messages to the local node or of a local-only type are dropped.
	// Send after Close drops everything, without reports.
	Send(msgs []Message)

	// AddPeer makes the node id known at addr (whose form is up to the
	// implementation), or updates its address. Messages from unknown
	// nodes are refused.
	AddPeer(id uint64, addr string)

	// RemovePeer forgets node id: its queued messages are dropped and its
	// connections closed.
	RemovePeer(id uint64)

	// Close closes every connection and waits for every goroutine the
	// transport started to return, including handler calls in progress.
	// It must not be called from a TransportHandler method. Calling it
	// again returns nil.
	Close() error
}

// TransportHandler receives what a Transport delivers. The transport calls
// it from its own goroutines: calls about different peers, and about
// different kinds of stream of one peer (heartbeats, appends, snapshots), may
// run concurrently; the calls carrying one stream's messages are made one at
// a time, in the order the messages were sent.
//
// A method should return promptly: while HandleMessage blocks, that stream
// reads nothing more from the network (which is how back-pressure reaches a
// sender), and Close waits for calls in progress. A handler usually passes
// the message to the goroutine that owns the RawNode, over a buffered
// channel, dropping it if the channel is full (Raft recovers from loss).
type TransportHandler interface {
	// HandleMessage is called with each message received for this node. The
	// transport has checked that m.From is the authenticated peer of the
	// connection and that m.To is this node; everything else is for
	// RawNode.Step to validate. The handler owns m and every slice in it.
	HandleMessage(m Message)

	// ReportUnreachable is called when messages to node id were dropped;
	// the host passes it to RawNode.ReportUnreachable. Reports may be
	// coalesced: one call may stand for many dropped messages.
	ReportUnreachable(id uint64)

	// ReportSnapshot is called once for every MsgSnap given to Send (unless
	// the transport is closed first), with SnapshotFinish when the receiver
	// got the whole snapshot intact, SnapshotFailure otherwise; the host
	// passes it to RawNode.ReportSnapshot.
	ReportSnapshot(id uint64, status SnapshotStatus)
}
