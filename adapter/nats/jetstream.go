package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/duplexrt/duplex/socketio"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The JetStream adapter: the adapter of New, whose broadcasts, room
// broadcasts and requests a JetStream stream also records. Every server
// reads them from the stream, in the stream's order, instead of
// subscribing to their subjects; the stream sequence of an event is its
// connection state recovery offset. Sessions wait in a key-value bucket.
// See the package documentation, "# Connection state recovery".

// Defaults of JetStreamOptions.
const (
	// DefaultStreamMaxMsgs bounds the messages of the stream when
	// JetStreamOptions.MaxMsgs is zero (RecoveryOptions.MaxPackets's
	// default).
	DefaultStreamMaxMsgs = 100_000
	// DefaultStreamMaxBytes bounds the bytes of the stream when
	// JetStreamOptions.MaxBytes is zero (RecoveryOptions.MaxBytes's
	// default).
	DefaultStreamMaxBytes = 64 << 20
	// DefaultStreamMaxAge is how long the stream keeps a message when
	// JetStreamOptions.MaxAge is zero and there is no Recovery (with
	// Recovery, its MaxDisconnectionDuration).
	DefaultStreamMaxAge = 2 * time.Minute
)

// Bounds of a restore.
const (
	restoreBatch   = 1000    // messages per fetch
	restoreMaxMsgs = 100_000 // messages read, missed or not, per restore
)

// JetStreamOptions configures NewJetStream. A nil *JetStreamOptions
// means the defaults. All the servers of a cluster should use the same:
// each one that starts updates the stream and the bucket to its limits.
type JetStreamOptions struct {
	// Prefix, RequestsTimeout, HeartbeatInterval and Logger are those of
	// Options. Servers made with New and with NewJetStream on the same
	// prefix form one cluster.
	Prefix            string
	RequestsTimeout   time.Duration
	HeartbeatInterval time.Duration
	Logger            *slog.Logger

	// Recovery must be the server's ServerOptions.Recovery (the adapter
	// cannot read it): with it, the events broadcast get their stream
	// sequence as offset (last argument) and disconnected sessions wait
	// in the bucket for its MaxDisconnectionDuration. Nil: no recovery,
	// no bucket.
	Recovery *socketio.RecoveryOptions

	// Stream names the stream, which records the subjects
	// <prefix>.*.broadcast, <prefix>.*.room.* and <prefix>.*.request.
	// Empty means the prefix, each character other than A–Z a–z 0–9 _ -
	// replaced by '_' ("duplex" by default): set it when two prefixes
	// would give the same name ("a.b" and "a_b"), or one server would
	// update the other's stream to its subjects.
	Stream string
	// SessionBucket names the key-value bucket of the sessions. Empty
	// means Stream + "_sessions".
	SessionBucket string
	// MaxAge is how long the stream keeps a message. Zero means
	// Recovery.MaxDisconnectionDuration, or DefaultStreamMaxAge without
	// Recovery; a shorter age makes recovery fail sooner. Negative
	// means no limit.
	MaxAge time.Duration
	// MaxMsgs bounds the messages of the stream, the oldest dropped
	// first; a client whose offset was dropped is not recovered. Zero
	// means DefaultStreamMaxMsgs. Negative means no limit.
	MaxMsgs int64
	// MaxBytes bounds the bytes of the stream (subjects, headers and
	// data), the oldest dropped first. Zero means DefaultStreamMaxBytes.
	// Negative means no limit.
	MaxBytes int64
	// MemoryStorage keeps the stream and the bucket in the NATS server's
	// memory rather than in files: faster, but a restart of the NATS
	// server loses them, and the servers' recovery with them. False
	// means file storage.
	MemoryStorage bool
	// Replicas is the stream's and the bucket's replica count in a
	// clustered JetStream. Zero means 1.
	Replicas int
}

