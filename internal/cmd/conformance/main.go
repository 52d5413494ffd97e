// Command conformance is the test server that the official protocol suites
// and the interop tests start (CONTRACT.md §4).
//
// Environment: HOST (default 127.0.0.1), PROTO_PORT (3000), APP_PORT
// (3001). It prints one line, "READY proto=<port> app=<port> pid=<pid>",
// once both ports listen, and exits 0 on SIGTERM or SIGINT.
//
// On PROTO_PORT, /engine.io/ is a bare Engine.IO v4 server that sends
// every message back to its sender (pingInterval 300 ms, pingTimeout
// 200 ms, maxPayload 1,000,000, CORS *), as the official engine.io-protocol
// suite expects.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/duplexrt/duplex/engineio"
	"github.com/duplexrt/duplex/socketio"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(1)
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run() error {
	host := env("HOST", "127.0.0.1")
	protoPort := env("PROTO_PORT", "3000")
	appPort := env("APP_PORT", "3001")

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	eio, err := engineio.NewServer(&engineio.ServerOptions{
		PingInterval: 300 * time.Millisecond,
		PingTimeout:  200 * time.Millisecond,
		MaxPayload:   1_000_000,
		CORS:         &engineio.CORS{Origins: []string{"*"}},
		Logger:       logger,
		Handler: engineio.HandlerFuncs{
			Message: func(s *engineio.Session, typ engineio.MessageType, data []byte) {
				_ = s.Send(typ, data) // echo; an error closes the session
			},
		},
	})
	if err != nil {
		return err
	}

	protoMux := http.NewServeMux()
	protoMux.Handle("/engine.io/", eio)
	protoSIO, err := newProtoSocketIO(logger)
	if err != nil {
		return err
	}
	protoMux.Handle("/socket.io/", protoSIO)

	// The interop app: /socket.io/ without recovery, /recovery/ with it.
	// TODO(adapters issue): REDIS_URL / NATS_URL.
	appMux := http.NewServeMux()
	appSIO, err := newAppSocketIO(appOptions(logger))
	if err != nil {
		return err
	}
	appMux.Handle("/socket.io/", appSIO)
	recOpts := appOptions(logger)
	recOpts.Recovery = &socketio.RecoveryOptions{MaxDisconnectionDuration: 2 * time.Minute, SkipMiddlewares: true}
	recSIO, err := newAppSocketIO(recOpts)
	if err != nil {
		return err
	}
	appMux.Handle("/recovery/", recSIO)

	protoLn, err := net.Listen("tcp", net.JoinHostPort(host, protoPort))
	if err != nil {
		return err
	}
	appLn, err := net.Listen("tcp", net.JoinHostPort(host, appPort))
	if err != nil {
		protoLn.Close()
		return err
	}
	protoSrv := &http.Server{Handler: protoMux, ReadHeaderTimeout: 10 * time.Second}
	appSrv := &http.Server{Handler: appMux, ReadHeaderTimeout: 10 * time.Second}
	protoSrv.RegisterOnShutdown(func() { _ = eio.Close() })

	errc := make(chan error, 2)
	go func() { errc <- protoSrv.Serve(protoLn) }()
	go func() { errc <- appSrv.Serve(appLn) }()

	fmt.Printf("READY proto=%d app=%d pid=%d\n",
		protoLn.Addr().(*net.TCPAddr).Port, appLn.Addr().(*net.TCPAddr).Port, os.Getpid())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err1 := protoSrv.Shutdown(shutdownCtx)
	err2 := appSrv.Shutdown(shutdownCtx)
	if err3 := eio.Shutdown(shutdownCtx); err1 == nil {
		err1 = err3
	}
	for _, sio := range []*socketio.Server{protoSIO, appSIO, recSIO} {
		if err3 := sio.Shutdown(shutdownCtx); err1 == nil {
			err1 = err3
		}
	}
	if err := errors.Join(err1, err2); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
