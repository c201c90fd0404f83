package main

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dpMatch is a reference matcher: the textbook table over (token, byte)
// prefixes.
func dpMatch(g *glob, s string) bool {
	// m[i][j]: the first i tokens match the first j bytes.
	m := make([][]bool, len(g.toks)+1)
	for i := range m {
		m[i] = make([]bool, len(s)+1)
	}
	m[0][0] = true
	for i := 1; i <= len(g.toks); i++ {
		t := &g.toks[i-1]
		for j := 0; j <= len(s); j++ {
			if t.star {
				m[i][j] = m[i-1][j] || (j > 0 && m[i][j-1])
			} else {
				m[i][j] = j > 0 && m[i-1][j-1] && t.has(s[j-1])
			}
		}
	}
	return m[len(g.toks)][len(s)]
}

// The linear matcher agrees with the reference on random patterns and
// keys over a small alphabet, where stars, classes and escapes interact.
func TestGlobMatchAgreesWithTheReferenceMatcher(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	parts := []string{"a", "b", "*", "?", "[ab]", "[^a]", `\*`, "**", "[a-b]"}
	for i := 0; i < 20000; i++ {
		var p strings.Builder
		for n := rng.IntN(7); n > 0; n-- {
			p.WriteString(parts[rng.IntN(len(parts))])
		}
		var s strings.Builder
		for n := rng.IntN(9); n > 0; n-- {
			s.WriteByte("ab*"[rng.IntN(3)])
		}
		g := compileGlob(p.String())
		got, _ := g.match(s.String())
		require.Equal(t, dpMatch(g, s.String()), got, "pattern %q key %q", p.String(), s.String())
	}
}

// Patterns that make a backtracking matcher blow up, or that cost a
// class-scanning matcher the class length at every step, take at most
// (tokens+1)*(key+1) steps; a pattern needing more bytes than the key has
// takes none.
func TestGlobMatchWorkIsBoundedByPatternTimesKey(t *testing.T) {
	longClass := "[" + strings.Repeat("abcdefghij", 5000) + "]"
	tests := []struct {
		name, pattern, key string
		want               bool
	}{
		{name: "many stars", pattern: strings.Repeat("*a", 50) + "b", key: strings.Repeat("a", 200)},
		{name: "long classes between stars", pattern: "*" + longClass + "*" + longClass + "*z", key: strings.Repeat("a", 300)},
		{name: "long class matches", pattern: "*" + longClass, key: strings.Repeat("x", 100) + "j", want: true},
		{name: "star then fixed tail", pattern: "*" + strings.Repeat("?", 30) + "x", key: strings.Repeat("y", 500)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := compileGlob(tt.pattern)
			ok, steps := g.match(tt.key)
			assert.Equal(t, tt.want, ok)
			assert.Equal(t, dpMatch(g, tt.key), ok)
			assert.LessOrEqual(t, steps, (len(g.toks)+1)*(len(tt.key)+1), "%d tokens, key of %d", len(g.toks), len(tt.key))
		})
	}
	g := compileGlob(strings.Repeat("[ab]", 10000))
	_, steps := g.match("ab")
	assert.Zero(t, steps, "a key shorter than the pattern's fixed part is refused without matching")
	assert.Len(t, compileGlob(longClass).toks, 1, "a class of any length is one token")
}
