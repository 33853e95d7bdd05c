/*
 * cometbox_http: an incremental reader of one HTTP/1.x answer, bounded.
 *
 * Pure C with no Zend dependency, so that fuzz/fuzz_http.c can drive it
 * alone under AddressSanitizer; the extension builds it with emalloc (see
 * CBX_MALLOC below). Feed it the bytes as they come, in pieces of any
 * size; it never reads past what it was given, never holds more than
 * CBX_MAX_HEAD bytes of head nor CBX_MAX_BODY bytes of body, and gives the
 * same result however the bytes were split (the fuzz harness checks that).
 *
 *     cbx_response r;
 *     cbx_response_init(&r, is_head_request);
 *     while ((st = cbx_response_feed(&r, buf, n, &used)) == CBX_MORE) { ...read more... }
 *     on the end of the connection: st = cbx_response_eof(&r);
 *     ... r.status, cbx_response_header(&r, i, ...), r.body, r.body_len ...
 *     cbx_response_free(&r);
 */
#ifndef COMETBOX_HTTP_H
#define COMETBOX_HTTP_H

#include <stddef.h>
#include <stdint.h>

#if defined(CBX_ZEND_ALLOC) && !defined(CBX_MALLOC)
#include "php.h"
#define CBX_MALLOC(n) emalloc(n)
#define CBX_REALLOC(p, n) erealloc((p), (n))
#define CBX_FREE(p) efree(p)
#endif
#ifndef CBX_MALLOC
#include <stdlib.h>
#define CBX_MALLOC(n) malloc(n)
#define CBX_REALLOC(p, n) realloc((p), (n))
#define CBX_FREE(p) free(p)
#endif

/* The most bytes of status line and headers (and, separately, of chunked trailers). */
#define CBX_MAX_HEAD 16384
/* The most header lines in one head. */
#define CBX_MAX_HEADERS 100
/* The most bytes of body, after any chunked decoding. */
#define CBX_MAX_BODY (1024 * 1024)
/* The longest chunk-size line, extensions included. */
#define CBX_MAX_CHUNK_LINE 1024
/* The most interim (1xx) answers skipped before the real one. */
#define CBX_MAX_INTERIM 8

typedef enum {
	CBX_MORE = 0,  /* give me more bytes (or tell me the connection ended) */
	CBX_DONE = 1,  /* a whole answer has been read */
	CBX_ERROR = 2, /* the answer is malformed, too large or cut short: see error */
} cbx_status;

typedef enum {
	CBX_ERR_NONE = 0,
	CBX_ERR_PROTOCOL,  /* not HTTP/1.x, or malformed */
	CBX_ERR_TOO_LARGE, /* over one of the bounds above */
	CBX_ERR_TRUNCATED, /* the connection ended before the answer did */
} cbx_error_kind;

typedef struct {
	uint16_t name, name_len, value, value_len; /* offsets into head */
} cbx_header;

typedef enum {
	CBX_S_HEAD,        /* collecting the head */
	CBX_S_BODY_LENGTH, /* Content-Length bytes */
	CBX_S_BODY_CLOSE,  /* everything up to the end of the connection */
	CBX_S_CHUNK_SIZE,  /* a chunk-size line */
	CBX_S_CHUNK_DATA,  /* the bytes of a chunk */
	CBX_S_CHUNK_CRLF,  /* the line end after a chunk's bytes */
	CBX_S_TRAILERS,    /* trailer lines, up to the blank line */
	CBX_S_DONE,
	CBX_S_ERROR,
} cbx_state;

typedef struct {
	/* The result, once cbx_response_feed() or cbx_response_eof() said CBX_DONE. */
	int status;          /* 100..999 */
	int http_minor;      /* 0 or 1 */
	int keep_alive;      /* the connection may carry another request */
	char *body;          /* body_len bytes, NUL-terminated; NULL when empty */
	size_t body_len;
	cbx_header headers[CBX_MAX_HEADERS];
	int header_count;
	char head[CBX_MAX_HEAD + 1]; /* the final answer's head, as received */
	size_t head_len;

	/* What went wrong, once CBX_ERROR. */
	cbx_error_kind error_kind;
	char error[160];

	/* Internal. */
	cbx_state state;
	int head_request;
	int interim;
	size_t body_cap;
	uint64_t remaining;  /* of Content-Length or of the current chunk */
	char line[CBX_MAX_CHUNK_LINE + 1];
	size_t line_len;
	size_t trailer_len;
	int trailer_bol;     /* at the beginning of a trailer line */
	int trailer_cr;      /* the trailer line so far is empty or a lone CR */
} cbx_response;

void cbx_response_init(cbx_response *r, int head_request);
void cbx_response_free(cbx_response *r);

/*
 * Consumes up to len bytes of data; *used says how many it took (fewer
 * than len only once it returns CBX_DONE or CBX_ERROR: the rest belongs
 * to no answer of ours).
 */
cbx_status cbx_response_feed(cbx_response *r, const char *data, size_t len, size_t *used);

/* The connection ended: CBX_DONE for an answer delimited by it, else CBX_ERROR. */
cbx_status cbx_response_eof(cbx_response *r);

/* Whether anything of an answer has been received yet. */
int cbx_response_started(const cbx_response *r);

/* Case-insensitive comparison of a header name (n bytes) with a C string. */
int cbx_name_is(const char *name, size_t n, const char *want);

#endif
