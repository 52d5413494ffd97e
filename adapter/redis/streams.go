package redis

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/duplexrt/duplex/socketio"
	goredis "github.com/redis/go-redis/v9"
)

// The Redis Streams adapter, as @socket.io/redis-streams-adapter 0.3 (on
// socket.io-adapter's ClusterAdapter): the broadcasts and the room and
// disconnect requests go through one Redis stream, whose entry ids are
// the offsets of connection state recovery; the rest (broadcasts with
// acknowledgements, fetchSockets, serverSideEmit, the answers) through
// pub/sub. Sessions are kept in Redis, so that a client that reconnects
// to another server gets its socket back with the packets it missed.

// StreamsOptions configures NewStreams. A nil *StreamsOptions means the
// defaults.
type StreamsOptions struct {
	// StreamName is the Redis stream. Empty means "socket.io".
	StreamName string
	// ChannelPrefix prefixes the pub/sub channels. Empty means
	// "socket.io".
	ChannelPrefix string
	// MaxLen bounds the stream (approximately: MAXLEN ~). Zero means
	// 10,000.
	MaxLen int64
	// ReadCount is the number of entries an XREAD fetches. Zero means 100.
	ReadCount int64
	// BlockTime is how long an XREAD waits for entries. Zero means 5 s.
	BlockTime time.Duration
	// SessionKeyPrefix prefixes the keys of the sessions. Empty means
	// "sio:session:".
	SessionKeyPrefix string
	// Recovery must be the server's ServerOptions.Recovery (the adapter
	// cannot read it): with it, the events broadcast get their stream
	// offset as last argument and the sessions are kept for its
	// MaxDisconnectionDuration. Nil: no recovery.
	Recovery *socketio.RecoveryOptions
	// RequestsTimeout, as Options.RequestsTimeout.
	RequestsTimeout time.Duration
	// Logger, as Options.Logger.
	Logger *slog.Logger
}

// StreamsAdapter is the adapter of one namespace made by NewStreams: a
// socketio.SessionAdapter.
type StreamsAdapter struct {
	*Adapter
}

// restoredState notes, for the sockets just restored, the last stream
// entry their missed packets covered: this server's reader, which may be
// behind, does not deliver them those entries again.
type restoredState struct {
	mu   sync.Mutex
	upTo map[string]string // socket id → stream id
}

// restored records that socket sid got the entries up to id.
func (a *Adapter) restoredUpTo(sid, id string) {
	r := &a.streamsRestored
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.upTo == nil {
		r.upTo = make(map[string]string)
	}
	r.upTo[sid] = id
}

// exceptRestored returns opts, excepting the restored sockets that got
// entry id already; it forgets those the reader has gone past.
func (a *Adapter) exceptRestored(opts *socketio.BroadcastOptions, id string) *socketio.BroadcastOptions {
	r := &a.streamsRestored
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.upTo) == 0 {
		return opts
	}
	o := *opts
	o.Except = slices.Clone(opts.Except)
	for sid, upTo := range r.upTo {
		if streamIDLess(upTo, id) {
			delete(r.upTo, sid)
		} else {
			o.Except = append(o.Except, sid)
		}
	}
	return &o
}

// streamIDLess compares stream ids <ms>-<seq>.
func streamIDLess(x, y string) bool {
	xm, xs, _ := strings.Cut(x, "-")
	ym, ys, _ := strings.Cut(y, "-")
	xmi, _ := strconv.ParseUint(xm, 10, 64)
	ymi, _ := strconv.ParseUint(ym, 10, 64)
	xsi, _ := strconv.ParseUint(xs, 10, 64)
	ysi, _ := strconv.ParseUint(ys, 10, 64)
	return xmi < ymi || xmi == ymi && xsi < ysi
}

var _ socketio.SessionAdapter = (*StreamsAdapter)(nil)

