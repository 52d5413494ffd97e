package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// This file runs a Go ws.Server behind nginx, configured as nginx's
// documentation and most deployments configure a WebSocket proxy, and a Go
// client through it. Its only dependency is the nginx binary (Debian
// package nginx, which scripts/test installs); it starts its own nginx, on
// 127.0.0.1 and a free port, with every file in the test's temp dir.

// nginxConf is the configuration of the test's nginx: one process in the
// foreground (master_process off, so that killing it leaves no workers),
// every path in the temp dir (so that it runs as any user), and the usual
// WebSocket proxy block. Host is $http_host, not $host: $host drops the
// port, and the Origin check compares the Origin's host:port with Host.
const nginxConf = `# written by TestNginx
daemon off;
master_process off;
worker_processes 1;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log info;

events {
	worker_connections 64;
}

http {
	access_log {{.Dir}}/access.log;
	client_body_temp_path {{.Dir}}/client_body;
	proxy_temp_path {{.Dir}}/proxy;
	fastcgi_temp_path {{.Dir}}/fastcgi;
	uwsgi_temp_path {{.Dir}}/uwsgi;
	scgi_temp_path {{.Dir}}/scgi;

	map $http_upgrade $connection_upgrade {
		default upgrade;
		''      close;
	}

	server {
		listen 127.0.0.1:{{.Port}};

		location / {
			proxy_pass http://{{.Upstream}};
			proxy_http_version 1.1;
			proxy_set_header Upgrade $http_upgrade;
			proxy_set_header Connection $connection_upgrade;
			proxy_set_header Host $http_host;
			proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
			proxy_read_timeout 60s;
			proxy_send_timeout 60s;
		}
	}
}
`

var nginxConfTmpl = template.Must(template.New("nginx.conf").Parse(nginxConf))

// requireNginx returns the path of nginx, looked up in PATH and then in
// /usr/sbin (not in the PATH of most users), or skips the test (fails it
// when CI=true).
func requireNginx(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if fi, err := os.Stat("/usr/sbin/nginx"); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return "/usr/sbin/nginx"
	}
	msg := "nginx not found in PATH or /usr/sbin: apt-get install nginx (scripts/test does it as root)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// freePort returns a port of 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

// startNginx runs nginx (bin) as a reverse proxy to upstream (host:port) and
// returns the address it listens on. nginx ends with the test. Another
// process can take the port between freePort and nginx's bind, so a failed
// start is retried on a new port.
func startNginx(t *testing.T, bin, upstream string) string {
	t.Helper()
	var lastErr error
	for range 3 {
		addr, err := tryStartNginx(t, bin, upstream)
		if err == nil {
			return addr
		}
		lastErr = err
		t.Logf("nginx did not start, retrying on another port: %v", err)
	}
	t.Fatal(lastErr)
	return ""
}

func tryStartNginx(t *testing.T, bin, upstream string) (string, error) {
	dir := t.TempDir()
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var conf bytes.Buffer
	err := nginxConfTmpl.Execute(&conf, map[string]any{"Dir": dir, "Port": port, "Upstream": upstream})
	if err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, conf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	errorLog := filepath.Join(dir, "error.log")
	dumpLog := func() string {
		b, _ := os.ReadFile(errorLog)
		return string(b)
	}

	ctx, cancel := context.WithCancel(context.Background())
	// -e: the log of startup, before the configuration is read (Debian's
	// default is stderr, other builds' a file in /var/log).
	cmd := exec.CommandContext(ctx, bin, "-p", dir, "-c", confPath, "-e", errorLog)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) } // fast shutdown
	cmd.WaitDelay = 2 * time.Second                                          // then SIGKILL
	if err := cmd.Start(); err != nil {
		cancel()
		return "", fmt.Errorf("starting %s: %w", bin, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		cancel()
		<-exited
	}

	// Wait until nginx accepts connections, or exits. nginx writes its pid
	// file once it is listening; waiting for it too means that a port
	// taken meanwhile by another process does not pass for nginx's.
	pidFile := filepath.Join(dir, "nginx.pid")
	wantPid := strconv.Itoa(cmd.Process.Pid)
	deadline := time.Now().Add(opTimeout)
	for {
		if pid, err := os.ReadFile(pidFile); err == nil && strings.TrimSpace(string(pid)) == wantPid {
			c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
			if err == nil {
				_ = c.Close()
				break
			}
		}
		select {
		case <-exited:
			cancel()
			return "", fmt.Errorf("nginx exited (%v) before accepting on %s; output: %s; error.log: %s", waitErr, addr, out.String(), dumpLog())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return "", fmt.Errorf("nginx not accepting on %s within %v; output: %s; error.log: %s", addr, opTimeout, out.String(), dumpLog())
		}
	}

	t.Cleanup(func() {
		select {
		case <-exited:
			t.Errorf("nginx exited during the test: %v; output: %s", waitErr, out.String())
		default:
			stop()
			// nginx exits 0 on SIGTERM (Wait then reports the context's
			// cancellation); anything else, such as being killed after
			// WaitDelay, is worth a look.
			if !cmd.ProcessState.Success() {
				t.Errorf("nginx on SIGTERM: %v (%v); output: %s", cmd.ProcessState, waitErr, out.String())
			}
		}
		if t.Failed() {
			t.Logf("nginx error.log:\n%s", dumpLog())
		}
	})
	return addr, nil
}

