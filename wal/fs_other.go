//go:build !linux

package wal

import (
	"errors"
	"os"
)

// errNotSupported is returned by the platform helpers that have no
// implementation on this system.
var errNotSupported = errors.New("wal: not supported on this platform")

func datasync(f *os.File) error { return f.Sync() }

func allocate(*os.File, int64) error { return errNotSupported }

// lockFile takes no lock on platforms without flock support here; a second
// process is not detected there.
func lockFile(*os.File) error { return nil }

// linked cannot tell here; it assumes the file is still linked.
func linked(*os.File) (bool, error) { return true, nil }
