// Package script runs scripted test scenarios: text files of commands, each
// followed by the output it produced when the file was recorded.
//
// A script looks like this:
//
//	# a comment: lines starting with '#' explain the scenario
//	campaign 1
//	----
//	1 campaigns: StatePreCandidate term=1
//
// A block is a command line, a "----" line and the recorded output, up to
// the next blank line (an output therefore never contains a blank line). A
// command written without "----" has no recorded output yet. Comments and
// blank lines are kept as they are.
//
// The package knows nothing of what the commands mean: a test hands every
// command to a Handler, which carries it out and returns its output, and
// RunFile compares that output with the recording. Run with the -update
// flag, RunFile rewrites the recordings instead; review the diff before
// committing it.
//
// The package is for tests only: it imports testing and registers the
// -update flag (unless the test binary already has one).
package script
