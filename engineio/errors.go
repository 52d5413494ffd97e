package engineio

import (
	"errors"
	"fmt"
	"strconv"
)

// ErrorCode is the code of the JSON body {"code":N,"message":"..."} with
// which a server refuses a request, as Node's engine.io numbers them.
type ErrorCode int

// The error codes of Node's engine.io (Server.errors).
const (
	CodeUnknownTransport           ErrorCode = 0 // transport missing, unknown or disabled
	CodeUnknownSID                 ErrorCode = 1 // no open session has this sid
	CodeBadHandshakeMethod         ErrorCode = 2 // a request without sid that is not a GET
	CodeBadRequest                 ErrorCode = 3 // anything else that is wrong with the request
	CodeForbidden                  ErrorCode = 4 // ServerOptions.AllowRequest refused it (HTTP 403)
	CodeUnsupportedProtocolVersion ErrorCode = 5 // EIO missing or not 4
)

var codeMessages = [...]string{
	"Transport unknown",
	"Session ID unknown",
	"Bad handshake method",
	"Bad request",
	"Forbidden",
	"Unsupported protocol version",
}

// String returns the message Node's engine.io sends with the code.
func (c ErrorCode) String() string {
	if c >= 0 && int(c) < len(codeMessages) {
		return codeMessages[c]
	}
	return "ErrorCode(" + strconv.Itoa(int(c)) + ")"
}

// RequestError is a request the server refused: the HTTP status and the
// JSON body's code and message. The server writes it; the client's Dial
// returns it when a server refuses the handshake.
type RequestError struct {
	Status  int       // HTTP status: 400, 403 (CodeForbidden), 503 (ServerOptions.MaxSessions)
	Code    ErrorCode // the body's "code"
	Message string    // the body's "message"
}

// Error returns the status, code and message.
func (e *RequestError) Error() string {
	return fmt.Sprintf("engineio: request refused with HTTP %d, code %d: %s", e.Status, int(e.Code), e.Message)
}

// CloseReason says why a session ended. The values are the strings Node's
// engine.io gives (socket.on("close", reason)), which Socket.IO passes on
// as disconnect reasons.
type CloseReason string

// The reasons a session closes.
const (
	// ReasonTransportClose: the peer closed the session (a close packet),
	// or its connection ended.
	ReasonTransportClose CloseReason = "transport close"
	// ReasonTransportError: the transport failed: a network error, an
	// overlapping poll, a payload over MaxPayload, a full send buffer,
	// a handler that panicked.
	ReasonTransportError CloseReason = "transport error"
	// ReasonPingTimeout: no pong (server) or ping (client) came in time.
	ReasonPingTimeout CloseReason = "ping timeout"
	// ReasonParseError: the peer sent something that is not Engine.IO.
	ReasonParseError CloseReason = "parse error"
	// ReasonForcedClose: this side called Close.
	ReasonForcedClose CloseReason = "forced close"
	// ReasonServerShutdown: Server.Close or Server.Shutdown.
	ReasonServerShutdown CloseReason = "server shutting down"
)

// String returns the reason as Node names it, such as "ping timeout".
func (r CloseReason) String() string { return string(r) }

var (
	// ErrClosed is returned by sends on a session or client that has
	// closed, or is closing.
	ErrClosed = errors.New("engineio: session closed")
	// ErrSendBufferFull is wrapped by the error of a send that would take
	// a session's send buffer over its limit (ServerOptions.SendBufferLimit,
	// DialOptions.SendBufferLimit). The session is then closed with
	// ReasonTransportError: a peer that falls that far behind is let go.
	ErrSendBufferFull = errors.New("engineio: send buffer full")
)
