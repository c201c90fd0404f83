package wire

import "errors"

var (
	// ErrBadFrame is wrapped by every Codec error about malformed input:
	// wrong magic, unknown version or type, malformed or trailing payload
	// bytes. The connection that produced it should be closed.
	ErrBadFrame = errors.New("wire: bad frame")

	// ErrFrameTooLarge is returned by the Codec (wrapped together with
	// ErrBadFrame) when a declared payload length exceeds the maximum frame
	// size, or a payload declares more elements than allowed. Nothing was
	// allocated for it.
	ErrFrameTooLarge = errors.New("wire: frame too large")
)
