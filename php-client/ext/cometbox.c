/*
 * cometbox: the native transport of cometbox's PHP client.
 *
 * Cometbox\Native\request() sends one HTTP/1.1 request on a connection
 * kept open in the worker process (EG(persistent_list), as pfsockopen()
 * keeps its sockets), so that consecutive requests served by one php-fpm
 * or mod_php worker reuse one TCP (or TLS) connection per node instead of
 * connecting each time. Everything else (formats, failover, idempotency
 * keys, exceptions) stays in the PHP class: Cometbox\Transport\NativeTransport
 * is the adapter that Transports::detect() prefers when this is loaded.
 *
 * A kept connection is checked before reuse: one that the node closed
 * (idle timeout, restart) or that holds unexpected bytes is closed and a
 * new one opened. A request that then fails on a reused connection before
 * any byte of an answer arrived (the node closed it as we wrote) is sent
 * once more on a new connection, and only when repeating it is harmless:
 * it carries an Idempotency-Key (every publish of the PHP class does) or
 * its method is GET or HEAD. Answers are read by cometbox_http.c, bounded
 * (CBX_MAX_HEAD, CBX_MAX_BODY); the whole exchange by the timeout.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>

#include "php.h"
#include "php_ini.h"
#include "php_network.h"
#include "ext/standard/info.h"
#include "ext/standard/url.h"
#include "ext/spl/spl_exceptions.h"
#include "zend_exceptions.h"
#include "zend_smart_str.h"

#ifndef PHP_WIN32
#include <netinet/in.h>
#include <netinet/tcp.h>
#endif

#include "php_cometbox.h"
#include "cometbox_http.h"

/* NetworkException codes: what kind of failure. */
#define CBX_E_CONNECT 1   /* could not connect */
#define CBX_E_TIMEOUT 2   /* the timeout passed */
#define CBX_E_CLOSED 3    /* the connection ended or failed before the answer did */
#define CBX_E_PROTOCOL 4  /* an answer that is not HTTP/1.x, or a URL that is not http(s) */
#define CBX_E_TOO_LARGE 5 /* an answer over the bounds of cometbox_http.h */
#define CBX_E_TLS 6       /* https:// without PHP's openssl */

#include "cometbox_arginfo.h"

/* The prefix of our entries in EG(persistent_list). */
#define CBX_PERSISTENT_PREFIX "cometbox:"
/* Requests up to this size (head and body) go out in one write. */
#define CBX_ONE_WRITE 65536

ZEND_DECLARE_MODULE_GLOBALS(cometbox)

static zend_class_entry *cbx_network_exception_ce;

static ZEND_INI_MH(cbx_on_update_seconds)
{
	double seconds = zend_strtod(ZSTR_VAL(new_value), NULL);
	if (!zend_finite(seconds) || seconds <= 0) {
		return FAILURE;
	}
	return OnUpdateReal(entry, new_value, mh_arg1, mh_arg2, mh_arg3, stage);
}

PHP_INI_BEGIN()
	STD_PHP_INI_BOOLEAN("cometbox.persistent", "1", PHP_INI_ALL, OnUpdateBool, persistent, zend_cometbox_globals, cometbox_globals)
	STD_PHP_INI_ENTRY("cometbox.connect_timeout", "1.0", PHP_INI_ALL, cbx_on_update_seconds, connect_timeout, zend_cometbox_globals, cometbox_globals)
	STD_PHP_INI_ENTRY("cometbox.timeout", "2.0", PHP_INI_ALL, cbx_on_update_seconds, timeout, zend_cometbox_globals, cometbox_globals)
PHP_INI_END()

