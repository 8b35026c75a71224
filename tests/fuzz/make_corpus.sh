#!/bin/sh
# Build the seed corpus of the ONNX fuzzer in tests/fuzz/corpus/: every
# model in tests/data/, and from the ONNX node tests one small model
# (under 4 KB) per operator family, the shortest-named case first, so
# that the seeds cover many operators without near-duplicates.  The
# corpus is rebuilt from scratch each time and is not kept in git.
#
#   tests/fuzz/make_corpus.sh [ONNX_TEST_DATA_DIR]
set -eu

cd "$(dirname "$0")/../.."

node_dir=${1:-/usr/share/libonnx-testdata/data}/node
out=tests/fuzz/corpus
max_node=150
skip="sequence|optional|string|regex|tfidf|strnorm|adagrad|adam|momentum"
skip="$skip|nesterov"

rm -rf "$out"
mkdir -p "$out"

for f in tests/data/*.onnx tests/data/fuzz-regress/*.onnx; do
    [ -f "$f" ] && cp "$f" "$out/$(basename "$f")"
done

if [ ! -d "$node_dir" ]; then
    echo "make_corpus: $node_dir missing; tests/data only" >&2
else
    # One line per candidate: family, name length, directory name.  The
    # family is the word after test_, less a rank suffix
    # (test_conv_with_padding: conv; test_and2d: and).  Families of
    # sequences, optionals, strings and training steps are left out: bms
    # has no such types, and one refused seed of that kind is enough.
    find "$node_dir" -mindepth 2 -maxdepth 2 -name model.onnx -size -4k |
        sed 's|.*/\(test_[^/]*\)/model.onnx$|\1|' |
        grep -v '_expanded' |
        awk -F_ '{ f = $2; sub(/[0-9]+d$/, "", f);
                   print f, length($0), $0 }' |
        grep -vE "^($skip) " |
        sort -k1,1 -k2,2n |
        awk '$1 != last { print $3; last = $1 }' |
        head -n "$max_node" |
        while read -r name; do
            cp "$node_dir/$name/model.onnx" "$out/node_$name.onnx"
        done
fi

echo "make_corpus: $(find "$out" -type f | wc -l) files in $out"
