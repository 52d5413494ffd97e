package interop

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/duplexrt/duplex/ws"
	"github.com/google/go-cmp/cmp"
)

// This file is the side-by-side proof that ws.Socket is the browser's
// WebSocket in Go. One table of scenarios runs twice: in headless Chromium
// (socket-browser.mjs), with the browser's own WebSocket on a page served
// same-origin by duplex serve, and here, with ws.Socket against the same
// kind of server. Both sides write the same trace, one line per observation:
//
//	readyState CONNECTING                      right after construction
//	url ws://SERVER/ws/echo                    the url attribute / URL()
//	open OPEN protocol "" extensions "…"       in the open handler, with readyState
//	message text "hello ✓"                     a text message (JSON-quoted)
//	message binary 4 bytes 000102ff            a binary message (hex)
//	after-close CLOSING                        readyState right after close()
//	error CLOSED                               in the error handler, with readyState
//	close 1001 "server shutting down" clean CLOSED
//	                                           code, reason, wasClean, readyState
//
// The test wants the traces equal, and equal to the table's.

const (
	// sbTestTimeout bounds the whole test after the build: the servers,
	// Chromium's launch and every scenario on both sides.
	sbTestTimeout = 40 * time.Second
	// sbSettle is how long a side keeps listening after the close event,
	// to catch an event that would (wrongly) follow it.
	sbSettle = 100 * time.Millisecond
)

// sbScenario is one row of the table, run the same way on both sides.
type sbScenario struct {
	Name string `json:"name"`
	// URL is the WebSocket URL; SERVER stands for the scenario's
	// server, 127.0.0.1:port.
	URL string `json:"url"`
	// Send is sent, in order, in the open handler.
	Send []sbSend `json:"send"`
	// When says when to call close: "construct" (right after the
	// constructor), "open" (in the open handler, after sending),
	// "echoes" (in the message handler, once len(Send) messages came),
	// or "" (never: the server ends the connection).
	When string `json:"when"`
	// Code and Reason are close's arguments; Code 0 calls close()
	// without arguments (Close(0, "") in Go).
	Code   int    `json:"code"`
	Reason string `json:"reason"`
	// Kill, if set, is the signal the test sends to the scenario's own
	// duplex serve once the open handler has run: SIGTERM (which closes
	// with 1001) or SIGKILL (which drops the TCP connection without a
	// close frame).
	Kill string `json:"kill,omitempty"`

	// want is the trace both sides must write.
	want []string
}

type sbSend struct {
	Type  string `json:"type"` // "text" or "binary"
	Text  string `json:"text,omitempty"`
	Bytes []int  `json:"bytes,omitempty"`
}

// sbExtensions is what duplex serve answers to the permessage-deflate offer
// that Chromium makes, and that the Socket here makes too
// (Compression{}: "permessage-deflate; client_max_window_bits").
const sbExtensions = `"permessage-deflate"`