/* One request, as parsed and checked, and where it goes. */
typedef struct {
	const char *method;
	const char *url;
	double timeout;
	double deadline;     /* absolute, seconds */
	double connect_timeout;
	bool persistent;
	bool head_request;
	bool repeatable;     /* an Idempotency-Key or a safe method: a resend is harmless */
	bool tls;
	smart_str target;    /* "tcp://host:port" or "tls://host:port" */
	smart_str id;        /* the persistent id: "cometbox:" target */
	smart_str head;      /* the request line and headers, blank line included */
	zend_string *body;
} cbx_request;

/* Why an exchange failed, and whether a resend on a new connection may help. */
typedef struct {
	int code;            /* CBX_E_* */
	bool stale;          /* the connection died before any answer: resend if repeatable */
	char what[512];
} cbx_failure;

static double cbx_now(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double) tv.tv_sec + (double) tv.tv_usec / 1e6;
}

static void cbx_set_timeout(php_stream *stream, double seconds)
{
	struct timeval tv;
	if (seconds < 0.000001) {
		seconds = 0.000001;
	}
	tv.tv_sec = (time_t) seconds;
	tv.tv_usec = (suseconds_t) ((seconds - (double) tv.tv_sec) * 1e6);
	php_stream_set_option(stream, PHP_STREAM_OPTION_READ_TIMEOUT, 0, &tv);
}

static php_socket_t cbx_fd(php_stream *stream)
{
	php_socket_t fd = -1;
	if (php_stream_cast(stream, PHP_STREAM_AS_SOCKETD | PHP_STREAM_CAST_INTERNAL, (void **) &fd, 0) != SUCCESS) {
		return -1;
	}
	return fd;
}

/* Whether the socket has something to read now: bytes, or the end. */
static bool cbx_readable(php_stream *stream)
{
	php_socket_t fd = cbx_fd(stream);
	return fd != -1 && php_pollfd_for_ms(fd, POLLIN, 0) > 0;
}

static void cbx_fail(cbx_failure *f, int code, bool stale, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->what, sizeof f->what, fmt, ap);
	va_end(ap);
	f->code = code;
	f->stale = stale;
}

/*
 * The warnings PHP raised (and the @-style suppression hid) while
 * recording, joined by "; " without their "function(): " prefix: openssl
 * says why a handshake failed only there.
 */
static void cbx_recorded_errors(char *out, size_t size, const char *skip)
{
	uint32_t i;
	size_t n = 0;
	out[0] = '\0';
	for (i = 0; i < EG(num_errors) && n + 1 < size; i++) {
		const char *m = ZSTR_VAL(EG(errors)[i]->message), *p = strstr(m, "(): ");
		if (p != NULL) {
			m = p + 4;
		}
		if (skip != NULL && strcmp(m, skip) == 0) {
			continue; /* said already */
		}
		n += (size_t) snprintf(out + n, size - n, "%s%s", n > 0 ? "; " : "", m);
	}
}

/* Throws NetworkException: "METHOD URL: what (timeout Ns)", as the PHP transports word it. */
static void cbx_throw(const cbx_request *req, int code, const char *what)
{
	char seconds[32];
	size_t n;
	snprintf(seconds, sizeof seconds, "%.3f", req->timeout);
	n = strlen(seconds);
	while (n > 0 && seconds[n - 1] == '0') seconds[--n] = '\0';
	if (n > 0 && seconds[n - 1] == '.') seconds[--n] = '\0';
	zend_throw_exception_ex(cbx_network_exception_ce, code, "%s %s: %s (timeout %ss)", req->method, req->url, what, seconds);
}

static void cbx_close(php_stream *stream, bool persistent)
{
	if (persistent) {
		php_stream_pclose(stream);
	} else {
		php_stream_close(stream);
	}
}

/*
 * A kept connection for this node, if there is one and it looks alive:
 * the node has not closed it and sent nothing unasked. Else NULL (a dead
 * one is closed).
 */
