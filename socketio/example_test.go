package socketio_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/duplexrt/duplex/socketio"
)

// A server whose "add" event takes two numbers and acknowledges their sum,
// and a Go client that calls it.
func Example() {
	srv, err := socketio.NewServer(nil)
	if err != nil {
		panic(err)
	}
	srv.OnConnection(func(s *socketio.Socket) {
		s.On("add", func(s *socketio.Socket, a, b int, ack func(...any)) {
			ack(a + b)
		})
	})
	hs := httptest.NewServer(srv) // in a program: http.Handle("/socket.io/", srv)
	defer hs.Close()
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := socketio.Dial(ctx, hs.URL, nil, nil)
	if err != nil {
		panic(err)
	}
	defer c.Manager().Close()
	reply, err := c.EmitWithAck(ctx, "add", 2, 40)
	if err != nil {
		panic(err)
	}
	var sum int
	_ = reply.Decode(0, &sum)
	fmt.Println("sum:", sum)
	// Output: sum: 42
}

// Rooms and broadcasts: a socket joins a room named by its client, and
// what one client says goes to the others in that room.
func ExampleBroadcastOperator_Emit() {
	srv, _ := socketio.NewServer(nil)
	srv.OnConnection(func(s *socketio.Socket) {
		s.On("join", func(s *socketio.Socket, room string, ack func(...any)) {
			s.Join(room)
			ack()
		})
		s.On("say", func(s *socketio.Socket, room, text string) {
			_ = s.To(room).Emit("said", text) // everyone in room but s
		})
	})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ann, _ := socketio.Dial(ctx, hs.URL, nil, nil)
	bob, _ := socketio.Dial(ctx, hs.URL, nil, nil)
	defer ann.Manager().Close()
	defer bob.Manager().Close()
	heard := make(chan string, 1)
	bob.On("said", func(c *socketio.ClientSocket, text string) { heard <- text })
	_, _ = ann.EmitWithAck(ctx, "join", "lobby")
	_, _ = bob.EmitWithAck(ctx, "join", "lobby")
	_ = ann.Emit("say", "lobby", "hello")
	fmt.Println("bob heard:", <-heard)
	// Output: bob heard: hello
}
