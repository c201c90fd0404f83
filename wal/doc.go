/*
Package wal is a durable raft.Storage: a segmented write-ahead log of
entries and hard states, plus snapshot files, in one directory.

# Use

	log, err := wal.Open(dir, wal.Options{ClusterID: c, NodeID: id, Logger: lg})
	if err != nil { ... }            // errors.Is(err, wal.ErrLocked), wal.ErrCorrupt, wal.ErrIdentityMismatch
	if log.Created() { ... }         // the directory was empty: anything promised before is gone
	hs, _, _ := log.InitialState()   // hs.Recovering: the storage lost promised state
	rn, err := raft.NewRawNode(raft.Config{ID: id, Storage: log, ...})
	...
	// Step 1 of the host loop (raft's doc.go): one call, one fsync.
	if err := log.Save(rd.HardState, rd.Entries, rd.Snapshot); err != nil {
		// The log is poisoned: stop the node, restart the process.
	}

After applying up to index i, a host snapshots with CreateSnapshot(i, cs,
data) and releases old entries with Compact(i - keep). Append,
SetHardState and ApplySnapshot are the single-purpose writes of
raft.MemoryStorage, with the same results and errors; each is durable on
return.

# Streaming snapshots

A Log is a raft.SnapshotStore: snapshot data can flow between it and the
state machine or the transport as a stream, so that memory does not grow
with the size of the state. CreateSnapshotFrom(i, cs, r) writes the image r
reads straight to the snapshot file (written and synced before the log's
lock is taken, so Save goes on meanwhile); ReceiveSnapshot(meta, r) writes
a snapshot a leader sends to a temporary file and returns its
raft.SnapshotSource, which Save (or ApplySnapshot) of a snapshot carrying
that Source installs by renaming it, without a copy. Save also takes a
snapshot whose data comes from any other Source, and copies it. An error
of the reader leaves nothing behind and does not poison the log.

With Options.StreamSnapshots, the Log never holds snapshot data in memory:
Snapshot returns snapshots whose Data is empty and whose Source reads the
snapshot file, checking its checksum as it goes (the reader returns an
error wrapping ErrCorrupt rather than io.EOF for a damaged file), and
Open checks the file by reading it through. Without it, the current
snapshot's data is held in Data, as before; hosts that read
Snapshot().Data keep working. Package raftnode streams with either, but
only StreamSnapshots keeps a large state out of memory. A Source reads
the file it was made for: once a later snapshot has made that file
obsolete and it was pruned (Options.KeepSnapshots), Open of the Source
fails.

# Layout

	LOCK                                   flock(2), held while open
	0000000000000001.wal ...               segments, in sequence
	<index:016x>-<term:016x>.snap          snapshot files
	*.tmp                                  unfinished and received but not
	                                       installed snapshot files, removed
	                                       by Open
	*.damaged                              files moved aside by a salvage

A segment is preallocated to Options.SegmentSize and holds 8-byte-aligned
records (length, type, CRC-32C of the payload, CRC-32C of the header; see
record.go). Its first record is a header with its sequence number, its
preallocated size, the log's state when it was started (snapshot
position, compaction point, last index and term, hard state) and the
directory's identity; its last, once it is full, a seal naming the next
segment. Each write call is one update record — a snapshot marker, a
compaction marker, entries (replacing a conflicting tail on replay, as
Append does) and a hard state, each optional — written and synced at once;
once the sync has returned, a synced marker naming the update record's
offset is written right after it, without a sync of its own (the next sync
makes it durable; a process crash keeps it). A snapshot file is written
under a temporary name, synced, renamed and the directory synced before
the update record that refers to it; if that fails, the temporary file is
removed and the error names the final file and the directory (so does a
failure to start a segment). A new segment is made durable (file and
directory) before the seal of the previous one. If a segment cannot be
preallocated (File.Allocate returns ErrNotPreallocated), it is extended
sparsely and Options.Logger gets one WARN per Log.

# Identity

Open of an empty directory draws a random non-zero incarnation and stores
Identity{Options.ClusterID, Options.NodeID, incarnation} in the header of
every segment, so that compaction never loses it; Created reports that the
directory was empty. Open of an existing log whose stored cluster or node
differs from a non-zero Options.ClusterID or Options.NodeID fails with an
error wrapping ErrIdentityMismatch that names both and the directory.

# Recovery

Open replays every segment in order. Because every record is synced before
the next is written, only the last update record can be torn by a crash,
and an update record followed by its synced marker (or by any valid
record, which was written after its sync) was durable and acknowledged;
so:

  - at the end of the last segment, an invalid record with no valid record
    after it is a torn write: it is zeroed, Options.Logger gets an INFO,
    and the log continues from the record before it (that write was never
    acknowledged). After a power loss, the marker of the last durable
    record may be lost and the update record after its slot be whole but
    never synced: when nothing valid follows that record, it is torn too;
  - a valid last update record without its marker (a crash between its
    sync and the marker's write) is kept, synced again, and its marker
    written;
  - an invalid record followed by a valid one (a synced record was
    damaged), a segment shorter than its preallocated size, a gap in the
    sequence, a sealed last segment (its successor was deleted), a segment
    whose header disagrees with the state or the identity its predecessors
    produce, live entries whose segment is gone, a missing or corrupt
    snapshot file, and a hard state committing an index that the log held
    when that hard state was written but no longer holds, are errors
    wrapping ErrCorrupt that name the file and the offset. Nothing is
    silently dropped.

A crash while a segment is being started leaves an unsealed segment
followed by an empty one; Open removes the empty one.

# Salvage

With Options.Salvage, the damage above does not fail Open. The log keeps
the state replayed up to the last good record before the damage (cut
before any entry whose segment is gone, and dropping every later record
and segment). If its snapshot file is missing or corrupt, the newest older
intact snapshot file after which the entries are contiguous stands in for
it; failing that, the log starts empty at index 0 (or from the newest
intact snapshot file if nothing else is left). The hard state keeps its
term and vote, its commit is clamped to the last index kept, and
Recovering is set: the node must not vote or count until a leader has
repaired it. This state is written to a new segment after every existing
one (with the identity; a new incarnation if no header survived); then the
old segments, oldest first, and a damaged snapshot file are renamed to
*.damaged, each rename durable before the next, so that a crash leaves the
same damage to salvage again; then Open recovers from the new segment.
Options.Logger gets one WARN naming the file, the offset, the reason and
the indexes lost, and Salvaged returns the same as a SalvageReport. The
*.damaged files are left for inspection; Open ignores them.

# Compaction

After Compact (or a snapshot that replaces the log), every segment older
than the oldest one holding a live entry is deleted, oldest first, with a
directory sync after each removal. The headers of the remaining segments
carry the hard state and snapshot position, so nothing else is needed from
the deleted ones. Snapshot files beyond the newest Options.KeepSnapshots
are deleted.

# Failure

If a write, sync, rename or removal fails, the Log is poisoned: the failing
call and every later write return the error (wrapping the cause), and the
state in memory stays at what was durable before. After each sync the Log
checks that the active segment still has a name (File.Linked): if it was
deleted from under the Log (its directory removed, say), the write is not
acknowledged and the Log is poisoned with an error wrapping ErrUnlinked.
After an fsync error the page cache cannot be trusted, so the only way on
is to restart the process and let Open recover from what is on disk. Reads keep returning the state
in memory, which never includes the failed write, so that a node in the
middle of a call does not panic; the host must stop it.

# Memory

The Log holds in memory every entry after the compaction point (as
raft.MemoryStorage does: the entries between the last Compact and the last
index) and, unless Options.StreamSnapshots is set, the current snapshot's
data; snapshot files are written and read through a 1 MiB buffer. Reads never touch the disk. A host
bounds the memory by compacting regularly. Entries read back by Open share
the buffer of their segment (its whole preallocated size), so a segment's
memory is released once all its entries are compacted. Open of a log of one
million 128-byte entries (about 150 MB of records in three 64 MiB segments)
takes 0.2 to 0.3 s with a warm page cache on the development machine and
allocates about 280 MB (BenchmarkOpen1M).

# Concurrency

A Log is safe for concurrent use; writes are serialised. Two Logs, in one
process or two, cannot open the same directory: the second Open returns an
error wrapping ErrLocked.

# Testing

Options.FS replaces the operating system's file system; package memfs
provides a strict in-memory one that loses unsynced writes and unsynced
directory changes on a simulated crash and can fail any call.
*/
package wal
