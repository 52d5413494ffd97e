package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// This file tests duplex serve with a real browser: headless Chromium (the
// Debian package chromium, which scripts/test installs; never a downloaded
// browser) driven by playwright-core (browser-ws.mjs). The test builds
// cmd/duplex, runs `duplex serve` twice on 127.0.0.1 (with and without
// permessage-deflate), and has Chromium, on a same-origin page of each,
// open /ws/echo, exchange text and binary messages and close with 4000.

const (
	// chromiumPath is where Debian's chromium package puts the browser.
	chromiumPath = "/usr/bin/chromium"
	// buildTimeout bounds go build ./cmd/duplex. scripts/test runs go vet
	// ./... first, which leaves the build a cache hit (about a second); a
	// cold cache on a slow machine can take a minute.
	buildTimeout = 3 * time.Minute
	// browserTestTimeout bounds the rest of the test: both servers, the
	// browser and the checks.
	browserTestTimeout = 25 * time.Second
	browserCloseReason = "bye from Chromium ✓"
)

// chromiumArgs are the browser's flags: headless, no sandbox (the tests
// run as root in CI), and nothing that reaches the network by itself.
var chromiumArgs = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync",
}

// browserSizes are the message sizes in bytes (UTF-8 bytes for text): the
// empty message, the 7-bit/16-bit length boundary, 64 KiB and 1 MiB.
var browserSizes = []int{0, 1, 125, 126, 65536, 1 << 20}

// requireBrowser returns the paths of node and Chromium, or skips the test
// (fails it when CI=true) if node, node_modules/playwright-core or
// /usr/bin/chromium is missing.
func requireBrowser(t *testing.T) (node, chromium string) {
	t.Helper()
	var missing []string
	node, err := exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node (not in PATH)")
	}
	if _, err := os.Stat("node_modules/playwright-core/package.json"); err != nil {
		missing = append(missing, "node_modules/playwright-core (run npm ci in test/interop)")
	}
	if fi, err := os.Stat(chromiumPath); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		missing = append(missing, chromiumPath+" (apt-get install chromium; scripts/test does it as root)")
	}
	if len(missing) > 0 {
		msg := "browser test needs " + strings.Join(missing, ", ")
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return node, chromiumPath
}

// buildDuplex builds cmd/duplex into a temp dir and returns the binary.
func buildDuplex(ctx context.Context, t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not in PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "duplex")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "github.com/duplexrt/duplex/cmd/duplex")
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (not done within %v)", err, buildTimeout)
		}
		t.Fatalf("go build ./cmd/duplex: %v\n%s", err, out)
	}
	t.Logf("built cmd/duplex in %v", time.Since(start).Round(time.Millisecond))
	return bin
}

// serveLog collects the JSON log lines of duplex serve and reports the
// address of its "serving" line.
type serveLog struct {
	mu      sync.Mutex
	partial []byte
	lines   []map[string]any
	raw     bytes.Buffer
	ready   chan string
	sent    bool
}

func (l *serveLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.raw.Write(p)
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := l.partial[:i]
		l.partial = l.partial[i+1:]
		var rec map[string]any
		if json.Unmarshal(line, &rec) != nil {
			continue
		}
		l.lines = append(l.lines, rec)
		if addr, ok := rec["addr"].(string); ok && rec["msg"] == "serving" && !l.sent {
			l.sent = true
			l.ready <- addr
		}
	}
	return len(p), nil
}

func (l *serveLog) records() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]map[string]any(nil), l.lines...)
}

func (l *serveLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.raw.String()
}

// duplexServe is a running `duplex serve`.
type duplexServe struct {
	base string // http://127.0.0.1:PORT
	log  *serveLog
	stop func() error
}

