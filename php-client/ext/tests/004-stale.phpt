--TEST--
cometbox: a kept connection the node closed is replaced; one dropped under a request is retried once, only with an Idempotency-Key
--EXTENSIONS--
cometbox
--FILE--
<?php
require __DIR__ . '/fake_node_client.inc';
$node = FakeNode::start([
    ['answer' => FakeNode::ok('1'), 'then' => 'close'], // the node closes after answering (idle timeout, restart)
    ['answer' => FakeNode::ok('2')],                    // so this goes on a new connection
    ['drop' => true],                                   // the node drops the kept connection as the request arrives
    ['answer' => FakeNode::ok('3')],                    // the one retry, on a new connection
    ['drop' => true],                                   // again, for a request without a key: not retried
    ['drop' => true],                                   // a fresh connection dropped: never retried
    ['answer' => FakeNode::ok('4')],
]);
$u = $node->url . '/publish';
$before = Cometbox\Native\stats();
show(fn () => Cometbox\Native\request('POST', $u, ['Idempotency-Key' => 'a'], 'one'));
usleep(50000); // the node's FIN arrives
show(fn () => Cometbox\Native\request('POST', $u, ['Idempotency-Key' => 'b'], 'two'));
print_r(delta($before));
$before = Cometbox\Native\stats();
show(fn () => Cometbox\Native\request('POST', $u, ['Idempotency-Key' => 'c'], 'three'));
print_r(delta($before));
$before = Cometbox\Native\stats();
show(fn () => Cometbox\Native\request('POST', $u, ['Content-Type' => 'text/plain'], 'no key'));
show(fn () => Cometbox\Native\request('POST', $u, ['Idempotency-Key' => 'd'], 'fresh'));
show(fn () => Cometbox\Native\request('POST', $u, ['Idempotency-Key' => 'e'], 'four'));
print_r(delta($before));
foreach ($node->requests() as $r) {
    echo $r['conn'], ' ', $r['headers']['idempotency-key'] ?? '-', ' ', $r['body'], "\n";
}
$node->stop();
?>
--EXPECT--
200 {"content-type":"application\/xml","content-length":"1"} "1"
200 {"content-type":"application\/xml","content-length":"1"} "2"
Array
(
    [requests] => 2
    [connections_opened] => 2
    [stale_found] => 1
    [open] => 1
)
200 {"content-type":"application\/xml","content-length":"1"} "3"
Array
(
    [requests] => 1
    [connections_opened] => 1
    [connections_reused] => 1
    [stale_retried] => 1
    [open] => 1
)
NetworkException CLOSED: POST http://NODE/publish: connection closed before any answer (timeout 2s)
NetworkException CLOSED: POST http://NODE/publish: connection closed before any answer (timeout 2s)
200 {"content-type":"application\/xml","content-length":"1"} "4"
Array
(
    [requests] => 3
    [connections_opened] => 2
    [connections_reused] => 1
    [open] => 1
)
1 a one
2 b two
2 c three
3 c three
3 - no key
4 d fresh
5 e four