var sbScenarios = []sbScenario{
	{
		// The close event has the code and reason of the close frame the
		// client received (RFC 6455 §7.1.5, §7.1.6): duplex serve answers
		// with the client's code and no reason.
		Name: "echo-then-close",
		URL:  "ws://SERVER/ws/echo",
		Send: []sbSend{{Type: "text", Text: "hello ✓"}, {Type: "binary", Bytes: []int{0, 1, 2, 255}}},
		When: "echoes", Code: 4000, Reason: "bye",
		want: []string{
			"readyState CONNECTING",
			"url ws://SERVER/ws/echo",
			"open OPEN protocol \"\" extensions " + sbExtensions,
			`message text "hello ✓"`,
			"message binary 4 bytes 000102ff",
			"after-close CLOSING",
			`close 4000 "" clean CLOSED`,
		},
	},
	{
		Name: "server-close-1001",
		URL:  "ws://SERVER/ws/echo",
		Kill: "SIGTERM",
		want: []string{
			"readyState CONNECTING",
			"url ws://SERVER/ws/echo",
			"open OPEN protocol \"\" extensions " + sbExtensions,
			`close 1001 "server shutting down" clean CLOSED`,
		},
	},
	{
		Name: "refused-handshake-404",
		URL:  "ws://SERVER/ws/nope",
		want: []string{
			"readyState CONNECTING",
			"url ws://SERVER/ws/nope",
			"error CLOSED",
			`close 1006 "" unclean CLOSED`,
		},
	},
	{
		// The server process dies: the kernel closes its socket (a FIN),
		// and the client sees the TCP connection end without a close
		// frame. That is "the WebSocket connection is closed" with code
		// 1006 (RFC 6455 §7.1.5), not "fail the WebSocket connection"
		// (§7.1.7, which handshake and protocol errors invoke), so the
		// WHATWG WebSockets standard fires close without error, as
		// Chromium does, and ws.Socket too.
		Name: "server-dropped",
		URL:  "ws://SERVER/ws/echo",
		Kill: "SIGKILL",
		want: []string{
			"readyState CONNECTING",
			"url ws://SERVER/ws/echo",
			"open OPEN protocol \"\" extensions " + sbExtensions,
			`close 1006 "" unclean CLOSED`,
		},
	},
	{
		// close() sends a close frame without a code; the server answers
		// with none either, which the close event reports as 1005.
		Name: "close-no-args",
		URL:  "ws://SERVER/ws/echo",
		When: "open",
		want: []string{
			"readyState CONNECTING",
			"url ws://SERVER/ws/echo",
			"open OPEN protocol \"\" extensions " + sbExtensions,
			"after-close CLOSING",
			`close 1005 "" clean CLOSED`,
		},
	},
	{
		Name: "close-1000-done",
		URL:  "ws://SERVER/ws/echo",
		When: "open", Code: 1000, Reason: "done",
		want: []string{
			"readyState CONNECTING",
			"url ws://SERVER/ws/echo",
			"open OPEN protocol \"\" extensions " + sbExtensions,
			"after-close CLOSING",
			`close 1000 "" clean CLOSED`,
		},
	},
	{
		// No path: the url attribute gets "/", and GET / is a 404.
		Name: "url-no-path",
		URL:  "ws://SERVER",
		want: []string{
			"readyState CONNECTING",
			"url ws://SERVER/",
			"error CLOSED",
			`close 1006 "" unclean CLOSED`,
		},
	},
	{
		// The URL Standard and the WebSocket constructor turn http into
		// ws (Chromium since 125), keeping path and query.
		Name: "url-http-scheme",
		URL:  "http://SERVER/ws/echo?x=1",
		When: "open", Code: 1000,
		want: []string{
			"readyState CONNECTING",
			"url ws://SERVER/ws/echo?x=1",
			"open OPEN protocol \"\" extensions " + sbExtensions,
			"after-close CLOSING",
			`close 1000 "" clean CLOSED`,
		},
	},
	{
		// close() before the handshake is done fails the connection:
		// error, then close 1006 (WHATWG WebSockets, close() step 3).
		Name: "close-while-connecting",
		URL:  "ws://SERVER/ws/echo",
		When: "construct", Code: 4001, Reason: "never mind",
		want: []string{
			"readyState CONNECTING",
			"url ws://SERVER/ws/echo",
			"after-close CLOSING",
			"error CLOSED",
			`close 1006 "" unclean CLOSED`,
		},
	},
}

// sbServer is a duplex serve that a scenario stops with a signal.
// startDuplexServe's stop fails when the process exited before it, which
// these servers do on purpose; this one also lets the test send SIGKILL.
type sbServer struct {
	hostport string
	log      *serveLog
	cmd      *exec.Cmd
	exited   chan struct{}
	waitErr  error
}

// sbStartServe runs duplex serve on a port of 127.0.0.1 until a scenario
// signals it, or the end of the test.
func sbStartServe(t *testing.T, bin string) *sbServer {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--log-format", "json",
		"--log-level", "debug", "--drain", "2s")
	s := &sbServer{log: &serveLog{ready: make(chan string, 1)}, cmd: cmd, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting duplex serve: %v", err)
	}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.exited:
			case <-time.After(opTimeout):
				_ = cmd.Process.Kill()
				<-s.exited
			}
		}
		if t.Failed() {
			t.Logf("duplex serve %s log:\n%s", s.hostport, s.log.String())
		}
	})
	select {
	case addr := <-s.log.ready:
		s.hostport = addr
		return s
	case <-s.exited:
		t.Fatalf("duplex serve exited (%v) before serving; log:\n%s", s.waitErr, s.log.String())
	case <-time.After(opTimeout):
		t.Fatalf("duplex serve: no serving line within %v; log:\n%s", opTimeout, s.log.String())
	}
	return nil
}

// signal sends the scenario's signal (SIGTERM or SIGKILL).
func (s *sbServer) signal(name string) error {
	sig := syscall.SIGTERM
	if name == "SIGKILL" {
		sig = syscall.SIGKILL
	}
	return s.cmd.Process.Signal(sig)
}

