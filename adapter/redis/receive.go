package redis

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/duplexrt/duplex/socketio"
	goredis "github.com/redis/go-redis/v9"
	"github.com/tinylib/msgp/msgp"
)

// receive handles the messages of the subscriptions, in order, until
// Close.
func (a *Adapter) receive(msgs <-chan *goredis.Message) {
	defer a.wg.Done()
	for {
		select {
		case <-a.ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			a.handle(m)
		}
	}
}

// handle handles one message; a malformed one is logged and dropped,
// never a panic.
func (a *Adapter) handle(m *goredis.Message) {
	defer func() {
		if v := recover(); v != nil {
			a.log.Error("redis: panic handling a message", "channel", m.Channel, "panic", v)
		}
	}()
	var err error
	switch {
	case a.cluster:
		err = a.onClusterMessage(m.Channel, []byte(m.Payload))
	case strings.HasPrefix(m.Channel, a.channel):
		err = a.onBroadcast(m.Channel, []byte(m.Payload))
	case strings.HasPrefix(m.Channel, a.responseChannel):
		err = a.onResponse([]byte(m.Payload))
	case m.Channel == a.requestChannel:
		err = a.onRequest([]byte(m.Payload))
	}
	if err != nil {
		a.log.Warn("redis: message dropped", "channel", m.Channel, "err", err)
	}
}

// onBroadcast handles [uid, packet, opts] from another server.
func (a *Adapter) onBroadcast(channel string, b []byte) error {
	if room := strings.TrimSuffix(channel[len(a.channel):], "#"); room != "" && a.mem.RoomSize(room) == 0 {
		return nil // nobody here in that room
	}
	n, b, err := msgp.ReadArrayHeaderBytes(b)
	if err != nil || n != 3 {
		return fmt.Errorf("%w: a broadcast is not [uid, packet, opts]", errBadMsgpack)
	}
	uid, b, err := msgp.ReadStringBytes(b)
	if err != nil {
		return fmt.Errorf("a broadcast's uid: %w", err)
	}
	if uid == a.uid {
		return nil
	}
	var att [][]byte
	text, b, err := msgpackToJSON(nil, b, &att)
	if err != nil {
		return fmt.Errorf("a broadcast's packet: %w", err)
	}
	var jp jsPacket
	if err := json.Unmarshal(text, &jp); err != nil {
		return fmt.Errorf("a broadcast's packet: %w", err)
	}
	var extra [][]byte
	otext, _, err := msgpackToJSON(nil, b, &extra)
	if err != nil {
		return fmt.Errorf("a broadcast's options: %w", err)
	}
	var w wireOpts
	if err := json.Unmarshal(otext, &w); err != nil {
		return fmt.Errorf("a broadcast's options: %w", err)
	}
	p, err := jp.packet(att)
	if err != nil {
		return fmt.Errorf("a broadcast's packet: %w", err)
	}
	if p.Namespace != a.ns.Name() {
		return nil
	}
	return a.mem.Broadcast(p, w.options())
}

// decodeMessage decodes a request or response: JSON when it starts with
// '{', else MessagePack (whose bin values come back as attachments).
func decodeMessage(b []byte) (*message, [][]byte, error) {
	var att [][]byte
	if len(b) > 0 && b[0] != '{' {
		text, rest, err := msgpackToJSON(nil, b, &att)
		if err != nil {
			return nil, nil, err
		}
		if len(rest) > 0 {
			return nil, nil, fmt.Errorf("%w: %d bytes after the message", errBadMsgpack, len(rest))
		}
		b = text
	}
	var m message
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, nil, err
	}
	return &m, att, nil
}

// onRequest answers a request of another server.
func (a *Adapter) onRequest(b []byte) error {
	m, att, err := decodeMessage(b)
	if err != nil {
		return fmt.Errorf("a request: %w", err)
	}
	if m.UID == a.uid {
		return nil // ours: done locally already
	}
	return a.serveRequest(m, att)
}

