#!/usr/bin/env bash
# Compiler launcher for bench/build-time/measure.sh: runs one compile and appends
# "<cpu seconds> <wall seconds> <source>" to $BUILD_TIME_LOG (user + system time of the
# compiler and its children, so two compiles sharing a core still count their own work).
set -u
log=${BUILD_TIME_LOG:?}
src=link
for a in "$@"; do
  case "$a" in *.cpp | *.cc) src=$a ;; esac
done
times=$(mktemp)
start=$(date +%s%N)
/usr/bin/time -f "%U %S" -o "$times" "$@"
status=$?
end=$(date +%s%N)
awk -v wall=$(((end - start) / 1000000)) -v src="$src" \
  '{ printf "%.2f %.2f %s\n", $1 + $2, wall / 1000, src }' "$times" >> "$log"
rm -f "$times"
exit $status
