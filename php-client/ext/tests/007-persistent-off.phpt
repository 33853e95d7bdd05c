--TEST--
cometbox: with cometbox.persistent=0 (or persistent: false) each request has its own connection, closed after it
--EXTENSIONS--
cometbox
--INI--
cometbox.persistent=0
--FILE--
<?php
require __DIR__ . '/fake_node_client.inc';
$node = FakeNode::start([['answer' => FakeNode::ok('ok')]]);
$before = Cometbox\Native\stats();
for ($i = 0; $i < 3; $i++) {
    show(fn () => Cometbox\Native\request('POST', $node->url . '/publish', ['Idempotency-Key' => "k$i"], 'x'));
}
print_r(delta($before));
ini_set('cometbox.persistent', '1');
$before = Cometbox\Native\stats();
Cometbox\Native\request('POST', $node->url . '/publish', [], 'x');
Cometbox\Native\request('POST', $node->url . '/publish', [], 'x', persistent: false);
Cometbox\Native\request('POST', $node->url . '/publish', [], 'x');
print_r(delta($before));
foreach ($node->requests() as $r) {
    echo $r['conn'], ' ', $r['headers']['connection'] ?? '-', "\n";
}
$node->stop();
?>
--EXPECT--
200 {"content-type":"application\/xml","content-length":"2"} "ok"
200 {"content-type":"application\/xml","content-length":"2"} "ok"
200 {"content-type":"application\/xml","content-length":"2"} "ok"
Array
(
    [requests] => 3
    [connections_opened] => 3
    [open] => 0
)
Array
(
    [requests] => 3
    [connections_opened] => 2
    [connections_reused] => 1
    [open] => 1
)
1 close
2 close
3 close
4 -
5 close
4 -