// serveRequest answers request m of another server.
func (a *Adapter) serveRequest(m *message, att [][]byte) error {
	reqID := ""
	if m.RequestID != nil {
		reqID = *m.RequestID
	}
	switch m.Type {
	case reqSockets:
		ids := a.mem.Sockets(rooms(m.Rooms))
		a.respond(m, a.marshalAny(map[string]any{"requestId": reqID, "sockets": ids}))
	case reqAllRooms:
		// As the Node adapter: {requestId, rooms}, without a type.
		a.respond(m, a.marshalAny(map[string]any{"requestId": reqID, "rooms": a.mem.Rooms()}))
	case reqRemoteJoin, reqRemoteLeave, reqRemoteDisconnect:
		if m.Opts != nil {
			o := m.Opts.options()
			switch m.Type {
			case reqRemoteJoin:
				a.mem.AddSockets(o, rooms(m.Rooms))
			case reqRemoteLeave:
				a.mem.DelSockets(o, rooms(m.Rooms))
			default:
				a.mem.DisconnectSockets(o, m.Close)
			}
			return nil
		}
		// The older form: one socket by id, with an answer.
		s := a.ns.Socket(m.SID)
		if s == nil {
			return nil
		}
		switch m.Type {
		case reqRemoteJoin:
			if m.Room != nil {
				s.Join(string(*m.Room))
			}
		case reqRemoteLeave:
			if m.Room != nil {
				s.Leave(string(*m.Room))
			}
		default:
			s.Disconnect(m.Close)
		}
		a.respond(m, a.marshalAny(map[string]any{"requestId": reqID}))
	case reqRemoteFetch:
		if m.RequestID == nil {
			return errors.New("a fetchSockets request without requestId")
		}
		infos, _ := a.mem.FetchSockets(a.ctx, m.Opts.options())
		socks := make([]jsSocket, len(infos))
		for i := range infos {
			socks[i] = toJSSocket(&infos[i])
		}
		if a.cluster {
			data := (&jsonObject{}).str("requestId", reqID).value("sockets", socks).bytes()
			_ = a.clusterPublish(a.responseChannelOf(m.UID), cmFetchSocketsResponse, data, nil)
			return nil
		}
		a.respond(m, a.marshalAny(map[string]any{"requestId": reqID, "sockets": socks}))
	case reqServerSideEmit:
		return a.onServerSideEmit(m, att)
	case reqBroadcast:
		if m.RequestID == nil {
			return errors.New("a broadcast request without requestId")
		}
		var jp jsPacket
		if err := json.Unmarshal(m.Packet, &jp); err != nil {
			return fmt.Errorf("a broadcast request's packet: %w", err)
		}
		p, err := jp.packet(att)
		if err != nil {
			return fmt.Errorf("a broadcast request's packet: %w", err)
		}
		if a.cluster {
			p.Namespace = a.ns.Name()
		}
		return a.mem.BroadcastWithAck(a.ctx, p, m.Opts.options(),
			func(n int) {
				if a.cluster {
					data := (&jsonObject{}).str("requestId", reqID).value("clientCount", n).bytes()
					_ = a.clusterPublish(a.responseChannelOf(m.UID), cmBroadcastClientCount, data, nil)
					return
				}
				a.respond(m, a.marshal(&message{Type: reqBroadcastClientCount, RequestID: &reqID, ClientCount: &n}))
			},
			func(args *socketio.Args) {
				if a.cluster {
					o := (&jsonObject{}).str("requestId", reqID)
					var att [][]byte
					if args.Len() > 0 {
						o.raw("packet", args.Raw(0))
						att = args.Attachments()
					}
					if err := a.clusterPublish(a.responseChannelOf(m.UID), cmBroadcastAck, o.bytes(), att); err != nil {
						a.log.Warn("redis: an acknowledgement not relayed", "err", err)
					}
					return
				}
				b, err := a.ackResponse(reqID, args)
				if err != nil {
					a.log.Warn("redis: an acknowledgement not relayed", "err", err)
					return
				}
				a.respond(m, b)
			})
	}
	return nil
}

func (a *Adapter) marshalAny(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		a.log.Warn("redis: encoding an answer", "err", err)
		return nil
	}
	return b
}

// respond publishes the answer b to request m.
func (a *Adapter) respond(m *message, b []byte) {
	if b == nil {
		return
	}
	_ = a.enqueue(a.responseChannelOf(m.UID), b, nil)
}

// ackResponse is the BROADCAST_ACK answer {type, requestId, packet}
// (MessagePack, as the Node adapter sends it), packet being the client's
// first acknowledgement argument.
func (a *Adapter) ackResponse(reqID string, args *socketio.Args) ([]byte, error) {
	b := msgp.AppendMapHeader(nil, 3)
	b = msgp.AppendString(b, "type")
	b = msgp.AppendInt(b, int(reqBroadcastAck))
	b = msgp.AppendString(b, "requestId")
	b = msgp.AppendString(b, reqID)
	b = msgp.AppendString(b, "packet")
	if args.Len() == 0 {
		return msgp.AppendNil(b), nil
	}
	return appendMsgpackFromJSON(b, args.Raw(0), args.Attachments())
}

