#!/bin/sh
# certbot --manual-auth-hook: publish the dns-01 value through challtestsrv.
exec curl -fsS -o /dev/null -X POST -d "{\"host\":\"_acme-challenge.${CERTBOT_DOMAIN#\*.}.\",\"value\":\"${CERTBOT_VALIDATION}\"}" "${BENCH_CHALLTESTSRV}/set-txt"