// TestNginx: a Go server behind nginx and a Go client through it exchange
// text and binary messages up to 1 MiB, pings both ways and a close
// handshake with a code and reason, and the Origin check still sees the
// browser's host (nginx forwards Host).
func TestNginx(t *testing.T) {
	bin := requireNginx(t)
	const readLimit = 4 << 20

	type serverEnd struct {
		err     error
		pingErr error
	}
	ends := make(chan serverEnd, 8)
	s := startGoServer(t, &ws.AcceptOptions{ReadLimit: readLimit, CloseTimeout: closeTimeout},
		func(ctx context.Context, c *ws.Conn) {
			var end serverEnd
			var pinger sync.WaitGroup
			defer func() {
				pinger.Wait()
				ends <- end
			}()
			for {
				typ, p, err := c.Read(ctx)
				if err != nil {
					end.err = err
					return
				}
				if typ == ws.MessageText && string(p) == "ping me" {
					// The server pings the client through nginx, the
					// client's read loop answers, and this loop, which
					// goes on reading, takes the pong.
					pinger.Go(func() {
						pctx, cancel := context.WithTimeout(ctx, opTimeout)
						defer cancel()
						end.pingErr = c.Ping(pctx)
						_ = c.Write(ctx, ws.MessageText, []byte("pinged: "+fmt.Sprint(end.pingErr)))
					})
					continue
				}
				if err := c.Write(ctx, typ, p); err != nil {
					end.err = err
					return
				}
			}
		})
	upstream := strings.TrimPrefix(s.URL, "ws://")
	proxy := startNginx(t, bin, upstream)
	base := "ws://" + proxy + "/echo"

	dialProxy := func(t *testing.T, origin string) (*ws.Conn, *http.Response, error) {
		t.Helper()
		o := dialOptions(pairOptions{readLimit: readLimit}, nil)
		if origin != "" {
			o.Header = http.Header{"Origin": {origin}}
		}
		return dial(t, base, o)
	}
	// upgradeHeaders returns the headers of the next request that reached
	// the server, checking that it came through nginx.
	upgradeHeaders := func(t *testing.T) http.Header {
		t.Helper()
		select {
		case h := <-s.headers:
			if got := h.Get("X-Forwarded-For"); got != "127.0.0.1" {
				t.Errorf("X-Forwarded-For %q, want 127.0.0.1 (nginx's)", got)
			}
			return h
		case <-time.After(opTimeout):
			t.Fatal("no request reached the server")
			return nil
		}
	}
	serverEndOf := func(t *testing.T) serverEnd {
		t.Helper()
		select {
		case e := <-ends:
			return e
		case <-time.After(opTimeout):
			t.Fatal("server handler still running")
			return serverEnd{}
		}
	}

	t.Run("EchoAndClose", func(t *testing.T) {
		c, resp, err := dialProxy(t, "")
		if err != nil {
			t.Fatalf("Dial through nginx: %v", err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Errorf("status %d, want 101", resp.StatusCode)
		}
		h := upgradeHeaders(t)
		if !strings.EqualFold(h.Get("Upgrade"), "websocket") || !strings.EqualFold(h.Get("Connection"), "upgrade") {
			t.Errorf("server saw Upgrade %q, Connection %q; want websocket, upgrade", h.Get("Upgrade"), h.Get("Connection"))
		}

		cases := []struct {
			typ ws.MessageType
			p   []byte
		}{
			{ws.MessageText, []byte("hello through nginx ✓")},
			{ws.MessageText, nil},
			{ws.MessageBinary, nil},
			{ws.MessageBinary, binaryPayload(125)},
			{ws.MessageBinary, binaryPayload(126)},
			{ws.MessageText, textPayload(65535)},
			{ws.MessageBinary, binaryPayload(65536)},
			{ws.MessageBinary, binaryPayload(1 << 20)},
			{ws.MessageText, textPayload(1 << 20)},
			{ws.MessageBinary, binaryPayload(1<<20 + 1)}, // over the default limit
		}
		for _, tc := range cases {
			write(t, c, tc.typ, tc.p)
			typ, p := readMsg(t, c)
			checkMessage(t, typ, p, tc.typ, tc.p)
		}

		// Pings both ways; a read loop answers the server's ping and
		// takes the client's pongs.
		reads := readLoop(t, c)
		ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
		defer cancel()
		for range 3 {
			if err := c.Ping(ctx); err != nil {
				t.Fatalf("Ping through nginx: %v", err)
			}
		}
		write(t, c, ws.MessageText, []byte("ping me"))
		if r := recv(t, reads); r.err != nil || string(r.p) != "pinged: <nil>" {
			t.Fatalf("server's ping: got %q, %v; want %q", r.p, r.err, "pinged: <nil>")
		}

		const reason = "bye via nginx ✓"
		start := time.Now()
		if err := c.Close(4000, reason); err != nil {
			t.Errorf("Close(4000): %v", err)
		}
		if el := time.Since(start); el > time.Second {
			t.Errorf("Close took %v", el)
		}
		// The server answers with the same code and may echo the reason
		// (RFC 6455 §5.5.1; ws does not).
		ce := closeError(t, recv(t, reads).err)
		if ce.Code != 4000 || (ce.Reason != "" && ce.Reason != reason) {
			t.Errorf("client read %v, want the server's answer 4000 with %q or no reason", ce, reason)
		}
		end := serverEndOf(t)
		if end.pingErr != nil {
			t.Errorf("server's Ping: %v", end.pingErr)
		}
		ce = closeError(t, end.err)
		if ce.Code != 4000 || ce.Reason != reason {
			t.Errorf("server read %v, want 4000 %q", ce, reason)
		}
		if got := ws.CloseStatus(end.err); got != 4000 {
			t.Errorf("CloseStatus = %v, want 4000", got)
		}
	})

	t.Run("SameOrigin", func(t *testing.T) {
		// A browser on the page http://<nginx>/ : Origin is nginx's
		// host:port, which nginx passes on as Host.
		c, _, err := dialProxy(t, "http://"+proxy)
		if err != nil {
			t.Fatalf("Dial through nginx with Origin http://%s: %v", proxy, err)
		}
		upgradeHeaders(t)
		write(t, c, ws.MessageText, []byte("same origin"))
		typ, p := readMsg(t, c)
		checkMessage(t, typ, p, ws.MessageText, []byte("same origin"))
		if err := c.Close(ws.StatusNormalClosure, ""); err != nil {
			t.Errorf("Close: %v", err)
		}
		if got := ws.CloseStatus(serverEndOf(t).err); got != ws.StatusNormalClosure {
			t.Errorf("server's CloseStatus %v, want 1000", got)
		}
	})

	t.Run("ForeignOrigin", func(t *testing.T) {
		c, resp, err := dialProxy(t, "https://evil.example")
		if err == nil {
			_ = c.CloseNow()
			t.Fatal("Dial with a foreign Origin succeeded through nginx, want 403")
		}
		if resp == nil {
			t.Fatalf("Dial: %v, and no HTTP response", err)
		}
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("status %d, want 403 (err %v)", resp.StatusCode, err)
		}
		var he *ws.HandshakeError
		if errors.As(err, &he) {
			t.Logf("Dial: %v", he)
		} else {
			t.Logf("Dial: %v", err)
		}
		upgradeHeaders(t)
	})
}