// onServerSideEmit hands a server-side event to the namespace's
// handlers, on the adapter's server-side goroutine.
func (a *Adapter) onServerSideEmit(m *message, att [][]byte) error {
	if len(m.Data) == 0 || m.Data[0] != '[' {
		return errors.New("a server-side event without data")
	}
	if err := checkEventData(m.Data, att); err != nil {
		return fmt.Errorf("a server-side event: %w", err)
	}
	p := &socketio.Packet{Type: socketio.PacketEvent, Namespace: a.ns.Name(), ID: -1, Data: m.Data, Attachments: att}
	if len(att) > 0 {
		p.Type = socketio.PacketBinaryEvent
	}
	var ack func(*socketio.Packet) error
	if m.RequestID != nil {
		p.ID = 0
		reqID := *m.RequestID
		ack = func(ap *socketio.Packet) error {
			// Only the first argument travels, as with the Node adapter;
			// always on the shared response channel.
			args, err := socketio.NewArgs(ap.Data, ap.Attachments)
			if err != nil {
				return err
			}
			if a.cluster {
				o := (&jsonObject{}).str("requestId", reqID)
				var att [][]byte
				if args.Len() > 0 {
					o.raw("packet", args.Raw(0))
					att = args.Attachments()
				}
				return a.clusterPublish(a.responseChannelOf(m.UID), cmServerSideEmitResp, o.bytes(), att)
			}
			r := &message{Type: reqServerSideEmit, RequestID: &reqID}
			if args.Len() > 0 {
				r.Data = args.Raw(0)
			}
			b, err := encodeRequest(r, args.Attachments())
			if err != nil {
				return fmt.Errorf("redis: encoding an acknowledgement: %w", err)
			}
			return a.enqueue(a.responseChannel, b, nil)
		}
	}
	select {
	case a.sseq <- func() { a.ns.ServeServerSideEmit(p, ack) }:
		return nil
	default:
		return errors.New("too many server-side events waiting for their handlers")
	}
}

// serveServerSide runs the server-side event handlers one at a time, in
// order, so that a slow handler does not hold the subscriptions up.
func (a *Adapter) serveServerSide() {
	defer a.wg.Done()
	for {
		select {
		case <-a.ctx.Done():
			return
		case fn := <-a.sseq:
			func() {
				defer func() {
					if v := recover(); v != nil {
						a.log.Error("redis: panic in a server-side event handler", "panic", v)
					}
				}()
				fn()
			}()
		}
	}
}

// onResponse routes an answer to the request of this server it is for.
func (a *Adapter) onResponse(b []byte) error {
	m, att, err := decodeMessage(b)
	if err != nil {
		return fmt.Errorf("a response: %w", err)
	}
	return a.routeResponse(m, att)
}

// routeResponse routes answer m to the request of this server it is for.
func (a *Adapter) routeResponse(m *message, att [][]byte) error {
	if m.RequestID == nil {
		return nil
	}
	id := *m.RequestID
	a.mu.Lock()
	r := a.requests[id]
	if r == nil || r.finished {
		a.mu.Unlock()
		return nil // another server's, or too late
	}
	switch r.typ {
	case reqBroadcast:
		switch m.Type {
		case reqBroadcastClientCount:
			if m.ClientCount != nil && !r.countDone {
				r.clients += *m.ClientCount
				r.got++
				if r.got >= r.expected {
					r.countDone = true
					close(r.counted)
				}
			}
			a.mu.Unlock()
		case reqBroadcastAck:
			r.acks++
			ack := r.ack
			if r.countDone && r.acks >= r.clients {
				a.finishLocked(id, r)
			}
			a.mu.Unlock()
			var raw json.RawMessage
			if len(m.Packet) > 0 {
				raw = append(append(json.RawMessage{'['}, m.Packet...), ']')
			} else {
				raw = json.RawMessage("[]")
			}
			args, err := socketio.NewArgs(raw, att)
			if err != nil {
				return fmt.Errorf("an acknowledgement: %w", err)
			}
			ack(args)
		default:
			a.mu.Unlock()
		}
	case reqRemoteFetch:
		var socks []jsSocket
		if err := json.Unmarshal(m.Sockets, &socks); err != nil {
			a.mu.Unlock()
			return fmt.Errorf("a fetchSockets answer: %w", err)
		}
		for i := range socks {
			r.sockets = append(r.sockets, socks[i].info())
		}
		r.got++
		if r.got >= r.expected {
			a.finishLocked(id, r)
		}
		a.mu.Unlock()
	case reqAllRooms:
		r.rooms = append(r.rooms, rooms(m.Rooms)...)
		r.got++
		if r.got >= r.expected {
			a.finishLocked(id, r)
		}
		a.mu.Unlock()
	case reqServerSideEmit:
		r.got++
		ack := r.ack
		if r.got >= r.expected {
			a.finishLocked(id, r)
		}
		a.mu.Unlock()
		raw := json.RawMessage("[]")
		if len(m.Data) > 0 {
			raw = append(append(json.RawMessage{'['}, m.Data...), ']')
		}
		args, err := socketio.NewArgs(raw, att)
		if err != nil {
			return fmt.Errorf("a serverSideEmit answer: %w", err)
		}
		ack(args)
	default:
		a.mu.Unlock()
	}
	return nil
}
