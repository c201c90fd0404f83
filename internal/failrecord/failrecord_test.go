package failrecord

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunRecordsFailuresWithoutFailingTheTest(t *testing.T) {
	tests := []struct {
		name     string
		scenario func(testing.TB)
		want     []string
	}{
		{"passes", func(testing.TB) {}, nil},
		{"errors twice", func(t testing.TB) { t.Errorf("a %d", 1); t.Error("b") }, []string{"a 1", "b"}},
		{"fatal stops the scenario", func(t testing.TB) { t.Fatalf("stop"); t.Error("not reached") }, []string{"stop"}},
		{"panic", func(testing.TB) { panic("boom") }, []string{"panic: boom"}},
		{"testify require", func(t testing.TB) { require.Equal(t, 1, 2, "one is not two") }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Run(t, tt.scenario)
			if tt.name == "testify require" {
				require.NotEmpty(t, got)
				assert.Equal(t, "Messages:   \tone is not two", Summary(got[0]))
				return
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestSummaryFallsBackToTheFirstLine(t *testing.T) {
	assert.Equal(t, "plain failure", Summary("  plain failure\nmore"))
	assert.Equal(t, "Error:  x", Summary("head\n  Error:  x\n"))
}
