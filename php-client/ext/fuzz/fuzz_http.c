/*
 * A property test of cometbox_http.c, built alone with AddressSanitizer
 * and UndefinedBehaviorSanitizer (make -C php-client/ext -f fuzz/Makefile,
 * or `make fuzz-ext` from the repository root):
 *
 *     fuzz_http [ITERATIONS] [SEED]
 *
 * Each iteration takes a seed answer (valid HTTP/1.x of every framing),
 * mutates it (truncations, byte flips, insertions, huge sizes, repeats,
 * garbage, long lines), then reads it twice: in one piece, and in random
 * pieces of 1 to 64 bytes, each run ended with cbx_response_eof(). It
 * checks that neither run breaks a bound (head, body, header count) and
 * that both give the same result: same status, headers, body, error and
 * bytes consumed. The sanitizers catch any read or write out of bounds,
 * any use after free and any undefined arithmetic on the way.
 *
 * Built with clang -fsanitize=fuzzer -DCBX_LIBFUZZER it is a libFuzzer
 * target instead, with the same checks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cometbox_http.h"

typedef struct {
	cbx_status status;
	size_t used;
	cbx_response r;
} run_result;

static uint64_t rng_state = 18;

static uint64_t rnd(void)
{
	/* xorshift64*: deterministic for a given SEED, so a failure replays */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static size_t below(size_t n)
{
	return n == 0 ? 0 : (size_t) (rnd() % n);
}

static void die(const char *what, const char *data, size_t len)
{
	size_t i;
	fprintf(stderr, "fuzz_http: %s; the input (%zu bytes, C-escaped):\n\"", what, len);
	for (i = 0; i < len && i < 4096; i++) {
		unsigned char c = (unsigned char) data[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			fputc(c, stderr);
		} else {
			fprintf(stderr, "\\x%02x", c);
		}
	}
	fprintf(stderr, "\"\n");
	abort();
}

/* Reads data in pieces of at most max_piece bytes (0: one piece). */
static void run(run_result *out, const char *data, size_t len, size_t max_piece, int head_request)
{
	size_t pos = 0;
	out->status = CBX_MORE;
	out->used = 0;
	cbx_response_init(&out->r, head_request);
	while (pos < len && out->status == CBX_MORE) {
		size_t n = max_piece == 0 ? len - pos : 1 + below(max_piece), used = 0;
		if (n > len - pos) n = len - pos;
		out->status = cbx_response_feed(&out->r, data + pos, n, &used);
		if (used > n || (out->status == CBX_MORE && used != n)) {
			die("feed consumed more than it was given, or less without finishing", data, len);
		}
		pos += used;
		out->used += used;
	}
	if (out->status == CBX_MORE) {
		out->status = cbx_response_eof(&out->r);
	}
}

static void check_bounds(const run_result *a, const char *data, size_t len)
{
	int i;
	if (a->r.body_len > CBX_MAX_BODY) die("a body over CBX_MAX_BODY", data, len);
	if (a->r.head_len > CBX_MAX_HEAD) die("a head over CBX_MAX_HEAD", data, len);
	if (a->r.header_count < 0 || a->r.header_count > CBX_MAX_HEADERS) die("too many headers", data, len);
	if (a->status == CBX_DONE) {
		if (a->r.status < 100 || a->r.status > 999) die("a status out of range", data, len);
		if (a->r.body == NULL || a->r.body[a->r.body_len] != '\0') die("a body without its NUL", data, len);
		for (i = 0; i < a->r.header_count; i++) {
			const cbx_header *h = &a->r.headers[i];
			if ((size_t) h->name + h->name_len > a->r.head_len || (size_t) h->value + h->value_len > a->r.head_len) {
				die("a header outside the head", data, len);
			}
		}
	} else if (a->status == CBX_ERROR) {
		if (a->r.error[0] == '\0' || a->r.error_kind == CBX_ERR_NONE) die("an error without its reason", data, len);
	} else {
		die("neither done nor failed after the end", data, len);
	}
}

static void same(const run_result *a, const run_result *b, const char *data, size_t len)
{
	int i;
	if (a->status != b->status) die("the result depends on how the bytes were split", data, len);
	if (a->status == CBX_ERROR) {
		if (a->r.error_kind != b->r.error_kind || strcmp(a->r.error, b->r.error) != 0) {
			die("the error depends on how the bytes were split", data, len);
		}
		return;
	}
	if (a->used != b->used || a->r.status != b->r.status || a->r.keep_alive != b->r.keep_alive
		|| a->r.body_len != b->r.body_len || (a->r.body_len > 0 && memcmp(a->r.body, b->r.body, a->r.body_len) != 0)
		|| a->r.header_count != b->r.header_count || a->r.head_len != b->r.head_len
		|| memcmp(a->r.head, b->r.head, a->r.head_len) != 0) {
		die("the answer depends on how the bytes were split", data, len);
	}
	for (i = 0; i < a->r.header_count; i++) {
		if (memcmp(&a->r.headers[i], &b->r.headers[i], sizeof a->r.headers[i]) != 0) {
			die("the headers depend on how the bytes were split", data, len);
		}
	}
}

