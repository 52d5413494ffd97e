package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
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
// client through it (TestNginx: its only dependency is the nginx binary,
// Debian package nginx, which scripts/test installs); and the shipped
// deploy/nginx.conf in front of two `duplex serve --redis` processes
// (TestNginxDeploy: also node_modules and the machine's Redis). Each
// starts its own nginx, on 127.0.0.1 and a free port, with every file in
// the test's temp dir.

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
// returns the address it listens on. nginx ends with the test.
func startNginx(t *testing.T, bin, upstream string) string {
	t.Helper()
	addr, _ := startNginxConf(t, bin, func(dir string, port int) ([]byte, error) {
		var conf bytes.Buffer
		err := nginxConfTmpl.Execute(&conf, map[string]any{"Dir": dir, "Port": port, "Upstream": upstream})
		return conf.Bytes(), err
	})
	return addr
}

// startNginxConf runs nginx (bin) with the configuration that render
// writes for a temp dir and a port of 127.0.0.1, and returns the address
// it listens on and the dir. nginx ends with the test. Another process can
// take the port between freePort and nginx's bind, so a failed start is
// retried on a new port.
func startNginxConf(t *testing.T, bin string, render func(dir string, port int) ([]byte, error)) (addr, dir string) {
	t.Helper()
	var lastErr error
	for range 3 {
		addr, dir, err := tryStartNginx(t, bin, render)
		if err == nil {
			return addr, dir
		}
		lastErr = err
		t.Logf("nginx did not start, retrying on another port: %v", err)
	}
	t.Fatal(lastErr)
	return "", ""
}

func tryStartNginx(t *testing.T, bin string, render func(dir string, port int) ([]byte, error)) (string, string, error) {
	dir := t.TempDir()
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	conf, err := render(dir, port)
	if err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
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
		return "", "", fmt.Errorf("starting %s: %w", bin, err)
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
			return "", "", fmt.Errorf("nginx exited (%v) before accepting on %s; output: %s; error.log: %s", waitErr, addr, out.String(), dumpLog())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return "", "", fmt.Errorf("nginx not accepting on %s within %v; output: %s; error.log: %s", addr, opTimeout, out.String(), dumpLog())
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
	return addr, dir, nil
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

// ---------------------------------------------------------------------------
// deploy/nginx.conf

// deployMainConf plays the part of Debian's /etc/nginx/nginx.conf around
// the site file deploy/nginx.conf (which it includes): the process-wide
// settings, every path in the temp dir.
const deployMainConf = `# written by TestNginxDeploy
daemon off;
master_process off;
worker_processes 1;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log info;

events {
	worker_connections 1024;
}

http {
	access_log {{.Dir}}/main-access.log;
	client_body_temp_path {{.Dir}}/client_body;
	proxy_temp_path {{.Dir}}/proxy;
	fastcgi_temp_path {{.Dir}}/fastcgi;
	uwsgi_temp_path {{.Dir}}/uwsgi;
	scgi_temp_path {{.Dir}}/scgi;

	include {{.Dir}}/duplex.conf;
}
`

var deployMainConfTmpl = template.Must(template.New("nginx.conf").Parse(deployMainConf))

// deployConfPath is the shipped site file, from test/interop.
const deployConfPath = "../../deploy/nginx.conf"

// renderDeployConf returns deploy/nginx.conf (src) for the test: the two
// upstream processes at up[0] and up[1] instead of 127.0.0.1:8081 and
// :8082, listening on 127.0.0.1:port only, logging into dir. Nothing else
// changes; a change of the file that these substitutions no longer fit
// fails the test rather than testing something else.
func renderDeployConf(src []byte, dir string, port int, up [2]string) ([]byte, error) {
	conf := string(src)
	for _, r := range []struct {
		old, new string
		n        int
	}{
		{"\tserver 127.0.0.1:8081 ", "\tserver " + up[0] + " ", 2},
		{"\tserver 127.0.0.1:8082 ", "\tserver " + up[1] + " ", 2},
		{"\tlisten 80;\n", fmt.Sprintf("\tlisten 127.0.0.1:%d;\n", port), 1},
		{"\tlisten [::]:80;\n", "\t# (TestNginxDeploy: no [::]:80)\n", 1},
		{" /var/log/nginx/duplex.access.log duplex;", " " + filepath.Join(dir, "access.log") + " duplex;", 1},
		{" /var/log/nginx/duplex.error.log;", " " + filepath.Join(dir, "error.log") + ";", 1},
	} {
		if got := strings.Count(conf, r.old); got != r.n {
			return nil, fmt.Errorf("%s has %d times %q, want %d: update TestNginxDeploy", deployConfPath, got, r.old, r.n)
		}
		conf = strings.ReplaceAll(conf, r.old, r.new)
	}
	for i, line := range strings.Split(conf, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") {
			continue
		}
		for _, s := range []string{":8081", ":8082", "/var/", "/etc/", "listen"} {
			if strings.Contains(line, s) && (s != "listen" || !strings.Contains(line, "127.0.0.1:")) {
				return nil, fmt.Errorf("%s line %d after substitution: %q (update TestNginxDeploy)", deployConfPath, i+1, line)
			}
		}
	}
	return []byte(conf), nil
}

