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
	case f.Partitions && c.Partitions == 0 && r.Nodes > 1:
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
	case f.Bursts && c.Bursts == 0:
		return missing("burst of losses")
	case f.Stalls && c.Stalls == 0:
		return missing("host stall")
	case f.Transfers && c.Transfers == 0 && r.Nodes > 1 && !f.Membership:
		// A single voter has no one to hand over to (membership changes
		// may keep a cluster at one voter for the whole run).
		return missing("leadership transfer")
	case f.ExtremeTerms && c.ExtremeTerms == 0:
		return missing("message at an extreme term")
	case f.StorageFaults && c.StorageFaults == 0 && r.Nodes >= 3:
		return missing("storage fault")
	}
	// A log goes back only when the others hold what it loses, which a
	// run may never allow (two voters, a follower always behind): tests
	// check LogRegressions over many seeds instead.
	return nil
}
