module github.com/duplexrt/duplex

go 1.26.0

require (
	github.com/google/go-cmp v0.7.0
	go.uber.org/goleak v1.3.0
)

require golang.org/x/net v0.62.0 // indirect
