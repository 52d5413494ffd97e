package redis

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/duplexrt/duplex/socketio"
)

// The sharded variant: Redis sharded pub/sub (SSUBSCRIBE, SPUBLISH,
// PUBSUB SHARDNUMSUB; Redis ≥ 7) and the messages of socket.io-adapter's
// ClusterAdapter, as @socket.io/redis-adapter 8.x's createShardedAdapter
// sends them: {type, data, uid, nsp}, JSON, or MessagePack when data holds
// binary.

// SubscriptionMode chooses the channels of the sharded variant, as the
// Node adapter's subscriptionMode option.
type SubscriptionMode string

const (
	// SubscriptionDynamic (the default): a broadcast to exactly one
	// public room (not a socket's own) goes to that room's channel,
	// <key>#<nsp>#<room>#, to which only the servers with sockets in the
	// room subscribe; the others go to <key>#<nsp>#.
	SubscriptionDynamic SubscriptionMode = "dynamic"
	// SubscriptionDynamicPrivate: as dynamic, for private rooms (a
	// socket's own) too.
	SubscriptionDynamicPrivate SubscriptionMode = "dynamic-private"
	// SubscriptionStatic: every message goes to <key>#<nsp>#.
	SubscriptionStatic SubscriptionMode = "static"
)

// The ClusterAdapter's message types (socket.io-adapter 2.5 MessageType).
const (
	cmBroadcast            = 3
	cmSocketsJoin          = 4
	cmSocketsLeave         = 5
	cmDisconnectSockets    = 6
	cmFetchSockets         = 7
	cmFetchSocketsResponse = 8
	cmServerSideEmit       = 9
	cmServerSideEmitResp   = 10
	cmBroadcastClientCount = 11
	cmBroadcastAck         = 12
)

// clusterMessage is a message of the sharded variant.
type clusterMessage struct {
	Type int         `json:"type"`
	Data clusterData `json:"data"`
	UID  string      `json:"uid"`
	Nsp  *string     `json:"nsp"`
}

type clusterData struct {
	Packet      json.RawMessage `json:"packet"`
	RequestID   *string         `json:"requestId"`
	Opts        *wireOpts       `json:"opts"`
	Rooms       []jsRoom        `json:"rooms"`
	Close       bool            `json:"close"`
	Sockets     json.RawMessage `json:"sockets"`
	ClientCount *int            `json:"clientCount"`
}

// looksLikeASocketID is the Node adapter's test of a private room.
func looksLikeASocketID(room string) bool { return len(room) == 20 }

// clusterEncode returns the message {type, data, uid, nsp}, data being
// the JSON text of the data object with placeholders for attachments: as
// JSON, or as MessagePack when it carries binary (as the Node adapter's
// encode does).
func (a *Adapter) clusterEncode(typ int, data []byte, attachments [][]byte) ([]byte, error) {
	b := make([]byte, 0, 48+len(data)+len(a.uid)+len(a.ns.Name()))
	b = append(b, `{"type":`...)
	b = strconv.AppendInt(b, int64(typ), 10)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	b = append(b, `,"uid":`...)
	b = appendJSONString(b, []byte(a.uid))
	b = append(b, `,"nsp":`...)
	b = appendJSONString(b, []byte(a.ns.Name()))
	b = append(b, '}')
	if len(attachments) == 0 && a.streams == nil {
		return b, nil
	}
	return appendMsgpackFromJSON(nil, b, attachments)
}

// jsonObject builds the JSON text of a data object, keys in order.
type jsonObject struct{ b []byte }

func (o *jsonObject) key(k string) {
	if len(o.b) == 0 {
		o.b = append(o.b, '{')
	} else {
		o.b = append(o.b, ',')
	}
	o.b = appendJSONString(o.b, []byte(k))
	o.b = append(o.b, ':')
}

func (o *jsonObject) raw(k string, v []byte) *jsonObject {
	o.key(k)
	o.b = append(o.b, v...)
	return o
}

func (o *jsonObject) str(k, v string) *jsonObject {
	o.key(k)
	o.b = appendJSONString(o.b, []byte(v))
	return o
}

func (o *jsonObject) value(k string, v any) *jsonObject {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte("null")
	}
	return o.raw(k, b)
}

func (o *jsonObject) bytes() []byte {
	if len(o.b) == 0 {
		return []byte("{}")
	}
	return append(o.b, '}')
}

// clusterPacket is the packet {type, data} of a broadcast, as the Node
// ClusterAdapter publishes it (before the namespace is set).
func clusterPacket(p *socketio.Packet) []byte {
	o := &jsonObject{}
	o.raw("type", strconv.AppendInt(nil, int64(jsPacketType(p.Type)), 10))
	o.raw("data", p.Data)
	return o.bytes()
}

