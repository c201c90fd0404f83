package tcptransport

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wire"
)

// Node certificates.
//
// With TLS (and without Insecure), a node proves its ID with its
// certificate: the certificate, which must chain to a CA the other node
// trusts, carries a URI subject alternative name
//
//	keel://cluster/<clusterID>/node/<nodeID>
//
// with both IDs in decimal, without leading zeros (cluster 1, node 2:
// keel://cluster/1/node/2). A certificate may name nodes of several clusters
// but at most one node of each; one naming two nodes of a cluster proves
// none. A certificate without such a name (a client certificate issued by
// the same CA, say) is refused on the raft port whatever else it carries.
//
// Issuing one with openssl, from a CA key and certificate (ca.key, ca.pem),
// for node 2 of cluster 1 listening on 10.0.0.2:
//
//	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
//	    -keyout node2.key -subj "/CN=keel node 2" -out node2.csr
//	openssl x509 -req -in node2.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
//	    -days 365 -out node2.pem -extfile <(printf '%s\n' \
//	    "subjectAltName=URI:keel://cluster/1/node/2,IP:10.0.0.2" \
//	    "extendedKeyUsage=serverAuth,clientAuth" "keyUsage=digitalSignature")
//
// With Go's crypto/x509, set the URI in the template (NodeURI builds it):
//
//	tmpl := &x509.Certificate{
//		SerialNumber: serial,
//		Subject:      pkix.Name{CommonName: "keel node 2"},
//		NotBefore:    now, NotAfter: now.AddDate(1, 0, 0),
//		KeyUsage:     x509.KeyUsageDigitalSignature,
//		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
//		IPAddresses:  []net.IP{net.ParseIP("10.0.0.2")},
//		URIs:         []*url.URL{tcptransport.NodeURI(1, 2)},
//	}
//	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, nodeKey.Public(), caKey)
//
// The certificate serves both ends of a connection, so it needs both
// extended key usages, and an IP or DNS name matching the address its peers
// dial (the usual TLS host name check still applies).

// nodeURIScheme and nodeURIHost open every node URI.
const (
	nodeURIScheme = "keel"
	nodeURIHost   = "cluster"
)

// NodeURI returns the URI that names node id of cluster clusterID in a node
// certificate: keel://cluster/<clusterID>/node/<id>.
func NodeURI(clusterID, id uint64) *url.URL {
	return &url.URL{Scheme: nodeURIScheme, Host: nodeURIHost,
		Path: "/" + strconv.FormatUint(clusterID, 10) + "/node/" + strconv.FormatUint(id, 10)}
}

// errNoNodeID is returned for a certificate that names no node of the
// cluster.
var errNoNodeID = errors.New("the certificate names no node of this cluster (no keel://cluster/<cluster>/node/<node> URI)")

// CertNodeID returns the ID of the node of cluster clusterID that cert
// names (see NodeURI). It fails if cert names no node of the cluster, two
// different ones, or carries a malformed keel URI. It does not verify the
// certificate's chain: the TLS handshake did.
func CertNodeID(cert *x509.Certificate, clusterID uint64) (uint64, error) {
	var id uint64
	for _, u := range cert.URIs {
		if u.Scheme != nodeURIScheme {
			continue
		}
		c, n, err := parseNodeURI(u)
		if err != nil {
			return 0, err
		}
		if c != clusterID {
			continue
		}
		if id != raft.None && id != n {
			return 0, fmt.Errorf("the certificate names two nodes of cluster %d: %d and %d", clusterID, id, n)
		}
		id = n
	}
	if id == raft.None {
		return 0, errNoNodeID
	}
	return id, nil
}

// parseNodeURI parses keel://cluster/<cluster>/node/<node>, refusing any
// other form (non-canonical numbers, node 0, user info, port, query,
// fragment).
func parseNodeURI(u *url.URL) (cluster, node uint64, err error) {
	bad := func() (uint64, uint64, error) {
		return 0, 0, fmt.Errorf("malformed node URI %q, want keel://cluster/<cluster>/node/<node>", u.String())
	}
	if u.Host != nodeURIHost || u.User != nil || u.Opaque != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return bad()
	}
	parts := strings.Split(u.Path, "/")
	if len(parts) != 4 || parts[0] != "" || parts[2] != "node" {
		return bad()
	}
	dec := func(s string) (uint64, bool) {
		v, err := strconv.ParseUint(s, 10, 64)
		return v, err == nil && strconv.FormatUint(v, 10) == s
	}
	c, ok1 := dec(parts[1])
	n, ok2 := dec(parts[3])
	if !ok1 || !ok2 || n == raft.None {
		return bad()
	}
	return c, n, nil
}

// Shared secret.
//
// With Config.PeerSecret, both ends prove that they know the secret without
// sending it: each picks a fresh random nonce of wire.HandshakeNonceSize
// bytes (the dialer's in the hello, the acceptor's in the challenge), and
// each sends HMAC-SHA-256 keyed with the secret over
//
//	"keel handshake v2 " + role + "\x00"    role: "acceptor" or "dialer"
//	clusterID, dialer ID, acceptor ID        8 bytes each, big-endian
//	stream kind                              1 byte
//	dialer nonce, acceptor nonce             32 bytes each
//
// The acceptor's MAC (in the challenge) uses role "acceptor", the dialer's
// (in the proof) role "dialer". Since the MAC names the direction, one side's
// answer cannot be reflected back as the other's; since it covers the nonce
// the verifier just chose, a recorded answer cannot be replayed; since it
// covers the cluster, both IDs and the stream kind, it cannot be moved to
// another connection.

// MinPeerSecretSize is the shortest Config.PeerSecret accepted.
const MinPeerSecretSize = 16

// Handshake MAC roles.
const (
	roleAcceptor = "acceptor"
	roleDialer   = "dialer"
)

// handshakeMAC computes the proof described above.
func handshakeMAC(secret []byte, role string, clusterID, dialer, acceptor uint64, stream wire.StreamKind, dialerNonce, acceptorNonce []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("keel handshake v2 " + role + "\x00"))
	var b [25]byte
	binary.BigEndian.PutUint64(b[0:], clusterID)
	binary.BigEndian.PutUint64(b[8:], dialer)
	binary.BigEndian.PutUint64(b[16:], acceptor)
	b[24] = byte(stream)
	m.Write(b[:])
	m.Write(dialerNonce)
	m.Write(acceptorNonce)
	return m.Sum(nil)
}

// refusal is a handshake refused by one side, with the reason code that was
// (or would have been) sent.
type refusal struct {
	reason wire.HandshakeReason
	byPeer bool // the peer refused us; otherwise we refused it
	detail string
}

func (r *refusal) Error() string {
	who := "refused the peer"
	if r.byPeer {
		who = "refused by the peer"
	}
	if r.detail == "" {
		return fmt.Sprintf("%s: %s", who, r.reason)
	}
	return fmt.Sprintf("%s: %s: %s", who, r.reason, r.detail)
}

func refuse(reason wire.HandshakeReason, format string, args ...any) *refusal {
	return &refusal{reason: reason, detail: fmt.Sprintf(format, args...)}
}