// checkExit checks that the server exited as the signal it got should
// make it: 0 after SIGTERM (it closed its connections and drained), killed
// after SIGKILL.
func (s *sbServer) checkExit(t *testing.T, side, kill string) {
	t.Helper()
	select {
	case <-s.exited:
	case <-time.After(opTimeout):
		t.Errorf("%s's duplex serve: still running %v after %s", side, opTimeout, kill)
		return
	}
	st := s.cmd.ProcessState
	switch kill {
	case "SIGTERM":
		if !st.Success() {
			t.Errorf("%s's duplex serve exited %v after SIGTERM, want 0", side, st)
		}
	case "SIGKILL":
		if w, ok := st.Sys().(syscall.WaitStatus); !ok || !w.Signaled() || w.Signal() != syscall.SIGKILL {
			t.Errorf("%s's duplex serve exited %v after SIGKILL, want killed", side, st)
		}
	}
}

// sbSide is where one side runs one scenario.
type sbSide struct {
	hostport string
	own      *sbServer // the scenario's own server, for Kill; nil on the shared one
}

func (s sbSide) url(sc sbScenario) string { return strings.ReplaceAll(sc.URL, "SERVER", s.hostport) }

// sbNormalize writes the side's server address as SERVER. It is the one
// normalization: the scenarios that stop their server need one server per
// side, so their ports differ; the others share one server, and the
// address was already the same.
func sbNormalize(trace []string, hostport string) []string {
	out := make([]string, len(trace))
	for i, l := range trace {
		out[i] = strings.ReplaceAll(l, hostport, "SERVER")
	}
	return out
}

