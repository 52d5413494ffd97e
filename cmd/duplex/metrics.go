package main

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	natsadapter "github.com/duplexrt/duplex/adapter/nats"
	redisadapter "github.com/duplexrt/duplex/adapter/redis"
	"github.com/duplexrt/duplex/engineio"
	"github.com/duplexrt/duplex/socketio"
	"github.com/duplexrt/duplex/ws"
)

// metrics are what /metrics shows, on a registry of the server's own (the
// libraries register nothing anywhere). The endpoint label is echo,
// broadcast, chat or socketio. Byte counts are of message payloads, before
// framing and compression.
type metrics struct {
	reg *prometheus.Registry

	connections       *prometheus.GaugeVec
	messagesIn        *prometheus.CounterVec
	messagesOut       *prometheus.CounterVec
	bytesIn           *prometheus.CounterVec
	bytesOut          *prometheus.CounterVec
	handshakeFailures *prometheus.CounterVec
	refusals          *prometheus.CounterVec
	wsCloses          *prometheus.CounterVec
	fanout            *prometheus.HistogramVec
	slowClosed        *prometheus.CounterVec
	brokerFailures    *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.connections = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "duplex_connections",
		Help: "Open connections (WebSockets, or Socket.IO sockets) by endpoint.",
	}, []string{"endpoint"})
	m.messagesIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "duplex_messages_received_total",
		Help: "Messages (Socket.IO: events) received from clients, by endpoint.",
	}, []string{"endpoint"})
	m.messagesOut = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "duplex_messages_sent_total",
		Help: "Messages (Socket.IO: events) queued for clients, by endpoint; a broadcast counts once per target.",
	}, []string{"endpoint"})
	m.bytesIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "duplex_message_bytes_received_total",
		Help: "Payload bytes of the messages received, by endpoint.",
	}, []string{"endpoint"})
	m.bytesOut = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "duplex_message_bytes_sent_total",
		Help: "Payload bytes of the messages queued for clients, by endpoint; a broadcast counts once per target.",
	}, []string{"endpoint"})
	m.handshakeFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "duplex_handshake_failures_total",
		Help: "WebSocket handshakes refused, by endpoint (socketio: its WebSocket transport) and reason (bad_request, origin, method, upgrade_required, shutting_down, io).",
	}, []string{"endpoint", "reason"})
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "duplex_refusals_total",
		Help: "Requests, sessions and namespace connections of /socket.io/ refused or closed for a limit or a protocol error, by endpoint (socketio) and reason. " +
			"Engine.IO requests: unknown_transport, unsupported_protocol, bad_handshake_method, unknown_sid, bad_request, forbidden (AllowRequest: the Origin), " +
			"too_many_sessions and shutting_down (503), payload_too_large (413), parse_error; sessions let go: send_buffer_full (long-polling), parse_error; " +
			"Socket.IO CONNECTs answered with CONNECT_ERROR: invalid_namespace, namespace_limit (MaxNamespacesPerConnection), middleware.",
	}, []string{"endpoint", "reason"})
	m.wsCloses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "duplex_websocket_closes_total",
		Help: "WebSocket connections the server closed because of the client, by endpoint and close code: 1002 protocol error, 1007 invalid UTF-8 or payload, " +
			"1008 policy violation (a second upgrade of a Socket.IO session), 1009 message over the read limit, 1013 send queue full (a client too slow to read).",
	}, []string{"endpoint", "code"})
	m.fanout = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "duplex_broadcast_fanout",
		Help:    "Clients of this process that one broadcast message was queued for, by endpoint.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 9), // 1 … 65,536
	}, []string{"endpoint"})
	m.slowClosed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "duplex_slow_clients_closed_total",
		Help: "Clients closed with 1013 because their send queue was full, by endpoint.",
	}, []string{"endpoint"})
	m.brokerFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "duplex_broker_publish_failures_total",
		Help: "Messages of the raw WebSocket endpoints the broker did not take; each was delivered to this process's clients only.",
	}, []string{"broker"})
	m.reg.MustRegister(m.connections, m.messagesIn, m.messagesOut, m.bytesIn, m.bytesOut,
		m.handshakeFailures, m.refusals, m.wsCloses, m.fanout, m.slowClosed, m.brokerFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// watchBroker adds the gauge duplex_broker_up{broker,user}: 1 while
// health returns nil, 0 otherwise. user is bus (the raw WebSocket
// endpoints) or socketio (the Socket.IO adapters, of every namespace).
func (m *metrics) watchBroker(broker, user string, health func() error) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "duplex_broker_up",
		Help:        "1 while the cluster broker carries messages, 0 while it is unreachable (messages then reach this process's clients only); user socketio is 0 when the adapter of any namespace is down. Absent without --redis or --nats.",
		ConstLabels: prometheus.Labels{"broker": broker, "user": user},
	}, func() float64 {
		if health() != nil {
			return 0
		}
		return 1
	}))
}

