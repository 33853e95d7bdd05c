/*
 * cometbox: the native transport of cometbox's PHP client. See README.md
 * beside this file and php-client/README.md.
 */
#ifndef PHP_COMETBOX_H
#define PHP_COMETBOX_H

extern zend_module_entry cometbox_module_entry;
#define phpext_cometbox_ptr &cometbox_module_entry

/* The same version as the node, the PHP class and package.xml (VERSION). */
#define PHP_COMETBOX_VERSION "0.1.0"

#if defined(ZTS) && defined(COMPILE_DL_COMETBOX)
ZEND_TSRMLS_CACHE_EXTERN()
#endif

ZEND_BEGIN_MODULE_GLOBALS(cometbox)
	/* ini */
	bool persistent;
	double connect_timeout;
	double timeout;
	/* what this process (this thread, with ZTS) has done, for stats() */
	zend_long requests;
	zend_long connections_opened;
	zend_long connections_reused;
	zend_long stale_found;
	zend_long stale_retried;
ZEND_END_MODULE_GLOBALS(cometbox)

ZEND_EXTERN_MODULE_GLOBALS(cometbox)
#define COMETBOX_G(v) ZEND_MODULE_GLOBALS_ACCESSOR(cometbox, v)

#endif
