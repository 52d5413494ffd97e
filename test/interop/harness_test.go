package interop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/duplexrt/duplex/ws"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopHubs()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

const (
	// hubLifetime bounds a node process's whole life (TestMain ends it
	// long before; a test binary that dies closes its stdin, which ends
	// it too).
	hubLifetime = 10 * time.Minute
	// opTimeout bounds every wait for one event or one Go operation.
	opTimeout = 5 * time.Second
	// closeTimeout is the Go side's close timeout, kept short so that a
	// peer that does not answer cannot stall the package.
	closeTimeout = 2 * time.Second
)

// requireNode skips the test, or fails it when CI=true, if node or the npm
// ws package is missing. It returns node's path.
func requireNode(t *testing.T) string {
	t.Helper()
	var msg string
	node, err := exec.LookPath("node")
	if err != nil {
		msg = "node not found in PATH"
	} else if _, err := os.Stat("node_modules/ws/package.json"); err != nil {
		msg = "node_modules/ws is missing"
	}
	if msg != "" {
		msg += ": run npm ci in test/interop"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return node
}

// ---------------------------------------------------------------------------
// Node processes

// event is one line that peer.mjs reports.
type event struct {
	Conn          int    `json:"conn,omitempty"`
	Ev            string `json:"ev"`
	Port          int    `json:"port,omitempty"`
	DeflatePort   int    `json:"deflatePort,omitempty"`
	Protocol      string `json:"protocol,omitempty"`
	Extensions    string `json:"extensions,omitempty"`
	ReqProtocol   string `json:"reqProtocol,omitempty"`
	ReqExtensions string `json:"reqExtensions,omitempty"`
	Binary        bool   `json:"binary,omitempty"`
	Len           int    `json:"len,omitempty"`
	SHA256        string `json:"sha256,omitempty"`
	Data          []byte `json:"data,omitempty"`
	Code          int    `json:"code,omitempty"`
	Reason        string `json:"reason,omitempty"`
	Message       string `json:"message,omitempty"`
	ErrCode       string `json:"errCode,omitempty"`
}

func (e event) String() string {
	e.Data = nil
	b, _ := json.Marshal(e)
	return string(b)
}

// queue holds events until a test takes them.
type queue struct {
	mu     sync.Mutex
	events []event
	notify chan struct{}
}

func newQueue() *queue { return &queue{notify: make(chan struct{}, 1)} }

func (q *queue) push(ev event) {
	q.mu.Lock()
	q.events = append(q.events, ev)
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// next returns the next event, or false if none came within opTimeout or
// the process ended (done closed).
func (q *queue) next(done <-chan struct{}) (event, bool) {
	deadline := time.NewTimer(opTimeout)
	defer deadline.Stop()
	ended := false
	for {
		q.mu.Lock()
		if len(q.events) > 0 {
			ev := q.events[0]
			q.events = q.events[1:]
			q.mu.Unlock()
			return ev, true
		}
		q.mu.Unlock()
		if ended {
			return event{}, false
		}
		select {
		case <-q.notify:
		case <-done:
			ended = true
		case <-deadline.C:
			return event{}, false
		}
	}
}

// hub is a running ws-client.mjs or ws-server.mjs, shared by the tests:
// node takes a fraction of a second to start, and the tests make dozens of
// connections. Each connection has its own number and event queue.
type hub struct {
	name     string
	cmd      *exec.Cmd
	cancel   context.CancelFunc
	stdin    io.WriteCloser
	stderr   lockedBuffer
	readDone chan struct{}
	writeMu  sync.Mutex

	mu    sync.Mutex
	conns map[int]*queue
	own   *queue // events of no connection

	port, deflatePort int // ws-server.mjs's
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

var (
	hubsMu     sync.Mutex
	hubs       = map[string]*hub{}
	hubErrs    = map[string]error{}
	nextConnID atomic.Int64
)

// getHub returns the running script, starting it on first use.
func getHub(t *testing.T, script string) *hub {
	t.Helper()
	node := requireNode(t)
	hubsMu.Lock()
	defer hubsMu.Unlock()
	if h := hubs[script]; h != nil {
		return h
	}
	if err := hubErrs[script]; err != nil {
		t.Fatal(err)
	}
	h, err := startHub(node, script)
	if err != nil {
		hubErrs[script] = err
		t.Fatal(err)
	}
	hubs[script] = h
	return h
}

func startHub(node, script string) (*hub, error) {
	ctx, cancel := context.WithTimeout(context.Background(), hubLifetime)
	h := &hub{
		name:     script,
		cmd:      exec.CommandContext(ctx, node, script),
		cancel:   cancel,
		readDone: make(chan struct{}),
		conns:    map[int]*queue{},
		own:      newQueue(),
	}
	h.cmd.WaitDelay = time.Second
	h.cmd.Stderr = &h.stderr
	stdin, err := h.cmd.StdinPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	h.stdin = stdin
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	if err := h.cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("starting %s: %w", script, err)
	}
	go h.readEvents(stdout)
	if script == "ws-server.mjs" {
		ev, ok := h.own.next(h.readDone)
		if !ok || ev.Ev != "listening" {
			h.stop()
			return nil, fmt.Errorf("%s: got %v instead of listening; stderr: %s", script, ev, h.stderr.String())
		}
		h.port, h.deflatePort = ev.Port, ev.DeflatePort
	}
	return h, nil
}

// stopHubs ends the node processes: closing stdin makes them exit, and
// they are killed if they do not within 3 seconds.
func stopHubs() {
	hubsMu.Lock()
	defer hubsMu.Unlock()
	for name, h := range hubs {
		h.stop()
		delete(hubs, name)
	}
}

func (h *hub) stop() {
	_ = h.stdin.Close()
	select {
	case <-h.readDone:
	case <-time.After(3 * time.Second):
		fmt.Fprintf(os.Stderr, "%s did not exit within 3s of its stdin closing; killing it\n", h.name)
		h.cancel()
		<-h.readDone
	}
	err := h.cmd.Wait()
	h.cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", h.name, err)
	}
	if s := h.stderr.String(); s != "" {
		fmt.Fprintf(os.Stderr, "%s stderr:\n%s", h.name, s)
	}
}

func (h *hub) readEvents(r io.Reader) {
	defer close(h.readDone)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			ev = event{Ev: "unparsable", Message: sc.Text()}
		}
		h.mu.Lock()
		q := h.own
		if ev.Conn != 0 {
			q = h.conns[ev.Conn] // nil: the test is over
		}
		h.mu.Unlock()
		if q != nil {
			q.push(ev)
		}
	}
}

