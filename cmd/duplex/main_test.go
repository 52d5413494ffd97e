package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/duplexrt/duplex/ws"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startServe runs serve on a free loopback port until the test ends, and
// returns its address and a function that stops it and returns serve's
// error.
func startServe(t *testing.T, cfg serveConfig) (string, func() error) {
	t.Helper()
	if cfg.addr == "" {
		cfg.addr = "127.0.0.1:0"
	}
	if cfg.maxMessage == 0 {
		cfg.maxMessage = 16 << 20
	}
	if cfg.drain == 0 {
		cfg.drain = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx, cfg, slog.New(slog.DiscardHandler), ready) }()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-errc:
		cancel()
		t.Fatalf("serve: %v", err)
	}
	stopped := false
	var stopErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			stopErr = <-errc
		}
		return stopErr
	}
	t.Cleanup(func() { _ = stop() })
	return addr.String(), stop
}

func TestServeEchoAndHealth(t *testing.T) {
	for _, io := range []string{"poller", "goroutine"} {
		t.Run(io, func(t *testing.T) { testServeEchoAndHealth(t, io) })
	}
}

func testServeEchoAndHealth(t *testing.T, ioMode string) {
	addr, stop := startServe(t, serveConfig{io: ioMode})
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Fatalf("healthz: %d %q", resp.StatusCode, body)
	}

	ctx := context.Background()
	c, _, err := ws.Dial(ctx, "ws://"+addr+"/ws/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		typ ws.MessageType
		p   []byte
	}{
		{ws.MessageText, []byte("héllo")},
		{ws.MessageBinary, []byte{0, 1, 2, 255}},
		{ws.MessageBinary, bytes.Repeat([]byte{7}, 200_000)},
		{ws.MessageText, nil},
	} {
		if err := c.Write(ctx, m.typ, m.p); err != nil {
			t.Fatal(err)
		}
		typ, p, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if typ != m.typ || !bytes.Equal(p, m.p) {
			t.Fatalf("echo: got %v of %d bytes, want %v of %d", typ, len(p), m.typ, len(m.p))
		}
	}

	// Shutdown closes the connection with 1001 and serve returns nil.
	errc := make(chan error, 1)
	go func() { errc <- stop() }()
	_, _, err = c.Read(ctx)
	if got := ws.CloseStatus(err); got != ws.StatusGoingAway {
		t.Fatalf("after shutdown: read error %v, want close 1001", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("serve returned %v", err)
	}
}