// JetStreamAdapter is the adapter of one namespace made by NewJetStream:
// an Adapter whose broadcasts and requests go through the stream, and a
// socketio.SessionAdapter. Its methods are safe for concurrent use.
type JetStreamAdapter struct {
	*Adapter
	js       jetstream.JetStream
	kv       jetstream.KeyValue // nil without Recovery
	stream   string
	recovery *socketio.RecoveryOptions
	// filters select this namespace's subjects of the stream, where the
	// NATS server can (2.10 or later); nil, on older servers, reads the
	// whole stream, and the subjects of other namespaces are skipped.
	filters []string

	ctx     context.Context // ends with Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closing sync.Once

	mu   sync.Mutex
	iter jetstream.MessagesContext // the live consumer's, stopped by Close
	cons jetstream.Consumer

	restoredMu sync.Mutex
	restored   map[string]uint64 // socket id → last sequence its restore covered
}

var _ socketio.SessionAdapter = (*JetStreamAdapter)(nil)

// NewJetStream creates (or updates) the stream and, with Recovery, the
// session bucket, then returns a function that makes the adapter of each
// namespace, for socketio.ServerOptions.NewAdapter. nc must be
// connected, to a NATS server with JetStream (nats-server -js, 2.9 or
// later); ctx bounds the setup. The adapters are closed by the
// socketio.Server's Close, which does not close nc.
func NewJetStream(ctx context.Context, nc *natsgo.Conn, opts *JetStreamOptions) (func(ns *socketio.Namespace) socketio.Adapter, error) {
	o := JetStreamOptions{}
	if opts != nil {
		o = *opts
	}
	if o.Prefix == "" {
		o.Prefix = "duplex"
	}
	if err := CheckPrefix(o.Prefix); err != nil {
		return nil, err
	}
	if o.Stream == "" {
		o.Stream = streamName(o.Prefix)
	}
	if o.SessionBucket == "" {
		o.SessionBucket = o.Stream + "_sessions"
	}
	if o.Recovery != nil {
		r := *o.Recovery
		if r.MaxDisconnectionDuration <= 0 {
			r.MaxDisconnectionDuration = 2 * time.Minute
		}
		o.Recovery = &r
	}
	if o.MaxAge == 0 {
		o.MaxAge = DefaultStreamMaxAge
		if o.Recovery != nil {
			o.MaxAge = o.Recovery.MaxDisconnectionDuration
		}
	}
	limit := func(v, def int64) int64 {
		switch {
		case v == 0:
			return def
		case v < 0:
			return -1
		}
		return v
	}
	storage, replicas := jetstream.FileStorage, max(o.Replicas, 1)
	if o.MemoryStorage {
		storage = jetstream.MemoryStorage
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("nats: jetstream: %w", err)
	}
	sc := jetstream.StreamConfig{
		Name:        o.Stream,
		Description: "Duplex Socket.IO broadcasts and requests of prefix " + o.Prefix,
		Subjects:    []string{o.Prefix + ".*.broadcast", o.Prefix + ".*.room.*", o.Prefix + ".*.request"},
		MaxMsgs:     limit(o.MaxMsgs, DefaultStreamMaxMsgs),
		MaxBytes:    limit(o.MaxBytes, DefaultStreamMaxBytes),
		MaxAge:      max(o.MaxAge, 0),
		Discard:     jetstream.DiscardOld,
		Storage:     storage,
		Replicas:    replicas,
		AllowDirect: true,
	}
	if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
		return nil, fmt.Errorf("nats: creating stream %s: %w", o.Stream, err)
	}
	var kv jetstream.KeyValue
	if o.Recovery != nil {
		kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      o.SessionBucket,
			Description: "Duplex Socket.IO sessions of prefix " + o.Prefix,
			TTL:         o.Recovery.MaxDisconnectionDuration,
			Storage:     storage,
			Replicas:    replicas,
		})
		if err != nil {
			return nil, fmt.Errorf("nats: creating bucket %s: %w", o.SessionBucket, err)
		}
	}
	mk := New(nc, &Options{
		Prefix:            o.Prefix,
		RequestsTimeout:   o.RequestsTimeout,
		HeartbeatInterval: o.HeartbeatInterval,
		Logger:            o.Logger,
		streamed:          true,
	})
	return func(ns *socketio.Namespace) socketio.Adapter {
		j := &JetStreamAdapter{
			js:       js,
			kv:       kv,
			stream:   o.Stream,
			recovery: o.Recovery,
			restored: make(map[string]uint64),
		}
		j.ctx, j.cancel = context.WithCancel(context.Background())
		if multipleFilters(nc) {
			base := o.Prefix + "." + token(ns.Name())
			j.filters = []string{base + ".broadcast", base + ".room.*", base + ".request"}
		}
		// The consumer starts before the adapter says hello, so that
		// nothing sent to this server once it is counted is missed.
		cons, cerr := j.newConsumer(0)
		j.Adapter = mk(ns).(*Adapter)
		if cerr != nil {
			j.log.Warn("nats: creating the stream consumer; retrying", "stream", j.stream, "err", cerr)
		}
		j.wg.Add(1)
		go j.consume(cons)
		return j
	}, nil
}

