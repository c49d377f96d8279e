#!/bin/sh
# The image's entry point: `serve` (the default), `worker`, `migrate`, `init`, `backup`, ...
# For serve and worker it first brings the schema up to this version, retrying for a minute
# while the database (a PostgreSQL container starting beside it) does not answer yet; then
# it hands the process over to runestone-server, which gets the signals (docker stop).
set -eu
if [ "$#" -eq 0 ]; then
    set -- serve --host 0.0.0.0 --port 8800
fi
case "$1" in
    serve|worker)
        tries=0
        until runestone-server migrate >/dev/null 2>&1; do
            tries=$((tries + 1))
            if [ "$tries" -ge 60 ]; then
                echo "runestone-server: the database does not answer after 60 s:" >&2
                runestone-server migrate
                exit 1
            fi
            sleep 1
        done
        ;;
esac
exec runestone-server "$@"