func (h *hub) command(t *testing.T, cmd map[string]any) {
	t.Helper()
	b, err := json.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	h.writeMu.Lock()
	defer h.writeMu.Unlock()
	if _, err := h.stdin.Write(append(b, '\n')); err != nil {
		t.Fatalf("%s: writing a command: %v; stderr: %s", h.name, err, h.stderr.String())
	}
}

// nodeConn is one connection of a hub, for one test.
type nodeConn struct {
	h  *hub
	id int
	q  *queue
}

// newConn reserves a connection number for the test. When the test ends
// the connection is terminated if still open and its events dropped.
func (h *hub) newConn(t *testing.T) *nodeConn {
	n := &nodeConn{h: h, id: int(nextConnID.Add(1)), q: newQueue()}
	h.mu.Lock()
	h.conns[n.id] = n.q
	h.mu.Unlock()
	t.Cleanup(func() {
		h.mu.Lock()
		delete(h.conns, n.id)
		h.mu.Unlock()
		_, _ = h.stdin.Write(fmt.Appendf(nil, `{"conn":%d,"op":"terminate"}`+"\n", n.id))
	})
	return n
}

type clientOptions struct {
	protocols []string
	noDeflate bool
	echo      bool
}

// nodeClient has ws-client.mjs connect to url.
func nodeClient(t *testing.T, url string, o clientOptions) *nodeConn {
	t.Helper()
	h := getHub(t, "ws-client.mjs")
	n := h.newConn(t)
	h.command(t, map[string]any{"op": "connect", "conn": n.id, "url": url,
		"protocols": o.protocols, "deflate": !o.noDeflate, "echo": o.echo})
	return n
}

func (n *nodeConn) String() string { return fmt.Sprintf("%s#%d", n.h.name, n.id) }

func (n *nodeConn) next() (event, bool) { return n.q.next(n.h.readDone) }

// expect returns the next event and fails the test unless it is of kind.
func (n *nodeConn) expect(t *testing.T, kind string) event {
	t.Helper()
	ev, ok := n.next()
	if !ok {
		t.Fatalf("%v: no %q event within %v; stderr: %s", n, kind, opTimeout, n.h.stderr.String())
	}
	if ev.Ev != kind {
		t.Fatalf("%v: got event %v, want %q", n, ev, kind)
	}
	return ev
}

