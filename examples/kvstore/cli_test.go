package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHelpPrintsUsageAndSucceeds(t *testing.T) {
	for _, arg := range []string{"--help", "-h"} {
		var out, errb bytes.Buffer
		require.NoError(t, run([]string{arg}, &out, &errb), arg)
		assert.Contains(t, out.String()+errb.String(), "-cluster", arg)
		assert.NotContains(t, out.String()+errb.String(), "help requested", arg)
	}
	var out, errb bytes.Buffer
	assert.Error(t, run([]string{"--no-such-flag"}, &out, &errb), "a wrong flag still fails")
}

func TestJSONRepliesDoNotEscapeAmpersands(t *testing.T) {
	rec := httptest.NewRecorder()
	writeJSON(rec, http.StatusBadRequest, map[string]string{"error": "a & b <c>"})
	assert.Equal(t, "{\"error\":\"a & b <c>\"}\n", rec.Body.String())
}