// streamName turns a prefix into a stream name: A–Z a–z 0–9 _ - kept,
// every other character '_'.
func streamName(prefix string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, prefix)
}

// multipleFilters reports whether the NATS server of nc takes consumers
// with several filter subjects (2.10 or later). 2.9 takes one, which
// must be a subset of one of the stream's subjects: none selects a
// namespace's broadcast, room and request subjects.
func multipleFilters(nc *natsgo.Conn) bool {
	major, rest, _ := strings.Cut(nc.ConnectedServerVersion(), ".")
	minor, _, _ := strings.Cut(rest, ".")
	x, err1 := strconv.Atoi(major)
	y, err2 := strconv.Atoi(minor)
	return err1 == nil && err2 == nil && (x > 2 || x == 2 && y >= 10)
}

// newConsumer makes the ordered consumer of this namespace's subjects,
// from message after+1, or with after zero from the next message.
func (j *JetStreamAdapter) newConsumer(after uint64) (jetstream.Consumer, error) {
	timeout := j.requestsTimeout()
	ctx, cancel := context.WithTimeout(j.ctx, timeout)
	defer cancel()
	if after == 0 {
		// From the stream's end now, by sequence rather than with
		// DeliverNewPolicy: the ordered consumer, recreated after a
		// reconnection before it got a message, would start at the end
		// again, and miss what was recorded meanwhile.
		s, err := j.js.Stream(ctx, j.stream)
		if err != nil {
			return nil, err
		}
		after = s.CachedInfo().State.LastSeq
	}
	return j.js.OrderedConsumer(ctx, j.stream, jetstream.OrderedConsumerConfig{
		FilterSubjects:    j.filters,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       after + 1,
		InactiveThreshold: time.Minute, // of a server that died
	})
}

func (j *JetStreamAdapter) requestsTimeout() time.Duration {
	if j.Adapter != nil {
		return j.opts.RequestsTimeout
	}
	return DefaultRequestsTimeout
}

