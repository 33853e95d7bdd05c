#!/usr/bin/env bash
# make test-php-ext: build the extension (phpize, configure, make with
# warnings as errors; `test.sh build` stops there), run its .phpt suite, run it again under valgrind
# (memcheck, leaks included), and run the parser's property test under
# AddressSanitizer and UBSan. A step whose tool is missing is skipped,
# or fails with COMETBOX_TEST_STRICT=1.
set -euo pipefail
cd "$(dirname "$0")"

missing() {
  if [ "${COMETBOX_TEST_STRICT:-}" = 1 ]; then echo "strict mode: $1"; exit 1; fi
  echo "SKIP $1 (set COMETBOX_TEST_STRICT=1 to fail instead)"
}

if ! command -v phpize >/dev/null 2>&1 || ! command -v php-config >/dev/null 2>&1 || ! command -v cc >/dev/null 2>&1; then
  missing "test-php-ext: phpize, php-config or cc not installed (apt-get install php-dev gcc)"
  exit 0
fi

# Configure once per PHP: a build for another PHP's API is redone.
api=$(php-config --phpapi)
if [ ! -f Makefile ] || [ ! -f .phpapi ] || [ "$(cat .phpapi)" != "$api" ] || [ config.m4 -nt Makefile ]; then
  [ ! -f Makefile ] || make -s distclean >/dev/null 2>&1 || true
  phpize >/dev/null
  ./configure --enable-cometbox >/dev/null
  echo "$api" > .phpapi
fi
make -s CFLAGS="-O2 -g -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers" >/dev/null
php -n -d extension="$PWD/modules/cometbox.so" --ri cometbox | sed -n '4p'
[ "${1:-}" != build ] || exit 0

run_phpt() { make -s test NO_INTERACTION=1 REPORT_EXIT_STATUS=1 TESTS="-q --show-diff $* tests/" | grep -E 'FAIL|LEAK|SKIP|BORK|Tests (passed|failed|leaked|skipped|warned)|^[0-9]+[+-] ' ; }

echo "test-php-ext: .phpt"
run_phpt
if command -v valgrind >/dev/null 2>&1; then
  echo "test-php-ext: .phpt under valgrind (pcre.jit=0: PCRE's JIT over-reads by design)"
  run_phpt -m -d pcre.jit=0
else
  missing "test-php-ext under valgrind: valgrind not installed (apt-get install valgrind)"
fi
echo "test-php-ext: cometbox_http.c under ASan and UBSan"
make -s -f fuzz/Makefile fuzz FUZZ_ITERATIONS="${FUZZ_ITERATIONS:-20000}"
