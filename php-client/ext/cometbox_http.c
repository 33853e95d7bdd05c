/*
 * cometbox_http: an incremental, bounded reader of one HTTP/1.x answer.
 * See cometbox_http.h. Framing follows RFC 9112 section 6.3: no body for
 * HEAD, 1xx, 204 and 304; Transfer-Encoding chunked wins over
 * Content-Length (and then the connection is not reused); several
 * Content-Length values must agree; an answer with neither ends with the
 * connection.
 */
#include "cometbox_http.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static cbx_status fail(cbx_response *r, cbx_error_kind kind, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->error, sizeof r->error, fmt, ap);
	va_end(ap);
	r->error_kind = kind;
	r->state = CBX_S_ERROR;
	return CBX_ERROR;
}

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

int cbx_name_is(const char *name, size_t n, const char *want)
{
	size_t i;
	for (i = 0; i < n; i++) {
		if (want[i] == '\0' || lower((unsigned char) name[i]) != lower((unsigned char) want[i])) {
			return 0;
		}
	}
	return want[n] == '\0';
}

/* RFC 9110 tchar. */
static int is_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
		return 1;
	}
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

/* Whether the comma-separated list v[0..n) holds token (case-insensitive). */
static int list_has(const char *v, size_t n, const char *token)
{
	size_t i = 0;
	while (i < n) {
		size_t start, end;
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
		start = i;
		while (i < n && v[i] != ',') i++;
		end = i;
		while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t')) end--;
		if (end > start && cbx_name_is(v + start, end - start, token)) {
			return 1;
		}
	}
	return 0;
}

/* The last element of the comma-separated list v[0..n), trimmed. */
static void list_last(const char *v, size_t n, const char **out, size_t *out_len)
{
	size_t end = n, start;
	while (end > 0 && (v[end - 1] == ' ' || v[end - 1] == '\t' || v[end - 1] == ',')) end--;
	start = end;
	while (start > 0 && v[start - 1] != ',') start--;
	while (start < end && (v[start] == ' ' || v[start] == '\t')) start++;
	*out = v + start;
	*out_len = end - start;
}

void cbx_response_init(cbx_response *r, int head_request)
{
	r->status = 0;
	r->http_minor = 1;
	r->keep_alive = 0;
	r->body = NULL;
	r->body_len = 0;
	r->header_count = 0;
	r->head_len = 0;
	r->head[0] = '\0';
	r->error_kind = CBX_ERR_NONE;
	r->error[0] = '\0';
	r->state = CBX_S_HEAD;
	r->head_request = head_request;
	r->interim = 0;
	r->body_cap = 0;
	r->remaining = 0;
	r->line_len = 0;
	r->trailer_len = 0;
	r->trailer_bol = 1;
	r->trailer_cr = 1;
}

void cbx_response_free(cbx_response *r)
{
	if (r->body != NULL) {
		CBX_FREE(r->body);
		r->body = NULL;
	}
	r->body_len = 0;
	r->body_cap = 0;
}

int cbx_response_started(const cbx_response *r)
{
	return r->head_len > 0 || r->interim > 0 || r->state != CBX_S_HEAD;
}

/* Makes room for n more body bytes (and a NUL), within CBX_MAX_BODY. */
static int body_reserve(cbx_response *r, size_t n)
{
	size_t want, cap;
	char *grown;
	if (n > CBX_MAX_BODY - r->body_len) {
		return 0;
	}
	want = r->body_len + n + 1;
	if (want <= r->body_cap) {
		return 1;
	}
	cap = r->body_cap < 4096 ? 4096 : r->body_cap;
	while (cap < want) cap *= 2;
	if (cap > CBX_MAX_BODY + 1) cap = CBX_MAX_BODY + 1;
	grown = CBX_REALLOC(r->body, cap);
	if (grown == NULL) {
		return 0;
	}
	r->body = grown;
	r->body_cap = cap;
	return 1;
}

