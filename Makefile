# The targets people look for. The README's two commands are the contract;
# these are conveniences around them.
PREFIX ?= /usr/local
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build test install lint cross lean deb
build:
	CGO_ENABLED=0 go build -ldflags "$(LDFLAGS)" -o flowtop ./cmd/flowtop

test:
	go test -race -count=1 -timeout 14m ./...

lint:
	gofmt -l $$(git ls-files '*.go')
	go vet ./...

cross:
	for a in amd64 arm64 mips mipsle; do CGO_ENABLED=0 GOOS=linux GOARCH=$$a GOMIPS=softfloat go build -ldflags "$(LDFLAGS)" -o dist/flowtop-$$a ./cmd/flowtop; done
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 go build -ldflags "$(LDFLAGS)" -o dist/flowtop-armv7 ./cmd/flowtop

# The router daemon, as the OpenWrt package builds it: -tags headless and
# scripts/lean-gcflags (docs/BENCHMARKS.md, "Binary sizes").
lean:
	for t in mipsle mips arm:7 arm64; do a=$${t%%:*}; v=$${t#*:}; [ "$$v" = "$$t" ] && v=; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$a GOARM=$$v GOMIPS=softfloat go build -trimpath -tags headless \
		$$(grep -v '^#' scripts/lean-gcflags) -ldflags "$(LDFLAGS)" -o dist/flowtop-lean-$$a$${v:+v$$v} ./cmd/flowtop || exit 1; done

install: build
	install -D -m 0755 flowtop $(DESTDIR)$(PREFIX)/sbin/flowtop
	install -D -m 0644 docs/flowtop.8 $(DESTDIR)$(PREFIX)/share/man/man8/flowtop.8
	install -d $(DESTDIR)/etc/flowtop
	for f in etc/*.conf; do install -m 0644 $$f $(DESTDIR)/etc/flowtop/; done
	install -d $(DESTDIR)/lib/systemd/system
	sed 's|/usr/bin/flowtop|$(PREFIX)/sbin/flowtop|' etc/flowtop.service > $(DESTDIR)/lib/systemd/system/flowtop.service

# A Debian package in dist/ (dpkg-deb; see packaging/deb/build.sh).
deb:
	sh packaging/deb/build.sh $(VERSION)
