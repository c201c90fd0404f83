package wal_test

import (
	"fmt"
	"os"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wal"
)

// Example persists what a node's Ready asks for, closes the log and opens
// it again, as a restarting process would.
func Example() {
	dir, err := os.MkdirTemp("", "wal-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	log, err := wal.Open(dir, wal.Options{SegmentSize: 1 << 20})
	if err != nil {
		panic(err)
	}
	// What a node's first Readys would hold: the bootstrap snapshot, then
	// entries and the hard state. One Save, one fsync each.
	boot := raft.Snapshot{Metadata: raft.SnapshotMetadata{
		Index: 1, Term: 1, ConfState: raft.ConfState{Voters: []uint64{1}},
	}}
	if err := log.Save(raft.HardState{}, nil, boot); err != nil {
		panic(err)
	}
	ents := []raft.Entry{{Index: 2, Term: 2}, {Index: 3, Term: 2, Data: []byte("x=1")}}
	if err := log.Save(raft.HardState{Term: 2, Vote: 1, Commit: 3}, ents, raft.Snapshot{}); err != nil {
		panic(err)
	}
	if _, err := wal.Open(dir, wal.Options{SegmentSize: 1 << 20}); err != nil {
		fmt.Println("second open:", err != nil)
	}
	_ = log.Close()

	log, err = wal.Open(dir, wal.Options{SegmentSize: 1 << 20})
	if err != nil {
		panic(err)
	}
	defer log.Close()
	hs, cs, _ := log.InitialState()
	last, _ := log.LastIndex()
	got, _ := log.Entries(3, 4, 1<<20)
	fmt.Printf("term %d, vote %d, commit %d, voters %v, last index %d, entry 3 %q\n", hs.Term, hs.Vote, hs.Commit, cs.Voters, last, got[0].Data)
	// Output:
	// second open: true
	// term 2, vote 1, commit 3, voters [1], last index 3, entry 3 "x=1"
}
