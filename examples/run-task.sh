#!/bin/sh
# The catch-all route of conf/handlers.conf: `* exec -- sh examples/run-task.sh "$CONVEYOR_TASK_NAME"`.
# An --exec handler as a shell script: the payload is on stdin, the task is described by
# CONVEYOR_TASK_ID, CONVEYOR_TASK_NAME, CONVEYOR_QUEUE and CONVEYOR_ATTEMPT, stdout is the
# result and the exit status decides (0: done). This one answers with the task's name,
# attempt and payload size; put the real work where the comment says.
set -eu
name="${1:-${CONVEYOR_TASK_NAME:-}}"
payload=$(cat)
# The real work goes here, e.g.: case "$name" in report) ./make-report "$payload" ;; esac
printf '%s attempt %s: %s bytes\n' "${name:-unnamed}" "${CONVEYOR_ATTEMPT:-?}" "${#payload}"
