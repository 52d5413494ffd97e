package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/duplexrt/duplex/ws"
)

const connectUsage = `Usage: duplex connect [flags] URL

Opens a WebSocket to URL (ws:// or wss://). A refused handshake ends with the
HTTP status and the reason the server gave in its body, e.g.
  duplex connect: handshake failed: 403 Forbidden: origin not allowed

When standard input and output are both terminals, connect is interactive.
Type a line and press Enter to send it as a text message (binary with
--binary); the arrow keys edit the line and recall earlier ones. Messages
received are printed above the prompt, which is redrawn with the line being
typed: text as "< text" (control characters other than tab and newline are
shown escaped, so a server cannot drive the terminal), binary as
"< binary, N bytes: 68 65 6c …" (its first 32 bytes in hex). Commands:
  /ping                   send a ping and print the round trip of its pong
  /close [CODE [REASON]]  close with CODE (default 1000) and REASON, print
                          the server's close code and reason, and exit
  /quit                   close with 1000 and exit; so do Ctrl-D and Ctrl-C
  /help                   list the commands
A line starting with // is sent with one slash removed; an empty line is not
sent.

Otherwise connect is a pipe: each line of standard input is sent as a text
message (binary with --binary); each message received is printed on its own
line on standard output. At the end of input the connection is closed with
1000 and duplex waits for the server's answer. The negotiated subprotocol and
extensions, if any, and the close code and reason the server sends are
printed on standard error.

With --echo, every message received is sent back unchanged and duplex exits
when the server closes: this is the client that WebSocket conformance suites
drive, e.g.
  duplex connect --echo 'ws://127.0.0.1:9001/runCase?case=3&agent=duplex'

SIGINT and SIGTERM close with 1001. Exit status: 0 after a close handshake,
1 if the connection failed.

Flags:
`

type connectConfig struct {
	url          string
	headers      multiFlag
	subprotocols multiFlag
	origin       string
	insecure     bool
	binary       bool
	echo         bool
	deflate      bool
	maxMessage   int64
	timeout      time.Duration
}

func connectCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var cfg connectConfig
	fs := flag.NewFlagSet("connect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), connectUsage)
		fs.PrintDefaults()
	}
	fs.Var(&cfg.headers, "H", "extra request header `'Name: value'` (repeatable)")
	fs.Var(&cfg.subprotocols, "subprotocol", "subprotocol `name` to offer, most preferred first (repeatable)")
	fs.StringVar(&cfg.origin, "origin", "", "Origin header to send, e.g. https://app.example.com (overrides -H)")
	fs.BoolVar(&cfg.insecure, "insecure", false, "do not verify the server's TLS certificate (wss://)")
	fs.BoolVar(&cfg.binary, "binary", false, "send input lines as binary messages")
	fs.BoolVar(&cfg.echo, "echo", false, "send every received message back; exit when the server closes")
	fs.BoolVar(&cfg.deflate, "deflate", false, "offer permessage-deflate compression")
	fs.Int64Var(&cfg.maxMessage, "max-message", 64<<20, "largest message in `bytes` to accept; larger ones close with 1009")
	fs.DurationVar(&cfg.timeout, "timeout", 30*time.Second, "handshake timeout")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		fs.Usage()
		return errUsage
	}
	cfg.url = rest[0]
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return connect(ctx, cfg, stdin, stdout, stderr)
}

func connect(ctx context.Context, cfg connectConfig, stdin io.Reader, stdout, stderr io.Writer) error {
	opts := &ws.DialOptions{
		Header:           make(http.Header),
		Subprotocols:     cfg.subprotocols,
		HandshakeTimeout: cfg.timeout,
		ReadLimit:        cfg.maxMessage,
	}
	for _, h := range cfg.headers {
		name, value, ok := strings.Cut(h, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || !validHeader(name, value) {
			return fmt.Errorf("-H %q: want 'Name: value', a header name without spaces and a value without control characters", h)
		}
		opts.Header.Add(name, value)
	}
	if cfg.origin != "" {
		opts.Header.Set("Origin", cfg.origin)
	}
	if cfg.deflate {
		opts.Compression = &ws.Compression{}
	}
	if cfg.insecure {
		opts.TLSConfig = &tls.Config{InsecureSkipVerify: true}
	}
	c, resp, err := ws.Dial(ctx, cfg.url, opts)
	if err != nil {
		return dialFailed(err, resp)
	}
	if !cfg.echo {
		if in, out, ok := terminals(stdin, stdout); ok {
			return interactive(ctx, c, cfg, in, out)
		}
	}
	if p := c.Subprotocol(); p != "" {
		fmt.Fprintf(stderr, "connected, subprotocol %q\n", p)
	}
	if e := c.Extensions(); e != "" {
		fmt.Fprintf(stderr, "connected, extensions %q\n", e)
	}
	if cfg.echo {
		return echoLoop(ctx, c, stderr)
	}
	return pipe(ctx, c, cfg.binary, stdin, stdout, stderr)
}

// validHeader reports whether name is a token and value holds no control
// characters but tab (RFC 9110 §5.1, §5.5): anything else would break the
// request.
func validHeader(name, value string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r > '~' || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return !strings.ContainsFunc(value, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f })
}

