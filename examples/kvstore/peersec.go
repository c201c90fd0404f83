package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"go.uber.org/zap"

	"github.com/keelraft/raft/tcptransport"
)

// readPeerSecret reads the shared raft peer secret from path (one line; a
// trailing newline is ignored). An empty path means no secret.
func readPeerSecret(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--peer-secret-file: %w", err)
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) < tcptransport.MinPeerSecretSize {
		return nil, fmt.Errorf("--peer-secret-file: the secret has %d bytes, want at least %d (try: head -c 32 /dev/urandom | base64 > FILE)",
			len(b), tcptransport.MinPeerSecretSize)
	}
	return b, nil
}

// checkNodeCert fails unless the TLS certificate in certFile names node id
// of the cluster (tcptransport.NodeURI): the other nodes would refuse it.
func checkNodeCert(certFile, keyFile string, clusterID, id uint64) error {
	if certFile == "" {
		return nil
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return err
	}
	got, err := tcptransport.CertNodeID(leaf, clusterID)
	if err == nil && got != id {
		err = fmt.Errorf("it names node %d", got)
	}
	if err != nil {
		return fmt.Errorf("--tls-cert %s is not a node certificate for node %d: %w; add the URI SAN %s",
			certFile, id, err, tcptransport.NodeURI(clusterID, id))
	}
	return nil
}

// peerAuthInsecure reports whether the raft port runs without peer
// authentication (no peer secret, no TLS), warning loudly when it listens
// beyond loopback or when clients need a password.
func peerAuthInsecure(cfg config, raftTLS *tls.Config, log *zap.Logger) bool {
	if cfg.PeerSecret != nil || raftTLS != nil {
		return false
	}
	addr := cfg.Peers[cfg.ID]
	if !loopbackOnly(addr) {
		log.Warn("INSECURE: the raft port listens beyond loopback and authenticates no peer: anyone who can reach "+
			addr+" can forge raft messages and replace the data; set --peer-secret-file or the --tls-* flags",
			zap.String("raft", addr))
	} else if cfg.Auth != "" {
		log.Warn("INSECURE: --auth protects the clients' ports, but the raft port authenticates no peer; set --peer-secret-file or the --tls-* flags",
			zap.String("raft", addr))
	}
	return true
}

// loopbackOnly reports whether the listen address addr accepts loopback
// connections only.
func loopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// errPeerSecretWithoutCluster is returned for --peer-secret-file without
// --id: the local cluster talks over loopback only.
var errPeerSecretWithoutCluster = errors.New("--peer-secret-file needs --id and --cluster")
