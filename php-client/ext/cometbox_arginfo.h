/* This is a generated file, edit the .stub.php file instead.
 * Stub hash: 5ec0aca97c4251760b1aac9ef89a802440a1007f */

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_Cometbox_Native_request, 0, 2, IS_ARRAY, 0)
	ZEND_ARG_TYPE_INFO(0, method, IS_STRING, 0)
	ZEND_ARG_TYPE_INFO(0, url, IS_STRING, 0)
	ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, headers, IS_ARRAY, 0, "[]")
	ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, body, IS_STRING, 0, "\"\"")
	ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, timeout, IS_DOUBLE, 1, "null")
	ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, connectTimeout, IS_DOUBLE, 1, "null")
	ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, persistent, _IS_BOOL, 1, "null")
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_Cometbox_Native_stats, 0, 0, IS_ARRAY, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_Cometbox_Native_close_all, 0, 0, IS_LONG, 0)
ZEND_END_ARG_INFO()


ZEND_FUNCTION(Cometbox_Native_request);
ZEND_FUNCTION(Cometbox_Native_stats);
ZEND_FUNCTION(Cometbox_Native_close_all);


static const zend_function_entry ext_functions[] = {
	ZEND_NS_FALIAS("Cometbox\\Native", request, Cometbox_Native_request, arginfo_Cometbox_Native_request)
	ZEND_NS_FALIAS("Cometbox\\Native", stats, Cometbox_Native_stats, arginfo_Cometbox_Native_stats)
	ZEND_NS_FALIAS("Cometbox\\Native", close_all, Cometbox_Native_close_all, arginfo_Cometbox_Native_close_all)
	ZEND_FE_END
};


static const zend_function_entry class_Cometbox_Native_NetworkException_methods[] = {
	ZEND_FE_END
};

static void register_cometbox_symbols(int module_number)
{
	REGISTER_STRING_CONSTANT("Cometbox\\Native\\VERSION", PHP_COMETBOX_VERSION, CONST_PERSISTENT);
}

static zend_class_entry *register_class_Cometbox_Native_NetworkException(zend_class_entry *class_entry_RuntimeException)
{
	zend_class_entry ce, *class_entry;

	INIT_NS_CLASS_ENTRY(ce, "Cometbox\\Native", "NetworkException", class_Cometbox_Native_NetworkException_methods);
	class_entry = zend_register_internal_class_ex(&ce, class_entry_RuntimeException);

	zval const_CONNECT_value;
	ZVAL_LONG(&const_CONNECT_value, CBX_E_CONNECT);
	zend_string *const_CONNECT_name = zend_string_init_interned("CONNECT", sizeof("CONNECT") - 1, 1);
	zend_declare_class_constant_ex(class_entry, const_CONNECT_name, &const_CONNECT_value, ZEND_ACC_PUBLIC, NULL);
	zend_string_release(const_CONNECT_name);

	zval const_TIMEOUT_value;
	ZVAL_LONG(&const_TIMEOUT_value, CBX_E_TIMEOUT);
	zend_string *const_TIMEOUT_name = zend_string_init_interned("TIMEOUT", sizeof("TIMEOUT") - 1, 1);
	zend_declare_class_constant_ex(class_entry, const_TIMEOUT_name, &const_TIMEOUT_value, ZEND_ACC_PUBLIC, NULL);
	zend_string_release(const_TIMEOUT_name);

	zval const_CLOSED_value;
	ZVAL_LONG(&const_CLOSED_value, CBX_E_CLOSED);
	zend_string *const_CLOSED_name = zend_string_init_interned("CLOSED", sizeof("CLOSED") - 1, 1);
	zend_declare_class_constant_ex(class_entry, const_CLOSED_name, &const_CLOSED_value, ZEND_ACC_PUBLIC, NULL);
	zend_string_release(const_CLOSED_name);

	zval const_PROTOCOL_value;
	ZVAL_LONG(&const_PROTOCOL_value, CBX_E_PROTOCOL);
	zend_string *const_PROTOCOL_name = zend_string_init_interned("PROTOCOL", sizeof("PROTOCOL") - 1, 1);
	zend_declare_class_constant_ex(class_entry, const_PROTOCOL_name, &const_PROTOCOL_value, ZEND_ACC_PUBLIC, NULL);
	zend_string_release(const_PROTOCOL_name);

	zval const_TOO_LARGE_value;
	ZVAL_LONG(&const_TOO_LARGE_value, CBX_E_TOO_LARGE);
	zend_string *const_TOO_LARGE_name = zend_string_init_interned("TOO_LARGE", sizeof("TOO_LARGE") - 1, 1);
	zend_declare_class_constant_ex(class_entry, const_TOO_LARGE_name, &const_TOO_LARGE_value, ZEND_ACC_PUBLIC, NULL);
	zend_string_release(const_TOO_LARGE_name);

	zval const_TLS_value;
	ZVAL_LONG(&const_TLS_value, CBX_E_TLS);
	zend_string *const_TLS_name = zend_string_init_interned("TLS", sizeof("TLS") - 1, 1);
	zend_declare_class_constant_ex(class_entry, const_TLS_name, &const_TLS_value, ZEND_ACC_PUBLIC, NULL);
	zend_string_release(const_TLS_name);

	return class_entry;
}
