package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// wsPeer is a test server that echoes every message, reports what it
// receives and how the client closed, and hands out its connections so a
// test can send on them first.
type wsPeer struct {
	url    string
	header chan http.Header   // each handshake's request headers
	conns  chan *ws.Conn      // each connection, once open
	got    chan wsMessage     // each message received
	closes chan ws.CloseError // how each connection was closed by the client
}

type wsMessage struct {
	typ ws.MessageType
	p   string
}

func startPeer(t *testing.T, opts *ws.AcceptOptions) *wsPeer {
	t.Helper()
	p := &wsPeer{
		header: make(chan http.Header, 10),
		conns:  make(chan *ws.Conn, 10),
		got:    make(chan wsMessage, 100),
		closes: make(chan ws.CloseError, 10),
	}
	srv := &ws.Server{Options: opts, Handle: func(ctx context.Context, c *ws.Conn) {
		p.conns <- c
		for {
			typ, b, err := c.Read(ctx)
			if err != nil {
				var ce ws.CloseError
				if errors.As(err, &ce) {
					p.closes <- ce
				}
				return
			}
			p.got <- wsMessage{typ, string(b)}
			if err := c.Write(ctx, typ, b); err != nil {
				return
			}
		}
	}}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.header <- r.Header.Clone()
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	p.url = "ws" + strings.TrimPrefix(hs.URL, "http") + "/"
	return p
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10s", what)
		panic("unreachable")
	}
}

// ---------------------------------------------------------------------------
// Pipe mode and flags, in process

func TestConnectHeaders(t *testing.T) {
	p := startPeer(t, nil)
	var out, errOut bytes.Buffer
	code := run([]string{"connect",
		"-H", "X-Token: abc", "-H", "x-token:def", "-H", "Authorization:  Bearer t0k ",
		"--origin", "http://" + strings.TrimPrefix(strings.TrimSuffix(p.url, "/"), "ws://"),
		p.url}, strings.NewReader("hi\n"), &out, &errOut)
	if code != 0 || out.String() != "hi\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	h := recv(t, p.header, "handshake")
	if got := h.Values("X-Token"); len(got) != 2 || got[0] != "abc" || got[1] != "def" {
		t.Errorf("X-Token %q, want [abc def]", got)
	}
	if got := h.Get("Authorization"); got != "Bearer t0k" {
		t.Errorf("Authorization %q, want %q", got, "Bearer t0k")
	}
	if got := h.Get("Origin"); !strings.HasPrefix(got, "http://127.0.0.1:") {
		t.Errorf("Origin %q, want the --origin value", got)
	}

	for _, bad := range []string{"no colon", "Bad Name: x", ": empty", "X: a\x01b"} {
		errOut.Reset()
		if code := run([]string{"connect", "-H", bad, p.url}, strings.NewReader(""), &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "-H") {
			t.Errorf("-H %q: exit %d, stderr %q; want 1 and an error naming -H", bad, code, errOut.String())
		}
	}
}

