# Conveyor broker image on Debian 12 (bookworm), docs/install.md "Docker".
#
#   docker build -t conveyor .
#   docker run -d --name conveyor -p 6380:6380 -p 5672:5672 -v conveyor-data:/var/lib/conveyor \
#       conveyor --requirepass 's3cret'
#
# Arguments after the image name are appended to the `conveyor server` command line below.
# The server binds 0.0.0.0 in the container, and clients reach it through Docker's port
# mapping, so they are not loopback clients: with no password and no users file, protected
# mode refuses them (-DENIED). Give --requirepass <password> (every client then sends AUTH:
# redis-cli -a, redis://:<password>@host:6380, amqp://default:<password>@host//), or a users
# file (--users, mounted into the container; docs/users.md), or, on a private network only,
# --protected-mode no.
#
# Stage 1 builds the .deb with the project's own scripts (scripts/install-deps.sh, cmake,
# cpack); stage 2 installs only that package, whose Depends pull in the runtime libraries.

FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN ./scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCONVEYOR_BUILD_TESTS=OFF \
    && cmake --build build -j "$(nproc)" --target conveyor \
    && cd build && cpack -G DEB

FROM debian:bookworm
COPY --from=build /src/build/conveyor_*.deb /tmp/
# postinst makes the user conveyor and /var/lib/conveyor; without systemd it starts nothing.
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends /tmp/conveyor_*.deb \
    && rm -rf /var/lib/apt/lists/* /tmp/conveyor_*.deb
USER conveyor
WORKDIR /var/lib/conveyor
VOLUME /var/lib/conveyor
# RESP (redis-cli, redis-py, conveyor worker) and AMQP 0-9-1 (pika, Celery).
EXPOSE 6380 5672
ENTRYPOINT ["conveyor", "server", "--config", "/etc/conveyor/conveyor.conf", \
            "--bind", "0.0.0.0", "--port", "6380", "--amqp-port", "5672"]
CMD []