static cbx_status body_append(cbx_response *r, const char *data, size_t n)
{
	if (n == 0) {
		return CBX_MORE;
	}
	if (!body_reserve(r, n)) {
		return fail(r, CBX_ERR_TOO_LARGE, "the answer's body is over %d bytes", CBX_MAX_BODY);
	}
	memcpy(r->body + r->body_len, data, n);
	r->body_len += n;
	r->body[r->body_len] = '\0';
	return CBX_MORE;
}

static cbx_status finish(cbx_response *r)
{
	if (r->body == NULL) {
		if (!body_reserve(r, 0)) { /* an empty, NUL-terminated body */
			return fail(r, CBX_ERR_TOO_LARGE, "out of memory");
		}
		r->body[0] = '\0';
	}
	r->state = CBX_S_DONE;
	return CBX_DONE;
}

/*
 * Parses r->head[0..head_len), which ends with the blank line, and
 * decides how the body is framed.
 */
static cbx_status parse_head(cbx_response *r)
{
	const char *h = r->head, *end = r->head + r->head_len, *p, *eol;
	int connection_close = 0, connection_keep_alive = 0;
	int te_seen = 0, cl_seen = 0;
	uint64_t content_length = 0;
	const char *te = NULL;
	size_t te_len = 0;

	r->header_count = 0;

	/* The status line: HTTP/1.x SP 3DIGIT [SP reason] */
	eol = memchr(h, '\n', r->head_len);
	if (eol == NULL) { /* cannot happen: the head ends with a blank line */
		return fail(r, CBX_ERR_PROTOCOL, "no status line");
	}
	if (eol - h < 12 || memcmp(h, "HTTP/1.", 7) != 0 || (h[7] != '0' && h[7] != '1') || h[8] != ' '
		|| h[9] < '1' || h[9] > '9' || h[10] < '0' || h[10] > '9' || h[11] < '0' || h[11] > '9'
		|| (eol - h > 12 && h[12] != ' ' && !(h[12] == '\r' && eol - h == 13))) {
		size_t n = (size_t) (eol - h) < 60 ? (size_t) (eol - h) : 60, i;
		char shown[61];
		for (i = 0; i < n; i++) {
			unsigned char c = (unsigned char) h[i];
			shown[i] = c >= 0x20 && c < 0x7f ? (char) c : '?';
		}
		shown[n] = '\0';
		return fail(r, CBX_ERR_PROTOCOL, "not an HTTP/1.x answer: \"%s\"", shown);
	}
	for (p = h; p < eol; p++) {
		if (*p == '\0' || (*p == '\r' && p != eol - 1)) {
			return fail(r, CBX_ERR_PROTOCOL, "a control character in the status line");
		}
	}
	r->http_minor = h[7] - '0';
	r->status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');

	/* The header lines, up to the blank one. */
	for (p = eol + 1; p < end; p = eol + 1) {
		const char *line = p, *colon, *v, *vend;
		eol = memchr(p, '\n', (size_t) (end - p));
		if (eol == NULL) {
			return fail(r, CBX_ERR_PROTOCOL, "a header line without an end");
		}
		vend = eol;
		if (vend > line && vend[-1] == '\r') vend--;
		if (vend == line) {
			break; /* the blank line */
		}
		if (*line == ' ' || *line == '\t') {
			return fail(r, CBX_ERR_PROTOCOL, "a folded header line");
		}
		for (colon = line; colon < vend && *colon != ':'; colon++) {
			if (!is_tchar((unsigned char) *colon)) {
				return fail(r, CBX_ERR_PROTOCOL, "a bad character in a header name");
			}
		}
		if (colon == vend || colon == line) {
			return fail(r, CBX_ERR_PROTOCOL, "a header line without a name and a colon");
		}
		for (v = colon + 1; v < vend; v++) {
			if (*v == '\0' || *v == '\r') {
				return fail(r, CBX_ERR_PROTOCOL, "a control character in a header value");
			}
		}
		v = colon + 1;
		while (v < vend && (*v == ' ' || *v == '\t')) v++;
		while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t')) vend--;
		if (r->header_count >= CBX_MAX_HEADERS) {
			return fail(r, CBX_ERR_TOO_LARGE, "more than %d header lines", CBX_MAX_HEADERS);
		}
		r->headers[r->header_count].name = (uint16_t) (line - h);
		r->headers[r->header_count].name_len = (uint16_t) (colon - line);
		r->headers[r->header_count].value = (uint16_t) (v - h);
		r->headers[r->header_count].value_len = (uint16_t) (vend - v);
		r->header_count++;

		if (cbx_name_is(line, (size_t) (colon - line), "content-length")) {
			/* 1#DIGIT, every element the same (RFC 9110 section 8.6) */
			const char *q = v;
			while (q < vend) {
				uint64_t n = 0;
				int digits = 0;
				while (q < vend && (*q == ' ' || *q == '\t')) q++;
				while (q < vend && *q >= '0' && *q <= '9') {
					if (++digits > 15) {
						return fail(r, CBX_ERR_PROTOCOL, "a Content-Length of more than 15 digits");
					}
					n = n * 10 + (uint64_t) (*q - '0');
					q++;
				}
				while (q < vend && (*q == ' ' || *q == '\t')) q++;
				if (digits == 0 || (q < vend && *q != ',')) {
					return fail(r, CBX_ERR_PROTOCOL, "a bad Content-Length");
				}
				if (q < vend) q++; /* the comma */
				if (cl_seen && n != content_length) {
					return fail(r, CBX_ERR_PROTOCOL, "Content-Length values that differ");
				}
				cl_seen = 1;
				content_length = n;
			}
		} else if (cbx_name_is(line, (size_t) (colon - line), "transfer-encoding")) {
			te_seen = 1;
			te = v; /* the last Transfer-Encoding line counts: its last coding is the outermost */
			te_len = (size_t) (vend - v);
		} else if (cbx_name_is(line, (size_t) (colon - line), "connection")) {
			connection_close |= list_has(v, (size_t) (vend - v), "close");
			connection_keep_alive |= list_has(v, (size_t) (vend - v), "keep-alive");
		}
	}

	if (r->status < 200) {
		if (r->status == 101) {
			return fail(r, CBX_ERR_PROTOCOL, "101 Switching Protocols, which was never asked for");
		}
		if (++r->interim > CBX_MAX_INTERIM) {
			return fail(r, CBX_ERR_PROTOCOL, "more than %d interim (1xx) answers", CBX_MAX_INTERIM);
		}
		r->head_len = 0; /* skip it: the real answer follows */
		r->header_count = 0;
		return CBX_MORE;
	}

	r->keep_alive = r->http_minor == 1 ? !connection_close : (connection_keep_alive && !connection_close);

	if (r->head_request || r->status == 204 || r->status == 304) {
		return finish(r);
	}
	if (te_seen) {
		const char *last;
		size_t last_len;
		list_last(te, te_len, &last, &last_len);
		if (!cbx_name_is(last, last_len, "chunked")) {
			return fail(r, CBX_ERR_PROTOCOL, "an unsupported Transfer-Encoding");
		}
		if (cl_seen) {
			r->keep_alive = 0; /* RFC 9112 section 6.3: chunked wins, and the connection ends */
		}
		r->state = CBX_S_CHUNK_SIZE;
		r->line_len = 0;
		return CBX_MORE;
	}
	if (cl_seen) {
		if (content_length > CBX_MAX_BODY) {
			return fail(r, CBX_ERR_TOO_LARGE, "the answer's body is over %d bytes (Content-Length %llu)",
				CBX_MAX_BODY, (unsigned long long) content_length);
		}
		if (content_length == 0) {
			return finish(r);
		}
		if (!body_reserve(r, (size_t) content_length)) {
			return fail(r, CBX_ERR_TOO_LARGE, "out of memory for a body of %llu bytes", (unsigned long long) content_length);
		}
		r->remaining = content_length;
		r->state = CBX_S_BODY_LENGTH;
		return CBX_MORE;
	}
	r->keep_alive = 0; /* the end of the connection ends the body */
	r->state = CBX_S_BODY_CLOSE;
	return CBX_MORE;
}

