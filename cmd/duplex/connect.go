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

Opens a WebSocket to URL (ws:// or wss://). Each line of standard input is
sent as a text message (binary with --binary); each message received is
printed on its own line on standard output. At the end of input the
connection is closed with 1000 and duplex waits for the server's answer.
The close code and reason the server sends are printed on standard error.

With --echo, every message received is sent back unchanged and duplex exits
when the server closes: this is the client that WebSocket conformance suites
drive, e.g.
  duplex connect --echo 'ws://127.0.0.1:9001/runCase?case=3&agent=duplex'

Exit status: 0 after a close handshake, 1 if the connection failed.

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
	fs.Var(&cfg.subprotocols, "subprotocol", "subprotocol to offer, most preferred first (repeatable)")
	fs.StringVar(&cfg.origin, "origin", "", "Origin header to send")
	fs.BoolVar(&cfg.insecure, "insecure", false, "do not verify the server's TLS certificate")
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
		if !ok || strings.TrimSpace(name) == "" {
			return fmt.Errorf("-H %q: want 'Name: value'", h)
		}
		opts.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
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
		var de *ws.DialError
		if errors.As(err, &de) && resp != nil {
			return fmt.Errorf("%w (HTTP %s)", err, resp.Status)
		}
		return err
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
