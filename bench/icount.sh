#!/bin/sh
# Instructions per request of one cell of cells.py, counted by valgrind: steady where
# timings on a shared machine are not. The count for N requests less that for M, over N - M,
# which leaves the start-up out (see drive_cell.py).
#
# usage: bench/icount.sh APP CELL [N M]
#   bench/icount.sh microweb echo        # microweb's ASGI echo
#   bench/icount.sh raw echo             # the raw ASGI callable: the floor
#   bench/icount.sh microweb form 12 2   # a 10 MiB upload read with aform(): fewer requests
#   INTERFACE=wsgi bench/icount.sh microweb hello   # microweb's WSGI hello, def handlers
#   INTERFACE=wsgi bench/icount.sh raw hello        # the raw WSGI callable: the floor
# INTERFACE picks the interface: asgi (the default) or wsgi (def handlers, form() for the form
# cell, as cells.py's WSGI rows). PYTHON picks the interpreter (default: python);
# PYTHONHASHSEED defaults to 0, as a count moves by a few hundred instructions from one seed to
# the next.
set -eu
app=$1 cell=$2 many=${3:-1200} few=${4:-200}
here=$(cd "$(dirname "$0")" && pwd)
count() {
    PYTHONHASHSEED=${PYTHONHASHSEED:-0} PYTHONPATH="$here/.." valgrind --tool=cachegrind \
        --cache-sim=no --cachegrind-out-file=/dev/null "${PYTHON:-python}" \
        "$here/drive_cell.py" --interface "${INTERFACE:-asgi}" "$app" "$cell" "$1" 2>&1 |
        sed -n 's/.*I *refs: *//p' | tr -d ,
}
a=$(count "$many")
b=$(count "$few")
echo "$app $cell (${INTERFACE:-asgi}): $(( (a - b) / (many - few) )) instructions per request"