/* Collects head bytes until the blank line; *used says how many it took. */
static cbx_status feed_head(cbx_response *r, const char *data, size_t len, size_t *used)
{
	size_t old = r->head_len, room = CBX_MAX_HEAD - old, n = len < room ? len : room, i, from;

	memcpy(r->head + old, data, n);
	r->head_len = old + n;
	from = old > 3 ? old - 3 : 0;
	for (i = from; i < r->head_len; i++) {
		if (r->head[i] != '\n') {
			continue;
		}
		/* An empty line: "\n\n" or "\n\r\n" (a lenient reader accepts bare LF). */
		if ((i >= 1 && r->head[i - 1] == '\n') || (i >= 2 && r->head[i - 1] == '\r' && r->head[i - 2] == '\n')) {
			if (i == 0 || (i == 1 && r->head[0] == '\r')) {
				continue;
			}
			r->head_len = i + 1;
			r->head[r->head_len] = '\0';
			*used = r->head_len - old;
			return parse_head(r);
		}
	}
	*used = n;
	if (r->head_len >= CBX_MAX_HEAD) {
		return fail(r, CBX_ERR_TOO_LARGE, "the answer's head is over %d bytes", CBX_MAX_HEAD);
	}
	return CBX_MORE;
}

/* Parses the chunk-size line in r->line (its LF dropped). */
static cbx_status chunk_size(cbx_response *r)
{
	size_t i = 0, n = r->line_len;
	uint64_t size = 0;
	int digits = 0;

	if (n > 0 && r->line[n - 1] == '\r') n--;
	while (i < n && hexval((unsigned char) r->line[i]) >= 0) {
		if (++digits > 15) {
			return fail(r, CBX_ERR_PROTOCOL, "a chunk size of more than 15 hex digits");
		}
		size = size * 16 + (uint64_t) hexval((unsigned char) r->line[i]);
		i++;
	}
	while (i < n && (r->line[i] == ' ' || r->line[i] == '\t')) i++;
	if (digits == 0 || (i < n && r->line[i] != ';')) {
		return fail(r, CBX_ERR_PROTOCOL, "a bad chunk size line");
	}
	for (; i < n; i++) {
		if (r->line[i] == '\0' || r->line[i] == '\r') {
			return fail(r, CBX_ERR_PROTOCOL, "a control character in a chunk extension");
		}
	}
	r->line_len = 0;
	if (size == 0) {
		r->state = CBX_S_TRAILERS;
		r->trailer_len = 0;
		r->trailer_bol = 1;
		r->trailer_cr = 1;
		return CBX_MORE;
	}
	if (size > (uint64_t) (CBX_MAX_BODY - r->body_len)) {
		return fail(r, CBX_ERR_TOO_LARGE, "the answer's body is over %d bytes", CBX_MAX_BODY);
	}
	r->remaining = size;
	r->state = CBX_S_CHUNK_DATA;
	return CBX_MORE;
}

