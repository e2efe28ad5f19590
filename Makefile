GO ?= go
PKGS := ./...

.PHONY: test lint build bench fuzz

# The whole test suite, with the race detector (CI runs exactly this).
test:
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet $(PKGS)
	staticcheck $(PKGS)

build:
	$(GO) build -o bin/warden ./cmd/warden

bench:
	$(GO) test -run='^$$' -bench=. -benchmem $(PKGS)