// clusterPublish queues a message of the sharded variant.
func (a *Adapter) clusterPublish(channel string, typ int, data []byte, attachments [][]byte) error {
	if a.streams != nil && persistent(typ) {
		entry, err := a.streamEntry(typ, data, attachments)
		if err != nil {
			return fmt.Errorf("redis: encoding a message: %w", err)
		}
		return a.enqueuePub(publication{entry: entry})
	}
	b, err := a.clusterEncode(typ, data, attachments)
	if err != nil {
		return fmt.Errorf("redis: encoding a message: %w", err)
	}
	return a.enqueue(channel, b, nil)
}

// broadcastChannel is the channel of a broadcast without acknowledgement
// to rooms (the Node adapter's computeChannel).
func (a *Adapter) broadcastChannel(rooms []string) string {
	if !a.cluster {
		if len(rooms) == 1 {
			return a.channel + rooms[0] + "#"
		}
		return a.channel
	}
	if len(rooms) == 1 {
		switch a.opts.SubscriptionMode {
		case SubscriptionDynamicPrivate:
			return a.channel + rooms[0] + "#"
		case SubscriptionDynamic:
			if !looksLikeASocketID(rooms[0]) {
				return a.channel + rooms[0] + "#"
			}
		}
	}
	return a.channel
}

// responseChannelOf is where the answers to server uid's requests go.
func (a *Adapter) responseChannelOf(uid string) string {
	if a.cluster {
		return a.channel + uid + "#"
	}
	ch := a.responseChannel
	if a.opts.PublishOnSpecificResponseChannel && uid != "" {
		ch += uid + "#"
	}
	return ch
}

// onClusterMessage handles a message of the sharded variant.
func (a *Adapter) onClusterMessage(channel string, b []byte) error {
	var att [][]byte
	if len(b) > 0 && b[0] != '{' {
		text, rest, err := msgpackToJSON(nil, b, &att)
		if err != nil {
			return err
		}
		if len(rest) > 0 {
			return fmt.Errorf("%w: %d bytes after the message", errBadMsgpack, len(rest))
		}
		b = text
	}
	var cm clusterMessage
	if err := json.Unmarshal(b, &cm); err != nil {
		return err
	}
	return a.onCluster(channel, &cm, att, "")
}

// onCluster handles message cm with attachments att; offset is its id in
// the stream, if it came from one. This server's own messages are
// skipped, but for the broadcasts recovery keeps that it read from the
// stream: StreamsAdapter.Broadcast leaves their local delivery to the
// reader, so that they reach the local sockets in the stream's order.
func (a *Adapter) onCluster(channel string, cm *clusterMessage, att [][]byte, offset string) error {
	d := &cm.Data
	own := cm.UID == a.uid
	if own && (offset == "" || cm.Type != cmBroadcast || d.RequestID != nil) {
		return nil
	}
	m := &message{UID: cm.UID, RequestID: d.RequestID, Opts: d.Opts, Rooms: d.Rooms, Close: d.Close}
	switch cm.Type {
	case cmFetchSocketsResponse:
		m.Type, m.Sockets = reqRemoteFetch, d.Sockets
		return a.routeResponse(m, att)
	case cmServerSideEmitResp:
		m.Type, m.Data = reqServerSideEmit, d.Packet
		return a.routeResponse(m, att)
	case cmBroadcastClientCount:
		m.Type, m.ClientCount = reqBroadcastClientCount, d.ClientCount
		return a.routeResponse(m, att)
	case cmBroadcastAck:
		m.Type, m.Packet = reqBroadcastAck, d.Packet
		return a.routeResponse(m, att)
	}
	if channel == a.specificResponseChannel {
		return nil // only answers come there
	}
	if cm.Nsp == nil || *cm.Nsp != a.ns.Name() {
		return nil
	}
	switch cm.Type {
	case cmBroadcast:
		if d.RequestID != nil {
			m.Type, m.Packet = reqBroadcast, d.Packet
			return a.serveRequest(m, att)
		}
		var jp jsPacket
		if err := json.Unmarshal(d.Packet, &jp); err != nil {
			return fmt.Errorf("a broadcast's packet: %w", err)
		}
		p, err := jp.packet(att)
		if err != nil {
			return fmt.Errorf("a broadcast's packet: %w", err)
		}
		p.Namespace = a.ns.Name()
		opts := d.Opts.options()
		if own && !a.recoverable(p, opts) {
			return nil // delivered by Broadcast
		}
		if offset != "" {
			return a.deliverWithOffset(p, opts, offset)
		}
		return a.mem.Broadcast(p, opts)
	case cmSocketsJoin, cmSocketsLeave, cmDisconnectSockets:
		if d.Opts == nil {
			return errors.New("a request without opts")
		}
		m.Type = map[int]requestType{cmSocketsJoin: reqRemoteJoin, cmSocketsLeave: reqRemoteLeave, cmDisconnectSockets: reqRemoteDisconnect}[cm.Type]
	case cmFetchSockets:
		m.Type = reqRemoteFetch
	case cmServerSideEmit:
		m.Type, m.Data = reqServerSideEmit, d.Packet
	default:
		return nil
	}
	return a.serveRequest(m, att)
}

