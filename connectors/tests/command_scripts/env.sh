#!/bin/sh
# Saves what it was given in its working directory (its environment exactly
# as the connector passed it, the directory, the request), then answers with
# an error whose message quotes the secret, which must not reach the caller.
tr '\0' '\n' < /proc/$$/environ > environment.txt
pwd > directory.txt
cat > request.json
printf '{"version":1,"error":{"class":"retry_after","retry_after_seconds":42,"message":"the CA refused password %s"}}\n' "$API_TOKEN"
