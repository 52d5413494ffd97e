package interop

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBrowserHTTP2: headless Chromium loads a page from duplex serve over
// https:// and HTTP/2 (a self-signed certificate, accepted by the
// browser's flags) and opens several WebSockets at once; plain `duplex
// serve --tls-cert --tls-key`, with no other setting, sees each as an
// HTTP/2 stream (RFC 8441) of the one connection the page came on. Each
// socket echoes a short text (sent uncompressed), a compressed 64 KiB text
// and a binary message, and closes with its own code, which the server
// receives. Then the official socket.io-client in the page connects over
// the WebSocket transport only, and over long-polling with the upgrade:
// both WebSockets are HTTP/2 streams of the same connection too.
func TestBrowserHTTP2(t *testing.T) {
	node, chromium := requireBrowser(t)
	bctx, bcancel := context.WithTimeout(t.Context(), buildTimeout)
	bin := buildDuplex(bctx, t)
	bcancel()
	cert, key := selfSignedCert(t)
	// The binary turns extended CONNECT on by itself (ws/xconnect): clear
	// GODEBUG, so that a setting inherited from the environment cannot.
	t.Setenv("GODEBUG", "")
	s := startDuplexServe(t, bin, "--tls-cert", cert, "--tls-key", key)
	base := "https://" + strings.TrimPrefix(s.base, "http://")

	const sockets = 4
	// Longer than browserTestTimeout: Chromium is slow to start on a loaded
	// machine, and this test does nothing long.
	ctx, cancel := context.WithTimeout(t.Context(), 3*browserTestTimeout)
	defer cancel()
	cfg, _ := json.Marshal(map[string]any{
		"chromium":     chromium,
		"chromiumArgs": append(append([]string(nil), chromiumArgs...), "--ignore-certificate-errors"),
		"base":         base,
		"sockets":      sockets,
		"timeoutMs":    60000,
	})
	cmd := exec.CommandContext(ctx, node, "h2-browser.mjs", string(cfg))
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("h2-browser.mjs: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	var result struct {
		Ev       string `json:"ev"`
		Message  string `json:"message"`
		Protocol string `json:"protocol"`
		Sockets  []struct {
			Index      int    `json:"index"`
			OK         bool   `json:"ok"`
			Extensions string `json:"extensions"`
			CloseCode  int    `json:"closeCode"`
			WasClean   bool   `json:"wasClean"`
			Error      string `json:"error"`
		} `json:"sockets"`
		SocketIO []struct {
			Name      string `json:"name"`
			OK        bool   `json:"ok"`
			Transport string `json:"transport"`
			Upgraded  bool   `json:"upgraded"`
			Error     string `json:"error"`
		} `json:"socketio"`
		Handshakes []struct {
			URL    string `json:"url"`
			Status int    `json:"status"`
		} `json:"handshakes"`
	}
	for line := range strings.Lines(stdout.String()) {
		var ev struct {
			Ev string `json:"ev"`
		}
		_ = json.Unmarshal([]byte(line), &ev)
		switch ev.Ev {
		case "result":
			_ = json.Unmarshal([]byte(line), &result)
		case "fatal", "pageerror":
			t.Errorf("h2-browser.mjs: %s", line)
		default:
			t.Logf("h2-browser.mjs: %s", strings.TrimSpace(line))
		}
	}
	if result.Ev != "result" {
		t.Fatalf("h2-browser.mjs printed no result; stderr:\n%s", stderr.String())
	}
	if result.Protocol != "h2" {
		t.Errorf("the page came over %q, want h2", result.Protocol)
	}
	for _, r := range result.Sockets {
		if !r.OK || r.CloseCode != 4000+r.Index || !r.WasClean || r.Error != "" {
			t.Errorf("socket %d: %+v", r.Index, r)
		}
		if !strings.HasPrefix(r.Extensions, "permessage-deflate") {
			t.Errorf("socket %d: extensions %q, want permessage-deflate", r.Index, r.Extensions)
		}
	}
	if len(result.SocketIO) != 2 {
		t.Errorf("socket.io results %+v, want 2", result.SocketIO)
	}
	for _, r := range result.SocketIO {
		if !r.OK || r.Transport != "websocket" || !r.Upgraded || r.Error != "" {
			t.Errorf("socket.io %s: %+v, want an acknowledged echo over websocket", r.Name, r)
		}
	}
	// Over HTTP/2 the browser's handshake is answered 200 (RFC 8441 §5),
	// over HTTP/1.1 it would be 101.
	if len(result.Handshakes) != sockets+2 {
		t.Errorf("the browser saw %d WebSocket handshakes (%+v), want %d", len(result.Handshakes), result.Handshakes, sockets+2)
	}
	for _, h := range result.Handshakes {
		if h.Status != 200 {
			t.Errorf("WebSocket handshake for %s answered %d, want 200 (HTTP/2)", h.URL, h.Status)
		}
	}
	// What the server saw: every socket an HTTP/2 stream, all from one
	// client address, so one TCP connection, and each close code.
	deadline := time.Now().Add(opTimeout)
	for {
		var accepted, closed, engine []map[string]any
		for _, rec := range s.log.records() {
			switch rec["msg"] {
			case "echo accepted":
				accepted = append(accepted, rec)
			case "echo connection closed":
				closed = append(closed, rec)
			case "engineio: session opened", "engineio: session upgraded to websocket":
				engine = append(engine, rec)
			}
		}
		if len(closed) < sockets && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if len(accepted) != sockets {
			t.Fatalf("server accepted %d WebSockets, want %d", len(accepted), sockets)
		}
		remotes := map[any]bool{}
		for _, rec := range accepted {
			if rec["proto"] != "HTTP/2.0" {
				t.Errorf("server accepted a WebSocket over %v, want HTTP/2.0", rec["proto"])
			}
			remotes[rec["remote"]] = true
		}
		// Socket.IO: a WebSocket session, a polling one, its upgrade.
		if len(engine) != 3 {
			t.Errorf("server logged %d Engine.IO sessions and upgrades (%v), want 3", len(engine), engine)
		}
		for _, rec := range engine {
			if rec["proto"] != "HTTP/2.0" {
				t.Errorf("server: %v over %v, want HTTP/2.0", rec["msg"], rec["proto"])
			}
			remotes[rec["remote"]] = true
		}
		if len(remotes) != 1 {
			t.Errorf("WebSockets came from %d client addresses (%v), want 1: one HTTP/2 connection", len(remotes), remotes)
		}
		var errs []string
		for _, rec := range closed {
			errs = append(errs, rec["err"].(string))
		}
		for i := range sockets {
			code := 4000 + i
			if !strings.Contains(strings.Join(errs, "\n"), strings.TrimSpace(itoa(code))) {
				t.Errorf("server did not see close code %d; closes: %q", code, errs)
			}
		}
		return
	}
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

// selfSignedCert writes an ECDSA P-256 certificate and key for 127.0.0.1
// and localhost and returns their paths.
func selfSignedCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return writeCert(t, key)
}

// writeCert writes a self-signed certificate for 127.0.0.1 and localhost,
// valid for an hour, and key (PKCS #8) to a temporary directory, and
// returns their paths. Keys are made by the tests, never checked in.
func writeCert(t *testing.T, key crypto.Signer) (certFile, keyFile string) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "duplex test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