// adapterCounter is one of the counters of an adapter's Stats.
type adapterCounter struct {
	name, help string
	value      func() uint64
}

// watchAdapter exports the counters of the Socket.IO adapter of namespace
// nsp (adapter/redis's or adapter/nats's Stats) as
// duplex_adapter_*_total{broker,nsp}. Other adapters have none.
func (m *metrics) watchAdapter(broker, nsp string, ad socketio.Adapter) {
	const (
		published = "Messages of the Socket.IO adapter (broadcasts, requests, answers) the broker took, by broker and namespace"
		failed    = "Messages of the Socket.IO adapter the broker refused or that failed (each lost, and logged or returned to the caller), by broker and namespace."
		reconnect = "Times the Socket.IO adapter's connection to the broker came back after an outage, by broker and namespace."
	)
	var counters []adapterCounter
	switch a := ad.(type) {
	case *redisadapter.Adapter:
		counters = []adapterCounter{
			{"duplex_adapter_published_total", published + ".", func() uint64 { return a.Stats().Published }},
			{"duplex_adapter_publish_errors_total", failed, func() uint64 { return a.Stats().PublishErrors }},
			{"duplex_adapter_dropped_total", "Messages of the Socket.IO adapter dropped because its publish queue (4,096) was full (Redis unreachable or too slow), by broker and namespace; Redis only.", func() uint64 { return a.Stats().Dropped }},
			{"duplex_adapter_reconnects_total", reconnect, func() uint64 { return a.Stats().Reconnects }},
		}
	case *natsadapter.Adapter:
		counters = []adapterCounter{
			{"duplex_adapter_published_total", published + " (NATS: nats.go took them, sent or buffered).", func() uint64 { return a.Stats().Published }},
			{"duplex_adapter_publish_errors_total", failed, func() uint64 { return a.Stats().PublishErrors }},
			{"duplex_adapter_buffered_total", "Messages of the Socket.IO adapter published while the connection to NATS was down, held in nats.go's reconnect buffer until it is back, by broker and namespace; NATS only.", func() uint64 { return a.Stats().Buffered }},
			{"duplex_adapter_reconnects_total", reconnect, func() uint64 { return a.Stats().Reconnects }},
		}
	}
	for _, c := range counters {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        c.name,
			Help:        c.help,
			ConstLabels: prometheus.Labels{"broker": broker, "nsp": nsp},
		}, func() float64 { return float64(c.value()) }))
	}
}

// handler serves the registry in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// endpointMetrics are one endpoint's counters, looked up once.
type endpointMetrics struct {
	conns                                       prometheus.Gauge
	msgsIn, msgsOut, bytesIn, bytesOut, slowOut prometheus.Counter
	fanout                                      prometheus.Observer
}

func (m *metrics) endpoint(name string) *endpointMetrics {
	return &endpointMetrics{
		conns:    m.connections.WithLabelValues(name),
		msgsIn:   m.messagesIn.WithLabelValues(name),
		msgsOut:  m.messagesOut.WithLabelValues(name),
		bytesIn:  m.bytesIn.WithLabelValues(name),
		bytesOut: m.bytesOut.WithLabelValues(name),
		slowOut: teeCounter{
			m.slowClosed.WithLabelValues(name),
			m.wsCloses.WithLabelValues(name, strconv.Itoa(int(ws.StatusTryAgainLater))),
		},
		fanout: m.fanout.WithLabelValues(name),
	}
}

// teeCounter is a Counter whose increments go to another counter too: a
// client closed with 1013 for a full send queue counts in
// duplex_slow_clients_closed_total and in duplex_websocket_closes_total.
type teeCounter struct {
	prometheus.Counter
	also prometheus.Counter
}

func (t teeCounter) Inc() {
	t.Counter.Inc()
	t.also.Inc()
}

func (t teeCounter) Add(v float64) {
	t.Counter.Add(v)
	t.also.Add(v)
}

func (e *endpointMetrics) received(n int) {
	e.msgsIn.Inc()
	e.bytesIn.Add(float64(n))
}

func (e *endpointMetrics) sent(msgs, bytes int) {
	e.msgsOut.Add(float64(msgs))
	e.bytesOut.Add(float64(bytes))
}

// countAcceptErrors returns a ws.Server.OnAcceptError that counts refused
// handshakes of endpoint by reason.
func (m *metrics) countAcceptErrors(endpoint string) func(*http.Request, error) {
	return func(_ *http.Request, err error) {
		m.handshakeFailures.WithLabelValues(endpoint, handshakeReason(err)).Inc()
	}
}

