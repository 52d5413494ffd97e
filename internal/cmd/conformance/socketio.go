package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/duplexrt/duplex/engineio"
	"github.com/duplexrt/duplex/socketio"
)

// newProtoSocketIO is the Socket.IO server of PROTO_PORT (CONTRACT.md
// §4.1), configured as the official Socket.IO protocol suite expects.
func newProtoSocketIO(logger *slog.Logger) (*socketio.Server, error) {
	srv, err := socketio.NewServer(&socketio.ServerOptions{
		Engine: &engineio.ServerOptions{
			PingInterval: 300 * time.Millisecond,
			PingTimeout:  200 * time.Millisecond,
			MaxPayload:   1_000_000,
			CORS:         &engineio.CORS{Origins: []string{"*"}},
		},
		ConnectTimeout: time.Second,
		Logger:         logger,
	})
	if err != nil {
		return nil, err
	}
	srv.OnConnection(func(s *socketio.Socket) {
		_ = s.Emit("auth", s.Handshake().Auth)
		s.On("message", func(s *socketio.Socket, e *socketio.Event) {
			_ = s.Emit("message-back", e.Values()...)
		})
		s.On("message-with-ack", func(s *socketio.Socket, e *socketio.Event) {
			_ = e.Ack(e.Values()...)
		})
	})
	srv.Of("/custom").OnConnection(func(s *socketio.Socket) {
		_ = s.Emit("auth", s.Handshake().Auth)
	})
	return srv, nil
}

// appOptions are the Socket.IO settings of APP_PORT (CONTRACT.md §4.2).
func appOptions(logger *slog.Logger) *socketio.ServerOptions {
	return &socketio.ServerOptions{
		Engine: &engineio.ServerOptions{
			PingInterval: time.Second,
			PingTimeout:  5 * time.Second,
			MaxPayload:   1_000_000,
			CORS:         &engineio.CORS{Origins: []string{"*"}},
		},
		ConnectTimeout: 5 * time.Second,
		Logger:         logger,
	}
}

// reasons records why sockets disconnected, the last maxReasons of them.
type reasons struct {
	mu    sync.Mutex
	byID  map[string]string
	order []string
}

const maxReasons = 10_000

func (r *reasons) put(id, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byID == nil {
		r.byID = make(map[string]string)
	}
	if _, ok := r.byID[id]; !ok {
		r.order = append(r.order, id)
	}
	r.byID[id] = reason
	for len(r.order) > maxReasons {
		delete(r.byID, r.order[0])
		r.order = r.order[1:]
	}
}

func (r *reasons) get(id string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.byID[id]
	return v, ok
}

var dynamicNamespace = regexp.MustCompile(`^/dyn-[a-z0-9-]+$`)

// newAppSocketIO is one of the two Socket.IO servers of APP_PORT.
func newAppSocketIO(opts *socketio.ServerOptions) (*socketio.Server, error) {
	srv, err := socketio.NewServer(opts)
	if err != nil {
		return nil, err
	}
	rs := &reasons{}
	setup := func(ns *socketio.Namespace) { installApp(ns, rs) }
	setup(srv.Of("/"))
	admin := srv.Of("/admin")
	admin.Use(func(s *socketio.Socket) error {
		var auth struct {
			Token string `json:"token"`
		}
		_ = json.Unmarshal(s.Handshake().Auth, &auth)
		if auth.Token != "secret" {
			return &socketio.ConnectError{Message: "unauthorized", Data: map[string]int{"code": 401}}
		}
		return nil
	})
	setup(admin)
	srv.OfRegexp(dynamicNamespace, setup)
	return srv, nil
}

// hiddenQuery are the query parameters of Engine.IO itself, left out of
// whoami's query.
var hiddenQuery = map[string]bool{"EIO": true, "transport": true, "t": true, "sid": true, "j": true, "b64": true}

