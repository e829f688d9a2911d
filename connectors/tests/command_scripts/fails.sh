#!/bin/sh
# Crashes without an answer: a few lines of stderr (one of them carries the
# secret the connector gave it, and a terminal escape), exit status 1.
echo "connecting to the CA backend" >&2
printf 'login with token %s refused \033[31m(HTTP 401)\033[0m\n' "$API_TOKEN" >&2
echo "backend exploded" >&2
exit 1