// handshakeReason names the reason of a failed handshake for the metric.
func handshakeReason(err error) string {
	if errors.Is(err, ws.ErrServerClosed) {
		return "shutting_down"
	}
	var he *ws.HandshakeError
	if !errors.As(err, &he) {
		return "io"
	}
	switch he.Status {
	case http.StatusForbidden:
		return "origin"
	case http.StatusMethodNotAllowed:
		return "method"
	case http.StatusUpgradeRequired:
		return "upgrade_required"
	default:
		return "bad_request"
	}
}

// countWebSocketFailures makes srv, an endpoint not serving yet, count
// in duplex_websocket_closes_total the connections it fails with 1002,
// 1007 or 1009 (those come with Handler.OnError). The 1013 closes of a
// full send queue are counted where a send finds it full (slowOut).
func (m *metrics) countWebSocketFailures(endpoint string, srv *ws.Server) {
	srv.Handler = failureCounting{srv.Handler, m.wsCloses.MustCurryWith(prometheus.Labels{"endpoint": endpoint})}
}

// failureCounting is a ws.Handler that counts its connections' failures
// by close code before it passes them on.
type failureCounting struct {
	ws.Handler
	closes *prometheus.CounterVec // by code
}

func (h failureCounting) OnError(c *ws.Conn, err error) {
	if code := ws.FailStatus(err); code > 0 {
		h.closes.WithLabelValues(strconv.Itoa(int(code))).Inc()
	}
	h.Handler.OnError(c, err)
}

// countSocketIORefusals sets the hooks of o, the options of the
// /socket.io/ endpoint, that count its refusals: Engine.IO's OnError and
// Socket.IO's OnConnectError, after those o has.
func (m *metrics) countSocketIORefusals(o *socketio.ServerOptions) {
	const endpoint = "socketio"
	if o.Engine == nil {
		o.Engine = &engineio.ServerOptions{}
	}
	onError := o.Engine.OnError
	o.Engine.OnError = func(r *http.Request, err error) {
		m.countEngineIOError(endpoint, err)
		if onError != nil {
			onError(r, err)
		}
	}
	onConnectError := o.OnConnectError
	o.OnConnectError = func(r *http.Request, nsp string, err error) {
		reason := "middleware"
		switch {
		case errors.Is(err, socketio.ErrNamespaceLimit):
			reason = "namespace_limit"
		case errors.Is(err, socketio.ErrInvalidNamespace):
			reason = "invalid_namespace"
		}
		m.refusals.WithLabelValues(endpoint, reason).Inc()
		if onConnectError != nil {
			onConnectError(r, nsp, err)
		}
	}
}

// countEngineIOError counts an error engineio.ServerOptions.OnError
// reports: a refused request, a refused WebSocket handshake, or a
// session let go for its client's fault.
func (m *metrics) countEngineIOError(endpoint string, err error) {
	var re *engineio.RequestError
	switch {
	case errors.As(err, &re):
		m.refusals.WithLabelValues(endpoint, engineIOReason(re)).Inc()
	case errors.Is(err, engineio.ErrAlreadyUpgraded):
		m.wsCloses.WithLabelValues(endpoint, strconv.Itoa(int(ws.StatusPolicyViolation))).Inc()
	case ws.FailStatus(err) > 0:
		m.wsCloses.WithLabelValues(endpoint, strconv.Itoa(int(ws.FailStatus(err)))).Inc()
	case errors.Is(err, ws.ErrSendQueueFull):
		m.wsCloses.WithLabelValues(endpoint, strconv.Itoa(int(ws.StatusTryAgainLater))).Inc()
	case errors.Is(err, engineio.ErrSendBufferFull):
		m.refusals.WithLabelValues(endpoint, "send_buffer_full").Inc()
	case errors.Is(err, engineio.ErrInvalidPacket):
		m.refusals.WithLabelValues(endpoint, "parse_error").Inc()
	default:
		// ws.Accept's error: a refused WebSocket handshake.
		m.handshakeFailures.WithLabelValues(endpoint, handshakeReason(err)).Inc()
	}
}

// engineIOReason names the reason of a refused Engine.IO request for the
// metric.
func engineIOReason(re *engineio.RequestError) string {
	switch {
	case errors.Is(re, engineio.ErrTooManySessions):
		return "too_many_sessions"
	case errors.Is(re, engineio.ErrServerClosed):
		return "shutting_down"
	case errors.Is(re, engineio.ErrPayloadTooLarge):
		return "payload_too_large"
	case errors.Is(re, engineio.ErrInvalidPacket):
		return "parse_error"
	}
	switch re.Code {
	case engineio.CodeUnknownTransport:
		return "unknown_transport"
	case engineio.CodeUnknownSID:
		return "unknown_sid"
	case engineio.CodeBadHandshakeMethod:
		return "bad_handshake_method"
	case engineio.CodeForbidden:
		return "forbidden"
	case engineio.CodeUnsupportedProtocolVersion:
		return "unsupported_protocol"
	}
	return "bad_request"
}
