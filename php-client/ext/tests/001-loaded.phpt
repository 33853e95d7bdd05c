--TEST--
cometbox: loaded, with its version, functions, exception class and ini settings
--EXTENSIONS--
cometbox
--FILE--
<?php
var_dump(extension_loaded('cometbox'), phpversion('cometbox') === Cometbox\Native\VERSION, Cometbox\Native\VERSION);
var_dump(ini_get('cometbox.persistent'), ini_get('cometbox.connect_timeout'), ini_get('cometbox.timeout'));
var_dump(ini_set('cometbox.timeout', '0'), ini_get('cometbox.timeout'), ini_set('cometbox.timeout', '0.5'), ini_get('cometbox.timeout'));
var_dump(get_parent_class('Cometbox\Native\NetworkException'));
var_dump((new ReflectionClass('Cometbox\Native\NetworkException'))->getConstants());
var_dump(array_keys(Cometbox\Native\stats()));
ob_start();
phpinfo(INFO_MODULES);
$info = ob_get_clean();
$start = strpos($info, "\ncometbox\n");
echo substr($info, $start + 1, strpos($info, "\n\n", strpos($info, 'cometbox.timeout')) - $start), "\n";
?>
--EXPECTF--
bool(true)
bool(true)
string(5) "0.1.0"
string(1) "1"
string(3) "1.0"
string(3) "2.0"
bool(false)
string(3) "2.0"
string(3) "2.0"
string(3) "0.5"
string(16) "RuntimeException"
array(6) {
  ["CONNECT"]=>
  int(1)
  ["TIMEOUT"]=>
  int(2)
  ["CLOSED"]=>
  int(3)
  ["PROTOCOL"]=>
  int(4)
  ["TOO_LARGE"]=>
  int(5)
  ["TLS"]=>
  int(6)
}
array(6) {
  [0]=>
  string(8) "requests"
  [1]=>
  string(18) "connections_opened"
  [2]=>
  string(18) "connections_reused"
  [3]=>
  string(11) "stale_found"
  [4]=>
  string(13) "stale_retried"
  [5]=>
  string(4) "open"
}
cometbox

cometbox native transport => enabled
Version => 0.1.0
TLS (https:// nodes) => %s
Answer bounds => head 16384 bytes, body 1048576 bytes

Directive => Local Value => Master Value
cometbox.connect_timeout => 1.0 => 1.0
cometbox.persistent => On => On
cometbox.timeout => 0.5 => 2.0
