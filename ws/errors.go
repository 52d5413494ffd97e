package ws

import (
	"errors"
	"fmt"
)

// ErrMessageTooBig is returned (wrapped, with the sizes and the option that
// raises the limit) when a message exceeds the connection's read limit or
// fragment limit. The connection has then been failed with
// StatusMessageTooBig.
var ErrMessageTooBig = errors.New("ws: message too big")

// ErrProtocol is wrapped by every error that reports the peer breaking
// RFC 6455: bad framing, reserved bits or opcodes, unmasked client frames,
// invalid UTF-8. The connection has then been failed with the matching close
// code (1002 or 1007), which CloseStatus does not report since the peer
// never sent it; use errors.Is(err, ErrProtocol).
var ErrProtocol = errors.New("ws: protocol violation")

// protocolError is a violation found while reading, with the close code the
// connection is failed with.
type protocolError struct {
	code StatusCode
	msg  string
}

func (e *protocolError) Error() string {
	if e.code == StatusMessageTooBig {
		return "ws: " + e.msg
	}
	return "ws: protocol violation: " + e.msg
}

func (e *protocolError) Is(target error) bool {
	if target == ErrProtocol {
		return e.code != StatusMessageTooBig
	}
	if target == ErrMessageTooBig {
		return e.code == StatusMessageTooBig
	}
	return false
}

func protocolErrorf(format string, args ...any) error {
	return &protocolError{code: StatusProtocolError, msg: fmt.Sprintf(format, args...)}
}

// tooBigError reports a message over a limit; it is failed with 1009.
func tooBigError(format string, args ...any) error {
	return &protocolError{code: StatusMessageTooBig, msg: fmt.Sprintf(format, args...)}
}
