# geoseal: the two commands a newcomer needs are `make demo` and `make test`.
# Both install what is missing first (idempotently), so they work on a fresh
# Debian machine with Go and Node.js.

SHELL       := /bin/bash
GO          ?= go
GOBIN       := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(GOBIN)/staticcheck
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FUZZTIME    ?= 30000x
PY          := /usr/bin/python3

.PHONY: all deps test lint unit fips fuzz demo bench clean

all: test

## deps: install SoftHSM2, the Azure SDK for Python (CSE v1/v2 interop peer),
## PyYAML (the Kubernetes manifest test parses with it), zsh and fish (the
## CLI's completion scripts run in them), Azurite (pinned in
## internal/azurite/package-lock.json) and staticcheck.
deps:
	@if ! command -v softhsm2-util >/dev/null || [ ! -f /usr/lib/softhsm/libsofthsm2.so ] || \
	    ! $(PY) -c 'import azure.storage.blob, cryptography, yaml' 2>/dev/null || \
	    ! command -v zsh >/dev/null || ! command -v fish >/dev/null; then \
		echo "== installing softhsm2, python3-azure-storage, python3-yaml, zsh and fish (apt)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq softhsm2 python3-azure-storage python3-azure python3-cryptography python3-yaml zsh fish >/dev/null; \
	fi
	@if [ ! -x internal/azurite/node_modules/.bin/azurite-blob ]; then \
		echo "== installing Azurite (npm ci)"; \
		npm ci --prefix internal/azurite --no-audit --no-fund --loglevel=error; \
	fi
	@if [ ! -x $(STATICCHECK) ]; then \
		echo "== installing staticcheck"; \
		$(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2; \
	fi

## test: every check CI runs, in order.
test: deps lint unit fips fuzz

lint:
	@echo "== gofmt"; out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path '*/node_modules/*')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@echo "== go vet"; $(GO) vet ./...
	@echo "== go vet (internal/benchcmp, the nested benchmark module)"; cd internal/benchcmp && $(GO) vet ./...
	@echo "== staticcheck"; $(STATICCHECK) ./...

unit:
	@echo "== go test -race"; $(GO) test -race -count=1 ./...

fips:
	@echo "== go test under GODEBUG=fips140=only"; GODEBUG=fips140=only $(GO) test -count=1 ./...

fuzz:
	@echo "== fuzz targets, $(FUZZTIME) executions each"; FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

## demo: every example end to end against Azurite and SoftHSM2 (each starts
## what it needs in temp dirs and stops it), with a header per example.
DEMO_EXAMPLES := quickstart hsm keyvault region rotate
demo: deps
	@set -e; for ex in $(DEMO_EXAMPLES); do \
		echo; echo "==================== examples/$$ex ===================="; \
		$(GO) run ./examples/$$ex; \
	done; \
	echo; echo "demo: all $(words $(DEMO_EXAMPLES)) examples ran as expected"

## bench: stream throughput against raw AES-GCM, tink-go, minio/sio and age,
## peak memory of a 4 GiB stream, encrypted vs plain blob I/O on Azurite, and
## rewrap-all and audit over a container of 20,000 blobs
## (a nested module, so the peers never enter geoseal's go.mod).
bench: deps
	@cd internal/benchcmp && $(GO) test -run '^$$' -bench 'RawGCM|Geoseal|Tink|Sio|Age' -benchtime 3x -count 3 .
	@cd internal/benchcmp && $(GO) run ./cmd/rss
	@cd internal/benchcmp && $(GO) test -run '^$$' -bench 'Blob' -benchtime 6x -count 1 .
	@cd internal/benchcmp && $(GO) test -run '^$$' -bench 'Walk' -benchtime 1x -count 1 -timeout 40m .

clean:
	rm -rf internal/azurite/node_modules
