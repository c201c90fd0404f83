//go:build !keelmutations

package raft

// mutated reports whether the fix that m names is switched off. In normal
// builds it never is, and the compiler drops the checks.
func mutated(mutation) bool { return false }