cbx_status cbx_response_feed(cbx_response *r, const char *data, size_t len, size_t *used)
{
	size_t pos = 0;
	cbx_status st = CBX_MORE;

	*used = 0;
	while (st == CBX_MORE && pos < len) {
		switch (r->state) {
			case CBX_S_HEAD: {
				size_t took = 0;
				st = feed_head(r, data + pos, len - pos, &took);
				pos += took;
				break;
			}
			case CBX_S_BODY_LENGTH: {
				size_t n = len - pos;
				if ((uint64_t) n > r->remaining) n = (size_t) r->remaining;
				st = body_append(r, data + pos, n);
				pos += n;
				r->remaining -= n;
				if (st == CBX_MORE && r->remaining == 0) {
					st = finish(r);
				}
				break;
			}
			case CBX_S_BODY_CLOSE:
				st = body_append(r, data + pos, len - pos);
				pos = len;
				break;
			case CBX_S_CHUNK_SIZE:
			case CBX_S_CHUNK_CRLF: {
				char c = data[pos++];
				if (c != '\n') {
					if (r->line_len >= (r->state == CBX_S_CHUNK_SIZE ? CBX_MAX_CHUNK_LINE : 1)) {
						st = r->state == CBX_S_CHUNK_SIZE
							? fail(r, CBX_ERR_TOO_LARGE, "a chunk size line over %d bytes", CBX_MAX_CHUNK_LINE)
							: fail(r, CBX_ERR_PROTOCOL, "a chunk is longer than its size");
						break;
					}
					r->line[r->line_len++] = c;
					break;
				}
				if (r->state == CBX_S_CHUNK_SIZE) {
					st = chunk_size(r);
				} else if (r->line_len == 0 || r->line[0] == '\r') {
					r->line_len = 0;
					r->state = CBX_S_CHUNK_SIZE;
				} else {
					st = fail(r, CBX_ERR_PROTOCOL, "a chunk is longer than its size");
				}
				break;
			}
			case CBX_S_CHUNK_DATA: {
				size_t n = len - pos;
				if ((uint64_t) n > r->remaining) n = (size_t) r->remaining;
				st = body_append(r, data + pos, n);
				pos += n;
				r->remaining -= n;
				if (r->remaining == 0) {
					r->state = CBX_S_CHUNK_CRLF;
					r->line_len = 0;
				}
				break;
			}
			case CBX_S_TRAILERS: {
				char c = data[pos++];
				if (++r->trailer_len > CBX_MAX_HEAD) {
					st = fail(r, CBX_ERR_TOO_LARGE, "the answer's trailers are over %d bytes", CBX_MAX_HEAD);
					break;
				}
				if (c == '\n') {
					if (r->trailer_cr) {
						st = finish(r); /* the blank line */
						break;
					}
					r->trailer_bol = 1;
					r->trailer_cr = 1;
				} else {
					r->trailer_cr = r->trailer_bol && c == '\r';
					r->trailer_bol = 0;
				}
				break;
			}
			case CBX_S_DONE:
				st = CBX_DONE;
				break;
			case CBX_S_ERROR:
			default:
				st = CBX_ERROR;
				break;
		}
	}
	if (st == CBX_MORE && r->state == CBX_S_DONE) {
		st = CBX_DONE; /* nothing left to feed, but already complete (e.g. a 204 head) */
	}
	*used = pos;
	return st;
}

cbx_status cbx_response_eof(cbx_response *r)
{
	switch (r->state) {
		case CBX_S_DONE:
			return CBX_DONE;
		case CBX_S_ERROR:
			return CBX_ERROR;
		case CBX_S_BODY_CLOSE:
			return finish(r);
		case CBX_S_HEAD:
			if (!cbx_response_started(r)) {
				return fail(r, CBX_ERR_TRUNCATED, "connection closed before any answer");
			}
			return fail(r, CBX_ERR_TRUNCATED, "connection closed after %zu bytes of the head", r->head_len);
		case CBX_S_BODY_LENGTH:
			return fail(r, CBX_ERR_TRUNCATED, "connection closed after %zu of %zu bytes of the body",
				r->body_len, r->body_len + (size_t) r->remaining);
		default:
			return fail(r, CBX_ERR_TRUNCATED, "connection closed in the middle of a chunked body, after %zu bytes", r->body_len);
	}
}
