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
//
// With REDIS_URL set (redis://host:port/db), the /socket.io/ server of
// APP_PORT joins a cluster through adapter/redis, wire-compatible with
// @socket.io/redis-adapter 8.x: REDIS_KEY (default "socket.io") is the
// key prefix, REDIS_SHARDED=1 selects the sharded variant
// (createShardedAdapter; REDIS_SUBSCRIPTION_MODE its subscriptionMode),
// REDIS_STREAMS=1 the Redis Streams adapter with recovery,
// SERVER_NAME (default "duplex-<pid>") names this process in
// the answers of the cluster events (installCluster).
//
// With NATS_URL set instead (nats://host:port, REDIS_URL not set), the
// /socket.io/ server of APP_PORT joins a cluster of Duplex servers
// through adapter/nats: NATS_PREFIX (default "duplex") starts its
// subjects; SERVER_NAME and the cluster events are as with REDIS_URL.
// NATS_JETSTREAM=1 selects the JetStream adapter (nats.NewJetStream; the
// NATS server must run with -js): /socket.io/ on the stream of
// NATS_PREFIX, recovery still off, and /recovery/ joins the cluster too,
// on the stream of NATS_PREFIX + "-recovery", so that a client recovers
// its session on another process. The streams and the session bucket
// are left in NATS (they age out).
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
	"slices"
	"strings"
	"syscall"
	"time"

	natsadapter "github.com/duplexrt/duplex/adapter/nats"
	redisadapter "github.com/duplexrt/duplex/adapter/redis"
	"github.com/duplexrt/duplex/engineio"
	"github.com/duplexrt/duplex/socketio"
	natsgo "github.com/nats-io/nats.go"
	goredis "github.com/redis/go-redis/v9"
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
	appMux := http.NewServeMux()
	sioOpts := appOptions(logger)
	var rdb *goredis.Client
	if u := os.Getenv("REDIS_URL"); u != "" {
		ro, err := goredis.ParseURL(u)
		if err != nil {
			return fmt.Errorf("REDIS_URL: %w", err)
		}
		rdb = goredis.NewClient(ro)
		defer rdb.Close()
		sioOpts.NewAdapter = redisadapter.New(rdb, &redisadapter.Options{
			Key:    os.Getenv("REDIS_KEY"),
			Logger: logger,
			// REDIS_SHARDED=1: sharded pub/sub, as createShardedAdapter;
			// REDIS_SUBSCRIPTION_MODE: its subscriptionMode.
			Sharded:          os.Getenv("REDIS_SHARDED") == "1",
			SubscriptionMode: redisadapter.SubscriptionMode(os.Getenv("REDIS_SUBSCRIPTION_MODE")),
		})
		if os.Getenv("REDIS_STREAMS") == "1" {
			// REDIS_STREAMS=1: the Redis Streams adapter (stream and
			// channel prefix REDIS_KEY), with recovery.
			key := env("REDIS_KEY", "socket.io")
			sioOpts.Recovery = &socketio.RecoveryOptions{MaxDisconnectionDuration: 2 * time.Minute}
			sioOpts.NewAdapter = redisadapter.NewStreams(rdb, &redisadapter.StreamsOptions{
				StreamName: key, ChannelPrefix: key, SessionKeyPrefix: key + ":session:",
				Recovery: sioOpts.Recovery, Logger: logger,
			})
		}
	}
	var nc *natsgo.Conn
	if u := os.Getenv("NATS_URL"); u != "" && rdb == nil {
		prefix := os.Getenv("NATS_PREFIX")
		if prefix != "" {
			if err := natsadapter.CheckPrefix(prefix); err != nil {
				return fmt.Errorf("NATS_PREFIX: %w", err)
			}
		}
		nc, err = natsadapter.Connect(u, natsgo.Name(env("SERVER_NAME", fmt.Sprintf("duplex-%d", os.Getpid()))))
		if err != nil {
			return fmt.Errorf("NATS_URL: %w", err)
		}
		defer nc.Close()
		sioOpts.NewAdapter = natsadapter.New(nc, &natsadapter.Options{Prefix: prefix, Logger: logger})
	}
	recOpts := appOptions(logger)
	recOpts.Recovery = &socketio.RecoveryOptions{MaxDisconnectionDuration: 2 * time.Minute, SkipMiddlewares: true}
	if nc != nil && os.Getenv("NATS_JETSTREAM") == "1" {
		// NATS_JETSTREAM=1: the JetStream adapter on /socket.io/
		// (recovery off) and on /recovery/, on a prefix of its own.
		prefix := env("NATS_PREFIX", "duplex")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		sioOpts.NewAdapter, err = natsadapter.NewJetStream(ctx, nc, &natsadapter.JetStreamOptions{Prefix: prefix, Logger: logger})
		if err == nil {
			recOpts.NewAdapter, err = natsadapter.NewJetStream(ctx, nc, &natsadapter.JetStreamOptions{
				Prefix: prefix + "-recovery", Recovery: recOpts.Recovery, Logger: logger,
			})
		}
		cancel()
		if err != nil {
			return fmt.Errorf("NATS_JETSTREAM: %w", err)
		}
	}
	appSIO, err := newAppSocketIO(sioOpts)
	if err != nil {
		return err
	}
	if rdb != nil || nc != nil {
		installCluster(appSIO.Of("/"), env("SERVER_NAME", fmt.Sprintf("duplex-%d", os.Getpid())))
	}
	appMux.Handle("/socket.io/", appSIO)
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

