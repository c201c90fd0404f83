package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/keelraft/raft/wal"
)

// openStorage opens the node's write-ahead log under its data directory,
// checks that it belongs to this node and cluster, and applies --bootstrap,
// --join and --recover. It reports whether the storage holds no state (a
// new node, or one whose data was lost).
func openStorage(cfg config, log *zap.Logger) (*wal.Log, bool, error) {
	if cfg.Bootstrap && cfg.Join {
		return nil, false, errors.New("--bootstrap and --join exclude each other: --bootstrap starts a new cluster, --join joins a running one")
	}
	dir := filepath.Join(cfg.DataDir, "wal")
	// StreamSnapshots: snapshot data stays in its files and streams to the
	// state machine and to peers, never held by the log.
	opts := wal.Options{ClusterID: cfg.ClusterID, NodeID: cfg.ID, Salvage: true, Logger: log, SegmentSize: cfg.SegmentSize, StreamSnapshots: true}
	if cfg.DiskQuota > 0 {
		opts.FS = newQuotaFS(wal.OSFS{}, cfg.DiskQuota)
	}
	l, err := wal.Open(dir, opts)
	if errors.Is(err, wal.ErrIdentityMismatch) {
		return nil, false, fmt.Errorf("%w\nthe data directory %s is not this node's: check --data, --id and --cluster-id", err, cfg.DataDir)
	}
	if err != nil {
		return nil, false, fmt.Errorf("opening the log in %s: %w", dir, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = l.Close()
		}
	}()
	empty, err := storageEmpty(l)
	if err != nil {
		return nil, false, err
	}
	id := l.Identity()
	if empty && !cfg.Bootstrap && !cfg.Join {
		return nil, false, fmt.Errorf("the data directory %s holds no data (created now: %v). Start with --bootstrap "+
			"to create a new cluster of the --cluster members, or with --join to join a running cluster, which is also "+
			"how a node whose data was lost rejoins (it recovers from its peers)", cfg.DataDir, l.Created())
	}
	if r := l.Salvaged(); r != nil {
		log.Warn("the log was damaged: kept its valid part; the node recovers the rest from its peers and neither "+
			"votes nor counts toward a quorum until a leader has repaired it",
			zap.String("file", r.File), zap.Int64("offset", r.Offset), zap.NamedError("damage", r.Reason),
			zap.Uint64("last_index_kept", r.LastIndexKept), zap.Uint64("lost_from", r.LostFrom), zap.Uint64("lost_to", r.LostTo))
	}
	if cfg.Recover {
		if empty {
			log.Warn("--recover: the data directory is empty, nothing to mark (a node without data recovers from its peers by itself)")
		} else if hs := l.HardState(); !hs.Recovering {
			hs.Recovering = true
			if err := l.SetHardState(hs); err != nil {
				return nil, false, fmt.Errorf("--recover: marking the storage as recovering: %w", err)
			}
			log.Warn("--recover: marked the storage as recovering: this node neither votes nor counts toward a quorum "+
				"until a leader has brought it up to date", zap.Uint64("term", hs.Term), zap.Uint64("commit", hs.Commit))
		}
	}
	lvl := zap.InfoLevel
	if l.Created() {
		lvl = zap.DebugLevel // the log said it initialised the directory
	}
	log.Log(lvl, "storage", zap.String("dir", dir), zap.Bool("empty", empty), zap.Bool("created", l.Created()),
		zap.Stringer("identity", id), zap.Bool("recovering", l.HardState().Recovering))
	ok = true
	return l, empty, nil
}

// storageEmpty reports whether the log holds no raft state: no hard state,
// no entry and no snapshot.
func storageEmpty(l *wal.Log) (bool, error) {
	if l.Created() {
		return true, nil
	}
	last, err := l.LastIndex()
	if err != nil {
		return false, err
	}
	snap, err := l.Snapshot()
	if err != nil {
		return false, err
	}
	hs := l.HardState()
	return last == 0 && snap.IsEmpty() && hs.Term == 0 && hs.Vote == 0 && hs.Commit == 0, nil
}