// installApp installs the interop app's handlers on ns.
func installApp(ns *socketio.Namespace, rs *reasons) {
	ns.OnConnection(func(s *socketio.Socket) {
		s.OnDisconnect(func(s *socketio.Socket, reason string) { rs.put(s.ID(), reason) })
		ownRooms := func() []string {
			var out []string
			for _, r := range s.Rooms() {
				if r != s.ID() {
					out = append(out, r)
				}
			}
			if out == nil {
				out = []string{}
			}
			return out
		}
		s.On("whoami", func(s *socketio.Socket, ack func(...any)) {
			q := map[string]string{}
			for k, v := range s.Handshake().Query {
				if !hiddenQuery[k] && len(v) > 0 {
					q[k] = v[0]
				}
			}
			ack(map[string]any{
				"id":        s.ID(),
				"nsp":       ns.Name(),
				"rooms":     ownRooms(),
				"auth":      s.Handshake().Auth,
				"query":     q,
				"transport": s.Transport(),
				"engineId":  s.EngineID(),
				"recovered": s.Recovered(),
			})
		})
		s.On("echo", func(s *socketio.Socket, e *socketio.Event) {
			if e.WantsAck() {
				_ = e.Ack(e.Values()...)
				return
			}
			_ = s.Emit("echo", e.Values()...)
		})
		s.On("delayed-echo", func(s *socketio.Socket, e *socketio.Event) {
			var ms float64
			_ = e.Decode(0, &ms)
			d := min(time.Duration(ms*float64(time.Millisecond)), 10*time.Second)
			vals := e.Values()
			if len(vals) > 0 {
				vals = vals[1:]
			}
			time.AfterFunc(max(d, 0), func() { _ = e.Ack(vals...) })
		})
		s.On("ignore", func(*socketio.Socket, *socketio.Event) {})
		s.On("binary-digest", func(s *socketio.Socket, e *socketio.Event) {
			var data []byte
			if e.Len() == 0 || !bytes.Contains(e.Raw(0), []byte(`"_placeholder"`)) || e.Decode(0, &data) != nil {
				_ = e.Ack(map[string]string{"error": "not binary"})
				return
			}
			sum := sha256.Sum256(data)
			_ = e.Ack(map[string]any{"length": len(data), "sha256": hex.EncodeToString(sum[:])})
		})
		s.On("make-binary", func(s *socketio.Socket, n float64, ack func(...any)) {
			size := int(max(min(n, 1<<20), 0))
			b := make([]byte, size)
			for i := range b {
				b[i] = byte(i)
			}
			ack(b)
		})
		s.On("join", func(s *socketio.Socket, room string, ack func(...any)) {
			s.Join(room)
			ack(ownRooms())
		})
		s.On("leave", func(s *socketio.Socket, room string, ack func(...any)) {
			s.Leave(room)
			ack(ownRooms())
		})
		s.On("room-size", func(s *socketio.Socket, room string, ack func(...any)) {
			ack(len(ns.Adapter().Sockets([]string{room})))
		})
		// The message arguments are relayed with Values(), so that binary
		// stays binary.
		arg := func(e *socketio.Event, i int) any {
			if v := e.Values(); i < len(v) {
				return v[i]
			}
			return nil
		}
		str := func(e *socketio.Event, i int) string {
			var v string
			_ = e.Decode(i, &v)
			return v
		}
		s.On("say", func(s *socketio.Socket, e *socketio.Event) {
			room := str(e, 0)
			_ = s.To(room).Emit("said", room, arg(e, 1), s.ID())
			_ = e.Ack(true)
		})
		s.On("shout", func(s *socketio.Socket, e *socketio.Event) {
			_ = ns.Emit("shouted", arg(e, 0), s.ID())
			_ = e.Ack(true)
		})
		s.On("others", func(s *socketio.Socket, e *socketio.Event) {
			_ = s.Broadcast().Emit("others", arg(e, 0), s.ID())
			_ = e.Ack(true)
		})
		s.On("whisper", func(s *socketio.Socket, e *socketio.Event) {
			_ = ns.To(str(e, 0)).Emit("whisper", arg(e, 1), s.ID())
			_ = e.Ack(true)
		})
		s.On("ask", func(s *socketio.Socket, e *socketio.Event) {
			var timeoutMs float64
			_ = e.Decode(1, &timeoutMs)
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(timeoutMs*float64(time.Millisecond)))
			defer cancel()
			reply, err := s.EmitWithAck(ctx, "question", arg(e, 0))
			if err != nil {
				_ = e.Ack(map[string]string{"error": "timeout"})
				return
			}
			var answer any
			if v := reply.Values(); len(v) > 0 {
				answer = v[0]
			}
			_ = e.Ack(map[string]any{"answer": answer})
		})
		s.On("collect", func(s *socketio.Socket, room string, timeoutMs float64, ack func(...any)) {
			replies, err := ns.To(room).Timeout(time.Duration(timeoutMs*float64(time.Millisecond))).
				EmitWithAck(context.Background(), "collect", room)
			responses := make([]any, 0, len(replies))
			for _, r := range replies {
				var v any
				_ = r.Decode(0, &v)
				responses = append(responses, v)
			}
			slices.SortFunc(responses, compareJSON)
			ack(map[string]any{"timedOut": err != nil, "responses": responses})
		})
		s.On("disconnect-reason", func(s *socketio.Socket, id string, ack func(...any)) {
			if r, ok := rs.get(id); ok {
				ack(r)
				return
			}
			ack(nil)
		})
		s.On("disconnect-me", func(s *socketio.Socket, closeConn bool) {
			s.Disconnect(closeConn)
		})
		s.On("drop", func(s *socketio.Socket) {
			_ = s.Engine().Close()
		})
	})
}

// compareJSON orders decoded JSON values: numbers, then strings, then
// the rest by their JSON text.
func compareJSON(a, b any) int {
	rank := func(v any) int {
		switch v.(type) {
		case float64:
			return 0
		case string:
			return 1
		}
		return 2
	}
	if c := cmp.Compare(rank(a), rank(b)); c != 0 {
		return c
	}
	switch x := a.(type) {
	case float64:
		return cmp.Compare(x, b.(float64))
	case string:
		return cmp.Compare(x, b.(string))
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Compare(ja, jb)
}