static void one(const char *data, size_t len, int head_request)
{
	static run_result whole, pieces;
	run(&whole, data, len, 0, head_request);
	check_bounds(&whole, data, len);
	run(&pieces, data, len, 1 + below(64), head_request);
	check_bounds(&pieces, data, len);
	same(&whole, &pieces, data, len);
	cbx_response_free(&whole.r);
	cbx_response_free(&pieces.r);
}

#ifdef CBX_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rng_state = 18 + size;
	one((const char *) data, size, size > 0 && data[0] == 'H' && size % 7 == 0);
	return 0;
}
#else

static const char *seeds[] = {
	"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: 61\r\n\r\n"
	"<?xml version=\"1.0\"?><queued><message to=\"a\" id=\"1\"/></queued>",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3;x=y\r\nefg\r\n0\r\nT: 1\r\n\r\n",
	"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 2\r\n\r\nno",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX: y\r\n\r\n",
	"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nto the end",
	"HTTP/1.1 200 OK\nContent-Length: 1\n\nx",
	"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nConnection: close\r\n\r\nabc",
	"HTTP/1.1 413 Payload Too Large\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n1\r\nx\r\n0\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n",
};

static char buf[2 * CBX_MAX_BODY + 65536];

/* Replaces buf[at..at+cut) with the n bytes of ins, within the buffer. */
static size_t splice(size_t len, size_t at, size_t cut, const char *ins, size_t n)
{
	if (at > len) at = len;
	if (cut > len - at) cut = len - at;
	if (len - cut + n > sizeof buf) return len;
	memmove(buf + at + n, buf + at + cut, len - at - cut);
	memcpy(buf + at, ins, n);
	return len - cut + n;
}

static size_t mutate(size_t len)
{
	static const char *tokens[] = {
		"\r\n", "\n", "\r", "\r\n\r\n", ":", " ", "\t", ",", ";", "0\r\n\r\n", "ffffffffffffffff",
		"Content-Length: ", "Transfer-Encoding: chunked\r\n", "Connection: close\r\n", "HTTP/1.1 ", "HTTP/1.0 100 X\r\n\r\n",
		"99999999999", "100000", "-1", "\0", "\xff",
	};
	char tmp[64];
	size_t i, n, at = below(len + 1);
	switch (below(10)) {
		case 0: return below(len + 1);                                   /* truncate */
		case 1: if (len) buf[below(len)] = (char) rnd(); return len;      /* flip a byte */
		case 2:                                                           /* insert random bytes */
			n = 1 + below(sizeof tmp);
			for (i = 0; i < n; i++) tmp[i] = (char) rnd();
			return splice(len, at, 0, tmp, n);
		case 3: {                                                         /* insert a token */
			const char *t = tokens[below(sizeof tokens / sizeof *tokens)];
			return splice(len, at, below(4), t, t[0] == '\0' ? 1 : strlen(t));
		}
		case 4:                                                           /* repeat a piece */
			n = below(len - at + 1);
			if (n > 4096) n = 4096;
			memcpy(tmp, buf + at, n < sizeof tmp ? n : sizeof tmp);
			return splice(len, at, 0, tmp, n < sizeof tmp ? n : sizeof tmp);
		case 5: {                                                         /* a long run: a line, a body or a head over a bound */
			static char run_bytes[CBX_MAX_BODY + 2];
			size_t sizes[] = {CBX_MAX_CHUNK_LINE, CBX_MAX_HEAD, CBX_MAX_BODY};
			n = sizes[below(3)] + below(3) - 1;
			memset(run_bytes, "x\n: 0a"[below(6)], n);
			return splice(len, at, 0, run_bytes, n);
		}
		case 6: return splice(len, at, below(16), "", 0);                /* delete */
		case 7:                                                           /* many headers */
			for (i = 0; i < (size_t) (90 + below(20)); i++) len = splice(len, at, 0, "A: b\r\n", 6);
			return len;
		case 8:                                                           /* two answers in a row */
			n = len < sizeof buf - len ? len : sizeof buf - len;
			memcpy(buf + len, buf, n);
			return len + n;
		default: return len;
	}
}

int main(int argc, char **argv)
{
	long iterations = argc > 1 ? atol(argv[1]) : 20000, it;
	size_t nseeds = sizeof seeds / sizeof *seeds, s;
	rng_state = argc > 2 ? strtoull(argv[2], NULL, 10) : 18;
	if (rng_state == 0) rng_state = 18;

	for (s = 0; s < nseeds; s++) { /* every seed as is, and cut at every byte */
		size_t len = strlen(seeds[s]), cut;
		for (cut = 0; cut <= len; cut++) {
			one(seeds[s], cut, 0);
			one(seeds[s], cut, 1);
		}
	}
	for (it = 0; it < iterations; it++) {
		size_t len, k, rounds = 1 + below(4);
		s = below(nseeds);
		len = strlen(seeds[s]);
		memcpy(buf, seeds[s], len);
		for (k = 0; k < rounds; k++) {
			len = mutate(len);
		}
		one(buf, len, below(8) == 0);
	}
	printf("fuzz_http: %ld mutated answers and every cut of %zu seeds, each read whole and in pieces: 0 failures\n", iterations, nseeds);
	return 0;
}
#endif
