package ws

import "errors"

// FailStatus returns the close code with which this side failed the
// connection because of err, an error a read (or Handler.OnError) returned:
// StatusProtocolError (1002) or StatusInvalidPayloadData (1007) for an
// error wrapping ErrProtocol, StatusMessageTooBig (1009) for one wrapping
// ErrMessageTooBig. It returns -1 for any other error, a CloseError from
// the peer included (see CloseStatus). It sees through wrapping; it lets a
// server count the connections it failed by code, which ErrProtocol alone
// does not tell apart.
func FailStatus(err error) StatusCode {
	var pe *protocolError
	if errors.As(err, &pe) {
		return pe.code
	}
	return -1
}
