# The "toolbox" image the golden failure corpus is generated in: the real tools whose
# failures the pattern table classifies. Built from the sandbox base with the host's
# network (the only way to reach the package indexes); the corpus runs with none.
FROM karma/base:bookworm
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      gcc libc6-dev golang-go rustc cargo nodejs npm make >/dev/null \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/py && /opt/py/bin/pip install -q \
      mypy ruff flake8 pytest pytest-timeout pytest-rerunfailures poetry uv
RUN npm install -g --silent typescript eslint@8 jest pyright >/dev/null 2>&1 \
    && pyright --version
ENV PATH=/opt/py/bin:$PATH HOME=/tmp NO_COLOR=1 GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local