static php_stream *cbx_reuse(const cbx_request *req)
{
	php_stream *stream = NULL;
	bool alive;

	if (php_stream_from_persistent_id(ZSTR_VAL(req->id.s), &stream) != PHP_STREAM_PERSISTENT_SUCCESS || stream == NULL) {
		return NULL;
	}
	if (req->tls) {
		/* openssl's own check, which reads past a TLS record that is not data (a session ticket) */
		alive = php_stream_set_option(stream, PHP_STREAM_OPTION_CHECK_LIVENESS, 0, NULL) == PHP_STREAM_OPTION_RETURN_OK;
	} else {
		/* idle and in step: nothing to read. Readable means the end (or a reset), or bytes nobody asked for */
		alive = cbx_fd(stream) != -1 && !cbx_readable(stream);
	}
	if (!alive) {
		COMETBOX_G(stale_found)++;
		php_stream_pclose(stream);
		return NULL;
	}
	COMETBOX_G(connections_reused)++;
	return stream;
}

static php_stream *cbx_connect(const cbx_request *req, cbx_failure *f)
{
	struct timeval tv;
	zend_string *errstr = NULL;
	int errcode = 0, one = 1;
	bool recording = !EG(record_errors);
	double left = req->deadline - cbx_now(), seconds = req->connect_timeout < left ? req->connect_timeout : left;
	php_stream *stream;
	php_socket_t fd;

	if (seconds <= 0) {
		cbx_fail(f, CBX_E_TIMEOUT, false, "no time left to connect");
		return NULL;
	}
	tv.tv_sec = (time_t) seconds;
	tv.tv_usec = (suseconds_t) ((seconds - (double) tv.tv_sec) * 1e6);
	if (recording) {
		zend_begin_record_errors();
	}
	stream = php_stream_xport_create(ZSTR_VAL(req->target.s), ZSTR_LEN(req->target.s), 0,
		STREAM_XPORT_CLIENT | STREAM_XPORT_CONNECT,
		req->persistent ? ZSTR_VAL(req->id.s) : NULL, &tv, NULL, &errstr, &errcode);
	if (stream == NULL) {
		char warnings[384] = "";
		const char *why = errstr != NULL && ZSTR_LEN(errstr) > 0 ? ZSTR_VAL(errstr) : NULL;
		const char *host = ZSTR_VAL(req->target.s) + sizeof("tcp://") - 1;
		bool timed_out = errcode == ETIMEDOUT || (why != NULL && strstr(why, "timed out") != NULL);
		if (recording) {
			cbx_recorded_errors(warnings, sizeof warnings, why);
		}
		if (why == NULL && warnings[0] == '\0') {
			why = "error";
		}
		cbx_fail(f, timed_out ? CBX_E_TIMEOUT : CBX_E_CONNECT, false, "cannot connect to %s: %s%s%s", host,
			why != NULL ? why : "", why != NULL && warnings[0] != '\0' ? "; " : "", warnings);
		if (errstr != NULL) {
			zend_string_release(errstr);
		}
	}
	if (recording) {
		zend_free_recorded_errors();
		EG(record_errors) = false;
	}
	if (stream == NULL) {
		return NULL;
	}
	if (errstr != NULL) {
		zend_string_release(errstr);
	}
	stream->flags |= PHP_STREAM_FLAG_SUPPRESS_ERRORS;
	/* our own buffer reads the answer: no bytes may hide in the stream's */
	php_stream_set_option(stream, PHP_STREAM_OPTION_READ_BUFFER, PHP_STREAM_BUFFER_NONE, NULL);
	fd = cbx_fd(stream);
	if (fd != -1) {
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, (char *) &one, sizeof one);
	}
	COMETBOX_G(connections_opened)++;
	return stream;
}

/*
 * Writes the request. Between pieces of a large body, it stops as soon as
 * the node has something to say (a 413 before it read everything): that
 * answer is what counts, as with curl. Returns false with f set when the
 * writing failed; *early is set when it stopped for an answer.
 */
