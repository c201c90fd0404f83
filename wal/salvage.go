package wal

// SalvageReport says what Open dropped from a damaged log under
// Options.Salvage.
type SalvageReport struct {
	// File is the damaged file; Offset is where in it the damage starts.
	File   string
	Offset int64
	// Reason is the damage found, an error wrapping ErrCorrupt.
	Reason error
	// LastIndexKept is the last index of the salvaged log.
	LastIndexKept uint64
	// LostFrom and LostTo bound the indexes that were in the log before
	// the damage was cut away and are no longer (LostFrom > LostTo if no
	// entry was lost, only the hard state's promise).
	LostFrom, LostTo uint64
}

// Salvaged returns what Open dropped under Options.Salvage, or nil if it
// dropped nothing.
func (l *Log) Salvaged() *SalvageReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.salvaged
}
