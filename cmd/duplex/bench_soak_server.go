package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	goredis "github.com/redis/go-redis/v9"

	redisadapter "github.com/duplexrt/duplex/adapter/redis"
	"github.com/duplexrt/duplex/socketio"
)

// soakServer is one of the soak's in-process Socket.IO servers: its own
// go-redis client and adapter/redis, as two processes of a cluster have,
// behind its own listener on 127.0.0.1.
type soakServer struct {
	url     string
	rdb     *goredis.Client
	sio     *socketio.Server
	http    *http.Server
	adapter *redisadapter.Adapter
	served  chan error
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// startSoakServer starts a Socket.IO server on a free loopback port,
// joined to the cluster of key on the Redis at redisURL.
func startSoakServer(redisURL, key string) (*soakServer, error) {
	ro, err := goredis.ParseURL(redisURL)
	if err != nil {
		return nil, err
	}
	s := &soakServer{rdb: goredis.NewClient(ro), served: make(chan error, 1)}
	sio, err := socketio.NewServer(&socketio.ServerOptions{
		// A flush waits behind the broadcasts queued before it, on both
		// servers: a loaded machine (the CI's, under -race) takes more
		// than the default 5 s.
		NewAdapter: redisadapter.New(s.rdb, &redisadapter.Options{Key: key, RequestsTimeout: soakFlushTry}),
	})
	if err != nil {
		_ = s.rdb.Close()
		return nil, err
	}
	s.sio = sio
	ns := sio.Of("/")
	a, ok := ns.Adapter().(*redisadapter.Adapter)
	if !ok {
		s.close()
		return nil, errors.New("the namespace's adapter is not adapter/redis's")
	}
	s.adapter = a
	serveSoakRooms(ns)
	ns.OnServerSideEmit(soakFlushEvent, func(_ *socketio.Namespace, e *socketio.Event) { _ = e.Ack(true) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.close()
		return nil, err
	}
	s.url = "http://" + ln.Addr().String() + "/"
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", sio)
	s.http = newHTTPServer(mux, discardLogger())
	go func() { s.served <- s.http.Serve(ln) }()
	return s, nil
}

// serveSoakRooms installs the events the soak uses, as the conformance
// app answers them (CONTRACT.md 4.2), so that the soak runs the same
// against it: join and leave acknowledge with true; say sends
// said(room, text, senderId) to the room, the sender left out, and
// acknowledges with true, or with {"error"} when the adapter refused the
// broadcast (its publish queue full).
func serveSoakRooms(ns *socketio.Namespace) {
	ns.OnConnection(func(s *socketio.Socket) {
		s.On("join", func(s *socketio.Socket, room string, ack func(...any)) {
			s.Join(room)
			ack(true)
		})
		s.On("leave", func(s *socketio.Socket, room string, ack func(...any)) {
			s.Leave(room)
			ack(true)
		})
		s.On("say", func(s *socketio.Socket, room, text string, ack func(...any)) {
			if err := s.To(room).Emit("said", room, text, s.ID()); err != nil {
				ack(map[string]string{"error": err.Error()})
				return
			}
			ack(true)
		})
	})
}

// close stops the server: the Socket.IO sessions (and the adapter), the
// listener, the Redis client.
func (s *soakServer) close() {
	if s.sio != nil {
		_ = s.sio.Close()
	}
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.http.Shutdown(ctx)
		cancel()
		_ = s.http.Close()
		<-s.served
	}
	_ = s.rdb.Close()
}

// soakFlushEvent is the server-side event of flush.
const soakFlushEvent = "soak-flush"

// flush sends a server-side event to the other server through Redis and
// waits for its acknowledgement. It goes through the adapter's publish
// queue after the broadcasts queued before it, and reaches the other
// server on its one subscribed connection after them: once it is
// acknowledged, every broadcast this server queued before it has been
// handed to the other server's sockets.
func (s *soakServer) flush(ctx context.Context) error {
	replies, err := s.sio.Of("/").ServerSideEmitWithAck(ctx, soakFlushEvent)
	if err != nil {
		return fmt.Errorf("%s: %w", s.url, err)
	}
	if len(replies) == 0 {
		return fmt.Errorf("%s: the other server did not answer (not subscribed)", s.url)
	}
	return nil
}

// healthy reports why the server's adapter is not subscribed, or nil.
func (s *soakServer) healthy() error {
	if err := s.adapter.Health(); err != nil {
		return fmt.Errorf("%s: %w", s.url, err)
	}
	return nil
}
