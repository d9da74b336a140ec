#!/usr/bin/env bash
# Installs the system programs the local stack runs: a Java 17+ runtime and Maven (Kafka from
# Maven Central), MariaDB's server and client (and its C library's headers, for mysqlclient),
# PostgreSQL's server, and for the compose stack
# Docker's engine, docker-compose and debootstrap (Debian packages). Idempotent;
# as root it uses apt-get, otherwise it says what to install and fails.
set -euo pipefail

missing=()
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
command -v mariadbd >/dev/null 2>&1 || missing+=(mariadb-server-core)
command -v mariadb >/dev/null 2>&1 || missing+=(mariadb-client-core)
# Debian keeps PostgreSQL's server programs off PATH, in /usr/lib/postgresql/<major>/bin.
if ! command -v postgres >/dev/null 2>&1 && ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
  missing+=(postgresql)
fi
# mysqlclient (the producer's C client for source reads) builds against MariaDB's client library.
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
pkg-config --exists libmariadb 2>/dev/null || missing+=(libmariadb-dev)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)  # as root, postgres runs as the user `postgres`
# The compose stack and its test: a Docker engine run as a process, compose, and the local base image.
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "error: missing system packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
  exit 3
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# mariadb-server-core carries only the binaries: no system service is installed or started.
# postgresql also sets up Debian's own cluster (port 5432) and the `postgres` user; the stack
# runs its own server on 5433 and leaves that cluster alone.
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