static bool cbx_write(php_stream *stream, const cbx_request *req, cbx_failure *f)
{
	const char *parts[2];
	size_t lens[2], total = 0, sent = 0;
	int p;

	parts[0] = ZSTR_VAL(req->head.s);
	lens[0] = ZSTR_LEN(req->head.s);
	parts[1] = ZSTR_VAL(req->body);
	lens[1] = ZSTR_LEN(req->body);
	total = lens[0] + lens[1];

	for (p = 0; p < 2; p++) {
		size_t off = 0;
		while (off < lens[p]) {
			double left = req->deadline - cbx_now();
			size_t n = lens[p] - off < CBX_ONE_WRITE ? lens[p] - off : CBX_ONE_WRITE;
			ssize_t wrote;
			if (sent > 0 && cbx_readable(stream)) {
				return true; /* an early answer, or the end: the read tells which */
			}
			if (left <= 0) {
				cbx_fail(f, CBX_E_TIMEOUT, false, "timed out after sending %zu of %zu bytes of the request", sent, total);
				return false;
			}
			cbx_set_timeout(stream, left);
			wrote = php_stream_write(stream, parts[p] + off, n);
			if (wrote <= 0) {
				bool timed_out = req->deadline - cbx_now() <= 0;
				cbx_fail(f, timed_out ? CBX_E_TIMEOUT : CBX_E_CLOSED, !timed_out,
					"%s after sending %zu of %zu bytes of the request", timed_out ? "timed out" : "connection closed", sent, total);
				return false;
			}
			off += (size_t) wrote;
			sent += (size_t) wrote;
		}
	}
	return true;
}

/* Reads one answer into r. Returns false with f set when none came whole. */
static bool cbx_read(php_stream *stream, const cbx_request *req, cbx_response *r, bool *reusable, cbx_failure *f)
{
	char buf[16384];
	size_t received = 0;

	for (;;) {
		double left = req->deadline - cbx_now();
		ssize_t n;
		cbx_status st;
		size_t used = 0;

		if (left <= 0) {
			cbx_fail(f, CBX_E_TIMEOUT, false, "timed out after %zu bytes of the answer", received);
			return false;
		}
		cbx_set_timeout(stream, left);
		n = php_stream_read(stream, buf, sizeof buf);
		if (n > 0) {
			received += (size_t) n;
			st = cbx_response_feed(r, buf, (size_t) n, &used);
			if (st == CBX_DONE) {
				/* bytes after the answer belong to nothing we asked: never reuse */
				*reusable = r->keep_alive && used == (size_t) n;
				return true;
			}
			if (st == CBX_ERROR) {
				cbx_fail(f, r->error_kind == CBX_ERR_TOO_LARGE ? CBX_E_TOO_LARGE : CBX_E_PROTOCOL, false, "%s", r->error);
				return false;
			}
			continue;
		}
		if (php_stream_eof(stream)) {
			bool started = cbx_response_started(r);
			st = cbx_response_eof(r);
			if (st == CBX_DONE) {
				*reusable = false;
				return true;
			}
			cbx_fail(f, CBX_E_CLOSED, !started, "%s", r->error);
			return false;
		}
		/* nothing and no end: the timeout passed (checked at the top), or an interrupted wait */
	}
}

/* The answer as [status, headers, body]. */
static void cbx_answer(zval *return_value, const cbx_response *r)
{
	zval headers;
	int i;

	array_init_size(return_value, 3);
	add_next_index_long(return_value, r->status);
	array_init_size(&headers, (uint32_t) r->header_count);
	for (i = 0; i < r->header_count; i++) {
		const cbx_header *h = &r->headers[i];
		zend_string *name = zend_string_init(r->head + h->name, h->name_len, 0);
		zval *existing;
		zend_str_tolower(ZSTR_VAL(name), ZSTR_LEN(name));
		existing = zend_symtable_find(Z_ARRVAL(headers), name);
		if (existing != NULL) { /* repeated: joined with ", " (RFC 9110 section 5.3) */
			zend_string *joined = zend_string_concat3(Z_STRVAL_P(existing), Z_STRLEN_P(existing), ", ", 2,
				r->head + h->value, h->value_len);
			zval_ptr_dtor(existing);
			ZVAL_STR(existing, joined);
		} else {
			zval value;
			ZVAL_STRINGL(&value, r->head + h->value, h->value_len);
			zend_symtable_update(Z_ARRVAL(headers), name, &value);
		}
		zend_string_release(name);
	}
	add_next_index_zval(return_value, &headers);
	add_next_index_stringl(return_value, r->body != NULL ? r->body : "", r->body_len);
}

