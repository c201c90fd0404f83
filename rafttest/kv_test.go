package rafttest

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEncodingRoundTrips(t *testing.T) {
	cmd := putCmd{Client: 7, Seq: 300, Key: "k3", Value: "c7.300"}
	var got putCmd
	require.NoError(t, got.unmarshal(cmd.marshal()))
	assert.Equal(t, cmd, got)
	assert.Error(t, got.unmarshal(nil))
	assert.Error(t, got.unmarshal(cmd.marshal()[:5]))

	kv := NewMapKV()
	kv.Put("b", "2")
	kv.Put("a", "1")
	hs := hostSnapshot{digest: 42, clientSeq: map[int]uint64{3: 9, 1: 4}, store: kv.Snapshot()}
	var back hostSnapshot
	require.NoError(t, back.unmarshal(hs.marshal()))
	assert.Equal(t, hs, back)
	restored := NewMapKV()
	require.NoError(t, restored.Restore(back.store))
	assert.Equal(t, "1", restored.Get("a"))
	assert.Equal(t, "2", restored.Get("b"))
	assert.Equal(t, "", restored.Get("c"))
	assert.Equal(t, kv.Snapshot(), restored.Snapshot(), "snapshots must be deterministic")
	assert.Error(t, restored.Restore([]byte{5, 'a'}))
}

func TestRegisterModel(t *testing.T) {
	put := func(client int, v string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: kvInput{Put: true, Key: "k", Value: v}, Call: call, Return: ret, Output: ""}
	}
	get := func(client int, v string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: kvInput{Key: "k"}, Call: call, Return: ret, Output: v}
	}
	tests := []struct {
		name    string
		history []porcupine.Operation
		ok      bool
	}{
		{name: "read after write", history: []porcupine.Operation{put(0, "a", 1, 2), get(1, "a", 3, 4)}, ok: true},
		{name: "stale read after write", history: []porcupine.Operation{put(0, "a", 1, 2), get(1, "", 3, 4)}},
		{name: "concurrent read may miss", history: []porcupine.Operation{put(0, "a", 1, 4), get(1, "", 2, 3)}, ok: true},
		{name: "indeterminate write may apply late", history: []porcupine.Operation{put(0, "a", 1, math64), get(1, "", 2, 3), get(1, "a", 4, 5)}, ok: true},
		{name: "indeterminate write cannot be undone", history: []porcupine.Operation{put(0, "a", 1, math64), get(1, "a", 2, 3), get(1, "", 4, 5)}},
		{name: "keys are independent", history: []porcupine.Operation{
			put(0, "a", 1, 2),
			{ClientId: 1, Input: kvInput{Key: "other"}, Call: 3, Return: 4, Output: ""},
		}, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.ok, porcupine.CheckOperations(kvModel, tt.history))
		})
	}
}

// forgetfulKV loses its largest key on Restore: a state machine bug that a
// user running their store under the simulator should see caught.
type forgetfulKV struct{ MapKV }

func (kv *forgetfulKV) Restore(data []byte) error {
	if err := kv.MapKV.Restore(data); err != nil {
		return err
	}
	keys := make([]string, 0, len(kv.m))
	for k := range kv.m {
		keys = append(keys, k)
	}
	if len(keys) > 0 {
		delete(kv.m, slices.Max(keys))
	}
	return nil
}

func TestUserStateMachine(t *testing.T) {
	faults := Faults{Network: true, Crashes: true, Snapshots: true, Partitions: true}
	tests := []struct {
		name  string
		newSM func() StateMachine
		bug   bool
	}{
		{name: "MapKV", newSM: NewMapKV},
		{name: "forgets a key on restore", newSM: func() StateMachine { return &forgetfulKV{MapKV{m: map[string]string{}}} }, bug: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 100; seed++ {
				res := Run(Config{Seed: seed, Faults: faults, NewStateMachine: tt.newSM, Keys: 3, Linearizability: true, StaleReads: true})
				if res.Failed() {
					require.True(t, tt.bug, "%s", res)
					t.Logf("caught at seed %d: %s", seed, res.Violations[0])
					return
				}
			}
			require.False(t, tt.bug, "the bug was not caught within 100 seeds")
		})
	}
}

func TestTraceAndVisualization(t *testing.T) {
	var trace bytes.Buffer
	// A known bug, so that the history is not linearizable.
	var res *Result
	for seed := uint64(1); seed <= 300; seed++ {
		trace.Reset()
		res = Run(Config{Seed: seed, Faults: Faults{Network: true, TickSkew: true, Partitions: true, Crashes: true},
			Bugs: Bugs{ReadBeforeApplied: true}, Clients: 8, Keys: 2, Linearizability: true, Trace: &trace})
		if res.Failed() {
			break
		}
	}
	require.True(t, res.Failed(), "no seed caught the stale read")
	require.Equal(t, "linearizability", res.Violations[0].Property)
	for _, want := range []string{"start seed=", "becomes StateLeader", "client ", "VIOLATION linearizability"} {
		assert.Contains(t, trace.String(), want)
	}
	var html bytes.Buffer
	require.NoError(t, res.WriteVisualization(&html))
	assert.Contains(t, html.String(), "<html")
	assert.Contains(t, html.String(), "put(")

	ok := Run(Config{Seed: 1})
	require.False(t, ok.Failed())
	assert.Error(t, ok.WriteVisualization(&html))
}

// ExampleRun runs one seed of a five-node cluster under every fault and
// checks it.
func ExampleRun() {
	res := Run(Config{
		Seed:            42,
		Nodes:           5,
		Faults:          AllFaults,
		Linearizability: true,
		Liveness:        true,
	})
	if res.Failed() {
		fmt.Println("violation:", res.Violations[0])
		return
	}
	fmt.Println("ok:", res.CheckInjected() == nil)
	// Output: ok: true
}

// panickyKV panics on its first write.
type panickyKV struct{ MapKV }

func (kv *panickyKV) Put(string, string) { panic("panickyKV: boom") }

func TestPanicEndsTheRunAsAViolation(t *testing.T) {
	res := Run(Config{Seed: 1, NewStateMachine: func() StateMachine { return &panickyKV{MapKV{m: map[string]string{}}} }})
	require.True(t, res.Failed())
	assert.Equal(t, "panic", res.Violations[0].Property)
	assert.Contains(t, res.Violations[0].Detail, "panickyKV: boom")
}
