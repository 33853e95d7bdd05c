dnl config.m4 for the cometbox extension: phpize && ./configure && make

PHP_ARG_ENABLE([cometbox],
  [whether to enable the cometbox native transport],
  [AS_HELP_STRING([--enable-cometbox], [Enable cometbox, the native transport of cometbox's PHP client])],
  [no])

if test "$PHP_COMETBOX" != "no"; then
  AC_DEFINE(HAVE_COMETBOX, 1, [ Have the cometbox extension ])
  dnl cometbox_http.c is plain C; -DCBX_ZEND_ALLOC makes it allocate with emalloc.
  PHP_NEW_EXTENSION(cometbox, cometbox.c cometbox_http.c, $ext_shared,, -DZEND_ENABLE_STATIC_TSRMLS_CACHE=1 -DCBX_ZEND_ALLOC)
fi