// consume hands the messages of the stream to the adapter, in the
// stream's order, until Close. The ordered consumer recreates itself
// after a reconnection, from the message after the last one handled, so
// that what was recorded meanwhile is handled then.
func (j *JetStreamAdapter) consume(cons jetstream.Consumer) {
	defer j.wg.Done()
	var last uint64
	for {
		var err error
		if cons == nil {
			cons, err = j.newConsumer(last)
		}
		var it jetstream.MessagesContext
		if err == nil {
			it, err = cons.Messages()
		}
		if err == nil {
			j.mu.Lock()
			if j.ctx.Err() != nil {
				j.mu.Unlock()
				it.Stop()
				return
			}
			j.iter, j.cons = it, cons
			j.mu.Unlock()
			for {
				var m jetstream.Msg
				if m, err = it.Next(); err != nil {
					break
				}
				if seq := j.handleLog(m); seq > 0 {
					last = seq
				}
			}
			it.Stop()
		}
		if j.ctx.Err() != nil {
			return
		}
		j.log.Warn("nats: reading the stream; retrying in 1 s", "stream", j.stream, "err", err)
		cons = nil
		select {
		case <-j.ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// handleLog handles one message of the stream; a malformed one is logged
// and dropped, never a panic. It returns the message's stream sequence.
func (j *JetStreamAdapter) handleLog(m jetstream.Msg) (seq uint64) {
	a := j.Adapter
	subj := m.Subject()
	defer func() {
		if v := recover(); v != nil {
			a.log.Error("nats: panic handling a stream message", "subject", subj, "panic", v)
		}
	}()
	meta, err := m.Metadata()
	if err != nil {
		a.log.Warn("nats: stream message dropped", "subject", subj, "err", err)
		return 0
	}
	seq = meta.Sequence.Stream
	fromLog := m.Headers().Get(deliveryHeader) == deliveryFromStream
	if err := j.dispatchLog(subj, m.Data(), seq, fromLog); err != nil {
		a.log.Warn("nats: stream message dropped", "subject", subj, "seq", seq, "err", err)
	}
	return seq
}

// deliveryHeader, set to deliveryFromStream on a broadcast a server
// records in the stream, tells that server's consumer to deliver it to
// the local sockets too: they get it in the stream's order, after what
// other servers recorded before it. The other messages a server
// publishes are delivered locally by Broadcast, and skipped by its
// consumer.
const (
	deliveryHeader     = "Duplex-Delivery"
	deliveryFromStream = "stream"
)

// dispatchLog handles message seq of the stream, on subject subj. This
// server's own messages are skipped unless fromLog (deliveryHeader).
func (j *JetStreamAdapter) dispatchLog(subj string, data []byte, seq uint64, fromLog bool) error {
	a := j.Adapter
	if len(data) > maxMessageSize {
		return fmt.Errorf("a message of %d bytes, more than %d", len(data), maxMessageSize)
	}
	room, isRoom := strings.CutPrefix(subj, a.roomPrefix)
	if isRoom {
		name, err := untoken(room)
		if err != nil {
			return err
		}
		if a.mem.RoomSize(name) == 0 {
			j.exceptRestored(&socketio.BroadcastOptions{}, seq) // forgets what is past
			return nil
		}
	}
	if !isRoom && subj != a.broadcastSubj && subj != a.requestSubj {
		return nil // another namespace's prefix sharing ours
	}
	var e envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return fmt.Errorf("not a message: %w", err)
	}
	if e.UID == a.uid && !fromLog {
		return nil // ours: done locally already
	}
	if len(e.Att) > maxAttachments {
		return fmt.Errorf("%d attachments, more than %d", len(e.Att), maxAttachments)
	}
	if subj == a.requestSubj {
		return a.onRequest(&e)
	}
	if e.Type != typeBroadcast {
		return fmt.Errorf("a message of type %d on a broadcast subject", e.Type)
	}
	p, err := eventPacket(a.ns.Name(), e.Data, e.Att)
	if err != nil {
		return fmt.Errorf("a broadcast: %w", err)
	}
	return j.deliver(p, e.Opts.options(), seq)
}

// recoverable reports whether p, broadcast with opts, gets an offset.
func (j *JetStreamAdapter) recoverable(p *socketio.Packet, opts *socketio.BroadcastOptions) bool {
	return j.recovery != nil && (p.Type == socketio.PacketEvent || p.Type == socketio.PacketBinaryEvent) && p.ID < 0 && !opts.Volatile
}

// deliver delivers p, recorded as message seq of the stream, to this
// process's sockets, with seq as offset when recovery keeps it. The
// sockets restored up to seq or later are left out: they got it.
func (j *JetStreamAdapter) deliver(p *socketio.Packet, opts *socketio.BroadcastOptions, seq uint64) error {
	opts = j.exceptRestored(opts, seq)
	if !j.recoverable(p, opts) {
		return j.mem.Broadcast(p, opts)
	}
	q := *p
	// The trailing space (valid JSON) keeps the socketio.MemoryAdapter,
	// which records packets for its own recovery when the server has
	// Recovery, from appending an offset of its own: it appends only to
	// data that ends with ']'.
	q.Data = append(appendOffset(p.Data, seq), ' ')
	return j.mem.Broadcast(&q, opts)
}

// deliverWithoutOffset delivers p to this process's sockets at once,
// without an offset: an event the stream did not record has none, and
// an offset of this process's memory (what the socketio.MemoryAdapter
// would append when the server has Recovery) would mean nothing to the
// other servers, and to this one once the stream is read again.
func (j *JetStreamAdapter) deliverWithoutOffset(p *socketio.Packet, opts *socketio.BroadcastOptions) error {
	if !j.recoverable(p, opts) {
		return j.mem.Broadcast(p, opts)
	}
	q := *p
	q.Data = append(slices.Clip(p.Data), ' ') // see deliver
	return j.mem.Broadcast(&q, opts)
}

// exceptRestored returns opts, excepting the restored sockets that got
// message seq already, and forgets the sockets whose restore seq is
// past: the messages come in the stream's order.
func (j *JetStreamAdapter) exceptRestored(opts *socketio.BroadcastOptions, seq uint64) *socketio.BroadcastOptions {
	j.restoredMu.Lock()
	defer j.restoredMu.Unlock()
	if len(j.restored) == 0 {
		return opts
	}
	o := *opts
	o.Except = slices.Clone(opts.Except)
	for sid, upTo := range j.restored {
		switch {
		case seq <= upTo:
			o.Except = append(o.Except, sid)
		default:
			delete(j.restored, sid)
		}
	}
	return &o
}

// appendOffset returns data, a JSON array, with the offset seq (a JSON
// string) appended.
func appendOffset(data json.RawMessage, seq uint64) json.RawMessage {
	if len(data) < 2 || data[len(data)-1] != ']' {
		return data
	}
	out := make([]byte, 0, len(data)+24)
	out = append(out, data[:len(data)-1]...)
	if len(data) > 2 {
		out = append(out, ',')
	}
	out = append(out, '"')
	out = strconv.AppendUint(out, seq, 10)
	return append(out, '"', ']')
}

// Broadcast records the broadcast in the stream (unless opts.Local) and
// delivers it to this process's sockets. An event that recovery keeps
// waits for the stream's acknowledgement (Options.RequestsTimeout at
// most), whose sequence is its offset, and reaches the local sockets
// through the stream, like the other servers' events: every client gets
// them in the stream's order. The others, like every broadcast while
// the connection to NATS is down, are published without waiting and
// delivered at once, without offset. If the stream cannot be written,
// the local delivery is done at once, without offset, and the error
// returned.
func (j *JetStreamAdapter) Broadcast(p *socketio.Packet, opts *socketio.BroadcastOptions) error {
	a := j.Adapter
	if opts.Local {
		return a.mem.Broadcast(p, opts)
	}
	if !j.recoverable(p, opts) || !a.nc.IsConnected() {
		err := a.publishBroadcast(p, opts)
		if lerr := j.deliverWithoutOffset(p, opts); lerr != nil {
			return lerr
		}
		return err
	}
	w := toWireOpts(opts)
	subj := a.broadcastSubj
	if len(w.Rooms) == 1 {
		if tok := token(w.Rooms[0]); len(tok) <= maxRoomToken {
			subj = a.roomPrefix + tok
		}
	}
	b, err := json.Marshal(&envelope{UID: a.uid, Type: typeBroadcast, Data: p.Data, Att: p.Attachments, Opts: w})
	if err != nil {
		return fmt.Errorf("nats: encoding a broadcast: %w", err)
	}
	ctx, cancel := context.WithTimeout(j.ctx, a.opts.RequestsTimeout)
	defer cancel()
	msg := &natsgo.Msg{Subject: subj, Data: b, Header: natsgo.Header{deliveryHeader: {deliveryFromStream}}}
	if _, err = j.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(j.stream)); err != nil {
		if lerr := j.deliverWithoutOffset(p, opts); lerr != nil {
			return lerr
		}
		if j.ctx.Err() != nil {
			return ErrClosed
		}
		return fmt.Errorf("nats: recording a broadcast in stream %s: %w", j.stream, err)
	}
	return nil
}

// Close stops reading the stream, then closes the Adapter. It does not
// close the NATS connection, nor delete the stream or the bucket.
func (j *JetStreamAdapter) Close() error {
	var err error
	j.closing.Do(func() {
		j.mu.Lock()
		j.cancel()
		it, cons := j.iter, j.cons
		j.mu.Unlock()
		if it != nil {
			it.Stop()
		}
		j.wg.Wait()
		if cons != nil && j.nc.IsConnected() {
			// Its InactiveThreshold would remove it a minute later.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if name := cons.CachedInfo().Name; name != "" {
				_ = j.js.DeleteConsumer(ctx, j.stream, name)
			}
			cancel()
		}
		err = j.Adapter.Close()
	})
	return err
}