static bool cbx_is_token(const char *s, size_t n)
{
	size_t i;
	if (n == 0) {
		return false;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char) s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c)))) {
			return false;
		}
	}
	return true;
}

/*
 * Checks the arguments and builds the request's head. Returns false after
 * throwing (ValueError for a bad argument, NetworkException for a URL that
 * is not http(s)).
 */
static bool cbx_prepare(cbx_request *req, zend_string *method, zend_string *url, HashTable *headers)
{
	php_url *u;
	zend_string *name;
	zval *value;
	zend_ulong index;
	unsigned short port;
	bool has_port = false;

	if (!cbx_is_token(ZSTR_VAL(method), ZSTR_LEN(method))) {
		zend_argument_value_error(1, "must be an HTTP method token, like \"POST\"");
		return false;
	}
	u = php_url_parse_ex2(ZSTR_VAL(url), ZSTR_LEN(url), &has_port);
	if (u == NULL || u->scheme == NULL || u->host == NULL || ZSTR_LEN(u->host) == 0
		|| (!zend_string_equals_literal_ci(u->scheme, "http") && !zend_string_equals_literal_ci(u->scheme, "https"))
		|| u->user != NULL || u->pass != NULL || u->fragment != NULL || strpbrk(ZSTR_VAL(url), " \t\r\n") != NULL) {
		if (u != NULL) {
			php_url_free(u);
		}
		cbx_throw(req, CBX_E_PROTOCOL, "not an absolute http(s) URL");
		return false;
	}
	req->tls = zend_string_equals_literal_ci(u->scheme, "https");
	port = has_port ? u->port : (req->tls ? 443 : 80);
	if (req->tls && !zend_hash_str_exists(php_stream_xport_get_hash(), "tls", sizeof("tls") - 1)) {
		php_url_free(u);
		cbx_throw(req, CBX_E_TLS, "https:// needs PHP's openssl extension, which this PHP lacks; load it, or use the PHP class's curl transport");
		return false;
	}

	smart_str_appends(&req->target, req->tls ? "tls://" : "tcp://");
	smart_str_append(&req->target, u->host);
	smart_str_appendc(&req->target, ':');
	smart_str_append_unsigned(&req->target, port);
	smart_str_0(&req->target);
	smart_str_appends(&req->id, CBX_PERSISTENT_PREFIX);
	smart_str_append_smart_str(&req->id, &req->target);
	smart_str_0(&req->id);

	smart_str_append(&req->head, method);
	smart_str_appendc(&req->head, ' ');
	if (u->path != NULL && ZSTR_LEN(u->path) > 0) {
		smart_str_append(&req->head, u->path);
	} else {
		smart_str_appendc(&req->head, '/');
	}
	if (u->query != NULL) {
		smart_str_appendc(&req->head, '?');
		smart_str_append(&req->head, u->query);
	}
	smart_str_appends(&req->head, " HTTP/1.1\r\nHost: ");
	smart_str_append(&req->head, u->host);
	if (port != (req->tls ? 443 : 80)) {
		smart_str_appendc(&req->head, ':');
		smart_str_append_unsigned(&req->head, port);
	}
	smart_str_appends(&req->head, "\r\n");
	php_url_free(u);

	req->repeatable = zend_string_equals_literal(method, "GET") || zend_string_equals_literal(method, "HEAD");
	ZEND_HASH_FOREACH_KEY_VAL(headers, index, name, value) {
		zend_string *v;
		if (name == NULL) {
			zend_argument_value_error(3, "must map header names to values; got the integer key " ZEND_LONG_FMT, (zend_long) index);
			return false;
		}
		if (!cbx_is_token(ZSTR_VAL(name), ZSTR_LEN(name))) {
			zend_argument_value_error(3, "must map header names (tokens) to values; got the key \"%s\"", ZSTR_VAL(name));
			return false;
		}
		if (zend_string_equals_literal_ci(name, "Host") || zend_string_equals_literal_ci(name, "Content-Length")
			|| zend_string_equals_literal_ci(name, "Connection") || zend_string_equals_literal_ci(name, "Transfer-Encoding")) {
			zend_argument_value_error(3, "must not hold %s: the transport writes it", ZSTR_VAL(name));
			return false;
		}
		ZVAL_DEREF(value);
		if (Z_TYPE_P(value) != IS_STRING && Z_TYPE_P(value) != IS_LONG) {
			zend_argument_value_error(3, "must hold string values; %s is %s", ZSTR_VAL(name), zend_zval_type_name(value));
			return false;
		}
		v = zval_get_string(value);
		if (strpbrk(ZSTR_VAL(v), "\r\n") != NULL || memchr(ZSTR_VAL(v), '\0', ZSTR_LEN(v)) != NULL) {
			zend_argument_value_error(3, "must not hold CR, LF or NUL in a value; %s does", ZSTR_VAL(name));
			zend_string_release(v);
			return false;
		}
		if (zend_string_equals_literal_ci(name, "Idempotency-Key") && ZSTR_LEN(v) > 0) {
			req->repeatable = true;
		}
		smart_str_append(&req->head, name);
		smart_str_appends(&req->head, ": ");
		smart_str_append(&req->head, v);
		smart_str_appends(&req->head, "\r\n");
		zend_string_release(v);
	} ZEND_HASH_FOREACH_END();

	smart_str_appends(&req->head, "Content-Length: ");
	smart_str_append_unsigned(&req->head, ZSTR_LEN(req->body));
	smart_str_appends(&req->head, req->persistent ? "\r\n\r\n" : "\r\nConnection: close\r\n\r\n");
	if (ZSTR_LEN(req->head.s) + ZSTR_LEN(req->body) <= CBX_ONE_WRITE && ZSTR_LEN(req->body) > 0) {
		/* one write, one segment: head and body together */
		smart_str_append(&req->head, req->body);
		zend_string_release(req->body);
		req->body = ZSTR_EMPTY_ALLOC();
	}
	smart_str_0(&req->head);
	return true;
}

