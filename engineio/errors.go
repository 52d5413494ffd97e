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
	Status  int       // HTTP status: 400, 403 (CodeForbidden), 413 (MaxPayload), 503 (ServerOptions.MaxSessions, or shutting down)
	Code    ErrorCode // the body's "code" (a 413 has no body: CodeBadRequest)
	Message string    // the body's "message"
	// Err is why the server refused the request, when it says more than
	// Code: ErrTooManySessions, ErrServerClosed, ErrPayloadTooLarge, or
	// a payload's parse error (wrapping ErrInvalidPacket). Nil otherwise,
	// and in the errors of a Client.
	Err error
}

// Error returns the status, code and message.
func (e *RequestError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("engineio: request refused with HTTP %d, code %d: %s: %v", e.Status, int(e.Code), e.Message, e.Err)
	}
	return fmt.Sprintf("engineio: request refused with HTTP %d, code %d: %s", e.Status, int(e.Code), e.Message)
}

// Unwrap returns Err.
func (e *RequestError) Unwrap() error { return e.Err }

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

	// ErrTooManySessions is wrapped by the *RequestError of a handshake
	// refused with HTTP 503 because ServerOptions.MaxSessions sessions
	// are open.
	ErrTooManySessions = errors.New("engineio: too many sessions (ServerOptions.MaxSessions)")
	// ErrServerClosed is wrapped by the *RequestError of a handshake
	// refused with HTTP 503 because Close or Shutdown has begun.
	ErrServerClosed = errors.New("engineio: server shutting down")
	// ErrPayloadTooLarge is wrapped by the *RequestError of a POST
	// refused with HTTP 413 because its body is over
	// ServerOptions.MaxPayload; its session is closed.
	ErrPayloadTooLarge = errors.New("engineio: POST body over ServerOptions.MaxPayload")
	// ErrAlreadyUpgraded is wrapped by the error ServerOptions.OnError
	// gets for a WebSocket that asked to upgrade a session upgraded (or
	// upgrading) already: it was accepted and closed at once with 1008
	// Policy Violation.
	ErrAlreadyUpgraded = errors.New("engineio: session upgraded already")
)