// NewStreams returns a function that makes the adapter of each
// namespace, for socketio.ServerOptions.NewAdapter, with the Redis
// Streams adapter's wire format. Set StreamsOptions.Recovery to the
// server's ServerOptions.Recovery for connection state recovery across
// the servers.
func NewStreams(client goredis.UniversalClient, opts *StreamsOptions) func(ns *socketio.Namespace) socketio.Adapter {
	so := StreamsOptions{}
	if opts != nil {
		so = *opts
	}
	if so.StreamName == "" {
		so.StreamName = "socket.io"
	}
	if so.ChannelPrefix == "" {
		so.ChannelPrefix = "socket.io"
	}
	if so.MaxLen <= 0 {
		so.MaxLen = 10_000
	}
	if so.ReadCount <= 0 {
		so.ReadCount = 100
	}
	if so.BlockTime <= 0 {
		so.BlockTime = 5 * time.Second
	}
	if so.SessionKeyPrefix == "" {
		so.SessionKeyPrefix = "sio:session:"
	}
	if so.Recovery != nil {
		r := *so.Recovery
		if r.MaxDisconnectionDuration <= 0 {
			r.MaxDisconnectionDuration = 2 * time.Minute
		}
		so.Recovery = &r
	}
	mk := New(client, &Options{Key: so.ChannelPrefix, RequestsTimeout: so.RequestsTimeout, Logger: so.Logger, streams: &so})
	return func(ns *socketio.Namespace) socketio.Adapter {
		return &StreamsAdapter{mk(ns).(*Adapter)}
	}
}

// persistent reports whether messages of type typ go through the stream
// (the others are ephemeral: pub/sub).
func persistent(typ int) bool {
	switch typ {
	case cmBroadcast, cmSocketsJoin, cmSocketsLeave, cmDisconnectSockets:
		return true
	}
	return false
}

// streamEntry is the entry {uid, nsp, type, data} of a message: data is
// the JSON text, or with binary the base64 of its MessagePack form.
func (a *Adapter) streamEntry(typ int, data []byte, attachments [][]byte) ([]any, error) {
	d := string(data)
	if len(attachments) > 0 {
		b, err := appendMsgpackFromJSON(nil, data, attachments)
		if err != nil {
			return nil, err
		}
		d = base64.StdEncoding.EncodeToString(b)
	}
	return []any{"uid", a.uid, "nsp", a.ns.Name(), "type", strconv.Itoa(typ), "data", d}, nil
}

// decodeEntry returns the message of a stream entry.
func decodeEntry(values map[string]any) (*clusterMessage, [][]byte, error) {
	str := func(k string) string { s, _ := values[k].(string); return s }
	typ, err := strconv.Atoi(str("type"))
	if err != nil {
		return nil, nil, fmt.Errorf("an entry's type: %w", err)
	}
	nsp := str("nsp")
	cm := &clusterMessage{Type: typ, UID: str("uid"), Nsp: &nsp}
	var att [][]byte
	if d := str("data"); d != "" {
		text := []byte(d)
		if d[0] != '{' {
			b, err := base64.StdEncoding.DecodeString(d)
			if err != nil {
				return nil, nil, fmt.Errorf("an entry's data: %w", err)
			}
			var rest []byte
			if text, rest, err = msgpackToJSON(nil, b, &att); err != nil {
				return nil, nil, fmt.Errorf("an entry's data: %w", err)
			}
			if len(rest) > 0 {
				return nil, nil, fmt.Errorf("an entry's data: %w", errBadMsgpack)
			}
		}
		if err := json.Unmarshal(text, &cm.Data); err != nil {
			return nil, nil, fmt.Errorf("an entry's data: %w", err)
		}
	}
	return cm, att, nil
}