// accessEntry is one line of deploy/nginx.conf's access log (log_format
// duplex).
type accessEntry struct {
	remote, method, uri string
	status              int
	upstream            string
	line                string
}

var accessLineRE = regexp.MustCompile(`^(\S+) \[[^\]]*\] "(\S+) (\S+)[^"]*" (\d+) \d+ upstream=(.*) rt=`)

func readAccessLog(t *testing.T, path string) []accessEntry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var entries []accessEntry
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		m := accessLineRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("access log line not in log_format duplex: %q", line)
		}
		status, _ := strconv.Atoi(m[4])
		entries = append(entries, accessEntry{remote: m[1], method: m[2], uri: m[3], status: status, upstream: m[5], line: line})
	}
	return entries
}

// waitAccessLog waits until the access log has an entry that match
// accepts (nginx writes a request's line once it is over, a WebSocket's
// once it is closed), and returns the whole log.
func waitAccessLog(t *testing.T, path, what string, match func(accessEntry) bool) []accessEntry {
	t.Helper()
	deadline := time.Now().Add(opTimeout)
	for {
		entries := readAccessLog(t, path)
		for _, e := range entries {
			if match(e) {
				return entries
			}
		}
		if time.Now().After(deadline) {
			var lines []string
			for _, e := range entries {
				lines = append(lines, e.line)
			}
			t.Fatalf("no access log line for %s within %v; the log:\n%s", what, opTimeout, strings.Join(lines, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// httpFrom returns an HTTP client whose connections leave from ip (any
// 127.0.0.0/8 address works on Linux), with no proxy and no keep-alive.
func httpFrom(ip string) *http.Client {
	d := &net.Dialer{Timeout: opTimeout}
	if ip != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(ip)}
	}
	return &http.Client{
		Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
		Timeout:   opTimeout,
	}
}

func httpDo(t *testing.T, c *http.Client, method, u, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, u, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// TestNginxDeploy runs the shipped deploy/nginx.conf (see
// renderDeployConf for what the test changes) in front of two `duplex
// serve --redis` processes on the machine's Redis, and checks through it:
// the chat page, /healthz and /metrics; raw WebSockets on /ws/echo and
// /ws/broadcast (two clients, one on each process: least_conn); the
// official socket.io-client (nginx-sio.mjs) with its default transports
// (long-polling, then the upgrade to WebSocket) and long-polling only,
// echo with acks and the /chat namespace between a client of each
// process; and, from nginx's access log, that every Socket.IO request of
// a client address went to one process (the stickiness), the two
// addresses the test picked to two different ones.
//
// Other tests may run duplex serve on the same Redis at the same time
// (serve has no flag for its keys): the checks look only for payloads and
// rooms of their own.
func TestNginxDeploy(t *testing.T) {
	nginx := requireNginx(t)
	node := requireSocketIOClient(t)
	requireRedis(t)
	src, err := os.ReadFile(deployConfPath)
	if err != nil {
		t.Fatal(err)
	}
	bctx, bcancel := context.WithTimeout(t.Context(), buildTimeout)
	duplex := buildDuplex(bctx, t)
	bcancel()

	servers := [2]*duplexServe{
		startDuplexServe(t, duplex, "--redis", redisURL),
		startDuplexServe(t, duplex, "--redis", redisURL),
	}
	var up [2]string
	for i, s := range servers {
		up[i] = strings.TrimPrefix(s.base, "http://")
	}
	proxy, dir := startNginxConf(t, nginx, func(dir string, port int) ([]byte, error) {
		site, err := renderDeployConf(src, dir, port, up)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "duplex.conf"), site, 0o644); err != nil {
			return nil, err
		}
		var conf bytes.Buffer
		err = deployMainConfTmpl.Execute(&conf, map[string]any{"Dir": dir})
		return conf.Bytes(), err
	})
	accessLog := filepath.Join(dir, "access.log")
	base := "http://" + proxy
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(accessLog)
			t.Logf("nginx access.log:\n%s", b)
		}
	})

	t.Run("HTTP", func(t *testing.T) {
		c := httpFrom("")
		if code, h, body := httpDo(t, c, "GET", base+"/", ""); code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(body, "<") {
			t.Errorf("GET /: %d %q, %d bytes; want 200 text/html", code, h.Get("Content-Type"), len(body))
		}
		if code, _, body := httpDo(t, c, "GET", base+"/healthz", ""); code != 200 || body != "ok\n" {
			t.Errorf("GET /healthz: %d %q, want 200 \"ok\\n\"", code, body)
		}
		if code, _, _ := httpDo(t, c, "GET", base+"/metrics", ""); code != 403 {
			t.Errorf("GET /metrics: %d, want 403 (scraped on each process, not through nginx)", code)
		}
	})

	t.Run("WebSocket", func(t *testing.T) {
		opts := dialOptions(pairOptions{readLimit: 4 << 20}, nil)
		c, resp, err := dial(t, "ws"+strings.TrimPrefix(base, "http")+"/ws/echo", opts)
		if err != nil {
			t.Fatalf("Dial /ws/echo through nginx: %v", err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Errorf("status %d, want 101", resp.StatusCode)
		}
		for _, m := range []struct {
			typ ws.MessageType
			p   []byte
		}{
			{ws.MessageText, []byte("hello through deploy/nginx.conf ✓")},
			{ws.MessageBinary, binaryPayload(65536)},
			{ws.MessageText, textPayload(1 << 20)},
			{ws.MessageBinary, binaryPayload(1<<20 + 1)},
		} {
			write(t, c, m.typ, m.p)
			typ, p := readMsg(t, c)
			checkMessage(t, typ, p, m.typ, m.p)
		}
		if err := c.Close(ws.StatusNormalClosure, ""); err != nil {
			t.Errorf("Close /ws/echo: %v", err)
		}

		// Two broadcast clients at once: least_conn gives each its own
		// process, so every message crosses Redis one way.
		var bc [2]*ws.Conn
		for i := range bc {
			c, _, err := dial(t, "ws"+strings.TrimPrefix(base, "http")+"/ws/broadcast", opts)
			if err != nil {
				t.Fatalf("Dial /ws/broadcast through nginx: %v", err)
			}
			bc[i] = c
		}
		// A broadcast client that sees its own message come back is
		// subscribed; then each hears the other.
		tag := fmt.Sprintf("nginx-%d-%d", os.Getpid(), time.Now().UnixNano())
		for i, c := range bc {
			msg := fmt.Sprintf("%s: %d is here", tag, i)
			write(t, c, ws.MessageText, []byte(msg))
			awaitBroadcast(t, c, fmt.Sprintf("client %d", i), msg)
		}
		for i, from := range bc {
			msg := fmt.Sprintf("%s from %d ✓", tag, i)
			write(t, from, ws.MessageText, []byte(msg))
			for j, c := range bc {
				awaitBroadcast(t, c, fmt.Sprintf("client %d", j), msg)
			}
		}
		for _, c := range bc {
			if err := c.Close(ws.StatusNormalClosure, ""); err != nil {
				t.Errorf("Close /ws/broadcast: %v", err)
			}
		}
		isBroadcast := func(e accessEntry) bool { return e.uri == "/ws/broadcast" && e.status == 101 }
		deadline := time.Now().Add(opTimeout)
		var ups []string
		for {
			ups = ups[:0]
			for _, e := range readAccessLog(t, accessLog) {
				if isBroadcast(e) {
					ups = append(ups, e.upstream)
				}
			}
			if len(ups) >= 2 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if len(ups) != 2 || ups[0] == ups[1] || !slices.Contains(up[:], ups[0]) || !slices.Contains(up[:], ups[1]) {
			t.Errorf("the /ws/broadcast clients went to %q, want one on each of %q", ups, up)
		}
	})

	// Two client addresses, one pinned to each process: probe
	// 127.0.0.2, .3, ... with an Engine.IO handshake and see in the access
	// log where nginx sent it. The probe then closes its session (a
	// POST that only the same process knows the sid for).
	pinned := map[string]string{} // upstream -> client address
	if runtime.GOOS != "linux" {
		// Elsewhere only 127.0.0.1 may be configured.
		t.Skip("the Socket.IO part binds clients to 127.0.0.2 and up, which only Linux has without configuration")
	}
	t.Run("Stickiness", func(t *testing.T) {
		for i := 2; i < 64 && len(pinned) < 2; i++ {
			ip := fmt.Sprintf("127.0.0.%d", i)
			c := httpFrom(ip)
			code, _, body := httpDo(t, c, "GET", base+"/socket.io/?EIO=4&transport=polling", "")
			var hs struct {
				SID string `json:"sid"`
			}
			if code != 200 || !strings.HasPrefix(body, "0") || json.Unmarshal([]byte(body[1:]), &hs) != nil || hs.SID == "" {
				t.Fatalf("Engine.IO handshake from %s through nginx: %d %q", ip, code, body)
			}
			if code, _, body := httpDo(t, c, "POST", base+"/socket.io/?EIO=4&transport=polling&sid="+url.QueryEscape(hs.SID), "1"); code != 200 || body != "ok" {
				t.Fatalf("closing the session from %s through nginx: %d %q (another process than the handshake's?)", ip, code, body)
			}
			entries := waitAccessLog(t, accessLog, "the handshake from "+ip, func(e accessEntry) bool {
				return e.remote == ip && e.method == "GET"
			})
			for _, e := range entries {
				if e.remote == ip && e.method == "GET" && pinned[e.upstream] == "" {
					pinned[e.upstream] = ip
				}
			}
		}
		if pinned[up[0]] == "" || pinned[up[1]] == "" {
			t.Fatalf("no client address of 127.0.0.2-63 pinned to each process: %v", pinned)
		}
		t.Logf("pinned: %s to %s, %s to %s", pinned[up[0]], up[0], pinned[up[1]], up[1])
	})
	if t.Failed() {
		return
	}
	ipA, ipB := pinned[up[0]], pinned[up[1]]

	t.Run("SocketIOClient", func(t *testing.T) {
		cfg, err := json.Marshal(map[string]any{
			"base": base, "ipA": ipA, "ipB": ipB,
			"room":   fmt.Sprintf("ngx-%x", time.Now().UnixNano()&0xffffffffff),
			"stepMs": opTimeout.Milliseconds(),
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, node, "nginx-sio.mjs", string(cfg)).Output()
		var ran []string
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			var r struct {
				Name  string `json:"name"`
				OK    bool   `json:"ok"`
				Error string `json:"error"`
				MS    int    `json:"ms"`
			}
			if json.Unmarshal([]byte(line), &r) != nil {
				t.Errorf("unexpected output: %q", line)
				continue
			}
			ran = append(ran, r.Name)
			if !r.OK {
				t.Errorf("%s: %s", r.Name, r.Error)
			} else {
				t.Logf("%s: ok in %d ms", r.Name, r.MS)
			}
		}
		if err != nil && !t.Failed() {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Errorf("nginx-sio.mjs: %v\n%s", err, stderr)
		}
		if want := []string{"upgrade-echo", "upgrade-chat", "polling-echo", "polling-chat"}; !slices.Equal(ran, want) {
			t.Errorf("scenarios reported: %q, want %q", ran, want)
		}

		// The access log: every Socket.IO request of ipA went to up[0],
		// of ipB to up[1], never retried on the other (upstream "a, b"),
		// never refused (400 "Session ID unknown": a sid the other process
		// made); there
		// were polling requests both ways and upgrades from both.
		isUpgrade := func(ip string) func(accessEntry) bool {
			return func(e accessEntry) bool {
				return e.remote == ip && e.status == 101 && strings.Contains(e.uri, "transport=websocket")
			}
		}
		waitAccessLog(t, accessLog, "a WebSocket upgrade from "+ipA, isUpgrade(ipA))
		entries := waitAccessLog(t, accessLog, "a WebSocket upgrade from "+ipB, isUpgrade(ipB))
		type count struct{ get, post, upgrades int }
		counts := map[string]*count{ipA: {}, ipB: {}}
		for _, e := range entries {
			if !strings.HasPrefix(e.uri, "/socket.io/") {
				continue
			}
			c := counts[e.remote]
			if c == nil {
				continue // the probes of other addresses
			}
			want := up[0]
			if e.remote == ipB {
				want = up[1]
			}
			if e.upstream != want {
				t.Errorf("not sticky: %s went to %q, want %s: %s", e.remote, e.upstream, want, e.line)
			}
			switch {
			case e.status == 101:
				c.upgrades++
			case e.status == 499:
				// nginx's "client closed the request": a polling
				// client that closes drops the GET it had pending.
			case e.status != 200:
				t.Errorf("%s: status %d: %s", e.remote, e.status, e.line)
			case e.method == "GET":
				c.get++
			case e.method == "POST":
				c.post++
			}
		}
		for ip, c := range counts {
			t.Logf("%s: %d polling GETs, %d POSTs, %d upgrades", ip, c.get, c.post, c.upgrades)
			if c.get < 10 || c.post < 10 || c.upgrades < 4 {
				t.Errorf("%s: %d polling GETs, %d POSTs, %d upgrades through nginx; want at least 10, 10, 4", ip, c.get, c.post, c.upgrades)
			}
		}
	})

	// One process stops (SIGTERM, as systemd stops duplex@.service): its
	// WebSocket client gets 1001 through nginx, the other process's goes
	// on, and nginx sends everything, the clients pinned to the stopped
	// process included, to the one left.
	t.Run("Failover", func(t *testing.T) {
		opts := dialOptions(pairOptions{}, nil)
		var reads [2]<-chan readResult
		var conns [2]*ws.Conn
		for i := range conns {
			c, _, err := dial(t, "ws"+strings.TrimPrefix(base, "http")+"/ws/echo", opts)
			if err != nil {
				t.Fatalf("Dial /ws/echo through nginx: %v", err)
			}
			conns[i], reads[i] = c, readLoop(t, c)
		}
		if err := servers[1].stop(); err != nil {
			t.Fatal(err)
		}
		closed := -1
		for i, r := range reads {
			select {
			case res := <-r:
				if got := ws.CloseStatus(res.err); got != ws.StatusGoingAway || closed >= 0 {
					t.Fatalf("client %d: read %q, %v; want one client closed with 1001", i, res.p, res.err)
				}
				closed = i
			case <-time.After(100 * time.Millisecond):
			}
		}
		if closed < 0 {
			t.Fatal("no client closed with 1001: least_conn put both on the process that goes on?")
		}
		other := 1 - closed
		write(t, conns[other], ws.MessageText, []byte("still here"))
		if r := recv(t, reads[other]); r.err != nil || string(r.p) != "still here" {
			t.Fatalf("the other process's client: %q, %v", r.p, r.err)
		}
		if err := conns[other].Close(ws.StatusNormalClosure, ""); err != nil {
			t.Errorf("Close: %v", err)
		}
		c := httpFrom(ipB)
		if code, _, body := httpDo(t, c, "GET", base+"/healthz", ""); code != 200 || body != "ok\n" {
			t.Errorf("GET /healthz with one process stopped: %d %q", code, body)
		}
		code, _, body := httpDo(t, c, "GET", base+"/socket.io/?EIO=4&transport=polling&failover=1", "")
		if code != 200 || !strings.HasPrefix(body, "0{") {
			t.Fatalf("Engine.IO handshake from %s with its process stopped: %d %q", ipB, code, body)
		}
		entries := waitAccessLog(t, accessLog, "the handshake after the stop", func(e accessEntry) bool {
			return strings.Contains(e.uri, "failover=1")
		})
		for _, e := range entries {
			if strings.Contains(e.uri, "failover=1") && !strings.HasSuffix(e.upstream, up[0]) {
				t.Errorf("the handshake from %s went to %q, want %s in the end", ipB, e.upstream, up[0])
			}
		}
	})

	// Nothing worth a warning on either process. (stop, at the end of
	// the test, checks that each exits 0 on SIGTERM.)
	for i, s := range servers {
		for _, rec := range s.log.records() {
			if lvl, _ := rec["level"].(string); lvl == "WARN" || lvl == "ERROR" {
				t.Errorf("duplex serve %d logged %v", i, rec)
			}
		}
	}
}

// awaitBroadcast reads c until the text message want, skipping others
// (other tests' broadcasts on the same Redis).
func awaitBroadcast(t *testing.T, c *ws.Conn, who, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	defer cancel()
	for {
		typ, p, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("%s: waiting for the broadcast %q: %v", who, want, err)
		}
		if typ == ws.MessageText && string(p) == want {
			return
		}
	}
}
