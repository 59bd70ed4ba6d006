# bridgeport: `make demo` runs the main job end to end, `make test` every test.
# Both install what is missing first (apt packages, npm packages) and build.
SHELL := /bin/bash

.PHONY: all deps build demo test test-unit test-priv lint clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	npx tsc -p tsconfig.build.json

demo: build
	scripts/demo.sh

test: build
	npx vitest run

test-unit: build
	npx vitest run --project unit

test-priv: build
	npx vitest run --project priv

lint: deps
	npx biome lint src test
	npx tsc --noEmit

clean:
	rm -rf dist
