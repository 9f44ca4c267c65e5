#!/bin/bash
# Build the decoders and the body mapper's streaming pass as frontend code,
# outside the server:
#   fuzz/build.sh OUTDIR fuzz   libFuzzer targets (clang, ASan + UBSan)
#   fuzz/build.sh OUTDIR test   the known-answer driver (cc)
# PG_CONFIG picks the PostgreSQL whose libpgcommon/libpgport are linked.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$HERE/../src
OUT=$1
MODE=$2
PG_CONFIG=${PG_CONFIG:-pg_config}
mkdir -p "$OUT"

INC=(-DFRONTEND -D_GNU_SOURCE -I"$HERE" -I"$SRC" -I"$SRC/aws" -I"$SRC/mapping"
	-I"$($PG_CONFIG --includedir-server)"
	$(pkg-config --cflags libxml-2.0))
PKGLIB=$($PG_CONFIG --pkglibdir)
LIBS=("$PKGLIB/libpgcommon.a" "$PKGLIB/libpgport.a" $(pkg-config --libs libxml-2.0) -lcrypto -lm)
# libpgcommon's JSON parser and StringInfo allocate through the arena too
WRAP=-Wl,--wrap=palloc,--wrap=palloc0,--wrap=pfree,--wrap=repalloc,--wrap=pstrdup,--wrap=pnstrdup
COMMON=("$HERE/arena.c" "$HERE/invariants.c" "$HERE/fuzz_decoders.c" "$SRC/aws/sqs_decode.c"
	"$SRC/aws/aws_xml.c" "$SRC/aws/sqs_decode_xml.c" "$SRC/aws/sts_decode.c"
	"$SRC/mapping/json_capture.c")

case $MODE in
	fuzz)
		CLANG=${CLANG:-clang-14}
		for target in json xml body; do
			"$CLANG" -g -O1 -Wno-ignored-attributes -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
				"${INC[@]}" -o "$OUT/fuzz_$target" "$HERE/fuzz_$target.c" "${COMMON[@]}" \
				$WRAP "${LIBS[@]}"
		done
		;;
	test)
		${CC:-cc} -g -O1 -Wall "${INC[@]}" -o "$OUT/decode_test" "$HERE/decode_test.c" \
			"${COMMON[@]}" $WRAP "${LIBS[@]}"
		;;
	*)
		echo "usage: fuzz/build.sh OUTDIR fuzz|test" >&2
		exit 2
		;;
esac