// expectClose returns the close event, logging the error events before it
// (ws reports a peer's protocol violation or a reset as 'error').
func (n *nodeConn) expectClose(t *testing.T) (closeEv event, errs []event) {
	t.Helper()
	for {
		ev, ok := n.next()
		if !ok {
			t.Fatalf("%v: no close event within %v; stderr: %s", n, opTimeout, n.h.stderr.String())
		}
		switch ev.Ev {
		case "close":
			return ev, errs
		case "error":
			t.Logf("%v: %v", n, ev)
			errs = append(errs, ev)
		default:
			t.Fatalf("%v: got event %v, want close", n, ev)
		}
	}
}

// command sends a command for this connection.
func (n *nodeConn) command(t *testing.T, cmd map[string]any) {
	t.Helper()
	cmd["conn"] = n.id
	n.h.command(t, cmd)
}

// send has Node send data as one frame: a text frame unless binary, the
// last of its message unless !fin.
func (n *nodeConn) send(t *testing.T, data []byte, binary, fin bool) {
	t.Helper()
	n.command(t, map[string]any{"op": "send", "data": data, "binary": binary, "fin": fin})
}

// expectMessage checks that Node received want.
func (n *nodeConn) expectMessage(t *testing.T, binary bool, want []byte) {
	t.Helper()
	ev := n.expect(t, "message")
	if ev.Binary != binary || ev.Len != len(want) || ev.SHA256 != sha(want) {
		t.Fatalf("%v received binary=%v, %d bytes, sha256 %s; want binary=%v, %d bytes, sha256 %s",
			n, ev.Binary, ev.Len, ev.SHA256, binary, len(want), sha(want))
	}
}

// ---------------------------------------------------------------------------
// Go servers

// goServer is an httptest server on 127.0.0.1 running a ws.Server.
type goServer struct {
	URL     string
	srv     *ws.Server
	conns   chan *ws.Conn    // from the default handler
	headers chan http.Header // each upgrade request's headers
	taps    chan *tapConn    // each accepted connection
}

// startGoServer starts a server whose handler is handle, or, if handle is
// nil, one that passes each connection to s.conns and keeps it open until
// the test ends (the test's goroutine then uses it).
func startGoServer(t *testing.T, opts *ws.AcceptOptions, handle func(context.Context, *ws.Conn)) *goServer {
	t.Helper()
	s := &goServer{
		conns:   make(chan *ws.Conn, 4),
		headers: make(chan http.Header, 4),
		taps:    make(chan *tapConn, 4),
	}
	release := make(chan struct{})
	if handle == nil {
		handle = func(ctx context.Context, c *ws.Conn) {
			s.conns <- c
			<-release
		}
	}
	s.srv = &ws.Server{Handle: handle, Options: opts}
	var handlers sync.WaitGroup
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		select {
		case s.headers <- r.Header.Clone():
		default:
		}
		s.srv.ServeHTTP(w, r)
	}))
	hs.Listener = &tapListener{Listener: hs.Listener, taps: s.taps}
	hs.Start()
	s.URL = "ws" + strings.TrimPrefix(hs.URL, "http")
	t.Cleanup(func() {
		close(release)
		hs.Close()
		done := make(chan struct{})
		go func() {
			handlers.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(opTimeout):
			t.Errorf("server handlers still running %v after the test", opTimeout)
		}
	})
	return s
}

// accept returns the next connection the default handler got.
func (s *goServer) accept(t *testing.T, n *nodeConn) *ws.Conn {
	t.Helper()
	select {
	case c := <-s.conns:
		t.Cleanup(func() { _ = c.CloseNow() })
		return c
	case <-time.After(opTimeout):
		ev, _ := n.next()
		t.Fatalf("no connection within %v; node's first event: %v", opTimeout, ev)
		return nil
	}
}

func acceptOptions(o pairOptions) *ws.AcceptOptions {
	return &ws.AcceptOptions{
		Subprotocols:    o.protocols,
		ReadLimit:       o.readLimit,
		WriteBufferSize: o.writeBufferSize,
		CloseTimeout:    closeTimeout,
	}
}

// ---------------------------------------------------------------------------
// Go clients

