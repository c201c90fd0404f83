package main

import (
	"io"
	"strings"
	"testing"

	"github.com/keelraft/raft"
)

func TestCounterApplySnapshotRestore(t *testing.T) {
	var c counter
	res := c.Apply([]raft.Entry{{Data: incrCommand(5)}, {Data: []byte("bogus")}, {Data: incrCommand(-2)}})
	if res[0] != int64(5) || res[2] != int64(3) {
		t.Fatalf("results %v, want 5, an error, 3", res)
	}
	if _, ok := res[1].(error); !ok {
		t.Fatalf("an unknown command gave %v, want an error", res[1])
	}
	r, err := c.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	image, _ := io.ReadAll(r)
	var d counter
	if err := d.Restore(strings.NewReader(string(image))); err != nil || d.value.Load() != 3 {
		t.Fatalf("restored %d (%v) from %q, want 3", d.value.Load(), err, image)
	}
	if err := d.Restore(strings.NewReader("")); err != nil || d.value.Load() != 0 {
		t.Fatalf("the empty image restored %d (%v), want 0", d.value.Load(), err)
	}
	if err := d.Restore(strings.NewReader("x")); err == nil {
		t.Fatal("a bad image restored without an error")
	}
}