// sbQuote quotes s as the browser side does, with JSON.stringify.
func sbQuote(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

// sbRunSocket runs sc with a ws.Socket and returns its trace, and what its
// ErrorEvents said (the browser shows no such thing, so it is only logged).
func sbRunSocket(ctx context.Context, sc sbScenario, side sbSide) (trace, errorEvents []string, err error) {
	var mu sync.Mutex
	add := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		trace = append(trace, fmt.Sprintf(format, args...))
	}
	var signalErr error
	doClose := func(s *ws.Socket) {
		if err := s.Close(ws.StatusCode(sc.Code), sc.Reason); err != nil {
			add("close-threw %v", err)
		}
		add("after-close %v", s.ReadyState())
	}
	received := 0 // only the socket's event goroutine touches it
	opts := &ws.SocketOptions{
		// Offer permessage-deflate as Chromium does.
		Dial: &ws.DialOptions{Compression: &ws.Compression{}, CloseTimeout: closeTimeout},
		OnOpen: func(s *ws.Socket, _ ws.OpenEvent) {
			add("open %v protocol %s extensions %s", s.ReadyState(), sbQuote(s.Protocol()), sbQuote(s.Extensions()))
			for _, m := range sc.Send {
				var err error
				if m.Type == "text" {
					err = s.SendText(m.Text)
				} else {
					b := make([]byte, len(m.Bytes))
					for i, v := range m.Bytes {
						b[i] = byte(v)
					}
					err = s.SendBinary(b)
				}
				if err != nil {
					add("send-threw %v", err)
				}
			}
			if sc.Kill != "" {
				if err := side.own.signal(sc.Kill); err != nil {
					mu.Lock()
					signalErr = fmt.Errorf("%s: %w", sc.Kill, err)
					mu.Unlock()
				}
			}
			if sc.When == "open" {
				doClose(s)
			}
		},
		OnMessage: func(s *ws.Socket, e ws.MessageEvent) {
			if e.Type == ws.MessageText {
				add("message text %s", sbQuote(e.Text()))
			} else {
				add("message binary %d bytes %s", len(e.Data), hex.EncodeToString(e.Data))
			}
			received++
			if sc.When == "echoes" && received == len(sc.Send) {
				doClose(s)
			}
		},
		OnError: func(s *ws.Socket, e ws.ErrorEvent) {
			add("error %v", s.ReadyState())
			mu.Lock()
			errorEvents = append(errorEvents, e.Err.Error())
			mu.Unlock()
		},
		OnClose: func(s *ws.Socket, e ws.CloseEvent) {
			clean := "unclean"
			if e.WasClean {
				clean = "clean"
			}
			add("close %d %s %s %v", int(e.Code), sbQuote(e.Reason), clean, s.ReadyState())
		},
	}
	s, err := ws.NewSocket(ctx, side.url(sc), opts)
	if err != nil {
		return nil, nil, fmt.Errorf("NewSocket: %w", err)
	}
	// The Socket may deliver its open before NewSocket returns (its doc
	// says so), where the browser runs the constructing script to its end
	// first; here the handshake with another process takes far longer
	// than NewSocket's return, so the order is the browser's.
	add("readyState %v", s.ReadyState())
	add("url %s", s.URL())
	if sc.When == "construct" {
		doClose(s)
	}
	select {
	case <-s.Done():
	case <-time.After(opTimeout):
		add("timeout")
		err = fmt.Errorf("the socket did not close within %v", opTimeout)
		_ = s.Close(0, "")
		select {
		case <-s.Done():
		case <-time.After(2 * closeTimeout):
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return append([]string(nil), trace...), append([]string(nil), errorEvents...), errors.Join(err, signalErr)
}

// sbBrowserConfig is socket-browser.mjs's argument.
type sbBrowserConfig struct {
	Chromium        string              `json:"chromium"`
	ChromiumArgs    []string            `json:"chromiumArgs"`
	Scenarios       []sbBrowserScenario `json:"scenarios"`
	OpTimeoutMs     int64               `json:"opTimeoutMs"`
	SettleMs        int64               `json:"settleMs"`
	LaunchTimeoutMs int64               `json:"launchTimeoutMs"`
	TotalTimeoutMs  int64               `json:"totalTimeoutMs"`
}

type sbBrowserScenario struct {
	sbScenario
	Page  string `json:"page"`  // the same-origin page to load first
	WSURL string `json:"wsURL"` // URL with SERVER replaced
}

// sbBrowserLine is one line of socket-browser.mjs.
type sbBrowserLine struct {
	Ev      string   `json:"ev"`
	Name    string   `json:"name"`
	Version string   `json:"version"`
	Type    string   `json:"type"`
	Text    string   `json:"text"`
	Message string   `json:"message"`
	Trace   []string `json:"trace"`
	Errors  []string `json:"errors"`
	Ms      int64    `json:"ms"` // how long the scenario took, page load included
}

// sbRunBrowser runs socket-browser.mjs and returns the traces by scenario.
// opened is called when a scenario's open handler ran in the page, for the
// test to signal the server.
func sbRunBrowser(ctx context.Context, t *testing.T, node string, cfg sbBrowserConfig, opened func(name string)) map[string]sbBrowserLine {
	t.Helper()
	arg, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, node, "socket-browser.mjs", string(arg))
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// SIGTERM lets Playwright close the browser; Chromium also exits when
	// its DevTools pipe to node closes.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 2 * time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("socket-browser.mjs: %v", err)
	}
	results := map[string]sbBrowserLine{}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var ev sbBrowserLine
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Errorf("socket-browser.mjs printed %q", sc.Text())
			continue
		}
		switch ev.Ev {
		case "launched":
			t.Logf("Chromium %s", ev.Version)
		case "console":
			t.Logf("%s: console.%s: %s", ev.Name, ev.Type, ev.Text)
		case "pageerror":
			t.Errorf("%s: page error: %s", ev.Name, ev.Message)
		case "opened":
			opened(ev.Name)
		case "fatal":
			t.Errorf("%s", ev.Message)
		case "result":
			results[ev.Name] = ev
		default:
			t.Errorf("socket-browser.mjs: unknown event %q", sc.Text())
		}
	}
	runErr := cmd.Wait()
	t.Logf("socket-browser.mjs ran %v", time.Since(start).Round(time.Millisecond))
	if s := stderr.String(); s != "" {
		t.Logf("socket-browser.mjs stderr:\n%s", s)
	}
	if runErr != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			runErr = fmt.Errorf("%w (%v)", runErr, ctxErr)
		}
		t.Fatalf("socket-browser.mjs: %v", runErr)
	}
	return results
}

