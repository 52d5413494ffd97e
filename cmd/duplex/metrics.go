package main

import (
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

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
		Help: "WebSocket handshakes refused, by endpoint and reason (bad_request, origin, method, upgrade_required, shutting_down, io).",
	}, []string{"endpoint", "reason"})
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
		m.handshakeFailures, m.fanout, m.slowClosed, m.brokerFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// watchBroker adds the gauge duplex_broker_up{broker,user}: 1 while
// health returns nil, 0 otherwise. user is bus (the raw WebSocket
// endpoints) or socketio (the Socket.IO adapter).
func (m *metrics) watchBroker(broker, user string, health func() error) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "duplex_broker_up",
		Help:        "1 while the cluster broker carries messages, 0 while it is unreachable (messages then reach this process's clients only). Absent without --redis or --nats.",
		ConstLabels: prometheus.Labels{"broker": broker, "user": user},
	}, func() float64 {
		if health() != nil {
			return 0
		}
		return 1
	}))
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
		slowOut:  m.slowClosed.WithLabelValues(name),
		fanout:   m.fanout.WithLabelValues(name),
	}
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