// streamStart returns the id after which this server reads the stream:
// its last entry now (the Node adapter's "$", without missing what is
// added before the first XREAD).
func (a *Adapter) streamStart() string {
	ctx, cancel := context.WithTimeout(a.ctx, a.opts.RequestsTimeout)
	defer cancel()
	es, err := a.client.XRevRangeN(ctx, a.streams.StreamName, "+", "-", 1).Result()
	if err != nil || len(es) == 0 {
		if err != nil {
			a.log.Warn("redis: reading the stream's last id", "err", err)
		}
		return "0-0"
	}
	return es[0].ID
}

// The stream reader's wait after a failed XREAD: it doubles from
// readRetryMin up to readRetryMax, with jitter, and starts again from
// readRetryMin after a success, so that a reader neither spins while
// Redis is away nor lags long once it is back.
const (
	readRetryMin = 100 * time.Millisecond
	readRetryMax = 2 * time.Second
)

// readStream reads the stream until Close (which adds an entry without
// nsp, ignored by every reader, to end the XREAD at once). Its offset
// survives a Redis restart; entries added while it could not read are
// read after, if Redis kept them.
func (a *Adapter) readStream(offset string) {
	defer a.wg.Done()
	retry := time.NewTimer(0)
	defer retry.Stop()
	<-retry.C
	wait := readRetryMin
	for a.ctx.Err() == nil {
		res, err := a.client.XRead(a.ctx, &goredis.XReadArgs{
			Streams: []string{a.streams.StreamName, offset},
			Count:   a.streams.ReadCount,
			Block:   a.streams.BlockTime,
		}).Result()
		if a.ctx.Err() != nil {
			return
		}
		if errors.Is(err, goredis.Nil) {
			err = nil // nothing new within BlockTime
		}
		a.setStream(err)
		if err != nil {
			a.log.Warn("redis: reading the stream; retrying", "err", err, "in", wait)
			a.checkSoon()
			retry.Reset(wait/2 + rand.N(wait/2+1))
			select {
			case <-a.ctx.Done():
				return
			case <-retry.C:
			}
			wait = min(2*wait, readRetryMax)
			continue
		}
		wait = readRetryMin
		for _, st := range res {
			for _, e := range st.Messages {
				offset = e.ID
				if nsp, _ := e.Values["nsp"].(string); nsp != a.ns.Name() {
					continue
				}
				a.handleEntry(e)
			}
		}
	}
}

func (a *Adapter) handleEntry(e goredis.XMessage) {
	defer func() {
		if v := recover(); v != nil {
			a.log.Error("redis: panic handling a stream entry", "id", e.ID, "panic", v)
		}
	}()
	cm, att, err := decodeEntry(e.Values)
	if err == nil {
		err = a.onCluster("", cm, att, e.ID)
	}
	if err != nil {
		a.log.Warn("redis: stream entry dropped", "id", e.ID, "err", err)
	}
}

// wakeReaders adds an entry without nsp, which every reader skips: the
// blocked XREADs return, and Close need not wait for BlockTime.
func (a *Adapter) wakeReaders() {
	ctx, cancel := context.WithTimeout(context.Background(), closeDrainTime)
	defer cancel()
	_ = a.client.XAdd(ctx, &goredis.XAddArgs{Stream: a.streams.StreamName, MaxLen: a.streams.MaxLen, Approx: true, ID: "*", Values: []any{"uid", a.uid}}).Err()
}

// recoverable reports whether p, broadcast with opts, gets an offset.
func (a *Adapter) recoverable(p *socketio.Packet, opts *socketio.BroadcastOptions) bool {
	return a.streams != nil && a.streams.Recovery != nil &&
		(p.Type == socketio.PacketEvent || p.Type == socketio.PacketBinaryEvent) && p.ID < 0 && !opts.Volatile
}

// withOffset returns data, a JSON array, with offset appended.
func withOffset(data json.RawMessage, offset string) json.RawMessage {
	if len(data) < 2 || data[len(data)-1] != ']' {
		return data
	}
	out := make([]byte, 0, len(data)+len(offset)+3)
	out = append(out, data[:len(data)-1]...)
	if len(data) > 2 {
		out = append(out, ',')
	}
	out = appendJSONString(out, []byte(offset))
	return append(out, ']')
}