// The sessions: key <pid> of the bucket, JSON {sid, pid, rooms, data},
// kept for the recovery's MaxDisconnectionDuration (the bucket's TTL).

// pidRE is what a pid (socketio's: base64url) may be, and a key of the
// bucket can be.
var pidRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

type jsSession struct {
	SID   string          `json:"sid"`
	PID   string          `json:"pid"`
	Rooms []string        `json:"rooms"`
	Data  json.RawMessage `json:"data"`
}

// PersistSession keeps st in the session bucket for the recovery's
// MaxDisconnectionDuration. It does nothing without
// JetStreamOptions.Recovery; a failure is logged.
func (j *JetStreamAdapter) PersistSession(st *socketio.SessionState) {
	if j.kv == nil {
		return
	}
	if !pidRE.MatchString(st.PID) {
		j.log.Warn("nats: a session with an invalid pid not kept", "sid", st.SID)
		return
	}
	js := jsSession{SID: st.SID, PID: st.PID, Rooms: st.Rooms, Data: json.RawMessage("null")}
	switch d := st.Data.(type) {
	case nil:
	case json.RawMessage:
		if json.Valid(d) {
			js.Data = d
		}
	default:
		b, err := json.Marshal(d)
		if err != nil {
			j.log.Warn("nats: encoding a session's data", "sid", st.SID, "err", err)
			return
		}
		js.Data = b
	}
	b, err := json.Marshal(&js)
	if err != nil {
		j.log.Warn("nats: encoding a session", "sid", st.SID, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(j.ctx, j.opts.RequestsTimeout)
	defer cancel()
	if _, err := j.kv.Put(ctx, st.PID, b); err != nil {
		j.log.Warn("nats: keeping a session", "sid", st.SID, "err", err)
	}
}

// RestoreSession takes session pid out of the bucket and returns it with
// the events broadcast to it after offset (a stream sequence), or nil
// when the session is unknown or expired, or the offset is not in the
// stream any more. Its Data comes back as json.RawMessage (nil for
// null). Of two servers restoring the same session at once, one gets
// it.
func (j *JetStreamAdapter) RestoreSession(pid, offset string) (*socketio.SessionState, error) {
	if j.kv == nil || !pidRE.MatchString(pid) {
		return nil, nil
	}
	from, err := strconv.ParseUint(offset, 10, 64)
	if err != nil || from == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(j.ctx, j.opts.RequestsTimeout)
	defer cancel()
	e, err := j.kv.Get(ctx, pid)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nats: restoring a session: %w", err)
	}
	// Taken out first, so that it is restored once; the bucket's TTL
	// may run late, so the age is checked too.
	if err := j.kv.Delete(ctx, pid, jetstream.LastRevision(e.Revision())); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil, nil // another server took it
		}
		return nil, fmt.Errorf("nats: restoring a session: %w", err)
	}
	if time.Since(e.Created()) > j.recovery.MaxDisconnectionDuration {
		return nil, nil
	}
	var js jsSession
	if err := json.Unmarshal(e.Value(), &js); err != nil {
		return nil, fmt.Errorf("nats: a session: %w", err)
	}
	st := &socketio.SessionState{SID: js.SID, PID: js.PID, Rooms: js.Rooms}
	if len(js.Data) > 0 && string(js.Data) != "null" {
		st.Data = js.Data
	}
	upTo, ok, err := j.missed(ctx, st, from)
	if err != nil || !ok {
		return nil, err
	}
	j.restoredMu.Lock()
	j.restored[st.SID] = upTo
	j.restoredMu.Unlock()
	return st, nil
}

