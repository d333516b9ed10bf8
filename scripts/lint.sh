#!/usr/bin/env bash
# Checks a compiler does not make (STYLE.md §10): banned functions, raw
# malloc/free outside common/src/mem.c, and public headers that must compile
# on their own.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
src=$(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build/*')
banned='\b(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|atol|atof|system|alloca)\s*\('
if grep -nE "$banned" $src | grep -v '^tools/'; then
    echo "lint: banned function (use snprintf, kt_strlcpy, strtoll...)" >&2
    status=1
fi
raw='(^|[^_a-z])(malloc|calloc|realloc|free)\s*\('
# (comment lines are skipped: "... and free (the handles) ..." is prose)
# (sdk/examples/ are plugins written as a user would, against ktwin.h alone;
#  ops->free( and .free( are members, not libc)
if grep -nE "$raw" $src | grep -vE '^(common/src/mem\.c|tools/|sdk/examples/)' |
    grep -vE '(->|\.)(malloc|calloc|realloc|free)\s*\(' |
    grep -vE '^[^:]+:[0-9]+:\s*(/\*|\*|//)' |
    grep -vE '(kt_|cJSON_|yaml_|MQTTAsync_|sqlite3_|protobuf_c_)(malloc|calloc|realloc|free)'; then
    echo "lint: raw allocation outside common/src/mem.c (use kt/mem.h)" >&2
    status=1
fi
# Every public header compiles alone.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for h in common/include/kt/*.h model/include/model/*.h sync/include/sync/*.h; do
    [ -f "$h" ] || continue
    inc=${h#*/include/}
    printf '#include "%s"\n' "$inc" > "$tmp/t.c"
    if ! cc -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -pedantic -Werror \
        -Icommon/include -Imodel/include -Isync/include -I/usr/include/cjson -fsyntax-only "$tmp/t.c"; then
        echo "lint: $h does not compile on its own" >&2
        status=1
    fi
done
[ $status -eq 0 ] && echo "lint: ok"
exit $status