// installCluster adds, with REDIS_URL or NATS_URL, the events that exercise the
// cluster operations (not in CONTRACT.md §4.2 yet; the Node server of
// test/interop/socketio-redis.mjs has the same):
//
//   - cluster-fetch (room, ack): ack the sockets of every process in room
//     ("" for all) as [{id, rooms}] sorted by id, rooms without the
//     socket's own id, sorted; or {error}.
//   - cluster-join (room, newRoom, ack) and cluster-leave: the sockets of
//     every process in room ("" for all) join (leave) newRoom; ack(true).
//   - cluster-sse (msg, ack): serverSideEmit "ping"(msg) with acks; ack
//     {responses (sorted), error}.
//   - cluster-count (ack): ack the number of servers.
//   - cluster-except (room, msg, ack): emit "excepted"(msg, senderId) to
//     every socket not in room; ack(true).
//
// A server-side "ping"(msg) is answered with "<name>:<msg>".
func installCluster(ns *socketio.Namespace, name string) {
	ns.OnServerSideEmit("ping", func(ns *socketio.Namespace, e *socketio.Event) {
		var msg string
		_ = e.Decode(0, &msg)
		_ = e.Ack(name + ":" + msg)
	})
	sel := func(room string) *socketio.BroadcastOperator {
		if room == "" {
			return ns.Except()
		}
		return ns.In(room)
	}
	ns.OnConnection(func(s *socketio.Socket) {
		s.On("cluster-fetch", func(s *socketio.Socket, room string, ack func(...any)) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			socks, err := sel(room).FetchSockets(ctx)
			if err != nil {
				ack(map[string]string{"error": err.Error()})
				return
			}
			type info struct {
				ID    string   `json:"id"`
				Rooms []string `json:"rooms"`
			}
			out := make([]info, 0, len(socks))
			for _, rs := range socks {
				rooms := []string{}
				for _, r := range rs.Rooms {
					if r != rs.ID {
						rooms = append(rooms, r)
					}
				}
				slices.Sort(rooms)
				out = append(out, info{rs.ID, rooms})
			}
			slices.SortFunc(out, func(a, b info) int { return strings.Compare(a.ID, b.ID) })
			ack(out)
		})
		s.On("cluster-join", func(s *socketio.Socket, room, newRoom string, ack func(...any)) {
			sel(room).SocketsJoin(newRoom)
			ack(true)
		})
		s.On("cluster-leave", func(s *socketio.Socket, room, oldRoom string, ack func(...any)) {
			sel(room).SocketsLeave(oldRoom)
			ack(true)
		})
		s.On("cluster-sse", func(s *socketio.Socket, msg string, ack func(...any)) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			replies, err := ns.ServerSideEmitWithAck(ctx, "ping", msg)
			responses := []string{}
			for _, r := range replies {
				var v string
				_ = r.Decode(0, &v)
				responses = append(responses, v)
			}
			slices.Sort(responses)
			res := map[string]any{"responses": responses}
			if err != nil {
				res["error"] = err.Error()
			}
			ack(res)
		})
		s.On("cluster-except", func(s *socketio.Socket, room, msg string, ack func(...any)) {
			_ = ns.Except(room).Emit("excepted", msg, s.ID())
			ack(true)
		})
		s.On("cluster-count", func(s *socketio.Socket, ack func(...any)) {
			n, err := ns.ServerCount(context.Background())
			if err != nil {
				ack(map[string]string{"error": err.Error()})
				return
			}
			ack(n)
		})
	})
}
