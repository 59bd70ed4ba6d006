# bridgeport: `make demo` runs the main job end to end, `make test` every test.
# Both install what is missing first (apt packages, npm packages) and build.
SHELL := /bin/bash

.PHONY: all deps build bpf cni install demo demo-docker test test-unit test-priv lint clean bench bench-quick bench-docker bench-docker-quick bench-cni bench-cni-quick

# BPF C: one object per attach point (bpf/*.c), plus small programs the tests
# load (test/bpf/progs/*.c). -Werror: a warning in the datapath is a bug.
ARCH_INCLUDE := /usr/include/$(shell gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)
BPF_CFLAGS := -O2 -g -target bpf -mcpu=v3 -Wall -Werror -I bpf/include -I bpf -I $(ARCH_INCLUDE)
BPF_SRC := $(wildcard bpf/*.c)
BPF_OBJ := $(patsubst bpf/%.c,bpf/obj/%.o,$(BPF_SRC))
BPF_TEST_SRC := $(wildcard test/bpf/progs/*.c)
BPF_TEST_OBJ := $(patsubst test/bpf/progs/%.c,bpf/obj/test/%.o,$(BPF_TEST_SRC))
BPF_HDR := $(wildcard bpf/include/*.h bpf/lib/*.h)

all: build

deps:
	@scripts/install-deps.sh

build: deps bpf cni
	npx tsc -p tsconfig.build.json

# The CNI plugin executable: a static C relay to the daemon (src/cni/bridgeport-cni.c),
# static so that it runs from any runtime's plugin folder and mount namespace.
CNI_BIN := dist/bridgeport-cni
cni: $(CNI_BIN)

$(CNI_BIN): src/cni/bridgeport-cni.c
	@mkdir -p $(@D)
	$(CC) -O2 -Wall -Wextra -Werror -static -o $@ $<

# Puts the CNI plugin where Debian's podman and containerd (/usr/lib/cni) and
# upstream containerd, CRI-O and Kubernetes (/opt/cni/bin) look for plugins: as
# bridgeport-cni, and as bridgeport, the name a conflist's "type" makes the
# runtime execute. DESTDIR stages it elsewhere (packaging, tests).
CNI_PLUGIN_DIRS ?= /usr/lib/cni /opt/cni/bin
install: cni
	@for d in $(CNI_PLUGIN_DIRS); do \
	  install -D -m 0755 $(CNI_BIN) $(DESTDIR)$$d/bridgeport-cni && \
	  ln -sf bridgeport-cni $(DESTDIR)$$d/bridgeport && \
	  echo "installed $(DESTDIR)$$d/bridgeport-cni and $(DESTDIR)$$d/bridgeport"; \
	done

bpf: deps $(BPF_OBJ) $(BPF_TEST_OBJ)

bpf/obj/%.o: bpf/%.c $(BPF_HDR)
	@mkdir -p $(@D)
	clang $(BPF_CFLAGS) -c $< -o $@

bpf/obj/test/%.o: test/bpf/progs/%.c $(BPF_HDR)
	@mkdir -p $(@D)
	clang $(BPF_CFLAGS) -c $< -o $@

demo: build
	scripts/demo.sh

# The same story through a real dockerd (Debian's docker.io) with bridgeport as its network driver.
demo-docker: build
	scripts/demo-docker.sh

test: build
	npx vitest run

test-unit: build
	npx vitest run --project unit

test-priv: build
	npx vitest run --project priv

# Benchmarks (as root): no-NAT, ebpf, iptables and an nftables DNAT map side by
# side; results in bench/results/<UTC time>/ and bench/results/latest (bench/README.md).
bench: build
	@scripts/install-bench-deps.sh
	node bench/run.mjs

bench-quick: build
	@scripts/install-bench-deps.sh
	node bench/run.mjs --quick

# bridgeport's Docker driver against Docker's own bridge driver, the same dockerd
# (bench/docker.mjs); results in bench/results/<UTC time>-docker/.
bench-docker: build
	@scripts/install-bench-deps.sh
	node bench/docker.mjs

bench-docker-quick: build
	@scripts/install-bench-deps.sh
	node bench/docker.mjs --quick

# bridgeport's CNI plugin (ebpf and iptables datapaths) against the reference chain
# bridge + host-local + portmap (bench/cni.mjs); results in bench/results/<UTC time>-cni/.
bench-cni: build
	node bench/cni.mjs

bench-cni-quick: build
	node bench/cni.mjs --quick

lint: deps
	npx biome lint src test
	npx tsc --noEmit

clean:
	rm -rf dist bpf/obj
