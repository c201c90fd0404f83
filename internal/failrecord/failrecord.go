// Package failrecord runs a test scenario and records its failures
// instead of reporting them, so that a test can assert that a scenario
// fails: the mutation tests switch a fix off and check that the scenario
// written for its bug then fails.
package failrecord

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// errFailNow ends a scenario at its first fatal failure.
var errFailNow = errors.New("failrecord: scenario failed")

// recorder is a testing.TB that records failures instead of reporting them.
// Everything else (logging, cleanup, temporary directories) goes to the
// wrapped TB.
type recorder struct {
	testing.TB
	failures []string
}

func (r *recorder) Helper()           {}
func (r *recorder) Fail()             { r.failures = append(r.failures, "Fail") }
func (r *recorder) Error(args ...any) { r.failures = append(r.failures, fmt.Sprint(args...)) }
func (r *recorder) Errorf(s string, a ...any) {
	r.failures = append(r.failures, fmt.Sprintf(s, a...))
}
func (r *recorder) FailNow()                  { r.Fail(); panic(errFailNow) }
func (r *recorder) Fatal(args ...any)         { r.Error(args...); panic(errFailNow) }
func (r *recorder) Fatalf(s string, a ...any) { r.Errorf(s, a...); panic(errFailNow) }
func (r *recorder) Failed() bool              { return len(r.failures) > 0 }

// Run runs scenario and returns what failed in it, a panic included,
// without failing t. Fatal failures must come from the scenario's own
// goroutine.
func Run(t testing.TB, scenario func(testing.TB)) (failures []string) {
	rec := &recorder{TB: t}
	func() {
		defer func() {
			if p := recover(); p != nil && p != errFailNow {
				rec.failures = append(rec.failures, fmt.Sprintf("panic: %v", p))
			}
		}()
		scenario(rec)
	}()
	return rec.failures
}

// Summary returns the line of a testify failure that says what failed: its
// Messages or Error line, else its first line.
func Summary(failure string) string {
	lines := strings.Split(failure, "\n")
	for _, key := range []string{"Messages:", "Error:"} {
		for _, l := range lines {
			if l = strings.TrimSpace(l); strings.HasPrefix(l, key) && len(l) > len(key)+1 {
				return l
			}
		}
	}
	return strings.TrimSpace(lines[0])
}