func TestConnectSubprotocol(t *testing.T) {
	p := startPeer(t, &ws.AcceptOptions{Subprotocols: []string{"chat.v2", "chat.v1"}})
	var out, errOut bytes.Buffer
	code := run([]string{"connect", "--subprotocol", "chat.v1", "--subprotocol", "chat.v2", p.url}, strings.NewReader(""), &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if got := recv(t, p.header, "handshake").Get("Sec-WebSocket-Protocol"); got != "chat.v1, chat.v2" {
		t.Errorf("offered %q, want %q", got, "chat.v1, chat.v2")
	}
	if !strings.Contains(errOut.String(), `connected, subprotocol "chat.v2"`) {
		t.Errorf("stderr %q does not name the negotiated subprotocol", errOut.String())
	}
}

func TestConnectBinary(t *testing.T) {
	p := startPeer(t, nil)
	var out, errOut bytes.Buffer
	code := run([]string{"connect", "--binary", p.url}, strings.NewReader("\x00\x01bin\n\xffend\n"), &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	for _, want := range []string{"\x00\x01bin", "\xffend"} {
		if m := recv(t, p.got, "message"); m.typ != ws.MessageBinary || m.p != want {
			t.Errorf("server got %v %q, want binary %q", m.typ, m.p, want)
		}
	}
	if got, want := out.String(), "\x00\x01bin\n\xffend\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if ce := recv(t, p.closes, "close"); ce.Code != ws.StatusNormalClosure {
		t.Errorf("closed with %v, want 1000 at the end of input", ce)
	}
}

func TestConnectOriginRejected(t *testing.T) {
	addr, _ := startServe(t, serveConfig{origins: multiFlag{"https://*.example.com"}})
	var out, errOut bytes.Buffer
	code := run([]string{"connect", "--origin", "https://evil.example", "ws://" + addr + "/ws/echo"}, strings.NewReader(""), &out, &errOut)
	want := `duplex connect: handshake failed: 403 Forbidden: Origin "https://evil.example" is not allowed`
	if code != 1 || !strings.HasPrefix(errOut.String(), want) {
		t.Fatalf("exit %d, stderr %q; want 1 and %q", code, errOut.String(), want)
	}
	errOut.Reset()
	if code := run([]string{"connect", "--origin", "https://app.example.com", "ws://" + addr + "/ws/echo"}, strings.NewReader("ok\n"), &out, &errOut); code != 0 {
		t.Fatalf("allowed origin: exit %d, stderr %q", code, errOut.String())
	}
}

func TestConnectHandshakeFailure(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"reason", 401, "token expired\n", "duplex connect: handshake failed: 401 Unauthorized: token expired\n"},
		{"no body", 503, "", "duplex connect: handshake failed: 503 Service Unavailable\n"},
		{"html on one line", 502, "<html>\n  <body>bad\tgateway</body>\n</html>\n", "duplex connect: handshake failed: 502 Bad Gateway: <html> <body>bad gateway</body> </html>\n"},
		{"escapes", 400, "bad \x1b[31mrequest\x7f", `duplex connect: handshake failed: 400 Bad Request: bad \x1b[31mrequest\x7f` + "\n"},
		{"long body cut", 400, strings.Repeat("x", 2000), "duplex connect: handshake failed: 400 Bad Request: " + strings.Repeat("x", 300) + "…\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = fmt.Fprint(w, tc.body)
			}))
			defer hs.Close()
			var out, errOut bytes.Buffer
			code := run([]string{"connect", "ws" + strings.TrimPrefix(hs.URL, "http")}, strings.NewReader(""), &out, &errOut)
			if code != 1 || errOut.String() != tc.want {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, errOut.String(), tc.want)
			}
		})
	}
}

func TestConnectFormatMessage(t *testing.T) {
	for _, tc := range []struct {
		typ  ws.MessageType
		p    string
		want string
	}{
		{ws.MessageText, "hello", "< hello"},
		{ws.MessageText, "two\nlines\tand a tab", "< two\nlines\tand a tab"},
		{ws.MessageText, "\x1b[2J\rgone\x07 \u009b", `< \x1b[2J\x0dgone\x07 \u009b`},
		{ws.MessageText, "", "< "},
		{ws.MessageBinary, "", "< binary, 0 bytes"},
		{ws.MessageBinary, "\x00\x01\xfe", "< binary, 3 bytes: 00 01 fe"},
		{ws.MessageBinary, strings.Repeat("\xab", 33), "< binary, 33 bytes: " + strings.TrimSpace(strings.Repeat("ab ", 32)) + " …"},
	} {
		if got := formatMessage(tc.typ, []byte(tc.p)); got != tc.want {
			t.Errorf("formatMessage(%v, %q) = %q, want %q", tc.typ, tc.p, got, tc.want)
		}
	}
}

func TestConnectParseClose(t *testing.T) {
	for _, tc := range []struct {
		args   string
		code   ws.StatusCode
		reason string
		err    bool
	}{
		{"", 1000, "", false},
		{"4000", 4000, "", false},
		{"4000 bye", 4000, "bye", false},
		{"1001 going  away ", 1001, "going  away", false},
		{"1005", 0, "", true},
		{"999", 0, "", true},
		{"5000", 0, "", true},
		{"bye", 0, "", true},
		{"3000 " + strings.Repeat("r", 124), 0, "", true},
	} {
		code, reason, err := parseClose(tc.args)
		if code != tc.code || reason != tc.reason || (err != nil) != tc.err {
			t.Errorf("parseClose(%q) = %d, %q, %v; want %d, %q, error %v", tc.args, code, reason, err, tc.code, tc.reason, tc.err)
		}
	}
}

// ---------------------------------------------------------------------------
// Interactive mode, on a terminal that tmux provides