static void cbx_request_free(cbx_request *req)
{
	smart_str_free(&req->target);
	smart_str_free(&req->id);
	smart_str_free(&req->head);
	if (req->body != NULL) {
		zend_string_release(req->body);
	}
}

PHP_FUNCTION(Cometbox_Native_request)
{
	zend_string *method, *url, *body = NULL;
	HashTable *headers = NULL;
	double timeout = 0, connect_timeout = 0;
	bool timeout_null = true, connect_timeout_null = true, persistent = false, persistent_null = true;
	cbx_request req;
	cbx_response *r;
	cbx_failure failure;
	int attempt;
	zend_long saved_reporting;

	ZEND_PARSE_PARAMETERS_START(2, 7)
		Z_PARAM_STR(method)
		Z_PARAM_STR(url)
		Z_PARAM_OPTIONAL
		Z_PARAM_ARRAY_HT(headers)
		Z_PARAM_STR(body)
		Z_PARAM_DOUBLE_OR_NULL(timeout, timeout_null)
		Z_PARAM_DOUBLE_OR_NULL(connect_timeout, connect_timeout_null)
		Z_PARAM_BOOL_OR_NULL(persistent, persistent_null)
	ZEND_PARSE_PARAMETERS_END();

	memset(&req, 0, sizeof req);
	req.method = ZSTR_VAL(method);
	req.url = ZSTR_VAL(url);
	req.timeout = timeout_null ? COMETBOX_G(timeout) : timeout;
	req.connect_timeout = connect_timeout_null ? COMETBOX_G(connect_timeout) : connect_timeout;
	req.persistent = persistent_null ? COMETBOX_G(persistent) : persistent;
	req.head_request = zend_string_equals_literal(method, "HEAD");
	if (!zend_finite(req.timeout) || req.timeout <= 0) {
		zend_argument_value_error(5, "must be a number of seconds above 0");
		RETURN_THROWS();
	}
	if (!zend_finite(req.connect_timeout) || req.connect_timeout <= 0) {
		zend_argument_value_error(6, "must be a number of seconds above 0");
		RETURN_THROWS();
	}
	req.deadline = cbx_now() + req.timeout;
	req.body = body != NULL ? zend_string_copy(body) : ZSTR_EMPTY_ALLOC();
	if (!cbx_prepare(&req, method, url, headers != NULL ? headers : (HashTable *) &zend_empty_array)) {
		cbx_request_free(&req);
		RETURN_THROWS();
	}
	COMETBOX_G(requests)++;

	r = emalloc(sizeof *r);
	/* as @ does: failures are reported by the exception, not as warnings */
	saved_reporting = EG(error_reporting);
	EG(error_reporting) = 0;
	for (attempt = 0; ; attempt++) {
		php_stream *stream = req.persistent ? cbx_reuse(&req) : NULL;
		bool reused = stream != NULL, reusable = false, ok;

		memset(&failure, 0, sizeof failure);
		if (stream == NULL && (stream = cbx_connect(&req, &failure)) == NULL) {
			break;
		}
		cbx_response_init(r, req.head_request);
		ok = cbx_write(stream, &req, &failure);
		if (!ok) {
			/* the node may have answered before it hung up (a 413 for a body it would not read) */
			cbx_failure read_failure;
			memset(&read_failure, 0, sizeof read_failure);
			ok = cbx_read(stream, &req, r, &reusable, &read_failure);
			reusable = false;
			if (!ok && read_failure.stale == false && cbx_response_started(r)) {
				failure = read_failure;
			}
		} else {
			ok = cbx_read(stream, &req, r, &reusable, &failure);
		}
		if (ok) {
			if (reusable && req.persistent) {
				/* kept, in EG(persistent_list), for the next request of this process */
			} else {
				cbx_close(stream, req.persistent);
			}
			EG(error_reporting) = saved_reporting;
			cbx_answer(return_value, r);
			cbx_response_free(r);
			efree(r);
			cbx_request_free(&req);
			return;
		}
		cbx_close(stream, req.persistent);
		cbx_response_free(r);
		if (reused && attempt == 0 && failure.stale && req.repeatable && req.deadline > cbx_now()) {
			/* the node closed a kept connection as we used it: once more on a new one */
			COMETBOX_G(stale_retried)++;
			continue;
		}
		break;
	}
	EG(error_reporting) = saved_reporting;
	efree(r);
	cbx_throw(&req, failure.code, failure.what);
	cbx_request_free(&req);
}

