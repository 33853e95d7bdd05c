--TEST--
cometbox: https:// nodes through PHP's openssl, kept alive and verified
--EXTENSIONS--
cometbox
openssl
--INI--
openssl.cafile={PWD}/008-tls.pem.tmp
--FILE--
<?php
require __DIR__ . '/fake_node_client.inc';
// A self-signed certificate for "localhost", trusted through openssl.cafile.
$pem = __DIR__ . '/008-tls.pem.tmp';
$key = openssl_pkey_new(['private_key_type' => OPENSSL_KEYTYPE_EC, 'curve_name' => 'prime256v1']);
$csr = openssl_csr_new(['commonName' => 'localhost'], $key, ['digest_alg' => 'sha256']);
$cert = openssl_csr_sign($csr, null, $key, 1, ['digest_alg' => 'sha256']);
openssl_x509_export($cert, $certPem);
openssl_pkey_export($key, $keyPem);
file_put_contents($pem, $certPem . $keyPem);

$node = FakeNode::start([
    ['answer' => FakeNode::ok('one')],
    ['answer' => FakeNode::ok('two'), 'then' => 'close'],
    ['answer' => FakeNode::ok('three')],
], $pem);
$before = Cometbox\Native\stats();
show(fn () => Cometbox\Native\request('POST', $node->url . '/publish', ['Idempotency-Key' => 'a'], 'x', 10.0, 10.0));
show(fn () => Cometbox\Native\request('POST', $node->url . '/publish', ['Idempotency-Key' => 'b'], 'x', 10.0, 10.0));
usleep(100000);
show(fn () => Cometbox\Native\request('POST', $node->url . '/publish', ['Idempotency-Key' => 'c'], 'x', 10.0, 10.0));
print_r(delta($before));
// The certificate names localhost, not 127.0.0.1: refused.
$ip = str_replace('localhost', '127.0.0.1', $node->url);
show(fn () => Cometbox\Native\request('POST', $ip . '/publish', [], 'x', 10.0, 10.0));
echo count($node->requests()), " requests reached the node\n";
$node->stop();
Cometbox\Native\close_all();
?>
--CLEAN--
<?php
@unlink(__DIR__ . '/008-tls.pem.tmp');
?>
--EXPECTF--
200 {"content-type":"application\/xml","content-length":"3"} "one"
200 {"content-type":"application\/xml","content-length":"3"} "two"
200 {"content-type":"application\/xml","content-length":"5"} "three"
Array
(
    [requests] => 3
    [connections_opened] => 2
    [connections_reused] => 1
    [stale_found] => 1
    [open] => 1
)
NetworkException CONNECT: POST https://NODE/publish: cannot connect to NODE: Peer certificate CN=%sdid not match expected CN=%s (timeout 10s)
3 requests reached the node
