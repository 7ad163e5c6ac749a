#!/bin/sh
# Writes a SIPp injection file (-inf) of N distinct users to stdout:
#   tests/sipp/users.sh 10000 > /tmp/users.csv      # user0 .. user9999
#   tests/sipp/users.sh 5 alice > /tmp/a.csv         # alice0 .. alice4
# SEQUENTIAL: call k uses line k (wrapping around), so -m N with N users
# touches each user once. Scenarios read the user as [field0].
n=${1:?usage: users.sh COUNT [PREFIX]}
prefix=${2:-user}
awk -v n="$n" -v p="$prefix" 'BEGIN { print "SEQUENTIAL"; for (i = 0; i < n; i++) printf "%s%d;\n", p, i }'