// TestConnectInteractive runs the duplex binary on a tmux pane, types into
// it and reads the screen. The pane runs a shell that records the exit
// status and whether the terminal's settings came back (stty -g) after
// duplex exits.
func TestConnectInteractive(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tmux is missing (Debian package tmux); the interactive mode of duplex connect is tested on a tmux pane")
		}
		t.Skip("tmux is missing (apt-get install tmux): skipping the interactive mode of duplex connect")
	}
	bin := filepath.Join(t.TempDir(), "duplex")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	t.Run("lines, ping, a message mid-line, /close", func(t *testing.T) {
		t.Parallel()
		p := startPeer(t, nil)
		pane := startPane(t, tmux, bin, "connect", p.url)
		pane.waitFor("the connection info and a prompt", func(s string) bool {
			return strings.Contains(s, "connected to "+p.url+" (no subprotocol, no extensions)") && lastLine(s) == "> "
		})
		c := recv(t, p.conns, "connection")

		pane.typeLine("hello there")
		if m := recv(t, p.got, "message"); m != (wsMessage{ws.MessageText, "hello there"}) {
			t.Errorf("server got %v, want text %q", m, "hello there")
		}
		pane.waitFor("the echo above a fresh prompt", func(s string) bool {
			return hasLines(s, "> hello there", "< hello there") && lastLine(s) == "> "
		})

		// The server speaks while a line is half typed: its message goes
		// above, and the prompt comes back with the typed text intact.
		pane.keys("-l", "half typed")
		pane.waitFor("the typed text", func(s string) bool { return lastLine(s) == "> half typed" })
		if err := c.Write(context.Background(), ws.MessageText, []byte("from \x1b[31mserver")); err != nil {
			t.Fatal(err)
		}
		if err := c.Write(context.Background(), ws.MessageBinary, []byte{0, 1, 0xff}); err != nil {
			t.Fatal(err)
		}
		pane.waitFor("the server's messages above the redrawn line", func(s string) bool {
			return hasLines(s, `< from \x1b[31mserver`, "< binary, 3 bytes: 00 01 ff") && lastLine(s) == "> half typed"
		})
		pane.typeLine(", finished")
		if m := recv(t, p.got, "message"); m.p != "half typed, finished" {
			t.Errorf("server got %q, want %q", m.p, "half typed, finished")
		}
		pane.waitFor("the echo of the finished line", func(s string) bool {
			return hasLines(s, "> half typed, finished", "< half typed, finished") && lastLine(s) == "> "
		})

		pane.typeLine("/ping")
		pane.waitFor("the pong", func(s string) bool {
			return regexp.MustCompile(`(?m)^pong in [0-9.]+[µm]?s\s*$`).MatchString(s) && lastLine(s) == "> "
		})
		pane.typeLine("//not a command")
		if m := recv(t, p.got, "message"); m.p != "/not a command" {
			t.Errorf("server got %q, want %q", m.p, "/not a command")
		}
		pane.typeLine("/nope")
		pane.waitFor("the unknown command's answer", func(s string) bool { return strings.Contains(s, "unknown command /nope") })
		pane.typeLine("/close 99")
		pane.waitFor("the bad code's answer", func(s string) bool { return strings.Contains(s, "/close 99: the code must be") })

		pane.typeLine("/close 4000 bye now")
		if ce := recv(t, p.closes, "close"); ce.Code != 4000 || ce.Reason != "bye now" {
			t.Errorf("server saw %v, want 4000 %q", ce, "bye now")
		}
		pane.waitFor("the close and a clean exit", func(s string) bool {
			return hasLines(s, "closed: 4000", "[exit 0, terminal restored]")
		})
	})

	for _, tc := range []struct {
		name, typed, key string
	}{
		{"Ctrl-D", "", "C-d"},
		{"Ctrl-C", "unsent", "C-c"},
		{"/quit", "/quit", "Enter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startPeer(t, nil)
			pane := startPane(t, tmux, bin, "connect", p.url)
			pane.waitFor("a prompt", func(s string) bool { return lastLine(s) == "> " })
			if tc.typed != "" {
				pane.keys("-l", tc.typed)
			}
			pane.keys(tc.key)
			if ce := recv(t, p.closes, "close"); ce.Code != ws.StatusNormalClosure {
				t.Errorf("server saw %v, want 1000", ce)
			}
			pane.waitFor("the close and a clean exit", func(s string) bool {
				return hasLines(s, "closed: 1000", "[exit 0, terminal restored]")
			})
			if tc.typed == "unsent" {
				select {
				case m := <-p.got:
					t.Errorf("server got %q after Ctrl-C", m.p)
				default:
				}
			}
		})
	}

	t.Run("the server closes", func(t *testing.T) {
		t.Parallel()
		p := startPeer(t, nil)
		pane := startPane(t, tmux, bin, "connect", "--subprotocol", "x", p.url)
		pane.waitFor("a prompt", func(s string) bool { return lastLine(s) == "> " })
		c := recv(t, p.conns, "connection")
		pane.keys("-l", "abc")
		pane.waitFor("the typed text", func(s string) bool { return lastLine(s) == "> abc" })
		if err := c.Close(4001, "done"); err != nil {
			t.Error(err)
		}
		pane.waitFor("the close and a clean exit", func(s string) bool {
			return hasLines(s, "closed: 4001 done", "[exit 0, terminal restored]")
		})
	})

	t.Run("SIGTERM", func(t *testing.T) {
		t.Parallel()
		p := startPeer(t, nil)
		pane := startPane(t, tmux, bin, "connect", p.url)
		pane.waitFor("a prompt", func(s string) bool { return lastLine(s) == "> " })
		pane.keys("-l", "abc")
		pane.waitFor("the typed text", func(s string) bool { return lastLine(s) == "> abc" })
		proc, err := os.FindProcess(pane.pid())
		if err != nil {
			t.Fatal(err)
		}
		if err := proc.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if ce := recv(t, p.closes, "close"); ce.Code != ws.StatusGoingAway || ce.Reason != "interrupted" {
			t.Errorf("server saw %v, want 1001 interrupted", ce)
		}
		pane.waitFor("a clean exit", func(s string) bool { return hasLines(s, "[exit 0, terminal restored]") })
	})
}