/* Our entries in EG(persistent_list): the streams, up to max. */
static int cbx_kept(php_stream **out, int max)
{
	zend_string *key;
	zend_resource *le;
	int n = 0;
	ZEND_HASH_FOREACH_STR_KEY_PTR(&EG(persistent_list), key, le) {
		if (key != NULL && le != NULL && le->type == php_file_le_pstream() && n < max
			&& ZSTR_LEN(key) > sizeof(CBX_PERSISTENT_PREFIX) - 1
			&& memcmp(ZSTR_VAL(key), CBX_PERSISTENT_PREFIX, sizeof(CBX_PERSISTENT_PREFIX) - 1) == 0) {
			out[n++] = (php_stream *) le->ptr;
		}
	} ZEND_HASH_FOREACH_END();
	return n;
}

PHP_FUNCTION(Cometbox_Native_stats)
{
	php_stream *kept[256];

	ZEND_PARSE_PARAMETERS_NONE();
	array_init_size(return_value, 6);
	add_assoc_long(return_value, "requests", COMETBOX_G(requests));
	add_assoc_long(return_value, "connections_opened", COMETBOX_G(connections_opened));
	add_assoc_long(return_value, "connections_reused", COMETBOX_G(connections_reused));
	add_assoc_long(return_value, "stale_found", COMETBOX_G(stale_found));
	add_assoc_long(return_value, "stale_retried", COMETBOX_G(stale_retried));
	add_assoc_long(return_value, "open", cbx_kept(kept, 256));
}

