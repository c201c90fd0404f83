/*
Package wire is the frame format Keel's transports speak: how a
raft.Message, a connection handshake and a streamed snapshot travel over a
byte stream. Package tcptransport uses it between processes and package
memtransport in tests, so that both exercise the same encoding; a transport
of another kind (another language, say) implements the layout below.

Every frame is an 8-byte header — the magic "KL", the format version
(FrameVersion), the frame type (FrameType) and a big-endian uint32 payload
length — followed by the payload: raw bytes for a snapshot chunk, nothing
for a ping, and otherwise one msgpack value keyed by the short `msgpack`
tags of its type, so that a reader skips fields it does not know. A Codec
encodes and decodes frames under limits (CodecOptions) on the payload size,
the element count and the nesting depth, and never allocates more than a
frame's declared size. Errors about malformed input wrap ErrBadFrame.

Every connection opens with the handshake that HandshakeVersion documents
(cluster and node IDs, the stream kind, nonces and MACs for peers that share
a secret) and then carries one kind of stream (StreamKind): messages,
heartbeats, or one snapshot.
*/
package wire
