//go:build !invariants

package raft

// invariantsEnabled turns on the expensive cross-checks of invariants.go
// (build with -tags invariants).
const invariantsEnabled = false