func TestServeMaxMessage(t *testing.T) {
	addr, _ := startServe(t, serveConfig{maxMessage: 1000})
	ctx := context.Background()
	c, _, err := ws.Dial(ctx, "ws://"+addr+"/ws/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, ws.MessageBinary, make([]byte, 1001)); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Read(ctx)
	if got := ws.CloseStatus(err); got != ws.StatusMessageTooBig {
		t.Fatalf("read error %v, want close 1009", err)
	}
}

func TestServeOrigin(t *testing.T) {
	addr, _ := startServe(t, serveConfig{origins: multiFlag{"https://*.example.com"}})
	ctx := context.Background()
	for _, tc := range []struct {
		origin string
		status int
	}{
		{"https://app.example.com", http.StatusSwitchingProtocols},
		{"http://" + addr, http.StatusSwitchingProtocols},
		{"https://evil.example", http.StatusForbidden},
	} {
		c, resp, err := ws.Dial(ctx, "ws://"+addr+"/ws/echo", &ws.DialOptions{Header: http.Header{"Origin": {tc.origin}}})
		if resp == nil || resp.StatusCode != tc.status {
			t.Errorf("Origin %s: response %v, error %v; want status %d", tc.origin, resp, err, tc.status)
		}
		if c != nil {
			_ = c.Close(ws.StatusNormalClosure, "")
		}
	}
}

func TestConnectPipe(t *testing.T) {
	addr, _ := startServe(t, serveConfig{})
	var out, errOut bytes.Buffer
	in := strings.NewReader("one\ntwo\nthree\n")
	code := run([]string{"connect", "ws://" + addr + "/ws/echo"}, in, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if got, want := out.String(), "one\ntwo\nthree\n"; got != want {
		t.Fatalf("stdout %q, want %q", got, want)
	}
	if !strings.Contains(errOut.String(), "closed: 1000") {
		t.Fatalf("stderr %q does not report the close", errOut.String())
	}
}

// TestConnectEcho runs connect --echo against a server that sends messages,
// checks they come back, then closes with a code.
func TestConnectEcho(t *testing.T) {
	got := make(chan []string, 1)
	srv := &ws.Server{Handle: func(ctx context.Context, c *ws.Conn) {
		var back []string
		for _, m := range []string{"a", "bb", strings.Repeat("c", 70_000)} {
			if err := c.Write(ctx, ws.MessageText, []byte(m)); err != nil {
				return
			}
			_, p, err := c.Read(ctx)
			if err != nil {
				return
			}
			back = append(back, string(p))
		}
		got <- back
		_ = c.Close(4001, "done")
	}}
	hs := &http.Server{Handler: srv}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln)
	defer hs.Close()

	var out, errOut bytes.Buffer
	code := run([]string{"connect", "ws://" + ln.Addr().String() + "/", "--echo"}, strings.NewReader(""), &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	back := <-got
	if len(back) != 3 || back[0] != "a" || back[1] != "bb" || len(back[2]) != 70_000 {
		t.Fatalf("echoed %d messages, want the 3 sent", len(back))
	}
	if !strings.Contains(errOut.String(), "closed: 4001 done") {
		t.Fatalf("stderr %q does not report the close", errOut.String())
	}
}

func TestConnectRefused(t *testing.T) {
	addr, _ := startServe(t, serveConfig{})
	var out, errOut bytes.Buffer
	code := run([]string{"connect", "ws://" + addr + "/nope"}, strings.NewReader(""), &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "404") {
		t.Fatalf("exit %d, stderr %q; want 1 and the 404", code, errOut.String())
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{nil, 2},
		{[]string{"bogus"}, 2},
		{[]string{"help"}, 0},
		{[]string{"version"}, 0},
		{[]string{"serve", "--help"}, 0},
		{[]string{"serve", "extra"}, 2},
		{[]string{"serve", "--tls-cert", "x"}, 1},
		{[]string{"connect"}, 2},
		{[]string{"connect", "--nope", "ws://x"}, 2},
	} {
		var out, errOut bytes.Buffer
		if code := run(tc.args, strings.NewReader(""), &out, &errOut); code != tc.code {
			t.Errorf("duplex %q: exit %d, want %d (stderr %q)", tc.args, code, tc.code, errOut.String())
		}
	}
}

// TestServeTLS runs serve with --tls-cert/--tls-key and talks wss:// to it,
// compressed, as `connect --insecure --deflate` would.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, certFile, keyFile)
	addr, _ := startServe(t, serveConfig{tlsCert: certFile, tlsKey: keyFile})

	var out, errOut bytes.Buffer
	code := run([]string{"connect", "--insecure", "--deflate", "wss://" + addr + "/ws/echo"}, strings.NewReader("secure hello\n"), &out, &errOut)
	if code != 0 || out.String() != "secure hello\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	if !strings.Contains(errOut.String(), "permessage-deflate") {
		t.Errorf("stderr %q does not report the negotiated extension", errOut.String())
	}
	// Without --insecure the self-signed certificate is refused.
	out.Reset()
	errOut.Reset()
	if code := run([]string{"connect", "wss://" + addr + "/ws/echo"}, strings.NewReader(""), &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "certificate") {
		t.Errorf("untrusted certificate: exit %d, stderr %q", code, errOut.String())
	}
}

func writeSelfSigned(t *testing.T, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestServeDrainHealthz holds the drain open with a WebSocket client that
// has not yet read the server's close frame: meanwhile /healthz answers
// 503 "draining" and a new WebSocket is refused with 503, and once the
// client reads its 1001, serve returns nil.
func TestServeDrainHealthz(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	cfg := serveConfig{addr: "127.0.0.1:0", maxMessage: 16 << 20, drain: 20 * time.Second}
	go func() { errc <- serve(ctx, cfg, slog.New(slog.DiscardHandler), ready) }()
	var addr string
	select {
	case a := <-ready:
		addr = a.String()
	case err := <-errc:
		t.Fatalf("serve: %v", err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer dcancel()
	c, _, err := ws.Dial(dctx, "ws://"+addr+"/ws/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()

	cancel() // as SIGTERM does
	var body string
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatalf("/healthz while draining: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			body = string(b)
			break
		}
		if dctx.Err() != nil {
			t.Fatalf("/healthz still answers %d %q after the shutdown began", resp.StatusCode, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if body != "draining\n" {
		t.Errorf("/healthz while draining: %q, want \"draining\\n\"", body)
	}
	if _, resp, err := ws.Dial(dctx, "ws://"+addr+"/ws/echo", nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a new WebSocket while draining: %v (response %v), want 503", err, resp)
	}
	select {
	case err := <-errc:
		t.Fatalf("serve returned (%v) before the client answered the close", err)
	default:
	}

	// The client reads the 1001 and answers it: the drain ends.
	if _, _, err := c.Read(dctx); ws.CloseStatus(err) != ws.StatusGoingAway {
		t.Errorf("the client read %v, want close 1001", err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-dctx.Done():
		t.Fatal("serve did not return after the last client closed")
	}
}