// paneScript runs duplex ("$@") on the pane, then prints its exit status
// and whether the terminal settings are as before. The inner shell writes
// its pid, which exec hands to duplex, to the file $1.
const paneScript = `pidfile=$1; shift
saved=$(stty -g)
sh -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@"
rc=$?
if [ "$(stty -g)" = "$saved" ]; then state=restored; else state=changed; fi
echo "[exit $rc, terminal $state]"
exec sleep 600
`

type pane struct {
	t       *testing.T
	tmux    string
	sock    string
	pidfile string
}

// startPane starts a tmux server of its own with one 120×40 pane running
// bin with args, and kills it when the test ends.
func startPane(t *testing.T, tmux, bin string, args ...string) *pane {
	t.Helper()
	// A short directory: a Unix socket's path has at most 107 bytes.
	dir, err := os.MkdirTemp("", "tmux")
	if err != nil {
		t.Fatal(err)
	}
	p := &pane{t: t, tmux: tmux, sock: filepath.Join(dir, "s"), pidfile: filepath.Join(dir, "pid")}
	t.Cleanup(func() {
		_ = exec.Command(tmux, "-S", p.sock, "kill-server").Run()
		_ = os.RemoveAll(dir)
	})
	cmd := append([]string{"-S", p.sock, "-f", "/dev/null", "new-session", "-d", "-x", "120", "-y", "40",
		"--", "sh", "-c", paneScript, "sh", p.pidfile, bin}, args...)
	if out, err := exec.Command(tmux, cmd...).CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	return p
}

// keys sends tmux key names, or text with "-l" first.
func (p *pane) keys(keys ...string) {
	p.t.Helper()
	args := append([]string{"-S", p.sock, "send-keys", "-t", "0"}, keys...)
	if out, err := exec.Command(p.tmux, args...).CombinedOutput(); err != nil {
		p.t.Fatalf("tmux send-keys %q: %v\n%s", keys, err, out)
	}
}

func (p *pane) typeLine(s string) {
	p.t.Helper()
	p.keys("-l", s)
	p.keys("Enter")
}

func (p *pane) screen() string {
	p.t.Helper()
	out, err := exec.Command(p.tmux, "-S", p.sock, "capture-pane", "-p", "-t", "0").Output()
	if err != nil {
		p.t.Fatalf("tmux capture-pane: %v", err)
	}
	return string(out)
}

// waitFor polls the screen until ok accepts it, for up to 10 seconds.
func (p *pane) waitFor(what string, ok func(screen string) bool) {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := p.screen()
		if ok(s) {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no %s on the screen after 10s:\n%s", what, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pid returns the pid of duplex on the pane.
func (p *pane) pid() int {
	p.t.Helper()
	b, err := os.ReadFile(p.pidfile)
	if err != nil {
		p.t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		p.t.Fatal(err)
	}
	return pid
}

// lastLine returns the screen's last line that is not blank, with trailing
// blanks removed but for one after a prompt.
func lastLine(screen string) string {
	lines := strings.Split(strings.TrimRight(screen, "\n "), "\n")
	last := lines[len(lines)-1]
	if strings.TrimRight(last, " ") == ">" {
		return "> "
	}
	return strings.TrimRight(last, " ")
}

// hasLines reports whether want appear in order as whole lines of screen.
func hasLines(screen string, want ...string) bool {
	for _, l := range strings.Split(screen, "\n") {
		if len(want) > 0 && strings.TrimRight(l, " ") == want[0] {
			want = want[1:]
		}
	}
	return len(want) == 0
}
