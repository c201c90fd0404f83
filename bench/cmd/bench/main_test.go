package main

import (
	"testing"

	"github.com/keelraft/raft/bench/internal/harness"
)

// TestWorkloadsValid runs every workload, small, on every library this
// binary runs in process, and checks that the runs verify (all proposals
// applied exactly once on all three nodes, equal state machines) and
// measured something.
func TestWorkloadsValid(t *testing.T) {
	workloads := []harness.Workload{
		{Kind: harness.Core, Window: 16, N: 2000},
		{Kind: harness.Latency, Window: 1, N: 300},
		{Kind: harness.Durable, Window: 256, N: 1000},
		{Kind: harness.Scale, Window: 256, N: 1000, LogSize: 5000},
	}
	for _, lib := range []string{libKeel, libKeelWAL, libKeelNode, libEtcd36, libHashi} {
		for _, w := range workloads {
			if !runsKind(lib, w.Kind) {
				continue
			}
			t.Run(lib+"/"+w.Kind, func(t *testing.T) {
				if w.Kind == harness.Durable {
					w.Dir = t.TempDir()
				}
				res := inProcess[lib](w)
				if res.Invalid != "" {
					t.Fatalf("invalid run: %s", res.Invalid)
				}
				if res.PerSec <= 0 || res.AllocsPerOp <= 0 {
					t.Errorf("nothing measured: %+v", res)
				}
				if w.Kind == harness.Latency && (res.P50 <= 0 || res.P99 < res.P50) {
					t.Errorf("latencies p50 %v p99 %v", res.P50, res.P99)
				}
				if w.Kind == harness.Scale && res.BytesPerEntry < harness.PayloadSize {
					t.Errorf("%.0f heap bytes per held entry, less than its payload", res.BytesPerEntry)
				}
			})
		}
	}
}

// TestVerifyCatchesBadRuns checks that the state machine check fails on a
// missing, a duplicated and a diverging application.
func TestVerifyCatchesBadRuns(t *testing.T) {
	p := harness.Payloads(3)
	apply := func(seqs ...int) harness.SM {
		var s harness.SM
		s.Init(3)
		for _, i := range seqs {
			s.Apply(p[i])
		}
		return s
	}
	tests := []struct {
		name string
		sms  []harness.SM
		ok   bool
	}{
		{name: "all equal", sms: []harness.SM{apply(0, 1, 2), apply(0, 1, 2)}, ok: true},
		{name: "one missing", sms: []harness.SM{apply(0, 1, 2), apply(0, 1)}},
		{name: "duplicate", sms: []harness.SM{apply(0, 1, 2), apply(0, 1, 1, 2)}},
		{name: "different order", sms: []harness.SM{apply(0, 1, 2), apply(0, 2, 1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := harness.Verify(tt.sms, 3)
			if (err == nil) != tt.ok {
				t.Fatalf("Verify = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
