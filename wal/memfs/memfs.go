// Package memfs is a strict in-memory wal.FS for tests. It keeps, for every
// file, the content as of its last Sync, and for the namespace, the entries
// as of the last SyncDir; Restart after a crash brings back exactly that
// (optionally tearing unsynced writes at sector granularity), so a test
// sees what a power loss would leave. It can also fail the N-th call.
//
// An FS is safe for concurrent use.
package memfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/keelraft/raft/wal"
)

// ErrCrashed is returned by every call after the simulated crash, until
// Restart.
var ErrCrashed = errors.New("memfs: crashed")

// SectorSize is the granularity at which Restart tears unsynced writes.
const SectorSize = 512

// FS is an in-memory file system. The zero value is not usable; call New.
type FS struct {
	mu sync.Mutex
	// files is the current namespace; durable the namespace as of the
	// last SyncDir of each directory.
	files   map[string]*inode
	durable map[string]*inode
	locks   map[string]bool

	ops     int
	failAt  int
	failErr error
	crashAt int
	crashed bool
	// gen counts restarts, so that a lock taken before one cannot release
	// a lock taken after it.
	gen int
}

type inode struct {
	data   []byte // current content
	synced []byte // content as of the last Sync
	// dirtyLo and dirtyHi bound the bytes of data written since the last
	// Sync, so that Sync copies only those.
	dirtyLo, dirtyHi int
}

func (ino *inode) markDirty(lo, hi int) {
	if ino.dirtyHi <= ino.dirtyLo {
		ino.dirtyLo, ino.dirtyHi = lo, hi
		return
	}
	ino.dirtyLo, ino.dirtyHi = min(ino.dirtyLo, lo), max(ino.dirtyHi, hi)
}

var _ wal.FS = (*FS)(nil)

// New returns an empty FS.
func New() *FS {
	return &FS{files: map[string]*inode{}, durable: map[string]*inode{}, locks: map[string]bool{}}
}

// Ops returns the number of counted calls so far: Create, WriteAt, Sync,
// Allocate, Rename, Remove and SyncDir.
func (m *FS) Ops() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ops
}

// FailAt makes the n-th counted call (1-based, counting from now) return
// err without doing anything.
func (m *FS) FailAt(n int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failAt, m.failErr = m.ops+n, err
}

// CrashAfter makes the FS crash right after the n-th counted call
// (1-based, counting from now; 0 crashes now): that call takes effect,
// every later call returns ErrCrashed.
func (m *FS) CrashAfter(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.crashAt = m.ops + n
	if n == 0 {
		m.crashed = true
	}
}

// Crashed reports whether the FS has crashed.
func (m *FS) Crashed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.crashed
}

// Restart simulates the reboot after a power loss (whether or not a crash
// was scheduled): the namespace goes back to its durable entries, every
// file to its synced content, locks are released and fault injection is
// cleared. If rng is not nil, each sector that differs between a file's
// content and its synced content keeps the new bytes with probability 1/2
// (a torn write) instead of reverting.
func (m *FS) Restart(rng *rand.Rand) {
	m.mu.Lock()
	defer m.mu.Unlock()
	files := map[string]*inode{}
	done := map[*inode]bool{}
	for name, ino := range m.durable {
		files[name] = ino
		if done[ino] {
			continue
		}
		done[ino] = true
		ino.restore(rng)
	}
	m.files = files
	m.durable = map[string]*inode{}
	for name, ino := range files {
		m.durable[name] = ino
	}
	m.locks = map[string]bool{}
	m.gen++
	m.crashed = false
	m.crashAt, m.failAt, m.failErr = 0, 0, nil
	m.ops = 0
}

func (ino *inode) restore(rng *rand.Rand) {
	ino.dirtyLo, ino.dirtyHi = 0, 0
	if rng == nil {
		ino.data = append([]byte(nil), ino.synced...)
		return
	}
	n := max(len(ino.data), len(ino.synced))
	out := make([]byte, 0, n)
	for s := 0; s < n; s += SectorSize {
		e := min(s+SectorSize, n)
		newSec := sector(ino.data, s, e)
		oldSec := sector(ino.synced, s, e)
		if string(newSec) != string(oldSec) && rng.IntN(2) == 0 {
			out = append(out, newSec...)
		} else {
			out = append(out, oldSec...)
		}
	}
	size := len(ino.synced)
	if len(ino.data) > len(ino.synced) {
		// The size grew without a sync: keep what was kept of the new
		// sectors, up to the end of the last non-zero one.
		last := len(ino.synced)
		for i := len(out) - 1; i >= len(ino.synced); i-- {
			if out[i] != 0 {
				last = i + 1
				break
			}
		}
		size = last
	}
	ino.data = out[:size]
	ino.synced = append([]byte(nil), ino.data...)
}

func sector(b []byte, s, e int) []byte {
	if s >= len(b) {
		return make([]byte, e-s)
	}
	out := make([]byte, e-s)
	copy(out, b[s:min(e, len(b))])
	return out
}

// op counts a mutating call and applies fault injection.
func (m *FS) op() error {
	if m.crashed {
		return ErrCrashed
	}
	m.ops++
	if m.failAt != 0 && m.ops == m.failAt {
		return m.failErr
	}
	if m.crashAt != 0 && m.ops == m.crashAt {
		// This call happens, then the machine stops.
		m.crashed = true
	}
	return nil
}

