package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/duplexrt/duplex/ws"
)

const serveUsage = `Usage: duplex serve [flags]

Runs a WebSocket server on one port:
  /ws/echo       every message comes back unchanged (text as text, binary as
                 binary); permessage-deflate is negotiated when the client
                 offers it
  /ws/broadcast  every message a client sends goes to every client connected
                 here, the sender included, in the same order for all; each
                 message is framed (and compressed, without context takeover)
                 once. A client that falls behind (4 MiB, or 65,536
                 messages, not yet written to it) is closed with 1013 Try
                 Again Later
  /healthz       200 "ok" while serving, 503 while shutting down

On SIGINT or SIGTERM it stops accepting, closes WebSockets with 1001 Going
Away, and exits 0 once they are closed (at most --drain later).

Flags:
`

type serveConfig struct {
	addr       string
	tlsCert    string
	tlsKey     string
	origins    multiFlag
	maxMessage int64
	noDeflate  bool
	drain      time.Duration
	logLevel   string
	logFormat  string
	io         string
}

func serveCmd(args []string, stderr io.Writer) error {
	var cfg serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), serveUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.addr, "addr", ":8080", "listen `address`")
	fs.StringVar(&cfg.tlsCert, "tls-cert", "", "TLS certificate `file` (PEM); with --tls-key, serves https:// and wss://")
	fs.StringVar(&cfg.tlsKey, "tls-key", "", "TLS private key `file` (PEM)")
	fs.Var(&cfg.origins, "origin", "browser Origin `pattern` allowed besides the server's own host, e.g. 'https://*.example.com' or 'localhost:*' (repeatable)")
	fs.Int64Var(&cfg.maxMessage, "max-message", 16<<20, "largest message in `bytes` on /ws/echo and /ws/broadcast; larger ones close with 1009")
	fs.BoolVar(&cfg.noDeflate, "no-deflate", false, "do not negotiate permessage-deflate compression")
	fs.DurationVar(&cfg.drain, "drain", 10*time.Second, "how long shutdown waits for connections to close")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&cfg.logFormat, "log-format", "text", "log `format`: text or json")
	fs.StringVar(&cfg.io, "io", "goroutine", "how /ws/echo and /ws/broadcast wait for input: `goroutine` (one per connection: the most messages per second) or poller (Linux epoll: an idle connection holds no goroutine or buffer, about a quarter of the memory, at some 40% less echo throughput; TLS connections and other systems fall back to goroutine)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "duplex serve takes no arguments, got %q\n", rest)
		return errUsage
	}
	if (cfg.tlsCert == "") != (cfg.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if cfg.io != "poller" && cfg.io != "goroutine" {
		return fmt.Errorf("--io %q: use poller or goroutine", cfg.io)
	}
	if cfg.maxMessage <= 0 {
		return fmt.Errorf("--max-message %d: must be positive", cfg.maxMessage)
	}
	log, err := newLogger(stderr, cfg.logLevel, cfg.logFormat)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, cfg, log, nil)
}

// serve runs the server until ctx is done, then shuts down gracefully. If
// ready is not nil, the listening address is sent on it.
func serve(ctx context.Context, cfg serveConfig, log *slog.Logger, ready chan<- net.Addr) error {
	app := newServer(cfg, log)
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           app,
		ReadHeaderTimeout: 10 * time.Second, // slow handshakes (slowloris)
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	scheme := "http"
	if cfg.tlsCert != "" {
		scheme = "https"
	}
	log.Info("serving", "addr", ln.Addr().String(), "url", fmt.Sprintf("%s://%s/", scheme, displayAddr(ln.Addr())))
	if ready != nil {
		ready <- ln.Addr()
	}
	errc := make(chan error, 1)
	go func() {
		if cfg.tlsCert != "" {
			errc <- srv.ServeTLS(ln, cfg.tlsCert, cfg.tlsKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "drain", cfg.drain)
	app.draining.Store(true)
	dctx, cancel := context.WithTimeout(context.Background(), cfg.drain)
	defer cancel()
	// net/http's Shutdown does not see hijacked connections: close the
	// WebSockets with 1001 alongside it.
	werr := make(chan error, 2)
	go func() { werr <- app.echo.Shutdown(dctx) }()
	go func() { werr <- app.broadcast.Shutdown(dctx) }()
	err = srv.Shutdown(dctx)
	for range 2 {
		if e := <-werr; err == nil {
			err = e
		}
	}
	if app.poller != nil {
		_ = app.poller.Close()
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// displayAddr turns ":8080" into "localhost:8080" for the log line.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// server holds the endpoints of duplex serve.
type server struct {
	mux       *http.ServeMux
	echo      *ws.Server
	broadcast *ws.Server
	hub       *hub
	poller    *ws.Poller // nil in the goroutine mode
	draining  atomic.Bool
	log       *slog.Logger
}

func newServer(cfg serveConfig, log *slog.Logger) *server {
	s := &server{mux: http.NewServeMux(), log: log, hub: newHub(log)}
	var compression, broadcastCompression *ws.Compression
	if !cfg.noDeflate {
		compression = &ws.Compression{}
		// Without context takeover a broadcast is compressed once for
		// every subscriber; with it, each connection would compress it again.
		broadcastCompression = &ws.Compression{NoContextTakeover: true}
	}
	if cfg.io == "poller" {
		p, err := ws.NewPoller(nil)
		if err != nil {
			log.Warn("no poller: /ws/echo and /ws/broadcast run a goroutine per connection", "err", err)
		}
		s.poller = p
	}
	s.echo = &ws.Server{
		Handler: echoHandler{log},
		Poller:  s.poller,
		Options: &ws.AcceptOptions{
			OriginPatterns: cfg.origins,
			ReadLimit:      cfg.maxMessage,
			Compression:    compression,
		},
	}
	s.broadcast = &ws.Server{
		Handler: s.hub,
		Poller:  s.poller,
		Options: &ws.AcceptOptions{
			SendQueueLimit: broadcastQueueBytes,
			SendQueueFull:  ws.SendQueueClose,
			OriginPatterns: cfg.origins,
			ReadLimit:      cfg.maxMessage,
			Compression:    broadcastCompression,
		},
	}
	s.mux.Handle("GET /ws/echo", s.echo)
	s.mux.Handle("GET /ws/broadcast", s.broadcast)
	s.mux.HandleFunc("GET /healthz", s.handleHealth)
	return s
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

func (s *server) handleHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "draining\n")
		return
	}
	_, _ = io.WriteString(w, "ok\n")
}

// echoHandler sends every message back unchanged. The Server reads into a
// buffer it reuses, so echoing allocates nothing.
type echoHandler struct{ log *slog.Logger }

func (h echoHandler) OnOpen(c *ws.Conn) {
	h.log.Debug("echo connection open", "remote", c.RemoteAddr().String())
}

func (h echoHandler) OnMessage(c *ws.Conn, typ ws.MessageType, data []byte) {
	if err := c.Write(context.Background(), typ, data); err != nil {
		h.log.Debug("echo write failed", "remote", c.RemoteAddr().String(), "err", err)
		_ = c.CloseNow()
	}
}

func (h echoHandler) OnError(c *ws.Conn, err error) {
	h.log.Debug("echo connection failed", "remote", c.RemoteAddr().String(), "err", err)
}

func (h echoHandler) OnClose(c *ws.Conn, err error) {
	h.log.Debug("echo connection closed", "remote", c.RemoteAddr().String(), "err", err)
}