// deliverWithOffset delivers p to this process's sockets with the stream
// offset as last argument, when it is an event recovery keeps.
func (a *Adapter) deliverWithOffset(p *socketio.Packet, opts *socketio.BroadcastOptions, offset string) error {
	opts = a.exceptRestored(opts, offset)
	if !a.recoverable(p, opts) {
		return a.mem.Broadcast(p, opts)
	}
	q := *p
	// The trailing space (valid JSON) keeps the socketio.MemoryAdapter,
	// which records packets for its own recovery when the server has
	// Recovery, from appending an offset of its own: it appends only to
	// data that ends with ']'.
	q.Data = append(withOffset(p.Data, offset), ' ')
	return a.mem.Broadcast(&q, opts)
}

// deliverWithoutOffset delivers p to this process's sockets at once,
// without an offset: an event the stream did not take has none, and an
// offset of this process's memory (what the socketio.MemoryAdapter would
// append when the server has Recovery) would mean nothing to the other
// servers, and to this one once the stream is read again.
func (a *Adapter) deliverWithoutOffset(p *socketio.Packet, opts *socketio.BroadcastOptions) error {
	if !a.recoverable(p, opts) {
		return a.mem.Broadcast(p, opts)
	}
	q := *p
	q.Data = append(slices.Clip(p.Data), ' ') // see deliverWithOffset
	return a.mem.Broadcast(&q, opts)
}

// Broadcast adds the broadcast to the stream (unless opts.Local) and
// delivers it to this process's sockets. It waits for Redis
// (Options.RequestsTimeout at most). An event that recovery keeps
// reaches the local sockets through this server's stream reader, with
// the entry's id as offset, like the other servers' events: every
// client gets them in the stream's order. The others are delivered at
// once. If the stream cannot be written, the local delivery is done at
// once, without offset, and the error returned.
func (s *StreamsAdapter) Broadcast(p *socketio.Packet, opts *socketio.BroadcastOptions) error {
	a := s.Adapter
	if opts.Local {
		return a.mem.Broadcast(p, opts)
	}
	data := (&jsonObject{}).raw("packet", clusterPacket(p)).value("opts", toWireOpts(opts)).bytes()
	entry, err := a.streamEntry(cmBroadcast, data, p.Attachments)
	if err != nil {
		return fmt.Errorf("redis: encoding a broadcast: %w", err)
	}
	var id string
	ctx, cancel := context.WithTimeout(a.ctx, a.opts.RequestsTimeout)
	defer cancel()
	if err := a.publishWaitPub(ctx, publication{entry: entry, id: &id}); err != nil {
		if lerr := a.deliverWithoutOffset(p, opts); lerr != nil {
			return lerr
		}
		return err
	}
	if a.recoverable(p, opts) {
		return nil // delivered by the reader
	}
	return a.deliverWithOffset(p, opts, id)
}

// The sessions: SET <prefix><pid> base64(MessagePack {sid, pid, rooms,
// data}) PX <MaxDisconnectionDuration>, as the Node adapter.

var offsetRE = regexp.MustCompile(`^[0-9]+-[0-9]+$`)

// restoreMaxCalls bounds the XRANGE calls of one RestoreSession, as the
// Node adapter's RESTORE_SESSION_MAX_XRANGE_CALLS.
const restoreMaxCalls = 100