func dialOptions(o pairOptions, tap **tapConn) *ws.DialOptions {
	return &ws.DialOptions{
		Subprotocols:    o.protocols,
		Header:          o.header,
		ReadLimit:       o.readLimit,
		WriteBufferSize: o.writeBufferSize,
		CloseTimeout:    closeTimeout,
		Proxy:           func(*http.Request) (*url.URL, error) { return nil, nil },
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			nc, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			tc := &tapConn{Conn: nc}
			if tap != nil {
				*tap = tc
			}
			return tc, nil
		},
	}
}

// nodeServer reserves a connection of ws-server.mjs and returns its URL,
// with query parameters for the server (echo=1, select=NAME).
func nodeServer(t *testing.T, deflate bool, query string) (*nodeConn, string) {
	t.Helper()
	h := getHub(t, "ws-server.mjs")
	n := h.newConn(t)
	port := h.port
	if deflate {
		port = h.deflatePort
	}
	u := fmt.Sprintf("ws://127.0.0.1:%d/?conn=%d", port, n.id)
	if query != "" {
		u += "&" + query
	}
	return n, u
}

// dial dials a Go client to url, bounded by opTimeout.
func dial(t *testing.T, u string, opts *ws.DialOptions) (*ws.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	defer cancel()
	c, resp, err := ws.Dial(ctx, u, opts)
	if c != nil {
		t.Cleanup(func() { _ = c.CloseNow() })
	}
	return c, resp, err
}

// ---------------------------------------------------------------------------
// Both directions

// pair is one connection between a Go side and a Node side.
type pair struct {
	c    *ws.Conn
	n    *nodeConn
	open event    // Node's open event
	tap  *tapConn // what the Go side wrote
}

type pairOptions struct {
	readLimit       int64
	writeBufferSize int
	protocols       []string // Go server: supported; Go client: offered
	header          http.Header
	echo            bool // Node echoes what it receives
}

type direction struct {
	name    string
	connect func(t *testing.T, o pairOptions) *pair
}

// directions are the two ways to connect: a Go server with a Node client,
// and a Node server with a Go client.
var directions = []direction{
	{"GoServer-NodeClient", connectNodeClient},
	{"NodeServer-GoClient", connectNodeServer},
}

func connectNodeClient(t *testing.T, o pairOptions) *pair {
	t.Helper()
	s := startGoServer(t, acceptOptions(o), nil)
	n := nodeClient(t, s.URL, clientOptions{echo: o.echo})
	c := s.accept(t, n)
	p := &pair{c: c, n: n, tap: <-s.taps}
	p.open = n.expect(t, "open")
	return p
}

func connectNodeServer(t *testing.T, o pairOptions) *pair {
	t.Helper()
	query := ""
	if o.echo {
		query = "echo=1"
	}
	n, u := nodeServer(t, false, query)
	p := &pair{n: n}
	c, _, err := dial(t, u, dialOptions(o, &p.tap))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	p.c = c
	p.open = n.expect(t, "open")
	return p
}

// forEachDirection runs f as a parallel subtest in both directions.
func forEachDirection(t *testing.T, f func(t *testing.T, d direction)) {
	t.Helper()
	for _, d := range directions {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			f(t, d)
		})
	}
}

// ---------------------------------------------------------------------------
// Go side helpers

func readMsg(t *testing.T, c *ws.Conn) (ws.MessageType, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	defer cancel()
	typ, p, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return typ, p
}

// readErr reads until an error and returns it, failing on a message.
func readErr(t *testing.T, c *ws.Conn) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	defer cancel()
	typ, p, err := c.Read(ctx)
	if err == nil {
		t.Fatalf("Read returned a %v message of %d bytes, want an error", typ, len(p))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read: no error within %v", opTimeout)
	}
	return err
}

func write(t *testing.T, c *ws.Conn, typ ws.MessageType, p []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	defer cancel()
	if err := c.Write(ctx, typ, p); err != nil {
		t.Fatalf("Write(%v, %d bytes): %v", typ, len(p), err)
	}
}

type readResult struct {
	typ ws.MessageType
	p   []byte
	err error
}

