package ws

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestFailStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want StatusCode
	}{
		{protocolErrorf("reserved bits set"), StatusProtocolError},
		{&protocolError{code: StatusInvalidPayloadData, msg: "text message is not valid UTF-8"}, StatusInvalidPayloadData},
		{fmt.Errorf("engineio: %w", tooBigError("message of 2 bytes exceeds read limit 1")), StatusMessageTooBig},
		{CloseError{Code: StatusProtocolError}, -1}, // the peer's code, not ours
		{io.ErrUnexpectedEOF, -1},
		{nil, -1},
		{errors.New("ws: protocol violation"), -1},
	} {
		if got := FailStatus(tc.err); got != tc.want {
			t.Errorf("FailStatus(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
