package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/raftnode"
)

// A batch split by a leader change is retried only for the commands that
// certainly did not apply: an applied one keeps its result, one that may
// have applied is reported unknown, and neither is proposed again.
func TestProposeRetryingRetriesOnlyFailedCommands(t *testing.T) {
	data := [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d")}
	var calls [][]string
	propose := func(_ context.Context, batch [][]byte) []raftnode.Result {
		var got []string
		for _, d := range batch {
			got = append(got, string(d))
		}
		calls = append(calls, got)
		out := make([]raftnode.Result, len(batch))
		for i, d := range batch {
			switch {
			case len(calls) == 1 && string(d) == "a":
				out[i].Value = &result{Kind: resOK, Index: 10}
			case len(calls) == 1 && string(d) == "b":
				out[i].Err = fmt.Errorf("%w: timed out", raftnode.ErrProposalUnknown)
			case len(calls) == 1:
				out[i].Err = fmt.Errorf("%w: the entry was overwritten", raft.ErrProposalDropped)
			default:
				out[i].Value = &result{Kind: resOK, Index: uint64(20 + i)}
			}
		}
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, errs := proposeRetrying(ctx, data, propose)
	assert.Equal(t, [][]string{{"a", "b", "c", "d"}, {"c", "d"}}, calls, "only c and d are proposed again, in order")
	require.Len(t, res, 4)
	require.Len(t, errs, 4)
	assert.NoError(t, errs[0])
	assert.Equal(t, uint64(10), res[0].Index)
	assert.ErrorIs(t, errs[1], errOutcomeUnknown)
	assert.NoError(t, errs[2])
	assert.Equal(t, uint64(20), res[2].Index)
	assert.NoError(t, errs[3])
	assert.Equal(t, uint64(21), res[3].Index)
}

// Commands that keep failing as certainly not applied end as unavailable
// when the request times out.
func TestProposeRetryingGivesUpUnavailable(t *testing.T) {
	calls := 0
	propose := func(_ context.Context, batch [][]byte) []raftnode.Result {
		calls++
		out := make([]raftnode.Result, len(batch))
		for i := range out {
			out[i].Err = &raftnode.NotLeaderError{}
		}
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, errs := proposeRetrying(ctx, [][]byte{[]byte("a")}, propose)
	assert.ErrorIs(t, errs[0], errUnavailable)
	assert.Greater(t, calls, 1, "retried meanwhile")
}