// dialFailed turns a refused handshake into "handshake failed: 403
// Forbidden: <the body's first 300 bytes on one line>", since the body is
// where servers say why; other errors pass through.
func dialFailed(err error, resp *http.Response) error {
	var de *ws.DialError
	if !errors.As(err, &de) {
		return err
	}
	if de.StatusCode == http.StatusSwitchingProtocols {
		// The server agreed to upgrade but answered wrongly.
		return fmt.Errorf("handshake failed: %s", de.Reason)
	}
	status := fmt.Sprintf("%d %s", de.StatusCode, http.StatusText(de.StatusCode))
	if resp != nil && resp.Status != "" {
		status = resp.Status
	}
	msg := "handshake failed: " + status
	if body := oneLine(de.Body, 300); body != "" {
		msg += ": " + body
	}
	return errors.New(msg)
}

// oneLine returns p with runs of white space turned into one space, control
// characters escaped and at most limit bytes kept.
func oneLine(p []byte, limit int) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(p), "\uFFFD")), " ")
	cut := false
	if len(s) > limit {
		s = strings.ToValidUTF8(s[:limit], "")
		cut = true
	}
	s = escapeControls(s, false)
	if cut {
		s += "…"
	}
	return s
}

// echoLoop sends every message back until the server closes.
func echoLoop(ctx context.Context, c *ws.Conn, stderr io.Writer) error {
	var buf []byte
	for {
		typ, p, err := c.ReadAppend(ctx, buf[:0])
		if err != nil {
			return closed(c, err, stderr)
		}
		if err := c.Write(ctx, typ, p); err != nil {
			return closed(c, err, stderr)
		}
		buf = p
	}
}

// pipe sends input lines and prints received messages.
func pipe(ctx context.Context, c *ws.Conn, binary bool, stdin io.Reader, stdout, stderr io.Writer) error {
	typ := ws.MessageText
	if binary {
		typ = ws.MessageBinary
	}
	readErr := make(chan error, 1)
	go func() {
		out := bufio.NewWriter(stdout)
		for {
			_, p, err := c.Read(context.Background())
			if err != nil {
				_ = out.Flush()
				readErr <- err
				return
			}
			_, _ = out.Write(p)
			_ = out.WriteByte('\n')
			_ = out.Flush()
		}
	}()

	lines := make(chan string)
	inputDone := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		inputDone <- sc.Err()
	}()

	for {
		select {
		case line := <-lines:
			if err := c.Write(ctx, typ, []byte(line)); err != nil {
				return closed(c, <-readErr, stderr)
			}
		case err := <-inputDone:
			if err != nil {
				fmt.Fprintf(stderr, "reading input: %v\n", err)
			}
			// End of input: close and wait for the server's answer, which
			// the reader goroutine sees.
			_ = c.Close(ws.StatusNormalClosure, "")
			return closed(c, <-readErr, stderr)
		case err := <-readErr:
			return closed(c, err, stderr)
		case <-ctx.Done():
			_ = c.Close(ws.StatusGoingAway, "interrupted")
			return closed(c, <-readErr, stderr)
		}
	}
}

// closed reports how the connection ended and turns a clean close into a
// nil error.
func closed(c *ws.Conn, err error, stderr io.Writer) error {
	_ = c.CloseNow()
	var ce ws.CloseError
	if errors.As(err, &ce) {
		if ce.Reason != "" {
			fmt.Fprintf(stderr, "closed: %d %s\n", int(ce.Code), ce.Reason)
		} else {
			fmt.Fprintf(stderr, "closed: %d\n", int(ce.Code))
		}
		return nil
	}
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
