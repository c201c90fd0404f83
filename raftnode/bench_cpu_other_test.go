//go:build !unix

package raftnode_test

import (
	"testing"
	"time"
)

// processCPU returns -1: the process's CPU time is not measured here.
func processCPU(*testing.B) time.Duration { return -1 }