// missed appends to st.Missed the events of the stream after message
// from that were broadcast to a socket in st.Rooms, and returns the last
// sequence read. ok is false if message from is not in the stream (too
// old, or never this namespace's).
func (j *JetStreamAdapter) missed(ctx context.Context, st *socketio.SessionState, from uint64) (upTo uint64, ok bool, err error) {
	a := j.Adapter
	// From the offset itself: its presence proves it is still kept.
	cons, err := j.js.CreateConsumer(ctx, j.stream, jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		FilterSubjects:    j.filters,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: 10 * time.Second,
		MemoryStorage:     true,
	})
	if err != nil {
		return 0, false, fmt.Errorf("nats: restoring a session: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = j.js.DeleteConsumer(dctx, j.stream, cons.CachedInfo().Name)
	}()
	pending := cons.CachedInfo().NumPending
	read := 0
	for pending > 0 && read < restoreMaxMsgs {
		batch, err := cons.Fetch(int(min(pending, restoreBatch)), jetstream.FetchMaxWait(j.opts.RequestsTimeout))
		if err != nil {
			return 0, false, fmt.Errorf("nats: restoring a session: %w", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			read++
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			seq := meta.Sequence.Stream
			pending = meta.NumPending
			if !ok {
				if seq != from || !strings.HasPrefix(m.Subject(), a.base+".") {
					return 0, false, nil // the offset was dropped, or is another namespace's
				}
				ok, upTo = true, seq
				continue
			}
			upTo = seq
			if p := j.missedPacket(m.Subject(), m.Data(), st.Rooms); p != nil {
				p.Data = appendOffset(p.Data, seq)
				st.Missed = append(st.Missed, p)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, natsgo.ErrTimeout) {
			return 0, false, fmt.Errorf("nats: restoring a session: %w", err)
		}
		if n == 0 {
			break
		}
	}
	if read >= restoreMaxMsgs {
		a.log.Warn("nats: a restore read its most messages; the rest are missed", "sid", st.SID, "max", restoreMaxMsgs)
	}
	return upTo, ok, nil
}

// missedPacket returns the event of a stream message if it was broadcast
// to a socket in rooms and recovery keeps it, else nil.
func (j *JetStreamAdapter) missedPacket(subj string, data []byte, rooms []string) *socketio.Packet {
	a := j.Adapter
	if subj != a.broadcastSubj && !strings.HasPrefix(subj, a.roomPrefix) || len(data) > maxMessageSize {
		return nil
	}
	var e envelope
	if json.Unmarshal(data, &e) != nil || e.Type != typeBroadcast || len(e.Att) > maxAttachments {
		return nil
	}
	opts := e.Opts.options()
	if !includes(rooms, opts) {
		return nil
	}
	p, err := eventPacket(a.ns.Name(), e.Data, e.Att)
	if err != nil || !j.recoverable(p, opts) {
		return nil
	}
	return p
}

// includes reports whether a socket in rooms was a target of a broadcast
// with opts.
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
