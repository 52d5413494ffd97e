package ws

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// StatusCode is a close status code (RFC 6455 §7.4).
type StatusCode int

// The close codes of RFC 6455 §7.4.1 and the IANA registry.
const (
	StatusNormalClosure      StatusCode = 1000
	StatusGoingAway          StatusCode = 1001
	StatusProtocolError      StatusCode = 1002
	StatusUnsupportedData    StatusCode = 1003
	StatusNoStatusRcvd       StatusCode = 1005 // never sent: no code in the close frame
	StatusAbnormalClosure    StatusCode = 1006 // never sent: closed without a close frame
	StatusInvalidPayloadData StatusCode = 1007
	StatusPolicyViolation    StatusCode = 1008
	StatusMessageTooBig      StatusCode = 1009
	StatusMandatoryExtension StatusCode = 1010
	StatusInternalError      StatusCode = 1011
	StatusServiceRestart     StatusCode = 1012
	StatusTryAgainLater      StatusCode = 1013
	StatusBadGateway         StatusCode = 1014
	StatusTLSHandshake       StatusCode = 1015 // never sent: TLS failure
)

func (c StatusCode) String() string {
	switch c {
	case StatusNormalClosure:
		return "1000 normal closure"
	case StatusGoingAway:
		return "1001 going away"
	case StatusProtocolError:
		return "1002 protocol error"
	case StatusUnsupportedData:
		return "1003 unsupported data"
	case StatusNoStatusRcvd:
		return "1005 no status"
	case StatusAbnormalClosure:
		return "1006 abnormal closure"
	case StatusInvalidPayloadData:
		return "1007 invalid payload data"
	case StatusPolicyViolation:
		return "1008 policy violation"
	case StatusMessageTooBig:
		return "1009 message too big"
	case StatusMandatoryExtension:
		return "1010 mandatory extension"
	case StatusInternalError:
		return "1011 internal error"
	case StatusServiceRestart:
		return "1012 service restart"
	case StatusTryAgainLater:
		return "1013 try again later"
	case StatusBadGateway:
		return "1014 bad gateway"
	case StatusTLSHandshake:
		return "1015 TLS handshake"
	}
	return fmt.Sprintf("%d", int(c))
}

// validWireCode reports whether c may appear in a close frame
// (RFC 6455 §7.4.1 and §7.4.2): the defined codes other than the three
// reserved for reporting (1005, 1006, 1015), and the ranges 3000–4999 for
// libraries and applications.
func validWireCode(c StatusCode) bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1014:
		return true
	case c >= 3000 && c <= 4999:
		return true
	}
	return false
}

// CloseError is the error a read or write returns once the peer has sent a
// close frame: its code and reason. A close frame without a code yields
// Code StatusNoStatusRcvd; a connection lost without a close frame yields
// an error that reads as Code StatusAbnormalClosure (1006) and wraps the
// network error (io.ErrUnexpectedEOF for a plain disconnect).
//
// Use errors.As or CloseStatus to get it from a returned error.
type CloseError struct {
	Code   StatusCode
	Reason string
}

func (e CloseError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("ws: connection closed: %v", e.Code)
	}
	return fmt.Sprintf("ws: connection closed: %v: %q", e.Code, e.Reason)
}

// CloseStatus returns the close code carried by err, or -1 when err does not
// come from a close frame. It sees through wrapping.
func CloseStatus(err error) StatusCode {
	var ce CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

// maxCloseReason is the longest reason that fits a control frame after the
// two code bytes.
const maxCloseReason = maxControlPayload - 2

// parseClosePayload decodes a close frame's payload (RFC 6455 §5.5.1). An
// empty payload means no code. A one-byte payload, a code that must not be
// sent, or a reason that is not UTF-8 is an error carrying the close code the
// connection must fail with.
func parseClosePayload(p []byte) (CloseError, error) {
	switch len(p) {
	case 0:
		return CloseError{Code: StatusNoStatusRcvd}, nil
	case 1:
		return CloseError{}, protocolErrorf("close frame payload of 1 byte: a code takes 2")
	}
	ce := CloseError{Code: StatusCode(binary.BigEndian.Uint16(p))}
	if !validWireCode(ce.Code) {
		return CloseError{}, protocolErrorf("close frame carries code %d, which may not be sent", int(ce.Code))
	}
	if !utf8.Valid(p[2:]) {
		return CloseError{}, &protocolError{code: StatusInvalidPayloadData, msg: "close reason is not valid UTF-8"}
	}
	ce.Reason = string(p[2:])
	return ce, nil
}

// appendClosePayload appends a close frame payload for code and reason. A
// reason too long for a control frame is cut at a rune boundary.
func appendClosePayload(b []byte, code StatusCode, reason string) []byte {
	if code == StatusNoStatusRcvd {
		return b
	}
	if len(reason) > maxCloseReason {
		reason = truncateUTF8(reason, maxCloseReason)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(code))
	return append(b, reason...)
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// checkCloseArgs validates a code and reason given to Close.
func checkCloseArgs(code StatusCode, reason string) error {
	if code != StatusNoStatusRcvd && !validWireCode(code) {
		return fmt.Errorf("ws: close code %d may not be sent; use 1000–1003, 1007–1014 or 3000–4999", int(code))
	}
	if len(reason) > maxCloseReason {
		return fmt.Errorf("ws: close reason of %d bytes is longer than the %d a close frame can carry", len(reason), maxCloseReason)
	}
	if code == StatusNoStatusRcvd && reason != "" {
		return errors.New("ws: a close reason needs a close code")
	}
	if !utf8.ValidString(reason) {
		return errors.New("ws: close reason is not valid UTF-8")
	}
	return nil
}