// startDuplexServe runs `duplex serve` on a port of 127.0.0.1 that it
// picks itself (--addr 127.0.0.1:0; the log says which) until stop or the
// end of the test. stop sends SIGTERM and returns an error unless serve
// exits 0 within a few seconds.
func startDuplexServe(t *testing.T, bin string, extra ...string) *duplexServe {
	t.Helper()
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--log-format", "json",
		"--log-level", "debug", "--drain", "2s"}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	log := &serveLog{ready: make(chan string, 1)}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 3 * time.Second // then SIGKILL
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting duplex serve: %v", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	var once sync.Once
	var stopErr error
	stop := func() error {
		once.Do(func() {
			select {
			case <-exited:
				stopErr = fmt.Errorf("duplex serve %v exited before SIGTERM: %v", extra, waitErr)
				return
			default:
			}
			cancel()
			<-exited
			if !cmd.ProcessState.Success() {
				stopErr = fmt.Errorf("duplex serve %v on SIGTERM: %v (%v)", extra, cmd.ProcessState, waitErr)
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("duplex serve %v log:\n%s", extra, log.String())
		}
	})
	select {
	case addr := <-log.ready:
		return &duplexServe{base: "http://" + addr, log: log, stop: stop}
	case <-exited:
		t.Fatalf("duplex serve %v exited (%v) before serving; log:\n%s", extra, waitErr, log.String())
	case <-time.After(opTimeout):
		t.Fatalf("duplex serve %v: no serving line within %v; log:\n%s", extra, opTimeout, log.String())
	}
	return nil
}

// browserConfig is browser-ws.mjs's argument.
type browserConfig struct {
	Chromium        string       `json:"chromium"`
	ChromiumArgs    []string     `json:"chromiumArgs"`
	Runs            []browserRun `json:"runs"`
	Sizes           []int        `json:"sizes"`
	TextRunes       string       `json:"textRunes"`
	Reason          string       `json:"reason"`
	OpTimeoutMs     int64        `json:"opTimeoutMs"`
	LaunchTimeoutMs int64        `json:"launchTimeoutMs"`
	TotalTimeoutMs  int64        `json:"totalTimeoutMs"`
	Screenshot      string       `json:"screenshot,omitempty"`
}

type browserRun struct {
	Name       string `json:"name"`
	Base       string `json:"base"`
	Screenshot bool   `json:"screenshot,omitempty"`
}

// browserEvent is one line of browser-ws.mjs.
type browserEvent struct {
	Ev      string `json:"ev"`
	Name    string `json:"name"`
	Message string `json:"message"`
	Version string `json:"version"`
	Type    string `json:"type"`
	Text    string `json:"text"`

	// "result"
	PageStatus     int              `json:"pageStatus"`
	PageURL        string           `json:"pageURL"`
	Origin         string           `json:"origin"`
	Status         int              `json:"status"`
	ReqExtensions  *string          `json:"reqExtensions"`
	RespExtensions *string          `json:"respExtensions"`
	URL            string           `json:"url"`
	Extensions     *string          `json:"extensions"`
	Protocol       string           `json:"protocol"`
	Messages       []browserMessage `json:"messages"`
	Close          *struct {
		Code     int    `json:"code"`
		Reason   string `json:"reason"`
		WasClean bool   `json:"wasClean"`
	} `json:"close"`
	ReadyState     int      `json:"readyState"`
	BufferedAmount int      `json:"bufferedAmount"`
	Errors         []string `json:"errors"`
	Screenshot     string   `json:"screenshot"`
}

type browserMessage struct {
	Name      string `json:"name"`
	Phase     string `json:"phase"`
	Kind      string `json:"kind"`
	Size      int    `json:"size"`
	SentLen   int    `json:"sentLen"`
	SentSHA   string `json:"sentSha"`
	RecvKind  string `json:"recvKind"`
	RecvLen   int    `json:"recvLen"`
	RecvSHA   string `json:"recvSha"`
	Equal     bool   `json:"equal"`
	FirstDiff int    `json:"firstDiff"`
}

