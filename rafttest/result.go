package rafttest

import (
	"errors"
	"fmt"
	"io"

	"github.com/anishathalye/porcupine"
)

// Result is the outcome of a run.
type Result struct {
	Seed   uint64
	Nodes  int
	Faults Faults
	// Params are the fault rates drawn from the seed.
	Params string
	// Counts are the faults that happened and the client operations.
	Counts Counts
	// Violations lists the properties broken; the run stops at the first.
	Violations []Violation
	// History is the client history checked for linearizability.
	History []porcupine.Operation

	linearization *porcupine.LinearizationInfo
}

// Failed reports whether the run broke a property.
func (r *Result) Failed() bool { return len(r.Violations) > 0 }

// String summarises the run on one line.
func (r *Result) String() string {
	status := "ok"
	if r.Failed() {
		status = "FAILED: " + r.Violations[0].String()
	}
	return fmt.Sprintf("seed=%d nodes=%d faults=%s %s | %s | %s", r.Seed, r.Nodes, r.Faults, r.Params, r.Counts, status)
}

// WriteVisualization writes porcupine's HTML view of a history found not
// linearizable.
func (r *Result) WriteVisualization(w io.Writer) error {
	if r.linearization == nil {
		return errors.New("rafttest: the run found no linearizability violation to visualize")
	}
	return porcupine.Visualize(kvModel, *r.linearization, w)
}

// CheckInjected returns an error naming the first enabled kind of fault
// that never happened in the run, or nil. A run that injected nothing it
// was asked to proves nothing, and a test should fail it.
func (r *Result) CheckInjected() error {
	c := r.Counts
	missing := func(what string) error {
		return fmt.Errorf("rafttest: seed %d injected no %s (%s)", r.Seed, what, c)
	}
	f := r.Faults
	switch {
	case c.LeaderChanges == 0:
		return missing("leader election")
	case f.Network && c.Dropped == 0:
		return missing("message drop")
	case f.Partitions && c.Partitions == 0:
		return missing("partition")
	case f.Crashes && c.Crashes == 0:
		return missing("crash")
	case f.PowerLoss && (c.PowerLosses == 0 || c.ClusterCrashes == 0):
		return missing("power loss")
	case f.Pauses && c.Pauses == 0:
		return missing("pause")
	case f.Membership && c.ConfProposals == 0:
		return missing("membership change")
	case f.Snapshots && c.SnapshotsCreated == 0:
		return missing("snapshot")
	}
	return nil
}
