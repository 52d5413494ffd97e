package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// FuzzChat feeds the chat what a /ws/chat client sends (kind 0) and what
// other processes publish on the bus's chat and presence topics (kinds 1
// and 2): whatever the bytes, no panic, and what the chat keeps stays
// within its bounds: one room for its one member, a valid room and
// nickname, at most 1,024 other processes, 10,000 rooms each.
//
// The member is a real /ws/chat connection on a loopback server, which
// gets what the chat sends it; its rate limit is refilled before each
// input, or the fuzzer would mostly meet "too many messages".
func FuzzChat(f *testing.F) {
	for _, seed := range []struct {
		kind byte
		data string
	}{
		{0, `{"type":"join","room":"red","nick":"ann"}`},
		{0, `{"type":"join","nick":"bob"}`},
		{0, `{"type":"nick","nick":"  "}`},
		{0, `{"type":"say","text":"hello"}`},
		{0, `{"type":"say","text":"` + strings.Repeat("x", 2001) + `"}`},
		{0, `{"type":"join","room":"a b"}`},
		{0, `{"type":"shout"}`},
		{0, `[1,2]`},
		{1, `{"type":"message","room":"lobby","id":"x","nick":"n","text":"hi","time":1,"node":"other"}`},
		{1, `{"type":"join","room":"lobby","id":"y","nick":"m","node":"other","count":3}`},
		{1, `{"type":"leave","room":"red","node":"other","count":0}`},
		{1, `{"room":""}`},
		{2, `{"node":"other","rooms":{"lobby":2,"red":1},"ask":true}`},
		{2, `{"node":"other","gone":true}`},
		{2, `{"node":"","rooms":{"x":-5}}`},
	} {
		f.Add(seed.kind, []byte(seed.data))
	}
	m := newMetrics()
	c := newChat(slog.New(slog.DiscardHandler), m.endpoint("chat"), m.endpoint("socketio"))
	c.brokerFailures = m.brokerFailures.WithLabelValues("memory")
	c.bus = newMemoryBus(func(topic string, data []byte) {
		switch topic {
		case topicChat:
			c.receive(data)
		case topicPresence:
			c.receivePresence(data)
		}
	})
	accepted := make(chan *ws.Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := ws.Accept(w, r, &ws.AcceptOptions{SendQueueFull: ws.SendQueueDrop})
		if err == nil {
			accepted <- conn
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	client, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	cancel()
	if err != nil {
		f.Fatal(err)
	}
	defer client.CloseNow()
	go func() { // what the chat sends the member, read and dropped
		for {
			if _, _, err := client.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	conn := <-accepted
	defer conn.CloseNow()
	member := &chatMember{id: "fuzz01", conn: conn, nick: "guest-fuzz"}
	if err := c.join(member, chatDefaultRoom, ""); err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		switch kind % 3 {
		case 0:
			member.last, member.tokens = time.Time{}, 0 // a full bucket
			_ = c.request(member, data)
		case 1:
			c.receive(data)
		case 2:
			c.receivePresence(data)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.rooms) != 1 || len(c.rooms[member.room]) != 1 {
			t.Fatalf("rooms %v, for one member in %q", c.rooms, member.room)
		}
		if !chatRoomName.MatchString(member.room) {
			t.Fatalf("the member is in room %q", member.room)
		}
		if member.nick != "guest-fuzz" && checkNick(member.nick) != nil {
			t.Fatalf("the member's nick is %q", member.nick)
		}
		if len(c.remote) > 1024 {
			t.Fatalf("%d other processes noted", len(c.remote))
		}
		for node, p := range c.remote {
			if len(p.rooms) > 10_000 {
				t.Fatalf("process %q: %d rooms noted", node, len(p.rooms))
			}
		}
	})
}
