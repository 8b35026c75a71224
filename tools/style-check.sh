#!/bin/sh
# The house style rules a script can check: 80 columns, no tabs, no banned
# calls.  Prints each offence as FILE:LINE: what, then `style: N passed,
# N failed` over the files checked.  Exit 1 on any offence.
cd "$(dirname "$0")/.."

files=$(find include src tests bench -name '*.[ch]' 2>/dev/null | sort)
banned='\<(sprintf|vsprintf|strcpy|strcat|gets|atoi|atol|atof|strtok|strncpy)[[:space:]]*\('
n_ok=0
n_bad=0

for f in $files; do
    bad=0
    if awk -v f="$f" 'length($0) > 80 {
            printf "%s:%d: line over 80 columns\n", f, NR; bad = 1 }
        END { exit bad }' "$f"; then :; else bad=1; fi
    tab=$(printf '\t')
    if grep -q "$tab" "$f"; then
        grep -n "$tab" "$f" | sed "s|^\([0-9]*\):.*|$f:\1: tab|"
        bad=1
    fi
    hits=$(grep -nE "$banned" "$f" | grep -v 'style-check: allow')
    if [ -n "$hits" ]; then
        echo "$hits" | sed "s|^\([0-9]*\):.*|$f:\1: banned call|"
        bad=1
    fi
    if [ "$bad" -eq 0 ]; then
        n_ok=$((n_ok + 1))
    else
        n_bad=$((n_bad + 1))
    fi
done
echo "style: $n_ok passed, $n_bad failed"
[ "$n_bad" -eq 0 ]