func (m *FS) check() error {
	if m.crashed {
		return ErrCrashed
	}
	return nil
}

// Create implements wal.FS.
func (m *FS) Create(name string) (wal.File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.op(); err != nil {
		return nil, err
	}
	ino := &inode{}
	m.files[filepath.Clean(name)] = ino
	return &file{fs: m, ino: ino, name: name}, nil
}

// OpenRW implements wal.FS.
func (m *FS) OpenRW(name string) (wal.File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(); err != nil {
		return nil, err
	}
	ino, ok := m.files[filepath.Clean(name)]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &file{fs: m, ino: ino, name: name}, nil
}

// ReadFile implements wal.FS.
func (m *FS) ReadFile(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(); err != nil {
		return nil, err
	}
	ino, ok := m.files[filepath.Clean(name)]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return append([]byte(nil), ino.data...), nil
}

// ReadDir implements wal.FS.
func (m *FS) ReadDir(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(); err != nil {
		return nil, err
	}
	dir = filepath.Clean(dir)
	var names []string
	for name := range m.files {
		if filepath.Dir(name) == dir {
			names = append(names, filepath.Base(name))
		}
	}
	sort.Strings(names)
	return names, nil
}

// Rename implements wal.FS.
func (m *FS) Rename(oldName, newName string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.op(); err != nil {
		return err
	}
	oldName, newName = filepath.Clean(oldName), filepath.Clean(newName)
	ino, ok := m.files[oldName]
	if !ok {
		return &fs.PathError{Op: "rename", Path: oldName, Err: fs.ErrNotExist}
	}
	delete(m.files, oldName)
	m.files[newName] = ino
	return nil
}

// Remove implements wal.FS.
func (m *FS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.op(); err != nil {
		return err
	}
	name = filepath.Clean(name)
	if _, ok := m.files[name]; !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(m.files, name)
	return nil
}

// MkdirAll implements wal.FS; directories exist implicitly.
func (m *FS) MkdirAll(string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.check()
}

// SyncDir implements wal.FS: the entries of dir become durable.
func (m *FS) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.op(); err != nil {
		return err
	}
	dir = filepath.Clean(dir)
	for name := range m.durable {
		if filepath.Dir(name) == dir {
			delete(m.durable, name)
		}
	}
	for name, ino := range m.files {
		if filepath.Dir(name) == dir {
			m.durable[name] = ino
		}
	}
	return nil
}

// Lock implements wal.FS. Locks are not files here and vanish on Restart.
func (m *FS) Lock(name string) (io.Closer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(); err != nil {
		return nil, err
	}
	name = filepath.Clean(name)
	if m.locks[name] {
		return nil, fmt.Errorf("%w: %s", wal.ErrLocked, name)
	}
	m.locks[name] = true
	return &lock{fs: m, name: name, gen: m.gen}, nil
}

// Names returns every current file name, sorted; for tests.
func (m *FS) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	for name := range m.files {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// HasSuffix reports whether any current file name ends with suffix.
func (m *FS) HasSuffix(suffix string) bool {
	for _, n := range m.Names() {
		if strings.HasSuffix(n, suffix) {
			return true
		}
	}
	return false
}

type lock struct {
	fs   *FS
	name string
	gen  int
	once sync.Once
}

func (l *lock) Close() error {
	l.once.Do(func() {
		l.fs.mu.Lock()
		defer l.fs.mu.Unlock()
		if l.fs.gen == l.gen {
			delete(l.fs.locks, l.name)
		}
	})
	return nil
}

type file struct {
	fs   *FS
	ino  *inode
	name string
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.op(); err != nil {
		return 0, err
	}
	if end := int(off) + len(p); end > len(f.ino.data) {
		f.ino.data = append(f.ino.data, make([]byte, end-len(f.ino.data))...)
	}
	copy(f.ino.data[off:], p)
	f.ino.markDirty(int(off), int(off)+len(p))
	return len(p), nil
}

func (f *file) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.op(); err != nil {
		return err
	}
	ino := f.ino
	if len(ino.synced) > len(ino.data) {
		ino.synced = ino.synced[:len(ino.data)]
	}
	if n := len(ino.synced); n < len(ino.data) {
		ino.synced = append(ino.synced, ino.data[n:]...)
	}
	if ino.dirtyHi > ino.dirtyLo {
		copy(ino.synced[ino.dirtyLo:ino.dirtyHi], ino.data[ino.dirtyLo:ino.dirtyHi])
	}
	ino.dirtyLo, ino.dirtyHi = 0, 0
	return nil
}

func (f *file) Allocate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.op(); err != nil {
		return err
	}
	if int(size) > len(f.ino.data) {
		f.ino.data = append(f.ino.data, make([]byte, int(size)-len(f.ino.data))...)
	}
	return nil
}

func (f *file) Close() error { return nil }

// Linked reports whether any current name refers to the file.
func (f *file) Linked() (bool, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.check(); err != nil {
		return false, err
	}
	for _, ino := range f.fs.files {
		if ino == f.ino {
			return true, nil
		}
	}
	return false, nil
}
