package main

import (
	"cmp"
	"context"
	"crypto/tls"
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

	natsgo "github.com/nats-io/nats.go"
	goredis "github.com/redis/go-redis/v9"

	natsadapter "github.com/duplexrt/duplex/adapter/nats"
	redisadapter "github.com/duplexrt/duplex/adapter/redis"
	"github.com/duplexrt/duplex/engineio"
	"github.com/duplexrt/duplex/socketio"
	"github.com/duplexrt/duplex/web"
	"github.com/duplexrt/duplex/ws"
	// HTTP/2 extended CONNECT (RFC 8441): with --tls-cert, browsers open
	// WebSockets and Socket.IO's WebSocket transport as streams of the
	// page's HTTP/2 connection. It sets GODEBUG=http2xconnect=1 before
	// net/http reads it; GODEBUG=http2xconnect=0 at start turns it off.
	_ "github.com/duplexrt/duplex/ws/xconnect"
)

const serveUsage = `Usage: duplex serve [flags]

Runs a real-time server on one port:
  /              the chat page: nicknames, rooms, who is online; it
                 reconnects by itself
  /ws/echo       every message comes back unchanged (text as text, binary as
                 binary); permessage-deflate is negotiated when the client
                 offers it
  /ws/broadcast  every message a client sends goes to every client connected
                 (to every process, with --redis or --nats), the sender
                 included, in the same order for all; each message is framed
                 (and compressed, without context takeover) once. A client
                 that falls behind (4 MiB, or 65,536 messages, not yet
                 written to it) is closed with 1013 Try Again Later
  /ws/chat       the chat page's WebSocket: JSON events (see the README)
  /socket.io/    Socket.IO v5 (Engine.IO v4, WebSocket and long-polling):
                 namespace / acknowledges "echo" with its arguments, and
                 namespace /chat is the same chat as /ws/chat
  /healthz       200 "ok" while serving ("degraded: ..." while the broker
                 is away: messages then reach this process's clients only),
                 503 while shutting down
  /metrics       Prometheus metrics

With --redis or --nats, broadcasts, Socket.IO rooms and the chat span every
process on the same broker (Socket.IO through adapter/redis, wire-compatible
with @socket.io/redis-adapter, or adapter/nats). Long-polling behind a load
balancer needs sticky sessions (see deploy/ in the repository).

On SIGINT or SIGTERM it closes WebSockets with 1001 Going Away, ends the
Socket.IO sessions after what is queued for them (a long-polling client gets
the close with its next poll), answering /healthz with 503 meanwhile; then
it stops accepting and exits 0 once every connection is closed (at most
--drain later).

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
	redis      string
	nats       string
	// clusterKey, for tests that share a broker, names the bus's channels
	// and the Socket.IO adapter's key (and subject prefix); "" means
	// "duplex" for the bus and the adapters' defaults.
	clusterKey string
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
	fs.StringVar(&cfg.tlsCert, "tls-cert", "", "TLS certificate `file` (PEM); with --tls-key, serves https:// and wss:// (TLS 1.3, or 1.2 with ECDHE and AES-GCM or ChaCha20-Poly1305 only), with HTTP/2 and WebSockets over HTTP/2")
	fs.StringVar(&cfg.tlsKey, "tls-key", "", "TLS private key `file` (PEM)")
	fs.Var(&cfg.origins, "origin", "browser Origin `pattern` allowed besides the server's own host, e.g. 'https://*.example.com' or 'localhost:*' (repeatable)")
	fs.Int64Var(&cfg.maxMessage, "max-message", 16<<20, "largest message in `bytes` on /ws/echo and /ws/broadcast, larger ones close with 1009; /ws/chat takes at most 16 KiB and /socket.io/ 1,000,000 bytes (or this, if smaller)")
	fs.BoolVar(&cfg.noDeflate, "no-deflate", false, "do not negotiate permessage-deflate compression")
	fs.DurationVar(&cfg.drain, "drain", 10*time.Second, "how long shutdown waits for connections to close")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&cfg.logFormat, "log-format", "text", "log `format`: text or json")
	fs.StringVar(&cfg.redis, "redis", "", "join a cluster through Redis at `URL` (redis://[:password@]host:port[/db]); Socket.IO uses the @socket.io/redis-adapter wire format with key \"socket.io\"")
	fs.StringVar(&cfg.nats, "nats", "", "join a cluster through NATS at `URL` (nats://host:port)")
	fs.StringVar(&cfg.io, "io", "goroutine", "how /ws/echo and /ws/broadcast wait for input: `goroutine` (one per connection: the quickest round trip) or poller (Linux epoll: an idle connection holds no goroutine or buffer, about a third of the memory, the same echo throughput over many connections but a slower round trip on one; TLS connections and other systems fall back to goroutine)")
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
	if cfg.redis != "" && cfg.nats != "" {
		return errors.New("--redis and --nats: choose one broker")
	}
	if cfg.maxMessage <= 0 {
		return fmt.Errorf("--max-message %d: must be positive", cfg.maxMessage)
	}
	log, err := newLogger(stderr, cfg.logLevel, cfg.logFormat)
	if err != nil {
		return err
	}
	// go-redis logs its reconnection attempts through a global logger:
	// into ours, at Debug (the bus and the adapters report the outage).
	goredis.SetLogger(redisLogger{log})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, cfg, log, nil)
}

// serve runs the server until ctx is done, then shuts down gracefully. If
// ready is not nil, the listening address is sent on it.
func serve(ctx context.Context, cfg serveConfig, log *slog.Logger, ready chan<- net.Addr) error {
	app, err := newServer(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer app.close()
	srv := newHTTPServer(app, log)
	scheme := "http"
	if cfg.tlsCert != "" {
		scheme = "https"
		if srv.TLSConfig, err = tlsConfig(cfg.tlsCert, cfg.tlsKey); err != nil {
			return err
		}
	}
	// No TCP keep-alive probes: every long-lived connection here has a
	// heartbeat of its own (WebSocket pings, Engine.IO's ping), and
	// net/http closes idle keep-alive connections after IdleTimeout. The
	// probes' options were four system calls per accepted connection.
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), "tcp", cfg.addr)
	if err != nil {
		return err
	}
	log.Info("serving", "addr", ln.Addr().String(), "url", fmt.Sprintf("%s://%s/", scheme, displayAddr(ln.Addr())), "broker", app.bus.Name())
	if ready != nil {
		ready <- ln.Addr()
	}
	if srv.TLSConfig == nil {
		// The handshakes of the WebSocket endpoints skip net/http; every
		// other request (and a handshake they would refuse) reaches the
		// mux as before.
		ln = ws.NewListener(ln, &ws.ListenerOptions{
			Routes:      map[string]*ws.Server{"/ws/echo": app.echo, "/ws/broadcast": app.broadcast, "/ws/chat": app.chatWS},
			HeadTimeout: srv.ReadHeaderTimeout,
		})
	}
	errc := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			errc <- srv.ServeTLS(ln, "", "") // the certificate is in TLSConfig
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "drain", cfg.drain.String())
	app.draining.Store(true)
	dctx, cancel := context.WithTimeout(context.Background(), cfg.drain)
	defer cancel()
	// First the connections net/http does not see: the WebSockets get
	// 1001, the Socket.IO sessions what is queued for them and a close
	// (long-polling clients with their next poll). The listener stays
	// open meanwhile, so polls reach their sessions and /healthz answers
	// 503 to a load balancer; new WebSockets and Socket.IO sessions are
	// refused with 503. Then net/http's Shutdown closes the listener and
	// waits for the requests in flight.
	shutdowns := []func(context.Context) error{app.echo.Shutdown, app.broadcast.Shutdown, app.chatWS.Shutdown, app.sio.Shutdown}
	werr := make(chan error, len(shutdowns))
	for _, f := range shutdowns {
		go func() { werr <- f(dctx) }()
	}
	for range shutdowns {
		if e := <-werr; err == nil {
			err = e
		}
	}
	if e := srv.Shutdown(dctx); err == nil {
		err = e
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// Clients that did not finish in time (a close handshake left
		// unanswered, a long-polling client that stopped polling) were
		// closed at once: an expected end of a drain, not a failure.
		log.Warn("drain time is over: the remaining connections were closed at once", "drain", cfg.drain)
		err = nil
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// newHTTPServer is the http.Server of duplex serve, with its limits:
// test/adversarial attacks servers set up the same way.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second, // slow handshakes (slowloris)
		IdleTimeout:       2 * time.Minute,  // keep-alive connections between requests
		MaxHeaderBytes:    16 << 10,         // header floods: 431
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		HTTP2:             http2Config(),
	}
}

// http2Config bounds what one HTTP/2 connection holds (with --tls-cert,
// where a browser's WebSockets to the server share its page's
// connection). net/http's defaults suit requests, not long-lived streams:
//
//   - MaxReceiveBufferPerStream, 256 KiB (default 1 MiB): what a stream may
//     have in flight to the server. net/http's server gives window back
//     only as the handler reads, so a WebSocket whose handler is busy (or
//     blocked writing to a slow client) holds this much of the connection's
//     window and of the server's memory. 256 KiB still carries a WebSocket
//     at 25 MB/s over a 10 ms round trip.
//   - MaxReceiveBufferPerConnection, 4 MiB (default 1 MiB): the window of
//     the whole connection, so that it takes 16 stalled streams, not one,
//     before the page's other WebSockets (and its fetches) stop; 4 MiB is
//     also the most a connection can make the server buffer.
//   - MaxReadFrameSize, 16 KiB (the protocol's minimum; default 1 MiB):
//     Go clients size their send buffer by the peer's frame size (up to
//     512 KiB per stream for 1 MiB; see ws.HTTP2Pool), and 16 KiB frames
//     cost 9 bytes of header each, 0.05%.
//
// MaxConcurrentStreams stays net/http's 250 per connection: a client that
// wants more streams waits for one to end or opens another connection.
func http2Config() *http.HTTP2Config {
	return &http.HTTP2Config{
		MaxReceiveBufferPerStream:     256 << 10,
		MaxReceiveBufferPerConnection: 4 << 20,
		MaxReadFrameSize:              16 << 10,
	}
}

// tlsConfig is the TLS profile of duplex serve: Mozilla's "intermediate"
// (its server-side TLS guidelines, less the DHE suites, which Go does not
// implement), that is TLS 1.3, or TLS 1.2 with ECDHE key exchange and an
// AEAD cipher (AES-GCM, ChaCha20-Poly1305) only: forward secrecy always,
// no CBC (Lucky 13 and padding oracles), no RSA key exchange (ROBOT), no
// TLS 1.0/1.1 (RFC 8996).
//
// Not TLS 1.3 alone (Mozilla's "modern"): TLS 1.2 clients are still
// common where real-time clients run (older Android and Java, embedded
// devices, TLS-terminating proxies), and TLS 1.2 with these suites has no
// known weakness. HTTP/2 allows all of them (RFC 9113 §9.2.2). Go's own
// defaults are close, but also take ECDHE with AES-CBC, and GODEBUG
// settings (tls10server, tlsrsakex) would widen them: an explicit list
// does not move. TLS 1.3's suites are all AEAD and not configurable in
// Go; key exchange uses Go's default groups (X25519MLKEM768, X25519,
// P-256, P-384).
//
// The certificate and key are read once here, so that a bad file fails
// at start with the file's name.
func tlsConfig(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s --tls-key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}, nil
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
	chatWS    *ws.Server
	sio       *socketio.Server
	hub       *hub
	chat      *chat
	bus       bus
	metrics   *metrics
	poller    *ws.Poller // nil in the goroutine mode
	draining  atomic.Bool
	log       *slog.Logger

	// health reports the brokers: the bus's and the Socket.IO adapters'.
	health []func() error
	// closers release the broker clients, last first.
	closers []func() error
}

// healthChecker is what the adapters of adapter/redis and adapter/nats
// offer.
type healthChecker interface{ Health() error }

// socketIONamespaces are the Socket.IO namespaces duplex serve serves
// (the echo and the chat); another is refused (invalid_namespace), so
// these are all the adapters there are.
var socketIONamespaces = []string{"/", "/chat"}

func newServer(ctx context.Context, cfg serveConfig, log *slog.Logger) (s *server, err error) {
	m := newMetrics()
	s = &server{mux: http.NewServeMux(), log: log, metrics: m}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	s.hub = newHub(log, m.endpoint("broadcast"))
	s.chat = newChat(log, m.endpoint("chat"), m.endpoint("socketio"))

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
		} else {
			s.poller = p
			s.closers = append(s.closers, p.Close)
		}
	}

	// The Socket.IO server, and the brokers.
	sioOpts := &socketio.ServerOptions{
		Engine: &engineio.ServerOptions{
			MaxPayload: min(cfg.maxMessage, 1_000_000),
			// A handshake from a browser page of another origin is
			// refused as a WebSocket would be (--origin allows more).
			AllowRequest: func(r *http.Request) error { return ws.CheckOrigin(r, cfg.origins) },
			WebSocket:    &ws.AcceptOptions{Compression: compression, OriginPatterns: cfg.origins},
		},
		Logger: log,
	}
	if len(cfg.origins) > 0 {
		origins := cfg.origins
		sioOpts.Engine.CORS = &engineio.CORS{AllowOrigin: func(origin string) bool {
			r := &http.Request{Header: http.Header{"Origin": {origin}}}
			return ws.CheckOrigin(r, origins) == nil
		}}
	}
	deliver := func(topic string, data []byte) {
		switch topic {
		case topicBroadcast:
			s.hub.deliver(data)
		case topicChat:
			s.chat.receive(data)
		case topicPresence:
			s.chat.receivePresence(data)
		}
	}
	switch {
	case cfg.redis != "":
		ro, err := goredis.ParseURL(cfg.redis)
		if err != nil {
			return nil, fmt.Errorf("--redis %q: %w", cfg.redis, err)
		}
		rdb := goredis.NewClient(ro)
		s.closers = append(s.closers, rdb.Close)
		b, err := newRedisBus(ctx, rdb, cmp.Or(cfg.clusterKey, "duplex"), deliver, log)
		if err != nil {
			return nil, fmt.Errorf("--redis %s: %w", cfg.redis, err)
		}
		s.bus = b
		sioOpts.NewAdapter = redisadapter.New(rdb, &redisadapter.Options{Key: cfg.clusterKey, Logger: log})
	case cfg.nats != "":
		nc, err := natsadapter.Connect(cfg.nats, natsgo.Name(fmt.Sprintf("duplex-serve-%d", os.Getpid())))
		if err != nil {
			return nil, fmt.Errorf("--nats %s: %w", cfg.nats, err)
		}
		s.closers = append(s.closers, func() error { nc.Close(); return nil })
		b, err := newNATSBus(nc, cmp.Or(cfg.clusterKey, "duplex")+"-bus", deliver)
		if err != nil {
			return nil, fmt.Errorf("--nats %s: %w", cfg.nats, err)
		}
		s.bus = b
		sioOpts.NewAdapter = natsadapter.New(nc, &natsadapter.Options{Prefix: cfg.clusterKey, Logger: log})
	default:
		s.bus = newMemoryBus(deliver)
	}
	s.closers = append(s.closers, s.bus.Close)
	s.hub.bus, s.chat.bus = s.bus, s.bus
	failures := m.brokerFailures.WithLabelValues(s.bus.Name())
	s.hub.brokerFailures, s.chat.brokerFailures = failures, failures

	m.countSocketIORefusals(sioOpts)
	sio, err := socketio.NewServer(sioOpts)
	if err != nil {
		return nil, err
	}
	s.sio = sio
	s.closers = append(s.closers, sio.Close)
	serveSocketIOEcho(sio.Of("/"), m.endpoint("socketio"))
	s.chat.serveSocketIO(sio.Of("/chat"))
	if s.bus.Name() != "memory" {
		s.health = append(s.health, s.bus.Health)
		m.watchBroker(s.bus.Name(), "bus", s.bus.Health)
		// Every namespace has its adapter, its subscriptions and its
		// counters: /healthz is degraded when any is down.
		var adapters []func() error
		for _, nsp := range socketIONamespaces {
			ad := sio.Of(nsp).Adapter()
			m.watchAdapter(s.bus.Name(), nsp, ad)
			if h, ok := ad.(healthChecker); ok {
				adapters = append(adapters, func() error {
					if err := h.Health(); err != nil {
						return fmt.Errorf("socket.io namespace %s: %w", nsp, err)
					}
					return nil
				})
			}
		}
		if len(adapters) > 0 {
			s.health = append(s.health, adapters...)
			m.watchBroker(s.bus.Name(), "socketio", func() error {
				for _, h := range adapters {
					if err := h(); err != nil {
						return err
					}
				}
				return nil
			})
		}
	}
	s.chat.start()
	s.closers = append(s.closers, func() error { s.chat.close(); return nil })

	s.echo = &ws.Server{
		Handler:       echoHandler{log, m.endpoint("echo")},
		Poller:        s.poller,
		OnAcceptError: m.countAcceptErrors("echo"),
		Options: &ws.AcceptOptions{
			Heartbeat:      wsHeartbeat,
			OriginPatterns: cfg.origins,
			ReadLimit:      cfg.maxMessage,
			Compression:    compression,
		},
	}
	if log.Enabled(context.Background(), slog.LevelDebug) {
		// Only at debug level: a request's RemoteAddr is made for
		// OnAccept, a measurable share of a handshake on a ws.Listener.
		s.echo.OnAccept = func(r *http.Request, c *ws.Conn) {
			log.Debug("echo accepted", "proto", r.Proto, "remote", r.RemoteAddr)
		}
	}
	s.broadcast = &ws.Server{
		Handler:       s.hub,
		Poller:        s.poller,
		OnAcceptError: m.countAcceptErrors("broadcast"),
		Options: &ws.AcceptOptions{
			SendQueueLimit: broadcastQueueBytes,
			SendQueueFull:  ws.SendQueueClose,
			Heartbeat:      wsHeartbeat,
			OriginPatterns: cfg.origins,
			ReadLimit:      cfg.maxMessage,
			Compression:    broadcastCompression,
		},
	}
	s.chatWS = &ws.Server{
		Handler:       s.chat,
		OnAccept:      s.chat.onAccept,
		Poller:        s.poller,
		OnAcceptError: m.countAcceptErrors("chat"),
		Options: &ws.AcceptOptions{
			SendQueueLimit: chatQueueBytes,
			SendQueueFull:  ws.SendQueueClose,
			Heartbeat:      wsHeartbeat,
			OriginPatterns: cfg.origins,
			ReadLimit:      min(cfg.maxMessage, chatReadLimit),
			Compression:    broadcastCompression,
		},
	}
	m.countWebSocketFailures("echo", s.echo)
	m.countWebSocketFailures("broadcast", s.broadcast)
	m.countWebSocketFailures("chat", s.chatWS)
	s.mux.HandleFunc("GET /{$}", s.handleIndex)
	s.mux.Handle("GET /ws/echo", s.echo)
	s.mux.Handle("GET /ws/broadcast", s.broadcast)
	s.mux.Handle("GET /ws/chat", s.chatWS)
	// WebSockets over HTTP/2 (RFC 8441) arrive as extended CONNECTs: with
	// --tls-cert and GODEBUG=http2xconnect=1 in the environment.
	s.mux.Handle("CONNECT /ws/echo", s.echo)
	s.mux.Handle("CONNECT /ws/broadcast", s.broadcast)
	s.mux.Handle("CONNECT /ws/chat", s.chatWS)
	s.mux.Handle("/socket.io/", sio)
	s.mux.HandleFunc("GET /healthz", s.handleHealth)
	s.mux.Handle("GET /metrics", m.handler())
	return s, nil
}

// close releases the brokers and the poller, once the endpoints are shut
// down.
func (s *server) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](); err != nil {
			s.log.Debug("close", "err", err)
		}
	}
	s.closers = nil
}

func (s *server) handleIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeFileFS(w, r, web.FS, "index.html")
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
	// A broker that is away leaves the process serving its own clients:
	// still 200, so that a load balancer keeps it, but said.
	for _, h := range s.health {
		if err := h(); err != nil {
			_, _ = fmt.Fprintf(w, "degraded: %s: %v\n", s.bus.Name(), err)
			return
		}
	}
	_, _ = io.WriteString(w, "ok\n")
}

// echoHandler sends every message back unchanged. The Server reads into a
// buffer it reuses, so echoing allocates nothing.
type echoHandler struct {
	log *slog.Logger
	m   *endpointMetrics
}

func (h echoHandler) OnOpen(c *ws.Conn) {
	h.m.conns.Inc()
	debugConn(h.log, c, "echo connection open", nil)
}

// debugConn logs an event of c at debug level. The remote address is
// formatted only when the level is on: a connection's handshake is short,
// and formatting it every time was a measurable share of one.
func debugConn(log *slog.Logger, c *ws.Conn, msg string, err error) {
	if !log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	if err != nil {
		log.Debug(msg, "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	log.Debug(msg, "remote", c.RemoteAddr().String())
}

func (h echoHandler) OnMessage(c *ws.Conn, typ ws.MessageType, data []byte) {
	h.m.received(len(data))
	h.m.sent(1, len(data))
	if err := c.Write(context.Background(), typ, data); err != nil {
		// A connection that is closing (a close frame from either side, or
		// the shutdown's 1001) or already lost needs nothing more: cutting
		// it here would drop the close frame still on its way out.
		debugConn(h.log, c, "echo write failed", err)
		if !errors.Is(err, net.ErrClosed) {
			_ = c.CloseNow()
		}
	}
}

func (h echoHandler) OnError(c *ws.Conn, err error) {
	debugConn(h.log, c, "echo connection failed", err)
}

func (h echoHandler) OnClose(c *ws.Conn, err error) {
	h.m.conns.Dec()
	debugConn(h.log, c, "echo connection closed", err)
}

// serveSocketIOEcho installs the main namespace's handlers: "echo"
// acknowledges with its arguments, or emits "echo" back without an ack.
func serveSocketIOEcho(ns *socketio.Namespace, m *endpointMetrics) {
	ns.OnConnection(func(s *socketio.Socket) {
		m.conns.Inc()
		s.OnDisconnect(func(*socketio.Socket, string) { m.conns.Dec() })
		s.On("echo", func(s *socketio.Socket, e *socketio.Event) {
			m.received(0)
			m.sent(1, 0)
			if e.WantsAck() {
				_ = e.Ack(e.Values()...)
				return
			}
			_ = s.Emit("echo", e.Values()...)
		})
	})
}

// redisLogger passes go-redis's log lines to slog at Debug.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}
