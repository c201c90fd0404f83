/*
Package wal is a durable raft.Storage: a segmented write-ahead log of
entries and hard states, plus snapshot files, in one directory.

# Use

	log, err := wal.Open(dir, wal.Options{})
	if err != nil { ... }            // errors.Is(err, wal.ErrLocked), wal.ErrCorrupt
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

# Layout

	LOCK                                   flock(2), held while open
	0000000000000001.wal ...               segments, in sequence
	<index:016x>-<term:016x>.snap          snapshot files
	*.tmp                                  unfinished files, removed by Open

A segment is preallocated to Options.SegmentSize and holds 8-byte-aligned
records (length, type, CRC-32C of the payload, CRC-32C of the header; see
record.go). Its first record is a header with its sequence number, its
preallocated size and the log's state when it was started (snapshot
position, compaction point, last index and term, hard state); its last, once
it is full, a seal naming the next segment. Each write call is one update
record — a snapshot marker, a compaction marker, entries (replacing a
conflicting tail on replay, as Append does) and a hard state, each optional —
written and synced at once. A snapshot file is written under a temporary
name, synced, renamed and the directory synced before the update record that
refers to it. A new segment is made durable (file and directory) before the
seal of the previous one.

# Recovery

Open replays every segment in order. Because every record is synced before
the next is written, only the last record can be torn by a crash; so:

  - at the end of the last segment, an invalid record with no valid record
    after it is a torn write: it is zeroed and the log continues from the
    record before it (that write was never acknowledged);
  - an invalid record followed by a valid one, a segment shorter than its
    preallocated size, a gap in the sequence, a sealed last segment (its
    successor was deleted), a segment whose header disagrees with the state
    its predecessors produce, live entries whose segment is gone, and a
    missing or corrupt snapshot file are errors wrapping ErrCorrupt that
    name the file and the offset. Nothing is silently dropped.

A crash while a segment is being started leaves an unsealed segment
followed by an empty one; Open removes the empty one.

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
state in memory stays at what was durable before. After an fsync error the
page cache cannot be trusted, so the only way on is to restart the process
and let Open recover from what is on disk. Reads keep returning the state
in memory, which never includes the failed write, so that a node in the
middle of a call does not panic; the host must stop it.

# Memory

The Log holds in memory every entry after the compaction point (as
raft.MemoryStorage does: the entries between the last Compact and the last
index) and the current snapshot's data. Reads never touch the disk. A host
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
