package interop

// duplex serve over TLS: its TLS profile (TLS 1.3, or TLS 1.2 with ECDHE
// and an AEAD only) tried with Go's TLS client, and wss:// end to end with
// the duplex connect binary and Node's ws. The certificates are made here.

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestServeTLS builds cmd/duplex once and runs duplex serve --tls-cert
// --tls-key for each part: its TLS profile, the duplex connect binary
// over wss://, and Node's ws client over wss://.
func TestServeTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), buildTimeout)
	bin := buildDuplex(ctx, t)
	cancel()
	t.Run("profile", func(t *testing.T) { testTLSProfile(t, bin) })
	t.Run("duplex connect", func(t *testing.T) { testConnectWSS(t, bin) })
	t.Run("node ws client", func(t *testing.T) { testNodeClientWSS(t, bin) })
}

// certPool trusts the certificate in certFile only.
func certPool(t *testing.T, certFile string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatalf("no certificate in %s", certFile)
	}
	return p
}

// testTLSProfile tries TLS handshakes against duplex serve with an
// RSA and an ECDSA certificate: TLS 1.0 and 1.1, CBC suites and RSA key
// exchange are refused with an alert; TLS 1.2 with ECDHE and AES-GCM or
// ChaCha20-Poly1305, and TLS 1.3, are taken, and ALPN picks h2 (HTTP/2
// is on by default with --tls-cert).
func testTLSProfile(t *testing.T, bin string) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, kt := range []struct {
		name                  string
		key                   crypto.Signer
		cbc, cbc256, gcm, c20 uint16
	}{
		{"rsa", rsaKey, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256},
		{"ecdsa", ecKey, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256},
	} {
		t.Run(kt.name, func(t *testing.T) {
			certFile, keyFile := writeCert(t, kt.key)
			s := startDuplexServe(t, bin, "--tls-cert", certFile, "--tls-key", keyFile)
			addr := strings.TrimPrefix(s.base, "http://")
			roots := certPool(t, certFile)
			for _, tc := range []struct {
				name     string
				min, max uint16
				suites   []uint16
				ok       bool
			}{
				{"TLS 1.0", tls.VersionTLS10, tls.VersionTLS10, nil, false},
				{"TLS 1.1", tls.VersionTLS11, tls.VersionTLS11, nil, false},
				{"TLS 1.2 CBC", tls.VersionTLS12, tls.VersionTLS12, []uint16{kt.cbc, kt.cbc256}, false},
				{"TLS 1.2 RSA key exchange", tls.VersionTLS12, tls.VersionTLS12,
					[]uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_RSA_WITH_AES_128_CBC_SHA}, false},
				{"TLS 1.2 ECDHE AES-GCM", tls.VersionTLS12, tls.VersionTLS12, []uint16{kt.gcm}, true},
				{"TLS 1.2 ECDHE ChaCha20-Poly1305", tls.VersionTLS12, tls.VersionTLS12, []uint16{kt.c20}, true},
				{"TLS 1.3", tls.VersionTLS13, tls.VersionTLS13, nil, true},
			} {
				t.Run(tc.name, func(t *testing.T) {
					cfg := &tls.Config{
						RootCAs: roots, MinVersion: tc.min, MaxVersion: tc.max, CipherSuites: tc.suites,
						NextProtos: []string{"h2", "http/1.1"},
					}
					d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: opTimeout}, Config: cfg}
					ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
					defer cancel()
					c, err := d.DialContext(ctx, "tcp", addr)
					if !tc.ok {
						if err == nil {
							st := c.(*tls.Conn).ConnectionState()
							c.Close()
							t.Fatalf("handshake taken: %s, %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
						}
						// The server refused with an alert (protocol version, or
						// handshake failure for no shared suite), not the network.
						if !strings.Contains(err.Error(), "remote error: tls:") {
							t.Fatalf("handshake failed without the server's alert: %v", err)
						}
						t.Logf("refused: %v", err)
						return
					}
					if err != nil {
						t.Fatalf("handshake: %v", err)
					}
					defer c.Close()
					st := c.(*tls.Conn).ConnectionState()
					if st.Version != tc.max || st.NegotiatedProtocol != "h2" {
						t.Errorf("%s with ALPN %q, want %s and h2", tls.VersionName(st.Version), st.NegotiatedProtocol, tls.VersionName(tc.max))
					}
					if len(tc.suites) == 1 && st.CipherSuite != tc.suites[0] {
						t.Errorf("suite %s, want %s", tls.CipherSuiteName(st.CipherSuite), tls.CipherSuiteName(tc.suites[0]))
					}
					t.Logf("taken: %s, %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
				})
			}
		})
	}
}