// The dynamic subscriptions of the sharded variant: a server subscribes
// to the channel of each room that has sockets here (public rooms only
// in the dynamic mode), as the Node adapter does on its create-room and
// delete-room events. Changes are noted and a goroutine brings the
// subscriptions in line, in order, without holding up joins.

type roomSubs struct {
	mu         sync.Mutex
	dirty      map[string]struct{}
	signal     chan struct{}
	waiters    []chan struct{} // closed once the changes before are sent
	subscribed map[string]bool // owned by the goroutine
}

// dynamic reports whether rooms get channels of their own.
func (a *Adapter) dynamic() bool {
	return a.opts.Sharded && a.opts.SubscriptionMode != SubscriptionStatic
}

// roomsChanged notes rooms whose members changed.
func (a *Adapter) roomsChanged(rooms ...string) {
	if !a.dynamic() || len(rooms) == 0 {
		return
	}
	a.subs.mu.Lock()
	for _, r := range rooms {
		a.subs.dirty[r] = struct{}{}
	}
	a.subs.mu.Unlock()
	select {
	case a.subs.signal <- struct{}{}:
	default:
	}
}

// wantsChannel reports whether this server should listen to room's
// channel now.
func (a *Adapter) wantsChannel(room string) bool {
	if a.mem.RoomSize(room) == 0 {
		return false
	}
	if a.opts.SubscriptionMode == SubscriptionDynamicPrivate {
		return true
	}
	// Private: the room of a socket of this server (Node's sids.has).
	return len(a.mem.SocketRooms(room)) == 0
}

// subscribeWait bounds how long a join waits for the SSUBSCRIBE of a
// room new to this server to be sent, so that a broadcast to the room
// right after the join reaches it.
const subscribeWait = time.Second

// joined notes that rooms got a member and, when one of them is new to
// this server, waits (subscribeWait at most) for its channel's
// SSUBSCRIBE to be written.
func (a *Adapter) joined(rooms []string) {
	if !a.dynamic() {
		return
	}
	isNew := false
	for _, r := range rooms {
		if a.mem.RoomSize(r) == 1 && a.wantsChannel(r) {
			isNew = true
			break
		}
	}
	if !isNew {
		a.roomsChanged(rooms...)
		return
	}
	done := make(chan struct{})
	a.subs.mu.Lock()
	a.subs.waiters = append(a.subs.waiters, done)
	a.subs.mu.Unlock()
	a.roomsChanged(rooms...)
	t := time.NewTimer(subscribeWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-a.ctx.Done():
	}
}

// syncSubscriptions runs until Close.
func (a *Adapter) syncSubscriptions() {
	defer a.wg.Done()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-a.subs.signal:
		}
		a.subs.mu.Lock()
		dirty, waiters := a.subs.dirty, a.subs.waiters
		a.subs.dirty, a.subs.waiters = make(map[string]struct{}), nil
		a.subs.mu.Unlock()
		var sub, unsub []string
		for r := range dirty {
			want := a.wantsChannel(r)
			if want == a.subs.subscribed[r] {
				continue
			}
			if want {
				sub = append(sub, a.channel+r+"#")
				a.subs.subscribed[r] = true
			} else {
				unsub = append(unsub, a.channel+r+"#")
				delete(a.subs.subscribed, r)
			}
		}
		// go-redis remembers the channels and subscribes again after a
		// reconnection, even when the command fails now.
		if len(sub) > 0 {
			if err := a.ps.SSubscribe(a.ctx, sub...); err != nil && a.ctx.Err() == nil {
				a.log.Warn("redis: SSUBSCRIBE failed", "err", err)
			}
		}
		if len(unsub) > 0 {
			if err := a.ps.SUnsubscribe(a.ctx, unsub...); err != nil && a.ctx.Err() == nil {
				a.log.Warn("redis: SUNSUBSCRIBE failed", "err", err)
			}
		}
		for _, w := range waiters {
			close(w)
		}
	}
}