// runBrowser runs browser-ws.mjs with cfg and returns its results by run
// name.
func runBrowser(ctx context.Context, t *testing.T, node string, cfg browserConfig) map[string]browserEvent {
	t.Helper()
	arg, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, node, "browser-ws.mjs", string(arg))
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// SIGTERM lets Playwright close the browser; Chromium also exits when
	// its DevTools pipe to node closes.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 2 * time.Second
	start := time.Now()
	runErr := cmd.Run()
	t.Logf("browser-ws.mjs ran %v", time.Since(start).Round(time.Millisecond))
	if s := stderr.String(); s != "" {
		t.Logf("browser-ws.mjs stderr:\n%s", s)
	}
	results := map[string]browserEvent{}
	for line := range strings.Lines(stdout.String()) {
		var ev browserEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Errorf("browser-ws.mjs printed %q", line)
			continue
		}
		switch ev.Ev {
		case "launched":
			t.Logf("Chromium %s", ev.Version)
		case "console":
			t.Logf("%s: console.%s: %s", ev.Name, ev.Type, ev.Text)
		case "pageerror":
			t.Errorf("%s: page error: %s", ev.Name, ev.Message)
		case "fatal":
			t.Errorf("%s", ev.Message)
		case "result":
			results[ev.Name] = ev
		default:
			t.Errorf("browser-ws.mjs: unknown event %q", line)
		}
	}
	if runErr != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			runErr = fmt.Errorf("%w (%v)", runErr, ctxErr)
		}
		t.Fatalf("browser-ws.mjs: %v", runErr)
	}
	return results
}

// TestBrowser: headless Chromium opens /ws/echo of duplex serve from a
// same-origin page, negotiates permessage-deflate (and, against
// --no-deflate, nothing), gets back text and binary messages of 0 bytes to
// 1 MiB unchanged, one at a time and pipelined, and closes cleanly with
// 4000 and a reason, which the server receives.
func TestBrowser(t *testing.T) {
	node, chromium := requireBrowser(t)
	bctx, bcancel := context.WithTimeout(t.Context(), buildTimeout)
	bin := buildDuplex(bctx, t)
	bcancel()

	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), browserTestTimeout)
	defer cancel()
	servers := map[string]*duplexServe{
		"deflate":    startDuplexServe(t, bin),
		"no-deflate": startDuplexServe(t, bin, "--no-deflate"),
	}
	deadline, _ := ctx.Deadline()
	cfg := browserConfig{
		Chromium:     chromium,
		ChromiumArgs: chromiumArgs,
		Runs: []browserRun{
			{Name: "deflate", Base: servers["deflate"].base, Screenshot: true},
			{Name: "no-deflate", Base: servers["no-deflate"].base},
		},
		Sizes:           browserSizes,
		TextRunes:       string(textRunes),
		Reason:          browserCloseReason,
		OpTimeoutMs:     opTimeout.Milliseconds(),
		LaunchTimeoutMs: 10_000,
		// The script gives up a little before ctx would kill it, so that
		// it can say where it was.
		TotalTimeoutMs: time.Until(deadline).Milliseconds() - 2_000,
		// DUPLEX_BROWSER_SCREENSHOT=/tmp/browser.png saves the page of the
		// deflate run, with the results written in it.
		Screenshot: os.Getenv("DUPLEX_BROWSER_SCREENSHOT"),
	}
	results := runBrowser(ctx, t, node, cfg)

	for _, name := range []string{"deflate", "no-deflate"} {
		t.Run(name, func(t *testing.T) {
			s := servers[name]
			r, ok := results[name]
			if !ok {
				t.Fatalf("browser-ws.mjs reported no result for %s", name)
			}
			checkBrowserResult(t, s, r, name == "deflate")
			if r.Screenshot != "" {
				t.Logf("screenshot: %s", r.Screenshot)
			}
			// The server's side of the close: stopping it flushes the log.
			if err := s.stop(); err != nil {
				t.Error(err)
			}
			checkServerClose(t, s)
		})
	}
	t.Logf("servers and browser took %v", time.Since(start).Round(time.Millisecond))
}