// PersistSession keeps st in Redis for the recovery's
// MaxDisconnectionDuration. It does nothing without
// StreamsOptions.Recovery.
func (s *StreamsAdapter) PersistSession(st *socketio.SessionState) {
	a := s.Adapter
	if a.streams.Recovery == nil {
		return
	}
	o := (&jsonObject{}).str("sid", st.SID).str("pid", st.PID).value("rooms", jsRooms(st.Rooms))
	switch d := st.Data.(type) {
	case nil:
		o.raw("data", []byte("null"))
	case json.RawMessage:
		o.raw("data", d)
	default:
		o.value("data", d)
	}
	b, err := appendMsgpackFromJSON(nil, o.bytes(), nil)
	if err != nil {
		a.log.Warn("redis: encoding a session", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(a.ctx, a.opts.RequestsTimeout)
	defer cancel()
	if err := a.client.Set(ctx, a.streams.SessionKeyPrefix+st.PID, base64.StdEncoding.EncodeToString(b), a.streams.Recovery.MaxDisconnectionDuration).Err(); err != nil {
		a.log.Warn("redis: keeping a session", "err", err)
	}
}

// RestoreSession takes session pid out of Redis and returns it with the
// events broadcast to it after offset (a stream id), or nil when the
// session or the offset is unknown. Its Data comes back as
// json.RawMessage (nil for null).
func (s *StreamsAdapter) RestoreSession(pid, offset string) (*socketio.SessionState, error) {
	a := s.Adapter
	if a.streams.Recovery == nil || !offsetRE.MatchString(offset) {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(a.ctx, a.opts.RequestsTimeout)
	defer cancel()
	key := a.streams.SessionKeyPrefix + pid
	var get *goredis.StringCmd
	_, err := a.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		get = p.Get(ctx, key)
		p.Del(ctx, key)
		return nil
	})
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redis: restoring a session: %w", err)
	}
	at, err := a.client.XRange(ctx, a.streams.StreamName, offset, offset).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: restoring a session: %w", err)
	}
	if len(at) == 0 {
		return nil, nil // the offset is too old
	}
	raw, err := base64.StdEncoding.DecodeString(get.Val())
	if err != nil {
		return nil, fmt.Errorf("redis: a session: %w", err)
	}
	text, _, err := msgpackToJSON(nil, raw, new([][]byte))
	if err != nil {
		return nil, fmt.Errorf("redis: a session: %w", err)
	}
	var js struct {
		SID   string          `json:"sid"`
		PID   string          `json:"pid"`
		Rooms []jsRoom        `json:"rooms"`
		Data  json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(text, &js); err != nil {
		return nil, fmt.Errorf("redis: a session: %w", err)
	}
	st := &socketio.SessionState{SID: js.SID, PID: js.PID, Rooms: rooms(js.Rooms)}
	if len(js.Data) > 0 && string(js.Data) != "null" {
		st.Data = js.Data
	}
	for range restoreMaxCalls {
		es, err := a.client.XRangeN(ctx, a.streams.StreamName, "("+offset, "+", 1000).Result()
		if err != nil {
			return nil, fmt.Errorf("redis: restoring a session: %w", err)
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			offset = e.ID
			if nsp, _ := e.Values["nsp"].(string); nsp != a.ns.Name() || e.Values["type"] != "3" {
				continue
			}
			cm, att, err := decodeEntry(e.Values)
			if err != nil || cm.Data.RequestID != nil || cm.Data.Opts == nil {
				continue
			}
			opts := cm.Data.Opts.options()
			if !includes(st.Rooms, opts) {
				continue
			}
			var jp jsPacket
			if json.Unmarshal(cm.Data.Packet, &jp) != nil {
				continue
			}
			p, err := jp.packet(att)
			if err != nil || !a.recoverable(p, opts) {
				continue
			}
			p.Namespace = a.ns.Name()
			p.Data = withOffset(p.Data, e.ID)
			st.Missed = append(st.Missed, p)
		}
	}
	a.restoredUpTo(st.SID, offset)
	return st, nil
}

// includes reports whether a socket in rooms was a target of a broadcast
// with opts (the Node adapter's shouldIncludePacket).
func includes(rooms []string, opts *socketio.BroadcastOptions) bool {
	in := len(opts.Rooms) == 0
	for _, r := range rooms {
		if slices.Contains(opts.Except, r) {
			return false
		}
		if !in && slices.Contains(opts.Rooms, r) {
			in = true
		}
	}
	return in
}
