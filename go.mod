module github.com/duplexrt/duplex

go 1.26
