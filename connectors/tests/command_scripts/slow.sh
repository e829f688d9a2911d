#!/bin/sh
# Never answers: records its pid and a child's in the file named by $1, then
# waits on the child. The connector must kill both when its timeout passes.
echo $$ > "$1.tmp"
sleep 300 &
echo $! >> "$1.tmp"
mv "$1.tmp" "$1"
wait
