package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplexrt/duplex/engineio"
	"github.com/duplexrt/duplex/socketio"
	"github.com/duplexrt/duplex/ws"
)

// TestServeHTTP2 checks that serve with --tls-cert takes WebSockets over
// HTTP/2 (RFC 8441) with no other setting: several raw WebSockets share
// one HTTP/2 connection, and Socket.IO's WebSocket transport runs as a
// stream too, opened directly and by an upgrade from long-polling.
func TestServeHTTP2(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, certFile, keyFile)
	logs := &lockedLog{}
	addr, stop := startServeLogged(t, serveConfig{tlsCert: certFile, tlsKey: keyFile}, logs)
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	tlsConf := &tls.Config{RootCAs: roots}
	pool := &ws.HTTP2Pool{}
	t.Cleanup(pool.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var conns []*ws.Conn
	for _, path := range []string{"/ws/echo", "/ws/echo", "/ws/broadcast"} {
		c, resp, err := ws.Dial(ctx, "wss://"+addr+path, &ws.DialOptions{TLSConfig: tlsConf, HTTP2: pool})
		if err != nil {
			t.Fatalf("dial %s: %v", path, err)
		}
		defer c.CloseNow()
		if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
			t.Fatalf("dial %s: %s over %s, want 200 over HTTP/2", path, resp.Status, resp.Proto)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		msg := strings.Repeat("h2 ", 10000*i+1)
		if err := c.Write(ctx, ws.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, p, err := c.Read(ctx); err != nil || string(p) != msg {
			t.Fatalf("socket %d: echo of %d bytes: %d bytes, %v", i, len(msg), len(p), err)
		}
	}
	for _, c := range conns {
		if err := c.Close(ws.StatusNormalClosure, ""); err != nil {
			t.Errorf("close: %v", err)
		}
	}

	tr := &http.Transport{TLSClientConfig: tlsConf, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	for _, transports := range [][]string{{engineio.TransportWebSocket}, nil} {
		upgraded := make(chan struct{})
		eo := &engineio.DialOptions{
			Transports: transports,
			HTTPClient: &http.Client{Transport: tr},
			WebSocket:  &ws.DialOptions{TLSConfig: tlsConf, HTTP2: pool},
			OnUpgrade:  func(*engineio.Client) { close(upgraded) },
		}
		s, err := socketio.Dial(ctx, "https://"+addr+"/", nil, &socketio.ClientOptions{Engine: eo})
		if err != nil {
			t.Fatalf("socket.io %v: %v", transports, err)
		}
		if transports == nil {
			select {
			case <-upgraded:
			case <-ctx.Done():
				t.Fatal("socket.io: no upgrade to WebSocket")
			}
		}
		r, err := s.EmitWithAck(ctx, "echo", "over h2", 2)
		var got string
		if err != nil || r.Decode(0, &got) != nil || got != "over h2" {
			t.Fatalf("socket.io %v: echo: %q, %v", transports, got, err)
		}
		if err := s.Manager().Close(); err != nil {
			t.Errorf("socket.io close: %v", err)
		}
	}
	// What the server saw: each Engine.IO WebSocket an HTTP/2 stream.
	var seen []string
	for line := range strings.Lines(logs.String()) {
		var rec struct {
			Msg       string `json:"msg"`
			Transport string `json:"transport"`
			Proto     string `json:"proto"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		switch rec.Msg {
		case "engineio: session opened", "engineio: session upgraded to websocket":
			seen = append(seen, rec.Msg+" "+rec.Transport+" "+rec.Proto)
		}
	}
	want := []string{
		"engineio: session opened websocket HTTP/2.0",
		"engineio: session opened polling HTTP/2.0",
		"engineio: session upgraded to websocket  HTTP/2.0",
	}
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Errorf("the server logged\n%s\nwant\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}

	// Shutdown with streams open: the WebSocket gets 1001, the Socket.IO
	// client its close, and serve returns well within the drain time.
	c, _, err := ws.Dial(ctx, "wss://"+addr+"/ws/echo", &ws.DialOptions{TLSConfig: tlsConf, HTTP2: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	sioDone := make(chan struct{})
	s, err := socketio.Dial(ctx, "https://"+addr+"/", nil, &socketio.ClientOptions{
		Reconnection: &socketio.Reconnection{Disable: true},
		Engine: &engineio.DialOptions{
			Transports: []string{engineio.TransportWebSocket},
			WebSocket:  &ws.DialOptions{TLSConfig: tlsConf, HTTP2: pool},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Manager().Close()
	var once sync.Once
	s.OnDisconnect(func(*socketio.ClientSocket, string) { once.Do(func() { close(sioDone) }) })
	readErr := make(chan error, 1)
	go func() {
		_, _, err := c.Read(ctx) // and answers the server's close
		readErr <- err
	}()
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %v; log:\n%s", d, logs.String())
	}
	if err := <-readErr; ws.CloseStatus(err) != ws.StatusGoingAway {
		t.Errorf("WebSocket over HTTP/2 at shutdown: %v, want 1001", err)
	}
	select {
	case <-sioDone:
	case <-ctx.Done():
		t.Error("the Socket.IO client over HTTP/2 did not see the shutdown")
	}
}

// lockedLog collects log lines from several goroutines.
type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServeLogged is startServe with serve's JSON logs, Debug and up,
// written to w.
func startServeLogged(t *testing.T, cfg serveConfig, w io.Writer) (string, func() error) {
	t.Helper()
	cfg.addr, cfg.maxMessage, cfg.drain = "127.0.0.1:0", 16<<20, 5*time.Second
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	log := slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() { errc <- serve(ctx, cfg, log, ready) }()
	select {
	case addr := <-ready:
		var once sync.Once
		var err error
		stop := func() error {
			once.Do(func() {
				cancel()
				err = <-errc
			})
			return err
		}
		t.Cleanup(func() { _ = stop() })
		return addr.String(), stop
	case err := <-errc:
		cancel()
		t.Fatalf("serve: %v", err)
		return "", nil
	}
}

// TestTLSConfig checks the profile's shape (the handshakes themselves are
// tried against the binary in test/interop/tls_test.go) and that a bad
// certificate file fails at start with its name.
func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, certFile, keyFile)
	cfg, err := tlsConfig(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion %s, want TLS 1.2", tls.VersionName(cfg.MinVersion))
	}
	names := map[uint16]string{}
	for _, s := range tls.CipherSuites() {
		names[s.ID] = s.Name
	}
	for _, s := range tls.InsecureCipherSuites() {
		names[s.ID] = s.Name
	}
	for _, id := range cfg.CipherSuites {
		n := names[id]
		if !strings.HasPrefix(n, "TLS_ECDHE_") || !(strings.Contains(n, "_GCM_") || strings.Contains(n, "_CHACHA20_POLY1305")) {
			t.Errorf("suite %s (%#04x) is not ECDHE with an AEAD", n, id)
		}
	}
	if len(cfg.CipherSuites) != 6 {
		t.Errorf("%d suites, want the 6 ECDHE-AEAD ones", len(cfg.CipherSuites))
	}
	if _, err := tlsConfig(filepath.Join(dir, "nope.pem"), keyFile); err == nil || !strings.Contains(err.Error(), "nope.pem") {
		t.Errorf("missing certificate: %v", err)
	}
	if _, err := tlsConfig(keyFile, keyFile); err == nil {
		t.Error("a key given as the certificate was taken")
	}
	h2 := http2Config()
	if h2.MaxReceiveBufferPerStream != 256<<10 || h2.MaxReceiveBufferPerConnection != 4<<20 || h2.MaxReadFrameSize != 16<<10 {
		t.Errorf("HTTP/2 config %+v", h2)
	}
}
