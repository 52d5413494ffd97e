package socketio

import (
	"encoding/json"
	"fmt"
)

// Helpers for adapters that carry packets and acknowledgements between
// processes (package adapter/redis): they hold a packet's arguments in
// their own encoding and need to build the Args that BroadcastWithAck and
// ServerSideEmit hand to their callers.

// NewArgs returns the Args of data, a JSON array of arguments whose binary
// parts appear as placeholders {"_placeholder":true,"num":N} numbering
// attachments. It is an error if data is not a JSON array, or if a
// placeholder names no attachment. Args keeps data and attachments
// without copying them.
func NewArgs(data json.RawMessage, attachments [][]byte) (*Args, error) {
	data = trimJSONSpace(data)
	if len(data) == 0 || data[0] != '[' {
		return nil, fmt.Errorf("socketio: arguments are not a JSON array")
	}
	var elems []json.RawMessage
	s := jsonScanner{data: data, maxDepth: maxJSONDepth, elems: &elems, checkPlaceholders: true, attachments: len(attachments)}
	if err := s.scanAll(); err != nil {
		return nil, fmt.Errorf("socketio: arguments: %w", err)
	}
	return &Args{raw: elems, att: attachments}, nil
}

// Attachments returns the binary attachments that the placeholders of the
// arguments (see Raw) number. The slice and its contents must not be
// modified.
func (a *Args) Attachments() [][]byte { return a.att }
