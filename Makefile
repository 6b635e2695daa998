# make serve [ARGS="--port 8189"]   install if pyproject.toml changed, then run the server
# make test [PYTEST_ARGS="-k cli"]  install if needed, then pytest + ruff in a loopback namespace
.PHONY: install serve test
ARGS ?=
PYTEST_ARGS ?=

install:
	@scripts/install

serve: install
	.venv/bin/comfyray serve $(ARGS)

test: install
	scripts/test $(PYTEST_ARGS)
