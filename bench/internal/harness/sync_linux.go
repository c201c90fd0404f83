package harness

import (
	"os"
	"syscall"
)

// fdatasync is what etcd's WAL and bbolt use on Linux.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