// TestSocketBrowser runs the scenario table with Chromium's WebSocket and
// with ws.Socket, against duplex serve, and wants the same readyStates and
// events in the same order on both sides, and the trace the table expects.
func TestSocketBrowser(t *testing.T) {
	node, chromium := requireBrowser(t)
	bctx, bcancel := context.WithTimeout(t.Context(), buildTimeout)
	bin := buildDuplex(bctx, t)
	bcancel()

	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), sbTestTimeout)
	defer cancel()
	shared := startDuplexServe(t, bin)
	sharedHost := strings.TrimPrefix(shared.base, "http://")

	// Each scenario that stops its server gets one per side.
	browserSides := make([]sbSide, len(sbScenarios))
	socketSides := make([]sbSide, len(sbScenarios))
	byName := map[string]int{}
	for i, sc := range sbScenarios {
		byName[sc.Name] = i
		if sc.Kill == "" {
			browserSides[i] = sbSide{hostport: sharedHost}
			socketSides[i] = browserSides[i]
			continue
		}
		b, s := sbStartServe(t, bin), sbStartServe(t, bin)
		browserSides[i] = sbSide{hostport: b.hostport, own: b}
		socketSides[i] = sbSide{hostport: s.hostport, own: s}
	}

	// The Socket side runs while the browser does, each scenario on its own.
	socketTraces := make([][]string, len(sbScenarios))
	socketErrorEvents := make([][]string, len(sbScenarios))
	socketErrs := make([]error, len(sbScenarios))
	var wg sync.WaitGroup
	defer wg.Wait() // also when the browser side fails the test
	for i, sc := range sbScenarios {
		wg.Go(func() {
			socketTraces[i], socketErrorEvents[i], socketErrs[i] = sbRunSocket(ctx, sc, socketSides[i])
		})
	}

	deadline, _ := ctx.Deadline()
	cfg := sbBrowserConfig{
		Chromium:        chromium,
		ChromiumArgs:    chromiumArgs,
		OpTimeoutMs:     opTimeout.Milliseconds(),
		SettleMs:        sbSettle.Milliseconds(),
		LaunchTimeoutMs: 10_000,
		// The script gives up a little before ctx would kill it, so that
		// it can say where it was.
		TotalTimeoutMs: time.Until(deadline).Milliseconds() - 2_000,
	}
	for i, sc := range sbScenarios {
		side := browserSides[i]
		cfg.Scenarios = append(cfg.Scenarios, sbBrowserScenario{
			sbScenario: sc,
			Page:       "http://" + side.hostport + "/healthz",
			WSURL:      side.url(sc),
		})
	}
	var signalErrs []error
	results := sbRunBrowser(ctx, t, node, cfg, func(name string) {
		i, ok := byName[name]
		if !ok || browserSides[i].own == nil {
			signalErrs = append(signalErrs, fmt.Errorf("socket-browser.mjs: opened %q, which has no server to signal", name))
			return
		}
		if err := browserSides[i].own.signal(sbScenarios[i].Kill); err != nil {
			signalErrs = append(signalErrs, fmt.Errorf("%s: %s: %v", name, sbScenarios[i].Kill, err))
		}
	})
	for _, err := range signalErrs {
		t.Error(err)
	}
	wg.Wait()

	for i, sc := range sbScenarios {
		t.Run(sc.Name, func(t *testing.T) {
			r, ok := results[sc.Name]
			if !ok {
				t.Fatalf("socket-browser.mjs reported no result for %s", sc.Name)
			}
			for _, e := range r.Errors {
				t.Errorf("in the browser: %s", e)
			}
			if socketErrs[i] != nil {
				t.Errorf("Socket: %v", socketErrs[i])
			}
			for _, e := range socketErrorEvents[i] {
				t.Logf("the Socket's ErrorEvent: %s", e)
			}
			socket := socketTraces[i]
			browser := sbNormalize(r.Trace, browserSides[i].hostport)
			socket = sbNormalize(socket, socketSides[i].hostport)
			t.Logf("%s (%d ms in Chromium):\n  %s", sc.URL, r.Ms, strings.Join(browser, "\n  "))
			if diff := cmp.Diff(sc.want, browser); diff != "" {
				t.Errorf("Chromium's trace is not the table's (-want +Chromium):\n%s", diff)
			}
			if diff := cmp.Diff(browser, socket); diff != "" {
				t.Errorf("Chromium and ws.Socket differ (-Chromium +Socket):\n%s\nChromium:\n  %s\nSocket:\n  %s",
					diff, strings.Join(browser, "\n  "), strings.Join(socket, "\n  "))
			}
			if sc.Kill != "" {
				browserSides[i].own.checkExit(t, "the browser", sc.Kill)
				socketSides[i].own.checkExit(t, "the Socket", sc.Kill)
			}
		})
	}
	t.Logf("servers, browser and sockets took %v", time.Since(start).Round(time.Millisecond))
}
