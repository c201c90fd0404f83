//go:build !keelmutations

package raftnode

// leaseMissedTicksMutated reports whether the lease fix is switched off. In
// normal builds it never is, and the compiler drops the checks.
func leaseMissedTicksMutated() bool { return false }