// readLoop reads in a goroutine, so that pings and pongs are handled
// while the test does something else, until an error, which it delivers
// last. It stops when the test ends.
func readLoop(t *testing.T, c *ws.Conn) <-chan readResult {
	ctx := t.Context()
	ch := make(chan readResult, 16)
	go func() {
		defer close(ch)
		for {
			typ, p, err := c.Read(ctx)
			select {
			case ch <- readResult{typ, p, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

func recv(t *testing.T, ch <-chan readResult) readResult {
	t.Helper()
	select {
	case r, ok := <-ch:
		if !ok {
			t.Fatal("read loop ended")
		}
		return r
	case <-time.After(opTimeout):
		t.Fatalf("nothing read within %v", opTimeout)
		return readResult{}
	}
}

func checkMessage(t *testing.T, gotTyp ws.MessageType, got []byte, wantTyp ws.MessageType, want []byte) {
	t.Helper()
	if gotTyp != wantTyp {
		t.Errorf("message type %v, want %v", gotTyp, wantTyp)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("message of %d bytes differs from the %d bytes sent, from byte %d", len(got), len(want), i)
	}
}

// closeError returns the CloseError in err, failing if there is none.
func closeError(t *testing.T, err error) ws.CloseError {
	t.Helper()
	var ce ws.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("error %q (%T) carries no ws.CloseError", err, err)
	}
	return ce
}

// ---------------------------------------------------------------------------
// Payloads

func sha(p []byte) string {
	return fmt.Sprintf("%x", sha256.Sum256(p))
}

// binaryPayload returns n bytes that depend on n.
func binaryPayload(n int) []byte {
	var seed [32]byte
	seed[0], seed[1], seed[2] = byte(n), byte(n>>8), byte(n>>16)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(seed).Read(b)
	return b
}

var textRunes = []rune("aé€😀 Zß中🎉\u00a0ÿ\U0010FFFF\uFFFD")

// textPayload returns n bytes of valid UTF-8 mixing 1- to 4-byte runes.
func textPayload(n int) []byte {
	b := make([]byte, 0, n)
	for i := 0; ; i++ {
		r := textRunes[i%len(textRunes)]
		if len(b)+utf8.RuneLen(r) > n {
			break
		}
		b = utf8.AppendRune(b, r)
	}
	for len(b) < n {
		b = append(b, 'z')
	}
	return b
}

// ---------------------------------------------------------------------------
// Frame tap

// frameInfo is one frame header that the Go side wrote.
type frameInfo struct {
	op  byte
	fin bool
	len int64
}

func (f frameInfo) String() string {
	return fmt.Sprintf("{op %#x fin %v len %d}", f.op, f.fin, f.len)
}

// tapConn records the headers of the frames written through it, after the
// HTTP handshake.
type tapConn struct {
	net.Conn

	mu       sync.Mutex
	pastHTTP bool
	buf      []byte
	skip     int64
	frames   []frameInfo
}

func (c *tapConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.feed(p[:n])
	return n, err
}

func (c *tapConn) Frames() []frameInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]frameInfo(nil), c.frames...)
}

func headerLen(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

func (c *tapConn) feed(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(p) > 0 {
		if !c.pastHTTP {
			c.buf = append(c.buf, p...)
			i := bytes.Index(c.buf, []byte("\r\n\r\n"))
			if i < 0 {
				return
			}
			p = append([]byte(nil), c.buf[i+4:]...)
			c.buf = c.buf[:0]
			c.pastHTTP = true
			continue
		}
		if c.skip > 0 {
			k := min(int64(len(p)), c.skip)
			c.skip -= k
			p = p[k:]
			continue
		}
		need := 2
		if len(c.buf) >= 2 {
			need = headerLen(c.buf[1])
		}
		k := min(need-len(c.buf), len(p))
		c.buf = append(c.buf, p[:k]...)
		p = p[k:]
		if len(c.buf) >= 2 && len(c.buf) == headerLen(c.buf[1]) {
			f := frameInfo{op: c.buf[0] & 0x0f, fin: c.buf[0]&0x80 != 0}
			switch l := c.buf[1] & 0x7f; l {
			case 126:
				f.len = int64(c.buf[2])<<8 | int64(c.buf[3])
			case 127:
				for _, b := range c.buf[2:10] {
					f.len = f.len<<8 | int64(b)
				}
			default:
				f.len = int64(l)
			}
			c.frames = append(c.frames, f)
			c.skip = f.len
			c.buf = c.buf[:0]
		}
	}
}

type tapListener struct {
	net.Listener
	taps chan *tapConn
}

func (l *tapListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &tapConn{Conn: nc}
	select {
	case l.taps <- tc:
	default:
	}
	return tc, nil
}
