#!/bin/sh
# certbot --manual-cleanup-hook: remove the dns-01 value from challtestsrv.
exec curl -fsS -o /dev/null -X POST -d "{\"host\":\"_acme-challenge.${CERTBOT_DOMAIN#\*.}.\"}" "${BENCH_CHALLTESTSRV}/clear-txt"
