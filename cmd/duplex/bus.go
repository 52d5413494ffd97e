package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	goredis "github.com/redis/go-redis/v9"
)

// The topics of the bus: what /ws/broadcast subscribers send, the chat's
// events, and the chat's presence (who is online on which process).
const (
	topicBroadcast = "broadcast"
	topicChat      = "chat"
	topicPresence  = "presence"
)

var busTopics = []string{topicBroadcast, topicChat, topicPresence}

// bus carries the raw WebSocket endpoints' messages (/ws/broadcast and
// /ws/chat) between the processes of a cluster. Socket.IO has its own
// adapter; the bus is for what Socket.IO does not see.
//
// A message published on a topic reaches every process, the publisher
// included, and every process sees one topic's messages in the same order
// (the broker's). So a process delivers its own messages when they come
// back from the broker, not when they are sent, and every subscriber in
// the cluster sees one order.
type bus interface {
	// Publish sends data on topic. It returns an error when the broker
	// did not take it; the caller then delivers it locally only.
	Publish(ctx context.Context, topic string, data []byte) error
	// Health is nil while the bus carries messages, or what is wrong.
	Health() error
	// Name is "memory", "redis" or "nats", for logs and metrics.
	Name() string
	// Close unsubscribes and stops the bus's goroutines. It does not
	// close the broker client, which the caller owns.
	Close() error
}

// busHandler receives one topic's messages, on one goroutine per topic, in
// the broker's order. data is the handler's to keep.
type busHandler func(topic string, data []byte)

// memoryBus is the bus of a single process: Publish delivers at once.
type memoryBus struct {
	mu      sync.Mutex // one order for every topic
	handler busHandler
}

func newMemoryBus(h busHandler) *memoryBus { return &memoryBus{handler: h} }

func (b *memoryBus) Publish(_ context.Context, topic string, data []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.handler(topic, data)
	return nil
}

func (b *memoryBus) Health() error { return nil }
func (b *memoryBus) Name() string  { return "memory" }
func (b *memoryBus) Close() error  { return nil }

// redisBus carries the topics over Redis pub/sub, on the channels
// "<prefix>#<topic>" (default prefix "duplex"). go-redis resubscribes by
// itself after the connection to Redis is lost.
type redisBus struct {
	rdb    goredis.UniversalClient
	prefix string
	ps     *goredis.PubSub
	log    *slog.Logger

	mu     sync.Mutex
	health error

	cancel context.CancelFunc
	done   chan struct{}
}

func newRedisBus(ctx context.Context, rdb goredis.UniversalClient, prefix string, h busHandler, log *slog.Logger) (*redisBus, error) {
	b := &redisBus{rdb: rdb, prefix: prefix, log: log, done: make(chan struct{})}
	channels := make([]string, len(busTopics))
	for i, t := range busTopics {
		channels[i] = prefix + "#" + t
	}
	b.ps = rdb.Subscribe(ctx, channels...)
	// Wait for the confirmation of every channel, so that nothing
	// published after newRedisBus returns is missed.
	for range channels {
		msg, err := b.ps.Receive(ctx)
		if err == nil {
			if _, ok := msg.(*goredis.Subscription); !ok {
				err = fmt.Errorf("unexpected %T before the subscriptions were confirmed", msg)
			}
		}
		if err != nil {
			_ = b.ps.Close()
			return nil, fmt.Errorf("redis bus: subscribe to %s: %w", strings.Join(channels, ", "), err)
		}
	}
	wctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	ch := b.ps.Channel(goredis.WithChannelHealthCheckInterval(2 * time.Second))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for m := range ch {
			topic, ok := strings.CutPrefix(m.Channel, prefix+"#")
			if !ok {
				continue
			}
			h(topic, []byte(m.Payload))
		}
	}()
	go func() {
		defer wg.Done()
		b.watch(wctx)
	}()
	go func() {
		wg.Wait()
		close(b.done)
	}()
	return b, nil
}

// watch pings Redis every second and keeps the result for Health: the
// pub/sub connection reconnects on its own, and a failed ping is how the
// outage shows.
func (b *redisBus) watch(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := b.rdb.Ping(pctx).Err()
		cancel()
		if ctx.Err() != nil {
			return
		}
		b.setHealth(err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (b *redisBus) setHealth(err error) {
	b.mu.Lock()
	was := b.health
	if err != nil {
		err = fmt.Errorf("redis unreachable: %w", err)
	}
	b.health = err
	b.mu.Unlock()
	switch {
	case was == nil && err != nil:
		b.log.Warn("bus degraded: messages reach this process's clients only", "bus", "redis", "err", err)
	case was != nil && err == nil:
		b.log.Info("bus healthy again", "bus", "redis")
	}
}

func (b *redisBus) Publish(ctx context.Context, topic string, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return b.rdb.Publish(ctx, b.prefix+"#"+topic, data).Err()
}

func (b *redisBus) Health() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.health
}

func (b *redisBus) Name() string { return "redis" }

func (b *redisBus) Close() error {
	b.cancel()
	err := b.ps.Close() // closes the channel, which ends the reader
	<-b.done
	return err
}

// natsBus carries the topics over NATS on the subjects "<prefix>.<topic>"
// ("duplex-bus" by default, beside adapter/nats's "duplex.>"). nats.go reconnects and resubscribes by itself
// when the connection was made with unlimited reconnects (see
// natsadapter.Connect).
type natsBus struct {
	nc     *natsgo.Conn
	prefix string
	subs   []*natsgo.Subscription
}

func newNATSBus(nc *natsgo.Conn, prefix string, h busHandler) (*natsBus, error) {
	b := &natsBus{nc: nc, prefix: prefix}
	for _, t := range busTopics {
		// One subscription per topic: nats.go calls its handler on one
		// goroutine, in order.
		sub, err := nc.Subscribe(prefix+"."+t, func(m *natsgo.Msg) { h(t, m.Data) })
		if err != nil {
			_ = b.Close()
			return nil, fmt.Errorf("nats bus: subscribe to %s.%s: %w", prefix, t, err)
		}
		// A slow process drops messages rather than growing without bound.
		_ = sub.SetPendingLimits(65536, 64<<20)
		b.subs = append(b.subs, sub)
	}
	// Flush makes the server know the subscriptions before we publish.
	if err := nc.Flush(); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("nats bus: %w", err)
	}
	return b, nil
}

func (b *natsBus) Publish(_ context.Context, topic string, data []byte) error {
	if s := b.nc.Status(); s != natsgo.CONNECTED {
		// nats.go would buffer it while reconnecting; the caller delivers
		// locally instead, so a message is never seen twice.
		return fmt.Errorf("nats %s", strings.ToLower(s.String()))
	}
	return b.nc.Publish(b.prefix+"."+topic, data)
}

func (b *natsBus) Health() error {
	if s := b.nc.Status(); s != natsgo.CONNECTED {
		if err := b.nc.LastError(); err != nil {
			return fmt.Errorf("nats %s: %w", strings.ToLower(s.String()), err)
		}
		return fmt.Errorf("nats %s", strings.ToLower(s.String()))
	}
	return nil
}

func (b *natsBus) Name() string { return "nats" }

func (b *natsBus) Close() error {
	var errs []error
	for _, s := range b.subs {
		if err := s.Unsubscribe(); err != nil && !errors.Is(err, natsgo.ErrConnectionClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