// testConnectWSS runs the duplex connect binary against duplex serve
// --tls-cert --tls-key over wss://, trusting the server's certificate
// through SSL_CERT_FILE (no --insecure): every stdin line comes back. The
// same dial without that trust is refused for the certificate.
func testConnectWSS(t *testing.T, bin string) {
	certFile, keyFile := selfSignedCert(t)
	s := startDuplexServe(t, bin, "--tls-cert", certFile, "--tls-key", keyFile)
	url := "wss://" + strings.TrimPrefix(s.base, "http://") + "/ws/echo"
	lines := "hello over wss\n" + strings.Repeat("é", 40000) + "\nlast\n"

	run := func(sslCertFile string) (stdout, stderr string, err error) {
		ctx, cancel := context.WithTimeout(t.Context(), 3*opTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "connect", "--deflate", url)
		cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+sslCertFile)
		cmd.Stdin = strings.NewReader(lines)
		var out, errOut lockedBuffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		cmd.WaitDelay = time.Second
		err = cmd.Run()
		return out.String(), errOut.String(), err
	}
	out, errOut, err := run(certFile)
	if err != nil || out != lines {
		t.Fatalf("duplex connect: %v\nstdout %d bytes (want %d)\nstderr:\n%s", err, len(out), len(lines), errOut)
	}
	if !strings.Contains(errOut, "permessage-deflate") {
		t.Errorf("stderr %q does not report the negotiated extension", errOut)
	}
	// An empty root file: the self-signed certificate is not trusted.
	empty := writeFile(t, "empty.pem", "")
	_, errOut, err = run(empty)
	if err == nil || !strings.Contains(errOut, "certificate") {
		t.Errorf("untrusted certificate: %v, stderr %q; want a refusal that names the certificate", err, errOut)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := t.TempDir() + "/" + name
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testNodeClientWSS: Node's ws client dials duplex serve over wss://,
// trusting only the server's certificate (ws's ca option, verification
// on), with permessage-deflate; text, 64 KiB of text and binary come back,
// and its close code reaches the server.
func testNodeClientWSS(t *testing.T, bin string) {
	node := requireNode(t)
	certFile, keyFile := selfSignedCert(t)
	s := startDuplexServe(t, bin, "--tls-cert", certFile, "--tls-key", keyFile)
	url := "wss://" + strings.TrimPrefix(s.base, "http://") + "/ws/echo"
	p := startNodePeer(t, node, map[string]any{"mode": "client", "url": url, "ca": certFile, "closeCode": 4077})
	open := p.next(t, "open")
	if open["tls"] != "TLSv1.3" || !strings.HasPrefix(open["extensions"].(string), "permessage-deflate") {
		t.Errorf("open: %v, want TLSv1.3 and permessage-deflate", open)
	}
	if res := p.next(t, "result"); res["ok"] != true || res["closeCode"] != float64(4077) {
		t.Fatalf("result: %v", res)
	}
	deadline := time.Now().Add(opTimeout)
	for {
		for _, rec := range s.log.records() {
			if rec["msg"] == "echo connection closed" && strings.Contains(rec["err"].(string), "4077") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not log the close with 4077")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// nodePeer is a running tls-peer.mjs.
type nodePeer struct {
	events chan map[string]any
	stderr *lockedBuffer
}

// startNodePeer runs tls-peer.mjs with cfg until the end of the test
// (its stdin is closed then, and it exits).
func startNodePeer(t *testing.T, node string, cfg map[string]any) *nodePeer {
	t.Helper()
	arg, _ := json.Marshal(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, node, "tls-peer.mjs", string(arg))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &nodePeer{events: make(chan map[string]any, 64), stderr: &lockedBuffer{}}
	cmd.Stderr = p.stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(p.events)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				p.events <- ev
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		err := cmd.Wait()
		cancel()
		wg.Wait()
		if err != nil {
			t.Errorf("tls-peer.mjs: %v; stderr:\n%s", err, p.stderr.String())
		}
	})
	return p
}

// next returns the next event named ev, failing on a fatal one.
func (p *nodePeer) next(t *testing.T, ev string) map[string]any {
	t.Helper()
	timeout := time.After(3 * opTimeout)
	for {
		select {
		case e, ok := <-p.events:
			if !ok {
				t.Fatalf("tls-peer.mjs ended before %q; stderr:\n%s", ev, p.stderr.String())
			}
			if e["ev"] == ev {
				return e
			}
			if e["ev"] == "fatal" {
				t.Fatalf("tls-peer.mjs: %v", e)
			}
		case <-timeout:
			t.Fatalf("tls-peer.mjs: no %q event; stderr:\n%s", ev, p.stderr.String())
		}
	}
}
