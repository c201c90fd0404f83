package wal

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
)

// Identity names the storage a Log lives in: the cluster and the node it
// belongs to, and the incarnation of this directory. The incarnation is
// drawn at random when Open initialises an empty directory, so a node whose
// storage was wiped (or replaced by another) comes back with another
// incarnation and its peers can tell it is not its old self.
//
// Every segment header carries the identity, so compaction never loses it.
type Identity struct {
	// ClusterID is Options.ClusterID when the directory was initialised.
	ClusterID uint64
	// NodeID is Options.NodeID when the directory was initialised.
	NodeID uint64
	// Incarnation is a random non-zero number drawn when the directory
	// was initialised.
	Incarnation uint64
}

// String formats the identity for error messages and logs.
func (id Identity) String() string {
	return fmt.Sprintf("cluster %#x node %d incarnation %#x", id.ClusterID, id.NodeID, id.Incarnation)
}

// ErrIdentityMismatch is returned (wrapped) by Open when the directory
// belongs to another cluster or node than Options.ClusterID or
// Options.NodeID say: the host pointed a node at someone else's data.
var ErrIdentityMismatch = errors.New("wal: directory belongs to another cluster or node")

// newIncarnation draws a random non-zero incarnation.
func newIncarnation() (uint64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("wal: draw an incarnation: %w", err)
		}
		if v := binary.LittleEndian.Uint64(b[:]); v != 0 {
			return v, nil
		}
	}
}

// checkIdentity compares the stored identity with the non-zero IDs of opts.
func checkIdentity(dir string, stored Identity, opts Options) error {
	if (opts.ClusterID != 0 && opts.ClusterID != stored.ClusterID) ||
		(opts.NodeID != 0 && opts.NodeID != stored.NodeID) {
		return fmt.Errorf("%w: %s holds %s, but this node is cluster %#x node %d",
			ErrIdentityMismatch, dir, stored, opts.ClusterID, opts.NodeID)
	}
	return nil
}

// Identity returns the identity of the log's directory.
func (l *Log) Identity() Identity {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.id
}

// Created reports whether this Open initialised an empty directory: the
// storage held nothing, so whatever this node had promised before (if it
// ever ran) is gone.
func (l *Log) Created() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.created
}
