#!/bin/sh
# lego's exec DNS provider: "present FQDN VALUE" / "cleanup FQDN VALUE".
case "$1" in
    present) exec curl -fsS -o /dev/null -X POST -d "{\"host\":\"$2\",\"value\":\"$3\"}" "${BENCH_CHALLTESTSRV}/set-txt" ;;
    cleanup) exec curl -fsS -o /dev/null -X POST -d "{\"host\":\"$2\"}" "${BENCH_CHALLTESTSRV}/clear-txt" ;;
    *) exit 0 ;;
esac
