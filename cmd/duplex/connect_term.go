package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/duplexrt/duplex/ws"
	"golang.org/x/term"
)

// The interactive mode of connect: a line editor (x/term's Terminal) on a
// terminal in raw mode. Received messages are written through the
// Terminal, which clears the prompt and the line being typed, prints the
// message and redraws them, so output never garbles the input.

const (
	connectPrompt      = "> "
	connectPingTimeout = 10 * time.Second
	binaryPreview      = 32 // bytes of a binary message shown in hex
)

const interactiveHelp = `commands:
  /ping                   send a ping and print the round trip of its pong
  /close [CODE [REASON]]  close with CODE (default 1000) and REASON, then exit
  /quit                   close with 1000 and exit (also Ctrl-D, Ctrl-C)
  /help                   this list
  //text                  send "/text"
`

// terminals returns stdin and stdout as files when both are terminals: the
// condition for the interactive mode.
func terminals(stdin io.Reader, stdout io.Writer) (in, out *os.File, ok bool) {
	in, ok1 := stdin.(*os.File)
	out, ok2 := stdout.(*os.File)
	if !ok1 || !ok2 || !term.IsTerminal(int(in.Fd())) || !term.IsTerminal(int(out.Fd())) {
		return nil, nil, false
	}
	return in, out, true
}

// interactive runs the line editor until the connection closes. The
// terminal is restored on every way out; a signal (ctx) closes with 1001.
func interactive(ctx context.Context, c *ws.Conn, cfg connectConfig, in, out *os.File) error {
	fd := int(in.Fd())
	saved, err := term.MakeRaw(fd)
	if err != nil {
		_ = c.CloseNow()
		return fmt.Errorf("setting the terminal to raw mode: %w", err)
	}
	defer func() { _ = term.Restore(fd, saved) }()

	t := term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{in, out}, connectPrompt)
	resize := func() {
		if w, h, err := term.GetSize(int(out.Fd())); err == nil {
			_ = t.SetSize(w, h)
		}
	}
	resize()
	defer onResize(resize)()
	// Every write through t leaves the prompt redrawn below it: erase that
	// last prompt (a single row) so that the shell's comes back clean.
	defer fmt.Fprint(out, "\r\x1b[K")

	s := &termSession{c: c, t: t, typ: ws.MessageText, received: make(chan error, 1)}
	if cfg.binary {
		s.typ = ws.MessageBinary
	}
	fmt.Fprintf(t, "connected to %s (%s); /help lists the commands\n", redactURL(cfg.url), connInfo(c))
	go s.receive()
	err = s.loop(ctx)
	s.pings.Wait() // they end with the connection
	return err
}

// termSession is one interactive connection.
type termSession struct {
	c        *ws.Conn
	t        *term.Terminal
	typ      ws.MessageType // of the lines typed
	received chan error     // the read loop's end
	pings    sync.WaitGroup
}

// receive prints messages until the connection ends, then reports why.
func (s *termSession) receive() {
	for {
		typ, p, err := s.c.Read(context.Background())
		if err != nil {
			s.received <- err
			return
		}
		_, _ = io.WriteString(s.t, formatMessage(typ, p)+"\n")
	}
}

type termInput struct {
	line string
	err  error
}

// loop reads lines and runs them until the connection closes.
func (s *termSession) loop(ctx context.Context) error {
	// ReadLine blocks in a read of the terminal that nothing can interrupt,
	// so it runs in a goroutine that may outlive loop, blocked there until
	// the process exits. It reads the next line only when asked, so no
	// prompt appears while a command runs.
	lines := make(chan termInput)
	next := make(chan struct{})
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			line, err := s.t.ReadLine()
			if errors.Is(err, term.ErrPasteIndicator) {
				err = nil // a pasted line is a line
			}
			select {
			case lines <- termInput{line, err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
			select {
			case <-next:
			case <-done:
				return
			}
		}
	}()

	for {
		select {
		case in := <-lines:
			if in.err != nil {
				// io.EOF is Ctrl-D on an empty line or Ctrl-C.
				if !errors.Is(in.err, io.EOF) {
					fmt.Fprintf(s.t, "reading the terminal: %v\n", in.err)
				}
				return s.close(ws.StatusNormalClosure, "")
			}
			if quit, err := s.run(ctx, in.line); quit {
				return err
			}
			next <- struct{}{}
		case err := <-s.received:
			return closed(s.c, err, s.t)
		case <-ctx.Done():
			_ = s.c.Close(ws.StatusGoingAway, "interrupted")
			return closed(s.c, <-s.received, s.t)
		}
	}
}