func checkBrowserResult(t *testing.T, s *duplexServe, r browserEvent, deflate bool) {
	for _, e := range r.Errors {
		t.Errorf("in the browser: %s", e)
	}
	if r.PageStatus != 200 || r.PageURL != s.base+"/healthz" {
		t.Errorf("page %s status %d, want %s/healthz 200", r.PageURL, r.PageStatus, s.base)
	}
	if r.Origin != s.base {
		t.Errorf("handshake Origin %q, want %q (same-origin page)", r.Origin, s.base)
	}
	if r.Status != 101 {
		t.Errorf("handshake status %d, want 101", r.Status)
	}
	if r.ReqExtensions == nil || !strings.Contains(*r.ReqExtensions, "permessage-deflate") {
		t.Errorf("Chromium offered Sec-WebSocket-Extensions %s, want permessage-deflate", strp(r.ReqExtensions))
	}
	if r.Extensions == nil {
		t.Fatal("no ws.extensions: the WebSocket did not open")
	}
	ext := *r.Extensions
	t.Logf("offered %s; ws.extensions = %q; response header %s", strp(r.ReqExtensions), ext, strp(r.RespExtensions))
	if deflate {
		name, _, _ := strings.Cut(ext, ";")
		if strings.TrimSpace(name) != "permessage-deflate" || strings.Contains(ext, ",") {
			t.Errorf("ws.extensions = %q, want permessage-deflate (with parameters or not)", ext)
		}
	} else if ext != "" {
		t.Errorf("ws.extensions = %q against --no-deflate, want \"\"", ext)
	}
	if r.RespExtensions == nil || *r.RespExtensions != ext {
		t.Errorf("response Sec-WebSocket-Extensions %s, ws.extensions %q: want the same", strp(r.RespExtensions), ext)
	}
	if r.Protocol != "" {
		t.Errorf("ws.protocol = %q, want \"\"", r.Protocol)
	}

	// Every message came back, in order, unchanged and of its type.
	want := 2 * 2 * len(browserSizes) // text and binary, sequential and pipelined
	if len(r.Messages) != want {
		t.Errorf("%d echoes checked, want %d", len(r.Messages), want)
	}
	for _, m := range r.Messages {
		id := m.Phase + " " + m.Name
		if !m.Equal || m.RecvKind != m.Kind || m.RecvLen != m.SentLen || m.RecvSHA != m.SentSHA {
			t.Errorf("%s: sent %s %d bytes sha256 %s; echo %s %d bytes sha256 %s (first difference at byte %d)",
				id, m.Kind, m.SentLen, m.SentSHA, m.RecvKind, m.RecvLen, m.RecvSHA, m.FirstDiff)
		}
		if m.SentLen != m.Size {
			t.Errorf("%s: the browser sent %d bytes, want %d", id, m.SentLen, m.Size)
		}
		// The browser built the text as textPayload does.
		if m.Kind == "text" && m.SentSHA != sha(textPayload(m.Size)) {
			t.Errorf("%s: the browser's text differs from textPayload(%d)", id, m.Size)
		}
	}

	if c := r.Close; c == nil {
		t.Error("no close event")
	} else {
		// The server answers with the browser's code; it may echo the
		// reason or send none (RFC 6455 §5.5.1).
		t.Logf("close event: code %d, reason %q, wasClean %v", c.Code, c.Reason, c.WasClean)
		if c.Code != 4000 || !c.WasClean || (c.Reason != "" && c.Reason != browserCloseReason) {
			t.Errorf("close event code %d reason %q wasClean %v; want 4000, %q or \"\", true",
				c.Code, c.Reason, c.WasClean, browserCloseReason)
		}
	}
	if r.ReadyState != 3 || r.BufferedAmount != 0 {
		t.Errorf("after close: readyState %d, bufferedAmount %d; want 3 (CLOSED), 0", r.ReadyState, r.BufferedAmount)
	}
}

func strp(s *string) string {
	if s == nil {
		return "(none)"
	}
	return fmt.Sprintf("%q", *s)
}

// checkServerClose checks, in the log of a stopped duplex serve, that its
// one echo connection ended with the browser's close code and reason, and
// that nothing was logged above INFO.
func checkServerClose(t *testing.T, s *duplexServe) {
	var closes []string
	for _, rec := range s.log.records() {
		if lvl, _ := rec["level"].(string); lvl == "WARN" || lvl == "ERROR" {
			t.Errorf("duplex serve logged %v", rec)
		}
		if rec["msg"] == "echo connection closed" {
			e, _ := rec["err"].(string)
			closes = append(closes, e)
		}
	}
	if len(closes) != 1 {
		t.Fatalf("duplex serve logged %d echo connection closes %q, want 1", len(closes), closes)
	}
	if !strings.Contains(closes[0], "4000") || !strings.Contains(closes[0], browserCloseReason) {
		t.Errorf("the server's connection ended with %q, want the browser's 4000 %q", closes[0], browserCloseReason)
	}
}