PHP_FUNCTION(Cometbox_Native_close_all)
{
	php_stream *kept[256];
	int n, i, total = 0;

	ZEND_PARSE_PARAMETERS_NONE();
	do { /* closing edits the list: collect, then close */
		n = cbx_kept(kept, 256);
		for (i = 0; i < n; i++) {
			php_stream_pclose(kept[i]);
		}
		total += n;
	} while (n == 256);
	RETURN_LONG(total);
}

static PHP_GINIT_FUNCTION(cometbox)
{
#if defined(COMPILE_DL_COMETBOX) && defined(ZTS)
	ZEND_TSRMLS_CACHE_UPDATE();
#endif
	memset(cometbox_globals, 0, sizeof *cometbox_globals);
}

PHP_MINIT_FUNCTION(cometbox)
{
	REGISTER_INI_ENTRIES();
	register_cometbox_symbols(module_number);
	cbx_network_exception_ce = register_class_Cometbox_Native_NetworkException(spl_ce_RuntimeException);
	return SUCCESS;
}

PHP_MSHUTDOWN_FUNCTION(cometbox)
{
	UNREGISTER_INI_ENTRIES();
	return SUCCESS;
}

PHP_RINIT_FUNCTION(cometbox)
{
#if defined(ZTS) && defined(COMPILE_DL_COMETBOX)
	ZEND_TSRMLS_CACHE_UPDATE();
#endif
	return SUCCESS;
}

PHP_MINFO_FUNCTION(cometbox)
{
	char bounds[64];
	php_info_print_table_start();
	php_info_print_table_header(2, "cometbox native transport", "enabled");
	php_info_print_table_row(2, "Version", PHP_COMETBOX_VERSION);
	php_info_print_table_row(2, "TLS (https:// nodes)",
		zend_hash_str_exists(php_stream_xport_get_hash(), "tls", sizeof("tls") - 1) ? "through PHP's openssl" : "no: PHP's openssl is not loaded");
	snprintf(bounds, sizeof bounds, "head %d bytes, body %d bytes", CBX_MAX_HEAD, CBX_MAX_BODY);
	php_info_print_table_row(2, "Answer bounds", bounds);
	php_info_print_table_end();
	DISPLAY_INI_ENTRIES();
}

zend_module_entry cometbox_module_entry = {
	STANDARD_MODULE_HEADER,
	"cometbox",
	ext_functions,
	PHP_MINIT(cometbox),
	PHP_MSHUTDOWN(cometbox),
	PHP_RINIT(cometbox),
	NULL,
	PHP_MINFO(cometbox),
	PHP_COMETBOX_VERSION,
	PHP_MODULE_GLOBALS(cometbox),
	PHP_GINIT(cometbox),
	NULL,
	NULL,
	STANDARD_MODULE_PROPERTIES_EX
};

#ifdef COMPILE_DL_COMETBOX
#ifdef ZTS
ZEND_TSRMLS_CACHE_DEFINE()
#endif
ZEND_GET_MODULE(cometbox)
#endif