// run runs one typed line: a command or a message. quit reports the end of
// the session, with its error.
func (s *termSession) run(ctx context.Context, line string) (quit bool, err error) {
	if line == "" {
		return false, nil
	}
	if !strings.HasPrefix(line, "/") || strings.HasPrefix(line, "//") {
		msg := strings.TrimPrefix(line, "/")
		if err := s.c.Write(ctx, s.typ, []byte(msg)); err != nil {
			// The read loop reports how the connection ended.
			fmt.Fprintf(s.t, "not sent: %v\n", err)
		}
		return false, nil
	}
	cmd, args, _ := strings.Cut(line, " ")
	args = strings.TrimSpace(args)
	switch cmd {
	case "/ping":
		if args != "" {
			fmt.Fprintln(s.t, "(the ping carries its own 8-byte id, which matches the pong; the payload is not sent)")
		}
		s.pings.Go(s.ping)
	case "/close":
		code, reason, err := parseClose(args)
		if err != nil {
			fmt.Fprintf(s.t, "%v\n", err)
			return false, nil
		}
		return true, s.close(code, reason)
	case "/quit":
		return true, s.close(ws.StatusNormalClosure, "")
	case "/help":
		_, _ = io.WriteString(s.t, interactiveHelp)
	default:
		fmt.Fprintf(s.t, "unknown command %s; /help lists them (//%s sends %q)\n", cmd, line[1:], line)
	}
	return false, nil
}

func (s *termSession) ping() {
	ctx, cancel := context.WithTimeout(context.Background(), connectPingTimeout)
	defer cancel()
	start := time.Now()
	if err := s.c.Ping(ctx); err != nil {
		fmt.Fprintf(s.t, "ping: %v\n", err)
		return
	}
	fmt.Fprintf(s.t, "pong in %v\n", roundRTT(time.Since(start)))
}

// close runs the close handshake, then prints the server's answer, which
// the read loop receives.
func (s *termSession) close(code ws.StatusCode, reason string) error {
	if err := s.c.Close(code, reason); err != nil {
		fmt.Fprintf(s.t, "%v\n", err)
	}
	return closed(s.c, <-s.received, s.t)
}

// parseClose parses the arguments of /close: [CODE [REASON]].
func parseClose(args string) (ws.StatusCode, string, error) {
	if args == "" {
		return ws.StatusNormalClosure, "", nil
	}
	num, reason, _ := strings.Cut(args, " ")
	reason = strings.TrimSpace(reason)
	n, err := strconv.Atoi(num)
	// The codes an endpoint may send (RFC 6455 §7.4).
	if err != nil || !(n >= 1000 && n <= 1003 || n >= 1007 && n <= 1014 || n >= 3000 && n <= 4999) {
		return 0, "", fmt.Errorf("/close %s: the code must be 1000–1003, 1007–1014 or 3000–4999", num)
	}
	if len(reason) > 123 { // a control frame's 125 bytes, less the code
		return 0, "", fmt.Errorf("/close: the reason is %d bytes; a close frame carries at most 123", len(reason))
	}
	return ws.StatusCode(n), reason, nil
}

// formatMessage is how a received message is shown: "< text", with control
// characters other than tab and newline escaped, or "< binary, N bytes:"
// followed by the first bytes in hex.
func formatMessage(typ ws.MessageType, p []byte) string {
	if typ == ws.MessageText {
		return "< " + escapeControls(string(p), true)
	}
	n := min(len(p), binaryPreview)
	msg := fmt.Sprintf("< binary, %d bytes", len(p))
	if n > 0 {
		msg += fmt.Sprintf(": % x", p[:n])
	}
	if n < len(p) {
		msg += " …"
	}
	return msg
}

// escapeControls replaces the C0 and C1 control characters and DEL in s by
// Go escapes (\x1b, \u009b), except tab, and newline when keepNewline is
// set: escape sequences from a server must not reach the terminal.
func escapeControls(s string, keepNewline bool) string {
	isControl := func(r rune) bool {
		return r < 0x20 && r != '\t' && (r != '\n' || !keepNewline) || r >= 0x7f && r <= 0x9f
	}
	if strings.IndexFunc(s, isControl) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case !isControl(r):
			b.WriteRune(r)
		case r < utf8.RuneSelf:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}

// connInfo describes what the handshake negotiated.
func connInfo(c *ws.Conn) string {
	proto, ext := "no subprotocol", "no extensions"
	if p := c.Subprotocol(); p != "" {
		proto = fmt.Sprintf("subprotocol %q", p)
	}
	if e := c.Extensions(); e != "" {
		ext = fmt.Sprintf("extensions %q", e)
	}
	return proto + ", " + ext
}

// redactURL hides a password in the URL, as url.URL.Redacted does.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Redacted()
}

func roundRTT(d time.Duration) time.Duration {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond)
	case d < time.Second:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Millisecond)
}
